//! `/api/v1/conversations/{id}/messages`: a conversation's history, and sending in it on behalf
//! of one of its two people.

use std::collections::HashMap;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use app::{
    conversations,
    error::AppError,
    integration::{
        idempotency,
        identities::{self, ExternalId},
    },
    messages::{self, Content, MessagesError, Page, Sent},
    model::{
        ClientMsgId, ContextCard, ConversationId, FieldError, MessageBody, MessageKind,
        MessageView, UserId,
    },
    protocol::ServerFrame,
    state::AppState,
};

use super::{
    auth::ApiCaller,
    conversations::Participant,
    problem::{ApiJson, ApiPath, ApiQuery, Problem},
};
use crate::metrics as names;

/// The header that makes a retried send store one message.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A file sent with a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiAttachment {
    pub id: i64,
    pub file_name: String,
    /// The type Parley found in the file's bytes.
    pub content_type: String,
    pub size_bytes: u64,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiMessageKind {
    /// One of the two people.
    User,
    /// The marketplace itself: shown as a notice.
    System,
}

/// A message.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({
    "id": 512,
    "conversation_id": 7,
    "seq": 3,
    "kind": "user",
    "from": "u-2002",
    "sender": {"id": 43, "external_id": "u-2002", "username": "bob", "name": "Bob"},
    "body": "Is it still available?",
    "created_at": "2026-12-04T18:05:00.000Z",
    "attachments": [],
    "context": null
})))]
pub struct ApiMessage {
    pub id: i64,
    pub conversation_id: i64,
    /// Its place in the conversation: 1, 2, 3… with no gaps.
    pub seq: i64,
    pub kind: ApiMessageKind,
    /// The external id of the person who sent it; `null` for a system message (and for an
    /// account made in Parley itself).
    pub from: Option<String>,
    /// The person who sent it; `null` for a system message.
    pub sender: Option<Participant>,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub attachments: Vec<ApiAttachment>,
    /// The product or order card it was sent with, as it was then.
    pub context: Option<ContextCard>,
}

impl ApiMessage {
    fn new(message: MessageView, external_ids: &HashMap<UserId, String>) -> Self {
        let system = message.kind == MessageKind::System;
        let from = external_ids
            .get(&message.sender.id)
            .filter(|_| !system)
            .cloned();
        Self {
            id: message.id.0,
            conversation_id: message.conversation_id.0,
            seq: message.seq,
            kind: if system {
                ApiMessageKind::System
            } else {
                ApiMessageKind::User
            },
            sender: (!system).then(|| Participant::new(message.sender, from.clone())),
            from,
            body: message.body,
            created_at: message.created_at,
            attachments: message
                .attachments
                .into_iter()
                .map(|file| ApiAttachment {
                    id: file.id.0,
                    file_name: file.file_name,
                    content_type: file.content_type,
                    size_bytes: file.size_bytes,
                })
                .collect(),
            context: message.card,
        }
    }
}

/// Which part of the history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The page just before this `seq` (older messages).
    #[param(example = 51)]
    pub before: Option<i64>,
    /// The page just after this `seq` (newer messages, to catch up).
    #[param(example = 0)]
    pub after: Option<i64>,
}

/// A page of history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub messages: Vec<ApiMessage>,
    /// Whether there are more beyond this page (older for `before` and the latest page, newer
    /// for `after`).
    pub has_more: bool,
}

