//! The marketplace's event log: what happened (a conversation made, a message sent, seen, or
//! still unseen a while after it was sent), written in the same transaction as the fact it
//! reports, so that no fact goes unreported and no event reports what did not happen.
//!
//! A message still not seen a while after it was sent is an event too (`message.unseen`),
//! found by a scan of the newest messages ([`report_unseen`]).
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
        "context": message.card,
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

/// The cursor of the `message.unseen` scan.
const UNSEEN_CURSOR: &str = "message.unseen";
/// Messages looked at in one scan at most.
const UNSEEN_BATCH: u64 = 500;

/// Writes a `message.unseen` event for each message sent at least `after` ago that its
/// recipient (both people, for a system message) has still not seen, once per message and
/// recipient, and answers how many. The scan goes by message id from where it stopped last
/// (a first scan starts at the newest message: history is not reported), in one write
/// transaction with its cursor locked, so two instances never report a message twice.
///
/// # Errors
/// The database failed.
pub async fn report_unseen(
    db: &(impl ConnectionTrait + sea_orm::TransactionTrait),
    after: std::time::Duration,
) -> Result<u64, DbErr> {
    use sea_orm::{ActiveModelTrait, DbBackend, TransactionSession, sea_query::LockType};

    use crate::entity::{event_cursors, messages, participants};

    let cutoff =
        crate::conversations::now() - chrono::Duration::from_std(after).unwrap_or_default();
    // A look first, without the write lock (SQLite's is the whole database's): nothing to do
    // is the usual case.
    if let Some(cursor) = event_cursors::Entity::find_by_id(UNSEEN_CURSOR)
        .one(db)
        .await?
    {
        let due = messages::Entity::find()
            .filter(messages::Column::Id.gt(cursor.position))
            .filter(messages::Column::CreatedAt.lte(cutoff))
            .one(db)
            .await?;
        if due.is_none() {
            return Ok(0);
        }
    }
    let txn = crate::entity::begin_write(db).await?;
    let mut cursor = event_cursors::Entity::find_by_id(UNSEEN_CURSOR);
    if txn.get_database_backend() == DbBackend::Postgres {
        cursor = cursor.lock(LockType::Update);
    }
    let position = match cursor.one(&txn).await? {
        Some(cursor) => cursor.position,
        None => {
            let newest = messages::Entity::find()
                .order_by_desc(messages::Column::Id)
                .one(&txn)
                .await?
                .map_or(0, |message| message.id);
            event_cursors::ActiveModel {
                name: Set(UNSEEN_CURSOR.to_owned()),
                position: Set(newest),
            }
            .insert(&txn)
            .await?;
            txn.commit().await?;
            return Ok(0);
        }
    };
    // Ids grow with time closely enough: the scan stops at the first message too young.
    let due: Vec<messages::Model> = messages::Entity::find()
        .filter(messages::Column::Id.gt(position))
        .order_by_asc(messages::Column::Id)
        .limit(UNSEEN_BATCH)
        .all(&txn)
        .await?
        .into_iter()
        .take_while(|message| message.created_at <= cutoff)
        .collect();
    let Some(last) = due.last().map(|message| message.id) else {
        txn.commit().await?;
        return Ok(0);
    };
    // Each conversation's two read positions, as (person, last read seq).
    let mut positions: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for row in participants::Entity::find()
        .filter(
            participants::Column::ConversationId
                .is_in(due.iter().map(|message| message.conversation_id)),
        )
        .all(&txn)
        .await?
    {
        positions
            .entry(row.conversation_id)
            .or_default()
            .push((row.user_id, row.last_read_seq));
    }
    let unseen: Vec<(&messages::Model, UserId)> = due
        .iter()
        .flat_map(|message| {
            positions
                .get(&message.conversation_id)
                .into_iter()
                .flatten()
                .filter(|(user, read)| *user != message.sender_id && *read < message.seq)
                .map(move |(user, _)| (message, UserId(*user)))
        })
        .collect();
    let people = people(
        &txn,
        unseen
            .iter()
            .flat_map(|(message, recipient)| [*recipient, UserId(message.sender_id)]),
    )
    .await?;
    let reported = unseen.len() as u64;
    record(
        &txn,
        unseen.iter().map(|(message, recipient)| {
            let kind = MessageKind::from_stored(&message.kind);
            let from = match kind {
                MessageKind::System => Value::Null,
                MessageKind::User => people
                    .get(&UserId(message.sender_id))
                    .map_or(Value::Null, |person| person["external_id"].clone()),
            };
            (
                EventKind::MessageUnseen,
                Some(ConversationId(message.conversation_id)),
                json!({
                    "conversation_id": message.conversation_id,
                    "recipient": people.get(recipient),
                    "message": {
                        "id": message.id,
                        "seq": message.seq,
                        "kind": kind.as_str(),
                        "from": from,
                        "body": message.body,
                        "created_at": message.created_at,
                    },
                }),
            )
        }),
    )
    .await?;
    event_cursors::ActiveModel {
        name: Set(UNSEEN_CURSOR.to_owned()),
        position: Set(last),
    }
    .update(&txn)
    .await?;
    txn.commit().await?;
    Ok(reported)
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
