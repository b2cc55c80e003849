//! `/api/v1/conversations`: opening the conversation of two of the marketplace's people, and
//! each person's list of conversations.

use axum::{
    Extension, Json,
    extract::{FromRequestParts, State},
    http::{StatusCode, header, request::Parts},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use app::{
    conversations::{self, ConversationsError, LIST_PAGE_SIZE, ListCursor},
    error::AppError,
    integration::{
        idempotency,
        identities::{self, ExternalId},
    },
    messages,
    model::{
        ContextCard, ConversationId, ConversationSummary, FieldError, MessageBody, UserId, UserView,
    },
    state::AppState,
};

use super::{
    auth::ApiCaller,
    problem::{ApiJson, ApiPath, ApiQuery, Problem},
    users::{external_id, linked},
};
use crate::http::transport::Scheme;

/// Where people reach Parley, when the configuration says (`PARLEY_PUBLIC_URL`): the links the
/// API answers point there rather than at the address the marketplace's backend called.
#[derive(Debug, Clone)]
pub struct PublicOrigin(pub Option<String>);

/// The origin of the links in an answer: the public one, else the one this request came to.
pub(super) struct LinkOrigin(String);

impl<S: Send + Sync> FromRequestParts<S> for LinkOrigin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        if let Some(PublicOrigin(Some(origin))) = parts.extensions.get::<PublicOrigin>() {
            return Ok(Self(origin.trim_end_matches('/').to_owned()));
        }
        let scheme = parts
            .extensions
            .get::<Scheme>()
            .copied()
            .unwrap_or(Scheme::Http);
        // The host allow-list has already checked it, when there is one.
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                Problem::from(AppError::BadRequest("A Host header is needed.".into()))
            })?;
        Ok(Self(format!("{}://{host}", scheme.as_str())))
    }
}

impl LinkOrigin {
    /// The page that opens conversation `id` for whichever of its two people follows it.
    pub(super) fn conversation(&self, id: ConversationId) -> String {
        format!("{}/conversations/{}", self.0, id.0)
    }
}

/// One of a conversation's two people.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Participant {
    /// Parley's id for the account.
    pub id: i64,
    /// The marketplace's id for the person; `null` for an account made in Parley itself.
    pub external_id: Option<String>,
    pub username: String,
    pub name: String,
}

impl Participant {
    pub(super) fn new(user: UserView, external_id: Option<String>) -> Self {
        Self {
            id: user.id.0,
            external_id,
            username: user.username,
            name: user.display_name,
        }
    }
}

/// Which two people, and what about.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(
    json!({"participants": ["u-1001", "u-2002"]}),
    json!({
        "participants": ["u-1001", "u-2002"],
        "context": {
            "kind": "order",
            "id": "1042",
            "title": "Order #1042",
            "url": "https://shop.example/orders/1042",
            "price": {"amount": "48.50", "currency": "EUR"},
            "status": "paid"
        }
    })
))]
pub struct ConversationInput {
    /// The external ids of the two people, each created first with `PUT /users/{external_id}`.
    pub participants: Vec<String>,
    /// A product or order card to put in the conversation, as a notice from the marketplace
    /// (unless it is already the conversation's latest card): it is then what the
    /// conversation is about.
    #[serde(default)]
    pub context: Option<ContextCard>,
}

/// The conversation of two people.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({
    "id": 7,
    "url": "https://chat.shop.example/conversations/7",
    "participants": [
        {"id": 42, "external_id": "u-1001", "username": "ann", "name": "Ann Seller"},
        {"id": 43, "external_id": "u-2002", "username": "bob", "name": "Bob"}
    ],
    "last_seq": 0,
    "last_activity_at": "2026-12-04T18:02:11.123Z",
    "context": null
})))]
pub struct ApiConversation {
    pub id: i64,
    /// A link that opens the conversation for either of its people (signing in first if
    /// needed).
    pub url: String,
    /// In the order they were given.
    pub participants: Vec<Participant>,
    /// The `seq` of its latest message; 0 when it has none.
    pub last_seq: i64,
    pub last_activity_at: DateTime<Utc>,
    /// The latest card sent in it (what it is about), if any.
    pub context: Option<ContextCard>,
}