/// A conversation's history by keyset on `seq`, 50 messages a page: the latest page, the one
/// before a `seq` or the one after it, oldest first.
#[utoipa::path(
    get,
    path = "/conversations/{id}/messages",
    tag = "messages",
    params(
        ("id" = i64, Path, description = "The conversation's id.", example = 1),
        HistoryQuery,
    ),
    responses(
        (status = 200, description = "A page of messages.", body = MessagePage),
        (status = 401, description = "No valid API key.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Both `before` and `after`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(super) async fn history(
    State(state): State<AppState>,
    _caller: ApiCaller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<MessagePage>, Problem> {
    let page = match (query.before, query.after) {
        (None, None) => Page::Latest,
        (Some(seq), None) => Page::Before(seq),
        (None, Some(seq)) => Page::After(seq),
        (Some(_), Some(_)) => {
            return Err(Problem::parameter(
                "before",
                "Give `before` or `after`, not both.",
            ));
        }
    };
    let conversation = ConversationId(id);
    let members = members(&state, conversation).await?;
    // The marketplace reads as either of the two.
    let page = messages::history(&state.db, members[0], conversation, page)
        .await
        .map_err(|error| Problem::from(AppError::from(error)))?;
    let external_ids = identities::external_ids(&state.db, members)
        .await
        .map_err(|error| Problem::internal(&error))?;
    Ok(Json(MessagePage {
        messages: page
            .messages
            .into_iter()
            .map(|message| ApiMessage::new(message, &external_ids))
            .collect(),
        has_more: page.has_more,
    }))
}

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(
    json!({"from": "u-1001", "body": "Your order has been packed and leaves today."}),
    json!({"from": null, "body": "Order #1042 has shipped."}),
    json!({
        "from": null,
        "body": "Order #1042 has shipped.",
        "context": {
            "kind": "order",
            "id": "1042",
            "title": "Order #1042",
            "url": "https://shop.example/orders/1042",
            "price": {"amount": "48.50", "currency": "EUR"},
            "status": "shipped"
        }
    })
))]
pub struct MessageInput {
    /// The external id of the one of the two people it is from, or `null` for a notice from
    /// the marketplace itself (a system message, unread for both). Required either way, so
    /// that a forgotten field never sends a notice.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    pub from: Option<Option<String>>,
    /// The text: 1 to 4000 characters, not blank; it may be empty (`""`) with a `context`.
    pub body: String,
    /// A product or order card sent with it (an order's new status, say): kept with this
    /// message as it is now, and from now on what the conversation is about.
    #[serde(default)]
    pub context: Option<ContextCard>,
}

