//! `/api/v1/webhooks/deliveries`: what the webhook worker could not deliver (or has not yet),
//! and sending one again.

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use app::{
    integration::webhooks::{self, Status, WebhooksError},
    state::AppState,
};

use super::{
    auth::ApiCaller,
    problem::{ApiPath, ApiQuery, Problem},
};

/// Most deliveries a page lists.
const PAGE_MAX: u64 = 200;

/// Which deliveries.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// `failed` (the default), `pending` or `delivered`.
    #[param(example = "failed")]
    pub status: Option<String>,
    /// At most this many, newest first (1 to 200, 50 unless given).
    #[param(example = 50)]
    pub limit: Option<u64>,
}

/// A delivery of an event to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiDelivery {
    pub id: i64,
    /// The endpoint's URL.
    pub url: String,
    /// The event's `id` (its `webhook-id`) and `type`.
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A list of deliveries.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({"deliveries": [{
    "id": 88, "url": "https://shop.example/hooks/parley", "event_id": "evt_5f0c9d3e8a7b4c21a0e6f1d2c3b4a596",
    "event_type": "message.created", "status": "failed", "attempts": 9, "last_status": 503,
    "last_error": "the receiver answered 503 Service Unavailable", "next_attempt_at": null, "delivered_at": null
}]})))]
pub struct DeliveryList {
    pub deliveries: Vec<ApiDelivery>,
}

/// Deliveries by status, newest first: by default those that failed for good (after every
/// retry, or refused by the receiver).
#[utoipa::path(
    get,
    path = "/webhooks/deliveries",
    tag = "webhooks",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "The deliveries.", body = DeliveryList),
        (status = 401, description = "No valid API key.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `status` or `limit`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(super) async fn deliveries(
    State(state): State<AppState>,
    _caller: ApiCaller,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryList>, Problem> {
    let status = match query.status.as_deref() {
        None => Status::Failed,
        Some(name) => Status::parse(name).ok_or_else(|| {
            Problem::parameter("status", "The status is failed, pending or delivered.")
        })?,
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(Problem::parameter(
            "limit",
            &format!("A page holds 1 to {PAGE_MAX} deliveries."),
        ));
    }
    let found = webhooks::deliveries(&state.db, status, limit)
        .await
        .map_err(|error| Problem::internal(&error))?;
    Ok(Json(DeliveryList {
        deliveries: found
            .into_iter()
            .map(|d| ApiDelivery {
                id: d.id,
                url: d.url,
                event_id: d.event_id,
                event_type: d.event_type,
                status: d.status,
                attempts: d.attempts,
                last_status: d.last_status,
                last_error: d.last_error,
                next_attempt_at: d.next_attempt_at,
                delivered_at: d.delivered_at,
            })
            .collect(),
    }))
}

/// The answer to a retry.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({"id": 88, "status": "pending"})))]
pub struct Retried {
    pub id: i64,
    /// `pending`: it is sent again at once, with the whole schedule of retries ahead.
    pub status: String,
}

/// Sends a failed delivery again.
#[utoipa::path(
    post,
    path = "/webhooks/deliveries/{id}/retry",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The delivery's id.", example = 1)),
    responses(
        (status = 202, description = "It is due again, now.", body = Retried),
        (status = 401, description = "No valid API key.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No failed delivery has this id.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(super) async fn retry(
    State(state): State<AppState>,
    _caller: ApiCaller,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<Retried>), Problem> {
    match webhooks::retry(&state.db, id).await {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(Retried {
                id,
                status: Status::Pending.as_str().to_owned(),
            }),
        )),
        Err(WebhooksError::NoSuchDelivery) => {
            Err(Problem::not_found("No failed delivery has this id."))
        }
        Err(error) => Err(Problem::internal(&error)),
    }
}
