//! The marketplace's event log: what happened (a conversation made, a message sent, seen, or
//! still unseen a while after it was sent), written in the same transaction as the fact it
//! reports, so that no fact goes unreported and no event reports what did not happen.
//!
//! The log is read two ways: pulled by cursor (`GET /api/v1/events?after=<seq>`), and pushed
//! to webhook endpoints (`super::webhooks`). Each event has a `seq` (the log's order, so the
//! events of one conversation carry increasing `seq`) and an `id` (`evt_…`, the same in every
//! delivery, for receivers to drop duplicates by).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    entity::{events, users},
    model::{ConversationId, MessageKind, MessageView, UserId},
};

/// How long events are kept (and so how far back a receiver can catch up).
pub const KEPT_FOR_DAYS: i64 = 30;

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    ConversationCreated,
    MessageCreated,
    MessageSeen,
    MessageUnseen,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [
        Self::ConversationCreated,
        Self::MessageCreated,
        Self::MessageSeen,
        Self::MessageUnseen,
    ];

    /// Its `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConversationCreated => "conversation.created",
            Self::MessageCreated => "message.created",
            Self::MessageSeen => "message.seen",
            Self::MessageUnseen => "message.unseen",
        }
    }

    /// The kind a `type` names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// An event as it is delivered and pulled: `{id, type, created_at, seq, data}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub seq: i64,
    pub data: Value,
}

impl Event {
    pub(crate) fn of(row: events::Model) -> Self {
        Self {
            id: row.event_id,
            kind: row.kind,
            created_at: row.created_at,
            seq: row.seq,
            // Written by `record` from a `Value`, so it reads back; anything else is null.
            data: serde_json::from_str(&row.data).unwrap_or(Value::Null),
        }
    }
}

/// A fresh event id: `evt_` and 32 hex digits.
fn event_id() -> Result<String, DbErr> {
    let mut random = [0_u8; 16];
    getrandom::fill(&mut random).map_err(|error| DbErr::Custom(error.to_string()))?;
    Ok(format!("evt_{}", hex::encode(random)))
}

/// Writes events, in the caller's transaction.
///
/// # Errors
/// The database failed (and the caller's transaction with it).
pub async fn record(
    txn: &impl ConnectionTrait,
    entries: impl IntoIterator<Item = (EventKind, Option<ConversationId>, Value)>,
) -> Result<(), DbErr> {
    let now = crate::conversations::now();
    let mut rows = Vec::new();
    for (kind, conversation, data) in entries {
        rows.push(events::ActiveModel {
            event_id: Set(event_id()?),
            kind: Set(kind.as_str().to_owned()),
            conversation_id: Set(conversation.map(|c| c.0)),
            data: Set(data.to_string()),
            created_at: Set(now),
            ..Default::default()
        });
    }
    if rows.is_empty() {
        return Ok(());
    }
    events::Entity::insert_many(rows).exec(txn).await?;
    Ok(())
}

/// The marketplace's view of some people: `{"id", "external_id"}` each.
///
/// # Errors
/// The database failed.
pub async fn people(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = UserId>,
) -> Result<HashMap<UserId, Value>, DbErr> {
    let ids: Vec<i64> = ids.into_iter().map(|user| user.0).collect();
    Ok(users::Entity::find()
        .filter(users::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            (
                UserId(row.id),
                json!({"id": row.id, "external_id": row.external_id}),
            )
        })
        .collect())
}

/// A message as events carry it.
pub fn message_data(message: &MessageView, people: &HashMap<UserId, Value>) -> Value {
    let system = message.kind == MessageKind::System;
    let from = if system {
        Value::Null
    } else {
        people
            .get(&message.sender.id)
            .map_or(Value::Null, |person| person["external_id"].clone())
    };
    json!({
        "id": message.id.0,
        "conversation_id": message.conversation_id.0,
        "seq": message.seq,
        "kind": message.kind.as_str(),
        "from": from,
        "body": message.body,
        "attachments": message.attachments.len(),
        "created_at": message.created_at,
    })
}

/// The `message.created` events of messages just stored, with everyone they involve looked up
/// in one query.
///
/// # Errors
/// The database failed.
pub async fn messages_created(
    txn: &impl ConnectionTrait,
    messages: &[(MessageView, [UserId; 2])],
) -> Result<(), DbErr> {
    if messages.is_empty() {
        return Ok(());
    }
    let people = people(
        txn,
        messages
            .iter()
            .flat_map(|(message, members)| [message.sender.id, members[0], members[1]]),
    )
    .await?;
    record(
        txn,
        messages.iter().map(|(message, members)| {
            let mut data = message_data(message, &people);
            data["participants"] = json!(members.map(|member| people.get(&member).cloned()));
            (
                EventKind::MessageCreated,
                Some(message.conversation_id),
                json!({"conversation_id": message.conversation_id.0, "message": data}),
            )
        }),
    )
    .await
}

/// Events after `after`, of the given kinds (all when empty), oldest first, at most `limit`.
///
/// # Errors
/// The database failed.
pub async fn after(
    db: &impl ConnectionTrait,
    after: i64,
    kinds: &[EventKind],
    limit: u64,
) -> Result<Vec<Event>, DbErr> {
    let mut query = events::Entity::find().filter(events::Column::Seq.gt(after));
    if !kinds.is_empty() {
        query = query.filter(events::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())));
    }
    Ok(query
        .order_by_asc(events::Column::Seq)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(Event::of)
        .collect())
}

/// Forgets events older than [`KEPT_FOR_DAYS`] (their deliveries with them).
///
/// # Errors
/// The database failed.
pub async fn forget_old(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let cutoff = crate::conversations::now() - chrono::Duration::days(KEPT_FOR_DAYS);
    Ok(events::Entity::delete_many()
        .filter(events::Column::CreatedAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected)
}