/// Reads a field that is there, `null` or not: `Some(None)` for `null`, and (through
/// `#[serde(default)]`) `None` when it is absent.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Sends a message as one of the conversation's two people, or (`"from": null`) as the
/// marketplace itself: a system message, shown as a notice. It is stored, then shown at once
/// in both people's open browsers, with the same receipts and unread counts as any message.
/// With an `Idempotency-Key` header, a retry stores nothing more and answers the same.
#[utoipa::path(
    post,
    path = "/conversations/{id}/messages",
    tag = "messages",
    params(
        ("id" = i64, Path, description = "The conversation's id.", example = 1),
        ("Idempotency-Key" = Option<String>, Header, description = "Any 1 to 255 visible ASCII characters; a request with a key already used for this conversation's sender stores nothing and answers the first message.", example = "order-1042-packed"),
    ),
    request_body = MessageInput,
    responses(
        (status = 201, description = "Sent (or sent before, with this Idempotency-Key).", body = ApiMessage),
        (status = 401, description = "No valid API key.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad field, a sender who is not one of the two, or an Idempotency-Key used for another message.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(super) async fn send(
    State(state): State<AppState>,
    _caller: ApiCaller,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<MessageInput>,
) -> Result<(StatusCode, Json<ApiMessage>), Problem> {
    let conversation = ConversationId(id);
    let key = match headers.get(IDEMPOTENCY_KEY) {
        Some(value) => Some(value.to_str().map_err(|_| {
            Problem::parameter(
                "Idempotency-Key",
                "An Idempotency-Key is 1 to 255 visible ASCII characters.",
            )
        })?),
        None => None,
    };
    let client_msg_id = idempotency::message_id(key)
        .map_err(|message| Problem::parameter("Idempotency-Key", &message))?;
    let mut errors = Vec::new();
    let from = match &input.from {
        None => {
            errors.push(FieldError::new(
                "from",
                "Say who it is from: an external id, or null for the marketplace itself.",
            ));
            None
        }
        Some(None) => Some(None),
        Some(Some(raw)) => ExternalId::parse(raw)
            .map_err(|message| errors.push(FieldError::new("from", message)))
            .ok()
            .map(Some),
    };
    let body = if input.context.is_some() {
        MessageBody::parse_caption(&input.body)
    } else {
        MessageBody::parse(&input.body)
    }
    .map_err(|message| errors.push(FieldError::new("body", message)))
    .ok();
    let card = match input.context {
        None => Some(None),
        Some(card) => state
            .card_rules
            .check(card, "context")
            .map(Some)
            .map_err(|fields| errors.extend(fields))
            .ok(),
    };
    let (Some(from), Some(body), Some(card)) = (from, body, card) else {
        return Err(AppError::Invalid(errors).into());
    };
    let members = members(&state, conversation).await?;
    let content = Content {
        body,
        attachments: Vec::new(),
        card,
    };
    let sent = match from {
        Some(from) => {
            send_as(
                &state,
                members,
                conversation,
                &from,
                client_msg_id,
                &content,
            )
            .await
        }
        None => messages::send_system(
            &state.db,
            conversation,
            &client_msg_id,
            content.body.clone(),
            content.card.clone(),
        )
        .await
        .map_err(stored_problem),
    }?;
    if !sent.created
        && (sent.message.body != content.body.as_str() || sent.message.card != content.card)
    {
        return Err(key_reused());
    }
    if sent.created {
        publish(&state, members, &sent.message).await;
    }
    let external_ids = identities::external_ids(&state.db, members)
        .await
        .map_err(|error| Problem::internal(&error))?;
    Ok((
        StatusCode::CREATED,
        Json(ApiMessage::new(sent.message, &external_ids)),
    ))
}

/// Stores a message from `from`, who must be one of `members`, through the message writer (as
/// the browsers' messages are).
async fn send_as(
    state: &AppState,
    members: [UserId; 2],
    conversation: ConversationId,
    from: &ExternalId,
    client_msg_id: ClientMsgId,
    content: &Content,
) -> Result<Sent, Problem> {
    let sender = identities::find(&state.db, from)
        .await
        .map_err(|error| Problem::internal(&error))?
        .filter(|identity| members.contains(&identity.id))
        .ok_or_else(|| {
            Problem::from(AppError::invalid(
                "from",
                format!(
                    "{:?} is not one of this conversation's two people.",
                    from.as_str()
                ),
            ))
        })?;
    let sender_view = app::model::UserView {
        id: sender.id,
        username: sender.username,
        display_name: sender.display_name,
    };
    state
        .messages
        .send(sender_view, conversation, client_msg_id, content.clone())
        .await
        .map_err(stored_problem)
}

/// Shows a message sent through the API in both people's open browsers at once.
pub(super) async fn publish(state: &AppState, members: [UserId; 2], message: &MessageView) {
    metrics::counter!(names::MESSAGES_PERSISTED).increment(1);
    let frame = ServerFrame::Message {
        message: message.clone(),
    };
    if let Err(error) = state.realtime.publish(&members, &frame).await {
        // Stored but not delivered live: both sides catch up from history.
        tracing::error!(%error, "could not publish a message sent through the API");
    }
}

/// The problem for a message that could not be stored.
fn stored_problem(error: MessagesError) -> Problem {
    match error {
        MessagesError::ClientMsgIdReused => key_reused(),
        other => Problem::from(AppError::from(other)),
    }
}

/// The two people of a conversation, or 404.
async fn members(state: &AppState, conversation: ConversationId) -> Result<[UserId; 2], Problem> {
    conversations::members(&state.db, conversation)
        .await
        .map_err(|error| Problem::internal(&error))?
        .ok_or_else(|| Problem::not_found("There is no conversation with this id."))
}

/// An `Idempotency-Key` already used for a different message.
fn key_reused() -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "This Idempotency-Key was used for another message.",
        "A retry must send the same request as the first attempt; use a new key for a new message.",
    )
}
