//! Conversations and their history.

use leptos::prelude::*;

use crate::{
    error::AppError,
    model::{ConversationId, ConversationSummary, HistoryPage},
};

/// The signed-in user's conversations, latest activity first.
#[server(endpoint = "conversations")]
pub async fn list_conversations() -> Result<Vec<ConversationSummary>, AppError> {
    let (state, me) = super::ssr::signed_in().await?;
    let list = crate::conversations::list(&state.db, me.id).await?;
    Ok(crate::conversations::with_presence(state.realtime.as_ref(), list).await)
}

/// The conversation with the user called `username`, started if there is none yet.
#[server(endpoint = "open_conversation")]
pub async fn open_conversation(username: String) -> Result<ConversationSummary, AppError> {
    let (state, me) = super::ssr::signed_in().await?;
    let summary = crate::conversations::open(&state.db, &me, &username).await?;
    let mut with_presence =
        crate::conversations::with_presence(state.realtime.as_ref(), vec![summary]).await;
    with_presence.pop().ok_or(AppError::Internal)
}

/// A page of up to 50 messages, oldest first: the latest page, the page before `before_seq`,
/// or the page after `after_seq` (not both).
#[server(endpoint = "history")]
pub async fn history(
    conversation_id: ConversationId,
    #[server(default)] before_seq: Option<i64>,
    #[server(default)] after_seq: Option<i64>,
) -> Result<HistoryPage, AppError> {
    use crate::messages::{self, Page};

    let (state, me) = super::ssr::signed_in().await?;
    let page = match (before_seq, after_seq) {
        (None, None) => Page::Latest,
        (Some(seq), None) => Page::Before(seq),
        (None, Some(seq)) => Page::After(seq),
        (Some(_), Some(_)) => {
            return Err(AppError::BadRequest(
                "give before_seq or after_seq, not both".into(),
            ));
        }
    };
    Ok(messages::history(&state.db, me.id, conversation_id, page).await?)
}