/// Opens the conversation of two people: created (201), or the one they already have (200).
/// There is one conversation per pair, whoever opens it. With a `context` card, the card is
/// put in it as a notice from the marketplace, live in both people's browsers, unless it is
/// the conversation's latest card already (so a repeated call adds nothing).
#[utoipa::path(
    post,
    path = "/conversations",
    tag = "conversations",
    request_body = ConversationInput,
    responses(
        (status = 200, description = "The two already had this conversation.", body = ApiConversation),
        (status = 201, description = "The conversation was created.", body = ApiConversation),
        (status = 401, description = "No valid API key.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not two different, known people, or a bad card.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(super) async fn open(
    State(state): State<AppState>,
    _caller: ApiCaller,
    origin: LinkOrigin,
    ApiJson(input): ApiJson<ConversationInput>,
) -> Result<(StatusCode, Json<ApiConversation>), Problem> {
    // A bad card is refused before anything is created.
    let card = input
        .context
        .map(|card| state.card_rules.check(card, "context"))
        .transpose()
        .map_err(|errors| Problem::from(AppError::Invalid(errors)))?;
    let [first, second] = two_people(&state, &input.participants).await?;
    let (mut summary, created) = conversations::open_between(&state.db, first.id, second.id)
        .await
        .map_err(|error| match error {
            ConversationsError::WithSelf => invalid_participants(
                "#/participants",
                "A conversation is between two different people.",
            ),
            other => Problem::from(AppError::from(other)),
        })?;
    if let Some(card) = card
        && summary.about.as_ref() != Some(&card)
    {
        let client_msg_id = idempotency::message_id(None).map_err(|why| {
            tracing::error!(why, "could not number a card's notice");
            Problem::from(AppError::Internal)
        })?;
        let sent = messages::send_system(
            &state.db,
            summary.id,
            &client_msg_id,
            MessageBody::empty(),
            Some(card.clone()),
        )
        .await
        .map_err(|error| Problem::from(AppError::from(error)))?;
        super::messages::publish(&state, [first.id, second.id], &sent.message).await;
        summary.last_seq = sent.message.seq;
        summary.last_activity_at = sent.message.created_at;
        summary.about = Some(card);
    }
    let participants = vec![
        Participant {
            id: first.id.0,
            external_id: Some(first.external_id),
            username: first.username,
            name: first.display_name,
        },
        Participant {
            id: second.id.0,
            external_id: Some(second.external_id),
            username: second.username,
            name: second.display_name,
        },
    ];
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(ApiConversation {
            id: summary.id.0,
            url: origin.conversation(summary.id),
            participants,
            last_seq: summary.last_seq,
            last_activity_at: summary.last_activity_at,
            context: summary.about,
        }),
    ))
}

/// The two known people `participants` names, or a problem pointing at what is wrong.
async fn two_people(
    state: &AppState,
    participants: &[String],
) -> Result<[identities::Identity; 2], Problem> {
    let [first, second] = participants else {
        return Err(invalid_participants(
            "#/participants",
            "Give exactly two external ids.",
        ));
    };
    let mut found = Vec::with_capacity(2);
    let mut errors = Vec::new();
    for (index, raw) in [first, second].into_iter().enumerate() {
        let pointer = format!("#/participants/{index}");
        match ExternalId::parse(raw) {
            Err(message) => errors.push((pointer, message)),
            Ok(external) => match identities::find(&state.db, &external)
                .await
                .map_err(|error| Problem::internal(&error))?
            {
                Some(identity) => found.push(identity),
                None => errors.push((
                    pointer,
                    format!(
                        "No user has the external id {raw:?}; create it first with PUT /api/v1/users/{{external_id}}."
                    ),
                )),
            },
        }
    }
    if let Some((pointer, message)) = errors.first().cloned() {
        let mut problem = invalid_participants(&pointer, &message);
        problem.errors = errors
            .into_iter()
            .map(|(pointer, detail)| super::problem::InvalidField {
                detail,
                pointer: Some(pointer),
                parameter: None,
            })
            .collect();
        return Err(problem);
    }
    let second = found.pop();
    match (found.pop(), second) {
        (Some(first), Some(second)) => Ok([first, second]),
        _ => Err(Problem::from(AppError::Internal)),
    }
}

fn invalid_participants(pointer: &str, message: &str) -> Problem {
    let mut problem = Problem::from(AppError::Invalid(vec![FieldError::new(
        "participants",
        message,
    )]));
    problem.errors[0].pointer = Some(pointer.to_owned());
    problem
}

/// Which page of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The `next` of the page before; absent for the first page.
    #[param(example = "1764871331123_7")]
    pub after: Option<String>,
    /// At most this many (1 to 200, 50 unless given).
    #[param(example = 50)]
    pub limit: Option<u64>,
}

/// A conversation in a person's list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationEntry {
    pub id: i64,
    pub url: String,
    /// The other person.
    pub with: Participant,
    /// Messages the person has not read in it.
    pub unread: i64,
    pub last_seq: i64,
    pub last_message: Option<LastMessage>,
    pub last_activity_at: DateTime<Utc>,
    /// The latest card sent in it (what it is about), if any.
    pub context: Option<ContextCard>,
}

