//! Webhooks: the event log (`super::events`) pushed to the marketplace's endpoints, signed the
//! Standard Webhooks way, delivered at least once.
//!
//! Each endpoint gets a delivery row per event it takes (*fan-out*, done by the worker from
//! the endpoint's cursor into the log, so an event written in a transaction that commits
//! later is never skipped: rows are made only up to the newest event older than a few
//! seconds). A worker *claims* due rows by pushing their next attempt a lease ahead (with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several instances share the work and each row
//! goes to one), sends, and records the outcome. A worker killed mid-flight leaves its rows
//! due again once the lease passes: the receiver may see an event twice, always with the same
//! `webhook-id`, never not at all.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, SqlErr, TransactionSession, TransactionTrait,
    sea_query::{Expr, LockBehavior, LockType, Query},
};
use sha2::Sha256;

use super::events::{Event, EventKind};
use crate::entity::{events, webhook_deliveries, webhook_endpoints};

/// What every signing secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret.
const SECRET_BYTES: usize = 24;
/// How long the secret before a rotation is still signed with.
pub const PREVIOUS_SECRET_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// How long after an event the log before it counts as complete: a transaction that took a
/// smaller `seq` may commit that much later. An endpoint's cursor stops short of events this
/// recent, so they are looked at again (and any that committed late are found).
const SETTLE: Duration = Duration::from_secs(2);
/// Events one fan-out takes per endpoint.
const FAN_OUT_BATCH: u64 = 1000;
/// Longest endpoint URL.
const URL_MAX_CHARS: usize = 2048;

/// The waits between attempts: about 30 s, 2 min, 10 min, 1 h, 6 h, then a day three times,
/// some three days in all; then the delivery has failed.
pub const SCHEDULE: [Duration; 8] = [
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(6 * 60 * 60),
    Duration::from_secs(24 * 60 * 60),
    Duration::from_secs(24 * 60 * 60),
    Duration::from_secs(24 * 60 * 60),
];

/// What can go wrong managing endpoints.
#[derive(Debug, thiserror::Error)]
pub enum WebhooksError {
    #[error("{0}")]
    InvalidUrl(String),
    #[error("there is already an endpoint for {0}")]
    UrlTaken(String),
    #[error("there is no endpoint for {0}")]
    NoSuchEndpoint(String),
    #[error(
        "{0:?} is not an event type: conversation.created, message.created, message.seen or message.unseen"
    )]
    UnknownEvent(String),
    #[error("there is no such delivery")]
    NoSuchDelivery,
    #[error("the system has no randomness to make a secret with: {0}")]
    Randomness(String),
    #[error("database error")]
    Database(#[from] DbErr),
}

/// Which endpoint URLs are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlRules {
    /// Only `https` (production).
    pub https_only: bool,
    /// Loopback and private addresses too (`PARLEY_WEBHOOK_ALLOW_PRIVATE`, or development).
    pub allow_private: bool,
}

impl UrlRules {
    /// Checks a URL's shape and, when its host is an IP address, that address. Host names are
    /// checked again when they are resolved, at each delivery (a name can point anywhere).
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn check(&self, url: &str) -> Result<(), WebhooksError> {
        let bad = |why: &str| Err(WebhooksError::InvalidUrl(format!("{url:?}: {why}")));
        if url.chars().count() > URL_MAX_CHARS || url.chars().any(char::is_whitespace) {
            return bad("not a URL");
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return bad("not a URL");
        };
        match scheme {
            "https" => {}
            "http" if !self.https_only => {}
            "http" => return bad("only https endpoints are accepted in production"),
            _ => return bad("an endpoint is an http(s) URL"),
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return bad("it needs a host, and no user name or password");
        }
        let host = host_of(authority);
        if let Ok(address) = host.parse::<std::net::IpAddr>()
            && !self.allow_private
            && !is_public(address)
        {
            return bad(
                "loopback and private addresses are refused (PARLEY_WEBHOOK_ALLOW_PRIVATE)",
            );
        }
        Ok(())
    }
}

/// The host of an authority, without port or IPv6 brackets.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// Whether an address is on the public internet: not loopback, private, link-local,
/// unspecified, or shared (CGNAT) space.
pub fn is_public(address: std::net::IpAddr) -> bool {
    match address.to_canonical() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b)))
        }
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// An endpoint as `server webhooks list` shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub url: String,
    pub events: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

