//! What may be uploaded here, for the browser's checks before uploading. (Uploads themselves
//! are `POST /files`, a plain route that streams; see the server's `files` module.)

use leptos::prelude::*;

use crate::{error::AppError, uploads::UploadRules};

/// This server's upload rules: the size limit and the kinds of file allowed.
#[server(endpoint = "upload_rules")]
pub async fn current_upload_rules() -> Result<UploadRules, AppError> {
    let (state, _) = super::ssr::signed_in().await?;
    Ok(state.upload_rules.as_ref().clone())
}