/// The start of a conversation's latest message.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastMessage {
    /// The external id of its sender (`null` for an account made in Parley itself).
    pub from: Option<String>,
    /// At most 120 characters of its text.
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// A page of a person's conversations, latest activity first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({
    "conversations": [{
        "id": 7,
        "url": "https://chat.shop.example/conversations/7",
        "with": {"id": 43, "external_id": "u-2002", "username": "bob", "name": "Bob"},
        "unread": 2,
        "last_seq": 5,
        "last_message": {"from": "u-2002", "body": "Is it still available?", "created_at": "2026-12-04T18:05:00.000Z"},
        "last_activity_at": "2026-12-04T18:05:00.000Z",
        "context": {
            "kind": "product",
            "id": "sku-3141",
            "title": "Walnut desk lamp",
            "url": "https://shop.example/products/3141",
            "price": {"amount": "24.00", "currency": "EUR"}
        }
    }],
    "next": null
})))]
pub struct ConversationPage {
    pub conversations: Vec<ConversationEntry>,
    /// Pass it as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// Most conversations a page holds unless `limit` says otherwise.
const DEFAULT_LIMIT: u64 = 50;

/// A person's conversations with their unread counts and last messages, latest activity
/// first, by keyset (a page costs the same however deep it is).
#[utoipa::path(
    get,
    path = "/users/{external_id}/conversations",
    tag = "conversations",
    params(
        ("external_id" = String, Path, description = "The marketplace's id for the person.", example = "u-1001"),
        ListQuery,
    ),
    responses(
        (status = 200, description = "A page of conversations.", body = ConversationPage),
        (status = 401, description = "No valid API key.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No user has this external id.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `after` or `limit`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    _caller: ApiCaller,
    origin: LinkOrigin,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ConversationPage>, Problem> {
    let external = external_id(&raw)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=LIST_PAGE_SIZE).contains(&limit) {
        return Err(Problem::parameter(
            "limit",
            &format!("A page holds 1 to {LIST_PAGE_SIZE} conversations."),
        ));
    }
    let after = query
        .after
        .as_deref()
        .map(|cursor| {
            parse_cursor(cursor)
                .ok_or_else(|| Problem::parameter("after", "Pass the `next` of the page before."))
        })
        .transpose()?;
    let me = linked(&state, &external).await?;
    let summaries = conversations::list(&state.db, me.id, after, limit)
        .await
        .map_err(|error| Problem::from(AppError::from(error)))?;
    let people = summaries
        .iter()
        .map(|s| s.other.id)
        .chain(std::iter::once(me.id));
    let external_ids = identities::external_ids(&state.db, people)
        .await
        .map_err(|error| Problem::internal(&error))?;
    let next = (summaries.len() as u64 == limit)
        .then(|| summaries.last().map(cursor_of))
        .flatten();
    let conversations = summaries
        .into_iter()
        .map(|summary| entry(summary, &origin, &external_ids))
        .collect();
    Ok(Json(ConversationPage {
        conversations,
        next,
    }))
}

fn entry(
    summary: ConversationSummary,
    origin: &LinkOrigin,
    external_ids: &std::collections::HashMap<UserId, String>,
) -> ConversationEntry {
    let other = summary.other.id;
    ConversationEntry {
        id: summary.id.0,
        url: origin.conversation(summary.id),
        with: Participant::new(summary.other, external_ids.get(&other).cloned()),
        unread: summary.unread,
        last_seq: summary.last_seq,
        last_message: summary.last_message.map(|preview| LastMessage {
            from: external_ids.get(&preview.sender_id).cloned(),
            body: preview.body,
            created_at: preview.created_at,
        }),
        last_activity_at: summary.last_activity_at,
        context: summary.about,
    }
}

/// The cursor after a conversation: its last activity in milliseconds and its id.
fn cursor_of(summary: &ConversationSummary) -> String {
    format!(
        "{}_{}",
        summary.last_activity_at.timestamp_millis(),
        summary.id.0
    )
}

fn parse_cursor(cursor: &str) -> Option<ListCursor> {
    let (millis, id) = cursor.split_once('_')?;
    Some(ListCursor {
        last_activity_at: DateTime::from_timestamp_millis(millis.parse().ok()?)?,
        id: ConversationId(id.parse().ok()?),
    })
}

/// Keeps the public origin for [`LinkOrigin`].
pub(super) fn public_origin_layer(public_url: Option<String>) -> Extension<PublicOrigin> {
    Extension(PublicOrigin(public_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_nonsense_is_refused() {
        let cursor = parse_cursor("1764871331123_7").unwrap();
        assert_eq!(cursor.id, ConversationId(7));
        assert_eq!(
            cursor.last_activity_at.timestamp_millis(),
            1_764_871_331_123
        );
        for bad in ["", "7", "x_7", "1_x", "1_2_3"] {
            assert!(parse_cursor(bad).is_none(), "{bad:?}");
        }
    }
}
