//! Conversations and their history.

use leptos::prelude::*;

use crate::{
    error::AppError,
    model::{ConversationId, ConversationSummary, HistoryPage},
};

/// A page of the signed-in user's conversations, latest activity first: `limit` of them (1 to
/// 200, 200 unless given), from the first, or from after the conversation whose last activity
/// (`after_activity_ms`, milliseconds since 1970) and id (`after_id`) are given: the last of
/// the page before. A page shorter than `limit` is the last.
#[server(endpoint = "conversations")]
pub async fn list_conversations(
    #[server(default)] after_activity_ms: Option<i64>,
    #[server(default)] after_id: Option<ConversationId>,
    #[server(default)] limit: Option<u64>,
) -> Result<Vec<ConversationSummary>, AppError> {
    use crate::conversations::{LIST_PAGE_SIZE, ListCursor};

    let (state, me) = super::ssr::signed_in().await?;
    let limit = limit.unwrap_or(LIST_PAGE_SIZE);
    if !(1..=LIST_PAGE_SIZE).contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            format!("Ask for 1 to {LIST_PAGE_SIZE} conversations at a time."),
        ));
    }
    let after = match (after_activity_ms, after_id) {
        (None, None) => None,
        (Some(ms), Some(id)) => Some(ListCursor {
            last_activity_at: chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| {
                AppError::invalid("after_activity_ms", "Not a time Parley can read.")
            })?,
            id,
        }),
        _ => {
            return Err(AppError::BadRequest(
                "give after_activity_ms and after_id together".into(),
            ));
        }
    };
    let list = crate::conversations::list(&state.db, me.id, after, limit).await?;
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

/// Takes away the card the marketplace left waiting for the user's next message in a
/// conversation (the "remove" on "Asking about…"). Nothing waiting is fine: another tab may
/// have sent or removed it.
#[server(endpoint = "drop_waiting_card")]
pub async fn drop_waiting_card(conversation_id: ConversationId) -> Result<(), AppError> {
    let (state, me) = super::ssr::signed_in().await?;
    crate::conversations::drop_waiting_card(&state.db, me.id, conversation_id).await?;
    Ok(())
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
