//! Deliveries: the work of the webhook worker (`server/src/webhooks.rs`) on the database.
//! The fan-out makes a delivery row per event an endpoint takes, a claim leases due rows to
//! one worker, the outcome of each attempt is recorded (delivered, due again on the
//! [`SCHEDULE`], failed, or the endpoint disabled), and the deliveries API lists and retries
//! them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionSession, TransactionTrait,
    sea_query::{Expr, LockBehavior, LockType, Query},
};

use super::{WebhooksError, takes};
use crate::{
    entity::{events, webhook_deliveries, webhook_endpoints},
    integration::events::Event,
};

/// How long after an event the log before it counts as complete: a transaction that took a
/// smaller `seq` may commit that much later. An endpoint's cursor stops short of events this
/// recent, so they are looked at again (and any that committed late are found).
const SETTLE: Duration = Duration::from_secs(2);
/// Events one fan-out takes per endpoint.
const FAN_OUT_BATCH: u64 = 1000;

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
    use crate::integration::webhooks::{UrlRules, add};

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
