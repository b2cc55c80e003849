//! What may be uploaded here, for the browser's checks before uploading. (Uploads themselves
//! are `POST /files`, a plain route that streams; see the server's `files` module.)

use leptos::prelude::*;

use crate::{error::AppError, uploads::UploadRules};

/// This server's upload rules (the size limit, the kinds of file allowed, the storage quota),
/// and how much storage the signed-in user's files take.
#[server(endpoint = "upload_rules")]
pub async fn current_upload_rules() -> Result<UploadRules, AppError> {
    let (state, me) = super::ssr::signed_in().await?;
    let used_bytes = crate::attachments::used_bytes(&state.db, me.id)
        .await
        .map_err(|error| AppError::internal(&error))?;
    Ok(UploadRules {
        used_bytes,
        ..state.upload_rules.as_ref().clone()
    })
}
