//! `GET /api/v1/events`: the event log, pulled by cursor (what the webhooks push).

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use app::{
    integration::events::{self, EventKind},
    state::AppState,
};

use super::{
    auth::ApiCaller,
    problem::{ApiQuery, Problem},
};

/// Events a page holds at most (and unless `limit` says fewer).
const PAGE_MAX: u64 = 500;

/// Where to read from.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The `next` of the page before (or the `seq` of the last event handled); 0 or absent
    /// for the oldest kept.
    #[param(example = 0)]
    pub after: Option<i64>,
    /// Comma-separated types to keep (`message.created,message.seen`); all when absent.
    #[param(example = "message.created")]
    pub types: Option<String>,
    /// At most this many (1 to 500, 500 unless given).
    #[param(example = 100)]
    pub limit: Option<u64>,
}

/// One event: the same body a webhook delivery carries.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({
    "id": "evt_5f0c9d3e8a7b4c21a0e6f1d2c3b4a596",
    "type": "message.created",
    "created_at": "2026-12-04T18:05:00.000Z",
    "seq": 1042,
    "data": {"conversation_id": 7, "message": {"id": 512, "conversation_id": 7, "seq": 3, "kind": "user", "from": "u-2002", "body": "Is it still available?", "attachments": 0, "created_at": "2026-12-04T18:05:00.000Z", "participants": [{"id": 42, "external_id": "u-1001"}, {"id": 43, "external_id": "u-2002"}]}}
})))]
pub struct ApiEvent {
    /// `evt_…`: the same in every delivery of the event, to drop duplicates by.
    pub id: String,
    /// `conversation.created`, `message.created`, `message.seen` or `message.unseen`.
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The log's order: events of one conversation carry increasing `seq`.
    pub seq: i64,
    /// What happened (docs/integration.md lists each type's).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A page of events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<ApiEvent>,
    /// Pass it as `after` next time: the `seq` of the last event here, or `after` itself when
    /// there were none (ask again later).
    pub next: i64,
}

/// The events after a cursor, oldest first (kept 30 days): for a receiver that was down, or a
/// marketplace that can't take webhooks.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events.", body = EventPage),
        (status = 401, description = "No valid API key.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `after`, `types` or `limit`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    _caller: ApiCaller,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<EventPage>, Problem> {
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(Problem::parameter("after", "A cursor is 0 or more."));
    }
    let limit = query.limit.unwrap_or(PAGE_MAX);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(Problem::parameter(
            "limit",
            &format!("A page holds 1 to {PAGE_MAX} events."),
        ));
    }
    let kinds = match &query.types {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|name| {
                EventKind::parse(name.trim()).ok_or_else(|| {
                    Problem::parameter(
                        "types",
                        &format!(
                            "{name:?} is not an event type: conversation.created, \
                             message.created, message.seen or message.unseen."
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let page = events::after(&state.db, after, &kinds, limit)
        .await
        .map_err(|error| Problem::internal(&error))?;
    let next = page.last().map_or(after, |event| event.seq);
    Ok(Json(EventPage {
        events: page
            .into_iter()
            .map(|event| ApiEvent {
                id: event.id,
                kind: event.kind,
                created_at: event.created_at,
                seq: event.seq,
                data: event.data,
            })
            .collect(),
        next,
    }))
}