fn new_secret() -> Result<String, WebhooksError> {
    let mut bytes = [0_u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| WebhooksError::Randomness(error.to_string()))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The event types to send, from `a,b` (all of them when `None` or `*`).
///
/// # Errors
/// A name that is no event type.
pub fn parse_events(list: Option<&str>) -> Result<String, WebhooksError> {
    match list.map(str::trim) {
        None | Some("*" | "") => Ok("*".to_owned()),
        Some(list) => {
            let kinds = list
                .split(',')
                .map(|name| {
                    EventKind::parse(name.trim())
                        .map(EventKind::as_str)
                        .ok_or_else(|| WebhooksError::UnknownEvent(name.trim().to_owned()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(kinds.join(","))
        }
    }
}

/// Adds an endpoint for `url` taking `events` (from [`parse_events`]) and returns its signing
/// secret: the only time it is shown. It receives the events from now on.
///
/// # Errors
/// A URL the rules refuse or one already added, or the database failed.
pub async fn add(
    db: &impl ConnectionTrait,
    url: &str,
    events: &str,
    rules: UrlRules,
) -> Result<String, WebhooksError> {
    rules.check(url)?;
    let secret = new_secret()?;
    let newest = events::Entity::find()
        .order_by_desc(events::Column::Seq)
        .one(db)
        .await?
        .map_or(0, |event| event.seq);
    let row = webhook_endpoints::ActiveModel {
        url: Set(url.to_owned()),
        secret: Set(secret.clone()),
        previous_secret: Set(None),
        previous_until: Set(None),
        events: Set(events.to_owned()),
        fanned_out_seq: Set(newest),
        created_at: Set(crate::conversations::now()),
        disabled_at: Set(None),
        ..Default::default()
    };
    match row.insert(db).await {
        Ok(_) => Ok(secret),
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(WebhooksError::UrlTaken(url.to_owned()))
        }
        Err(error) => Err(error.into()),
    }
}

/// Every endpoint, oldest first.
///
/// # Errors
/// The database failed.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<EndpointInfo>, WebhooksError> {
    Ok(webhook_endpoints::Entity::find()
        .order_by_asc(webhook_endpoints::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|row| EndpointInfo {
            url: row.url,
            events: row.events,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        })
        .collect())
}

/// Removes the endpoint for `url`, with its deliveries.
///
/// # Errors
/// No endpoint has that URL, or the database failed.
pub async fn remove(db: &impl ConnectionTrait, url: &str) -> Result<(), WebhooksError> {
    let endpoint = find(db, url).await?;
    webhook_deliveries::Entity::delete_many()
        .filter(webhook_deliveries::Column::EndpointId.eq(endpoint.id))
        .exec(db)
        .await?;
    webhook_endpoints::Entity::delete_by_id(endpoint.id)
        .exec(db)
        .await?;
    Ok(())
}

/// Gives the endpoint for `url` a new secret and returns it; deliveries carry a signature
/// with the old one too for [`PREVIOUS_SECRET_FOR`], so the receiver can switch meanwhile.
/// A disabled endpoint is enabled again, from now on.
///
/// # Errors
/// No endpoint has that URL, or the database failed.
pub async fn rotate(db: &impl ConnectionTrait, url: &str) -> Result<String, WebhooksError> {
    let endpoint = find(db, url).await?;
    let secret = new_secret()?;
    let until = crate::conversations::now()
        + chrono::Duration::from_std(PREVIOUS_SECRET_FOR).unwrap_or_default();
    webhook_endpoints::ActiveModel {
        id: Set(endpoint.id),
        secret: Set(secret.clone()),
        previous_secret: Set(Some(endpoint.secret)),
        previous_until: Set(Some(until)),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(secret)
}

async fn find(
    db: &impl ConnectionTrait,
    url: &str,
) -> Result<webhook_endpoints::Model, WebhooksError> {
    webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::Url.eq(url))
        .one(db)
        .await?
        .ok_or_else(|| WebhooksError::NoSuchEndpoint(url.to_owned()))
}

/// The Standard Webhooks signature header of a delivery: `v1,<base64 HMAC-SHA256>` for each
/// secret, space-separated. The signed content is `<id>.<timestamp>.<body>`.
pub fn signature(secrets: &[&str], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .filter_map(|secret| {
            let key = STANDARD
                .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
                .ok()?;
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).ok()?;
            mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes the delivery rows of the events each enabled endpoint takes and has none for yet,
/// and answers how many were made.
///
/// Deliveries are made as soon as their events are seen, so a webhook is on its way within a
/// worker's round of the message. The endpoint's cursor (`fanned_out_seq`) moves only over
/// events older than [`SETTLE`]: the newer ones are looked at again next time, which finds an
/// event whose transaction took its `seq` early and committed late; the ones that already
/// have their delivery are left out by the query (the unique index on endpoint and event
/// would refuse them anyway).
///
/// # Errors
/// The database failed.
pub async fn fan_out(db: &(impl ConnectionTrait + TransactionTrait)) -> Result<u64, DbErr> {
    let settled_before =
        crate::conversations::now() - chrono::Duration::from_std(SETTLE).unwrap_or_default();
    let mut made = 0;
    let newest = events::Entity::find()
        .order_by_desc(events::Column::Seq)
        .one(db)
        .await?
        .map_or(0, |event| event.seq);
    // Only the endpoints behind the log, looked at without a lock.
    let endpoints = webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::DisabledAt.is_null())
        .filter(webhook_endpoints::Column::FannedOutSeq.lt(newest))
        .all(db)
        .await?;
    for endpoint in endpoints {
        let txn = crate::entity::begin_write(db).await?;
        // Read again under a lock: another instance may be fanning out the same endpoint.
        let mut query = webhook_endpoints::Entity::find_by_id(endpoint.id);
        if txn.get_database_backend() == DbBackend::Postgres {
            query = query.lock(LockType::Update);
        }
        let Some(endpoint) = query.one(&txn).await? else {
            continue;
        };
        let already = Query::select()
            .column(webhook_deliveries::Column::EventSeq)
            .from(webhook_deliveries::Entity)
            .and_where(webhook_deliveries::Column::EndpointId.eq(endpoint.id))
            .and_where(webhook_deliveries::Column::EventSeq.gt(endpoint.fanned_out_seq))
            .to_owned();
        let mut query = events::Entity::find()
            .filter(events::Column::Seq.gt(endpoint.fanned_out_seq))
            .filter(events::Column::Seq.not_in_subquery(already));
        if endpoint.events != "*" {
            query = query.filter(events::Column::Kind.is_in(endpoint.events.split(',')));
        }
        let fresh = query
            .order_by_asc(events::Column::Seq)
            .limit(FAN_OUT_BATCH)
            .all(&txn)
            .await?;
        // The cursor passes every settled event (taken or not), but never one this batch may
        // have left out for being full.
        let settled_max: Option<i64> = events::Entity::find()
            .select_only()
            .column_as(
                sea_orm::ExprTrait::max(Expr::col(events::Column::Seq)),
                "seq",
            )
            .filter(events::Column::Seq.gt(endpoint.fanned_out_seq))
            .filter(events::Column::CreatedAt.lt(settled_before))
            .into_tuple::<Option<i64>>()
            .one(&txn)
            .await?
            .flatten();
        let settled = match fresh.last() {
            Some(last) if fresh.len() as u64 >= FAN_OUT_BATCH => {
                settled_max.map(|seq| seq.min(last.seq))
            }
            _ => settled_max,
        };
        let now = crate::conversations::now();
        let rows: Vec<webhook_deliveries::ActiveModel> = fresh
            .iter()
            .filter(|event| takes(&endpoint.events, &event.kind))
            .map(|event| webhook_deliveries::ActiveModel {
                endpoint_id: Set(endpoint.id),
                event_seq: Set(event.seq),
                status: Set(Status::Pending.as_str().to_owned()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                last_status: Set(None),
                last_error: Set(None),
                delivered_at: Set(None),
                ..Default::default()
            })
            .collect();
        // Nothing new and nothing settled: no write.
        if rows.is_empty() && settled.is_none() {
            continue;
        }
        made += rows.len() as u64;
        if !rows.is_empty() {
            webhook_deliveries::Entity::insert_many(rows)
                .exec(&txn)
                .await?;
        }
        if let Some(settled) = settled {
            webhook_endpoints::Entity::update_many()
                .col_expr(
                    webhook_endpoints::Column::FannedOutSeq,
                    Expr::value(settled),
                )
                .filter(webhook_endpoints::Column::Id.eq(endpoint.id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
    }
    Ok(made)
}

/// Whether an endpoint taking `events` takes an event of type `kind`.
fn takes(events: &str, kind: &str) -> bool {
    events == "*" || events.split(',').any(|taken| taken == kind)
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Delivered,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// A delivery a worker has claimed: what to send where, signed with which secrets.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: i64,
    /// Attempts made before this one.
    pub attempts: i32,
    pub url: String,
    pub secrets: Vec<String>,
    pub event: Event,
}

/// Claims up to `limit` due deliveries for `lease`: nobody else sends them meanwhile, and if
/// this worker dies they are due again once it has passed.
///
/// # Errors
/// The database failed.
pub async fn claim(
    db: &(impl ConnectionTrait + TransactionTrait),
    limit: u64,
    lease: Duration,
) -> Result<Vec<Claimed>, DbErr> {
    let now = crate::conversations::now();
    let due = || {
        webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::Status.eq(Status::Pending.as_str()))
            .filter(webhook_deliveries::Column::NextAttemptAt.lte(now))
    };
    // A look first, outside any transaction: idle, the worker takes no lock at all (SQLite's
    // write lock is the whole database's).
    if due().one(db).await?.is_none() {
        return Ok(Vec::new());
    }
    let txn = crate::entity::begin_write(db).await?;
    let mut query = due()
        .order_by_asc(webhook_deliveries::Column::NextAttemptAt)
        .order_by_asc(webhook_deliveries::Column::Id)
        .limit(limit);
    if txn.get_database_backend() == DbBackend::Postgres {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let due = query.all(&txn).await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let until = now + chrono::Duration::from_std(lease).unwrap_or_default();
    webhook_deliveries::Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::NextAttemptAt,
            Expr::value(until),
        )
        .filter(webhook_deliveries::Column::Id.is_in(due.iter().map(|d| d.id)))
        .exec(&txn)
        .await?;
    let endpoints: std::collections::HashMap<i64, webhook_endpoints::Model> =
        webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::Id.is_in(due.iter().map(|d| d.endpoint_id)))
            .all(&txn)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
    let events: std::collections::HashMap<i64, Event> = events::Entity::find()
        .filter(events::Column::Seq.is_in(due.iter().map(|d| d.event_seq)))
        .all(&txn)
        .await?
        .into_iter()
        .map(|row| (row.seq, Event::of(row)))
        .collect();
    txn.commit().await?;
    Ok(due
        .into_iter()
        .filter_map(|delivery| {
            let endpoint = endpoints.get(&delivery.endpoint_id)?;
            let mut secrets = vec![endpoint.secret.clone()];
            if let (Some(previous), Some(until)) =
                (&endpoint.previous_secret, endpoint.previous_until)
                && until > now
            {
                secrets.push(previous.clone());
            }
            Some(Claimed {
                delivery_id: delivery.id,
                attempts: delivery.attempts,
                url: endpoint.url.clone(),
                secrets,
                event: events.get(&delivery.event_seq)?.clone(),
            })
        })
        .collect())
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx.
    Delivered { status: u16 },
    /// Worth another try: a timeout, a network error, 408, 429, 5xx. `retry_after`: what the
    /// receiver asked for (429's `Retry-After`).
    Retry {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
    /// Not worth another: any other 4xx (or a redirect, which is not followed).
    Refused { status: u16 },
    /// 410 Gone: the endpoint is disabled.
    Gone,
}

/// Records that the deliveries `ids` (claimed, each attempted once more) went through with
/// `status`, in one statement.
///
/// # Errors
/// The database failed.
pub async fn record_delivered(
    db: &impl ConnectionTrait,
    ids: &[i64],
    status: u16,
) -> Result<(), DbErr> {
    webhook_deliveries::Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::Status,
            Expr::value(Status::Delivered.as_str()),
        )
        .col_expr(
            webhook_deliveries::Column::Attempts,
            sea_orm::ExprTrait::add(Expr::col(webhook_deliveries::Column::Attempts), 1),
        )
        .col_expr(
            webhook_deliveries::Column::LastStatus,
            Expr::value(i32::from(status)),
        )
        .col_expr(
            webhook_deliveries::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            webhook_deliveries::Column::DeliveredAt,
            Expr::value(crate::conversations::now()),
        )
        .filter(webhook_deliveries::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// Records how an attempt went: delivered, due again after the schedule's next wait (times
/// `factor`: jitter around 1, and a scale tests shorten), failed for good, or the endpoint
/// disabled.
///
/// # Errors
/// The database failed.
pub async fn record(
    db: &impl ConnectionTrait,
    claimed: &Claimed,
    attempt: Attempt,
    factor: f64,
) -> Result<(), DbErr> {
    let now = crate::conversations::now();
    let attempts = claimed.attempts + 1;
    let mut row = webhook_deliveries::ActiveModel {
        id: Set(claimed.delivery_id),
        attempts: Set(attempts),
        ..Default::default()
    };
    match attempt {
        Attempt::Delivered { status } => {
            row.status = Set(Status::Delivered.as_str().to_owned());
            row.last_status = Set(Some(i32::from(status)));
            row.last_error = Set(None);
            row.delivered_at = Set(Some(now));
        }
        Attempt::Retry {
            status,
            error,
            retry_after,
        } => {
            row.last_status = Set(status.map(i32::from));
            row.last_error = Set(Some(error.chars().take(500).collect()));
            match usize::try_from(claimed.attempts)
                .ok()
                .and_then(|done| SCHEDULE.get(done))
            {
                Some(wait) => {
                    let wait = wait
                        .mul_f64(factor.max(0.0))
                        .max(retry_after.unwrap_or_default());
                    row.next_attempt_at =
                        Set(now + chrono::Duration::from_std(wait).unwrap_or_default());
                }
                None => row.status = Set(Status::Failed.as_str().to_owned()),
            }
        }
        Attempt::Refused { status } => {
            row.status = Set(Status::Failed.as_str().to_owned());
            row.last_status = Set(Some(i32::from(status)));
            row.last_error = Set(Some(format!("the receiver answered {status}: not retried")));
        }
        Attempt::Gone => {
            row.status = Set(Status::Failed.as_str().to_owned());
            row.last_status = Set(Some(410));
            row.last_error = Set(Some(
                "the receiver answered 410 Gone: endpoint disabled".into(),
            ));
            if let Some(endpoint) = webhook_deliveries::Entity::find_by_id(claimed.delivery_id)
                .one(db)
                .await?
            {
                webhook_endpoints::Entity::update_many()
                    .col_expr(webhook_endpoints::Column::DisabledAt, Expr::value(now))
                    .filter(webhook_endpoints::Column::Id.eq(endpoint.endpoint_id))
                    .exec(db)
                    .await?;
            }
        }
    }
    row.update(db).await?;
    Ok(())
}

/// A delivery as the server API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    pub id: i64,
    pub url: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Deliveries in `status`, newest first, at most `limit`.
///
/// # Errors
/// The database failed.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    status: Status,
    limit: u64,
) -> Result<Vec<DeliveryInfo>, DbErr> {
    let rows = webhook_deliveries::Entity::find()
        .filter(webhook_deliveries::Column::Status.eq(status.as_str()))
        .order_by_desc(webhook_deliveries::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let endpoints: std::collections::HashMap<i64, String> = webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::Id.is_in(rows.iter().map(|d| d.endpoint_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id, e.url))
        .collect();
    let events: std::collections::HashMap<i64, events::Model> = events::Entity::find()
        .filter(events::Column::Seq.is_in(rows.iter().map(|d| d.event_seq)))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.seq, e))
        .collect();
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let event = events.get(&row.event_seq)?;
            Some(DeliveryInfo {
                id: row.id,
                url: endpoints.get(&row.endpoint_id)?.clone(),
                event_id: event.event_id.clone(),
                event_type: event.kind.clone(),
                next_attempt_at: (row.status == Status::Pending.as_str())
                    .then_some(row.next_attempt_at),
                status: row.status,
                attempts: row.attempts,
                last_status: row.last_status,
                last_error: row.last_error,
                delivered_at: row.delivered_at,
            })
        })
        .collect())
}

/// Sends a failed delivery again, now, with the schedule from the start.
///
/// # Errors
/// No failed delivery has that id, or the database failed.
pub async fn retry(db: &impl ConnectionTrait, id: i64) -> Result<(), WebhooksError> {
    let retried = webhook_deliveries::Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::Status,
            Expr::value(Status::Pending.as_str()),
        )
        .col_expr(webhook_deliveries::Column::Attempts, Expr::value(0))
        .col_expr(
            webhook_deliveries::Column::NextAttemptAt,
            Expr::value(crate::conversations::now()),
        )
        .filter(webhook_deliveries::Column::Id.eq(id))
        .filter(webhook_deliveries::Column::Status.eq(Status::Failed.as_str()))
        .exec(db)
        .await?;
    if retried.rows_affected == 0 {
        return Err(WebhooksError::NoSuchDelivery);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let two = signature(
            &[secret, secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        );
        assert_eq!(two.split(' ').count(), 2);
    }

    #[test]
    fn endpoint_urls_follow_the_rules() {
        let production = UrlRules {
            https_only: true,
            allow_private: false,
        };
        let development = UrlRules {
            https_only: false,
            allow_private: true,
        };
        assert!(
            production
                .check("https://hooks.shop.example/parley")
                .is_ok()
        );
        for bad in [
            "http://hooks.shop.example/",
            "https://127.0.0.1/hook",
            "https://[::1]:8443/hook",
            "https://10.0.0.5/hook",
            "https://user:pw@shop.example/",
            "ftp://shop.example/",
            "https:///nohost",
            "not a url",
        ] {
            assert!(production.check(bad).is_err(), "{bad}");
        }
        assert!(development.check("http://127.0.0.1:9000/hook").is_ok());
        assert!(is_public("93.184.216.34".parse().unwrap()));
        assert!(!is_public("::ffff:192.168.1.1".parse().unwrap()));
        assert!(!is_public("100.64.0.1".parse().unwrap()));
    }

    #[test]
    fn event_lists_are_checked() {
        assert_eq!(parse_events(None).unwrap(), "*");
        assert_eq!(
            parse_events(Some("message.created, message.seen")).unwrap(),
            "message.created,message.seen"
        );
        assert!(parse_events(Some("message.deleted")).is_err());
        assert!(takes("*", "message.seen"));
        assert!(takes("message.created,message.seen", "message.seen"));
        assert!(!takes("message.created", "message.seen"));
    }

    /// Deliveries are made as soon as events are seen; one whose transaction committed late
    /// (a smaller `seq` after a larger) is still found, nothing is made twice, and the cursor
    /// passes only settled events, whatever their kind.
    #[tokio::test]
    async fn the_fan_out_is_prompt_and_finds_late_events() {
        use migrations::{Migrator, MigratorTrait};

        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let rules = UrlRules {
            https_only: false,
            allow_private: true,
        };
        add(&db, "http://127.0.0.1:9/hook", "message.created", rules)
            .await
            .unwrap();
        let event = |seq: i64, kind: &str, age_secs: i64| events::ActiveModel {
            seq: Set(seq),
            event_id: Set(format!("evt_{seq}")),
            kind: Set(kind.to_owned()),
            conversation_id: Set(None),
            data: Set("{}".to_owned()),
            created_at: Set(crate::conversations::now() - chrono::Duration::seconds(age_secs)),
        };
        let delivered = async |db: &sea_orm::DatabaseConnection| {
            let mut seqs: Vec<i64> = webhook_deliveries::Entity::find()
                .all(db)
                .await
                .unwrap()
                .into_iter()
                .map(|delivery| delivery.event_seq)
                .collect();
            seqs.sort_unstable();
            seqs
        };
        let cursor = async |db: &sea_orm::DatabaseConnection| {
            webhook_endpoints::Entity::find()
                .one(db)
                .await
                .unwrap()
                .unwrap()
                .fanned_out_seq
        };

        event(1, "message.seen", 10).insert(&db).await.unwrap();
        event(3, "message.created", 0).insert(&db).await.unwrap();
        assert_eq!(
            fan_out(&db).await.unwrap(),
            1,
            "the fresh event goes at once"
        );
        assert_eq!(cursor(&db).await, 1, "only the settled event is passed");

        event(2, "message.created", 0).insert(&db).await.unwrap();
        assert_eq!(fan_out(&db).await.unwrap(), 1, "the late one is found");
        assert_eq!(delivered(&db).await, [2, 3]);

        events::Entity::update_many()
            .col_expr(
                events::Column::CreatedAt,
                Expr::value(crate::conversations::now() - chrono::Duration::seconds(10)),
            )
            .exec(&db)
            .await
            .unwrap();
        assert_eq!(fan_out(&db).await.unwrap(), 0, "nothing twice");
        assert_eq!(cursor(&db).await, 3);
        assert_eq!(delivered(&db).await, [2, 3]);
    }
}
