//! Conversations between two users: opening one (exactly one per pair), listing a user's
//! conversations, who may see which, and read positions.
//!
//! Every function that takes a conversation id also takes the requesting user and refuses a
//! conversation they are not part of with [`ConversationsError::NotFound`], the same answer as
//! for one that does not exist. Authorisation for conversations lives here and nowhere else.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionSession,
    TransactionTrait, sea_query::Expr,
};

use serde_json::json;

use crate::{
    accounts::{User, find_by_username},
    entity::{conversations, messages, participants, users},
    error::AppError,
    integration::events::{self, EventKind},
    model::{
        ContextCard, ConversationId, ConversationSummary, MessagePreview, UserId, UserView,
        Username,
    },
};

pub use crate::model::CONVERSATION_PAGE_SIZE as LIST_PAGE_SIZE;

/// What can go wrong in this module.
#[derive(Debug, thiserror::Error)]
pub enum ConversationsError {
    /// No such conversation or user, or not one the requester may see.
    #[error("not found")]
    NotFound,
    /// A user tried to open a conversation with themselves.
    #[error("a conversation needs two different people")]
    WithSelf,
    #[error("database error")]
    Database(#[from] DbErr),
}

impl From<ConversationsError> for AppError {
    fn from(error: ConversationsError) -> Self {
        match error {
            ConversationsError::NotFound => AppError::NotFound,
            ConversationsError::WithSelf => {
                AppError::invalid("username", "You can't start a conversation with yourself.")
            }
            ConversationsError::Database(cause) => AppError::internal(&cause),
        }
    }
}

/// Server time now, cut to whole milliseconds: what clients see is exactly what is stored, on
/// every backend.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// The conversation between `me` and the user called `username`, created if it does not exist.
///
/// # Errors
/// [`ConversationsError::NotFound`] if there is no such user, [`ConversationsError::WithSelf`]
/// for one's own username.
pub async fn open(
    db: &(impl ConnectionTrait + TransactionTrait),
    me: &User,
    username: &str,
) -> Result<ConversationSummary, ConversationsError> {
    let username = Username::parse(username).map_err(|_| ConversationsError::NotFound)?;
    let other = find_by_username(db, &username)
        .await?
        .ok_or(ConversationsError::NotFound)?;
    if other.id == me.id.0 {
        return Err(ConversationsError::WithSelf);
    }
    Ok(open_between(db, me.id, UserId(other.id)).await?.0)
}

/// The conversation between two users, as `me` sees it, created if it does not exist; `true`
/// when it was created just now.
///
/// # Errors
/// [`ConversationsError::WithSelf`] if the two are one, [`ConversationsError::NotFound`] if
/// either does not exist.
pub async fn open_between(
    db: &(impl ConnectionTrait + TransactionTrait),
    me: UserId,
    other: UserId,
) -> Result<(ConversationSummary, bool), ConversationsError> {
    if me == other {
        return Err(ConversationsError::WithSelf);
    }
    let (low, high) = (me.0.min(other.0), me.0.max(other.0));
    let (conversation, created) = match find_pair(db, low, high).await? {
        Some(existing) => (existing, false),
        None => match create_pair(db, low, high).await {
            Ok(created) => (created, true),
            // Both users opened it at the same moment and the other insert won; use theirs.
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                let theirs = find_pair(db, low, high)
                    .await?
                    .ok_or(ConversationsError::NotFound)?;
                (theirs, false)
            }
            // A user that does not exist fails the participants' foreign key.
            Err(error)
                if matches!(
                    error.sql_err(),
                    Some(SqlErr::ForeignKeyConstraintViolation(_))
                ) =>
            {
                return Err(ConversationsError::NotFound);
            }
            Err(error) => return Err(error.into()),
        },
    };
    let mut summaries = summarise(db, me, vec![conversation]).await?;
    let summary = summaries.pop().ok_or(ConversationsError::NotFound)?;
    Ok((summary, created))
}

/// The two people of a conversation (the lower id first), if it exists. For callers that act
/// for the marketplace, which may see every conversation (the server API); everyone else goes
/// through [`find_for_member`].
///
/// # Errors
/// The database failed.
pub async fn members(
    db: &impl ConnectionTrait,
    conversation: ConversationId,
) -> Result<Option<[UserId; 2]>, DbErr> {
    Ok(conversations::Entity::find_by_id(conversation.0)
        .one(db)
        .await?
        .map(|row| [UserId(row.user_low_id), UserId(row.user_high_id)]))
}

async fn find_pair(
    db: &impl ConnectionTrait,
    low: i64,
    high: i64,
) -> Result<Option<conversations::Model>, DbErr> {
    conversations::Entity::find()
        .filter(conversations::Column::UserLowId.eq(low))
        .filter(conversations::Column::UserHighId.eq(high))
        .one(db)
        .await
}

/// Creates the conversation and both participant rows together, or nothing.
async fn create_pair(
    db: &impl TransactionTrait,
    low: i64,
    high: i64,
) -> Result<conversations::Model, DbErr> {
    let txn = crate::entity::begin_write(db).await?;
    let now = now();
    let conversation = conversations::ActiveModel {
        user_low_id: Set(low),
        user_high_id: Set(high),
        last_seq: Set(0),
        last_activity_at: Set(now),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    participants::Entity::insert_many([low, high].map(|user_id| participants::ActiveModel {
        conversation_id: Set(conversation.id),
        user_id: Set(user_id),
        last_read_seq: Set(0),
        last_delivered_seq: Set(0),
        waiting_card: Set(None),
    }))
    .exec(&txn)
    .await?;
    let people = events::people(&txn, [UserId(low), UserId(high)]).await?;
    events::record(
        &txn,
        [(
            EventKind::ConversationCreated,
            Some(ConversationId(conversation.id)),
            json!({
                "conversation_id": conversation.id,
                "participants": [people.get(&UserId(low)), people.get(&UserId(high))],
            }),
        )],
    )
    .await?;
    txn.commit().await?;
    Ok(conversation)
}

/// The conversation, if `me` takes part in it.
///
/// # Errors
/// [`ConversationsError::NotFound`] if it does not exist or `me` is not a participant.
pub async fn find_for_member(
    db: &impl ConnectionTrait,
    me: UserId,
    id: ConversationId,
) -> Result<conversations::Model, ConversationsError> {
    conversations::Entity::find_by_id(id.0)
        .filter(involving(me))
        .one(db)
        .await?
        .ok_or(ConversationsError::NotFound)
}

/// Everyone `user` has a conversation with: who hears about their presence.
///
/// # Errors
/// A database error.
pub async fn partners(db: &impl ConnectionTrait, user: UserId) -> Result<Vec<UserId>, DbErr> {
    Ok(conversations::Entity::find()
        .filter(involving(user))
        .all(db)
        .await?
        .iter()
        .map(|conversation| UserId(other_of(conversation, user)))
        .collect())
}

/// Leaves `card` waiting above `user`'s composer in a conversation of theirs (replacing one
/// left before), for their next message to take: what a "Contact seller" sign-in does.
///
/// # Errors
/// [`ConversationsError::NotFound`] if `user` is not in the conversation.
pub async fn leave_card(
    db: &impl ConnectionTrait,
    user: UserId,
    conversation_id: ConversationId,
    card: &ContextCard,
) -> Result<(), ConversationsError> {
    set_waiting_card(db, user, conversation_id, Some(card.to_json())).await
}

/// Takes away the card waiting for `user`'s next message in a conversation ("remove" on
/// "Asking about"). Nothing waiting is not an error: another tab may have sent or removed it.
///
/// # Errors
/// [`ConversationsError::NotFound`] if `user` is not in the conversation.
pub async fn drop_waiting_card(
    db: &impl ConnectionTrait,
    user: UserId,
    conversation_id: ConversationId,
) -> Result<(), ConversationsError> {
    set_waiting_card(db, user, conversation_id, None).await
}

async fn set_waiting_card(
    db: &impl ConnectionTrait,
    user: UserId,
    conversation_id: ConversationId,
    card: Option<String>,
) -> Result<(), ConversationsError> {
    let changed = participants::Entity::update_many()
        .col_expr(participants::Column::WaitingCard, Expr::value(card))
        .filter(participants::Column::ConversationId.eq(conversation_id.0))
        .filter(participants::Column::UserId.eq(user.0))
        .exec(db)
        .await?;
    if changed.rows_affected == 0 {
        return Err(ConversationsError::NotFound);
    }
    Ok(())
}

/// The card waiting for `user`'s next message in a conversation, if any.
///
/// # Errors
/// A database error.
pub async fn waiting_card(
    db: &impl ConnectionTrait,
    user: UserId,
    conversation_id: ConversationId,
) -> Result<Option<ContextCard>, DbErr> {
    let row = participants::Entity::find_by_id((conversation_id.0, user.0))
        .one(db)
        .await?;
    Ok(row.and_then(|p| ContextCard::from_stored(p.waiting_card.as_deref())))
}

/// Records that `user`'s last connection ended at `at`.
///
/// # Errors
/// A database error.
pub async fn mark_last_seen(
    db: &impl ConnectionTrait,
    user: UserId,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    users::Entity::update_many()
        .col_expr(users::Column::LastSeenAt, Expr::value(at))
        .filter(users::Column::Id.eq(user.0))
        .exec(db)
        .await?;
    Ok(())
}

/// Sets `other_online` in each summary from the fan-out's view of who is connected. Presence
/// is a nicety: when the fan-out can't say, everyone shows as offline.
pub async fn with_presence(
    realtime: &dyn crate::realtime::Realtime,
    mut summaries: Vec<ConversationSummary>,
) -> Vec<ConversationSummary> {
    let others: Vec<UserId> = summaries.iter().map(|s| s.other.id).collect();
    if let Ok(online) = realtime.online(&others).await {
        for summary in &mut summaries {
            summary.other_online = online.contains(&summary.other.id);
        }
    }
    summaries
}

/// Matches conversations in which `user` takes part.
pub(crate) fn involving(user: UserId) -> Condition {
    Condition::any()
        .add(conversations::Column::UserLowId.eq(user.0))
        .add(conversations::Column::UserHighId.eq(user.0))
}

/// The other participant of a conversation `me` takes part in.
///
/// # Errors
/// [`ConversationsError::NotFound`] if `me` is not a participant.
pub async fn other_participant(
    db: &impl ConnectionTrait,
    me: UserId,
    id: ConversationId,
) -> Result<UserId, ConversationsError> {
    let conversation = find_for_member(db, me, id).await?;
    Ok(UserId(other_of(&conversation, me)))
}

fn other_of(conversation: &conversations::Model, me: UserId) -> i64 {
    if conversation.user_low_id == me.0 {
        conversation.user_high_id
    } else {
        conversation.user_low_id
    }
}

/// Where a page of the conversation list starts: after the conversation whose last activity
/// and id these are (the last one of the page before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub last_activity_at: DateTime<Utc>,
    pub id: ConversationId,
}

/// A page of `me`'s conversations, latest activity first: the first page, or the one after
/// `after` (keyset paging on last activity then id, so a page costs the same however deep it
/// is, and a conversation that moves up meanwhile is never shown twice on one page).
pub async fn list(
    db: &impl ConnectionTrait,
    me: UserId,
    after: Option<ListCursor>,
    limit: u64,
) -> Result<Vec<ConversationSummary>, ConversationsError> {
    let mut query = conversations::Entity::find().filter(involving(me));
    if let Some(cursor) = after {
        query = query.filter(
            Condition::any()
                .add(conversations::Column::LastActivityAt.lt(cursor.last_activity_at))
                .add(
                    Condition::all()
                        .add(conversations::Column::LastActivityAt.eq(cursor.last_activity_at))
                        .add(conversations::Column::Id.lt(cursor.id.0)),
                ),
        );
    }
    let rows = query
        .order_by_desc(conversations::Column::LastActivityAt)
        .order_by_desc(conversations::Column::Id)
        .limit(limit.min(LIST_PAGE_SIZE))
        .all(db)
        .await?;
    summarise(db, me, rows).await
}

/// What `me` has not read yet, all conversations together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnreadTotal {
    /// Messages past `me`'s read position.
    pub messages: i64,
    /// Conversations with at least one such message.
    pub conversations: i64,
}

/// Counts what `me` has not read, in one query (an aggregate over `me`'s participant rows,
/// whatever their number).
///
/// # Errors
/// The database failed.
pub async fn total_unread(db: &impl ConnectionTrait, me: UserId) -> Result<UnreadTotal, DbErr> {
    use sea_orm::{
        ExprTrait,
        sea_query::{Alias, Query},
    };

    let unread = Expr::col((conversations::Entity, conversations::Column::LastSeq)).sub(Expr::col(
        (participants::Entity, participants::Column::LastReadSeq),
    ));
    let query = Query::select()
        .expr_as(
            Expr::col((participants::Entity, participants::Column::ConversationId)).count(),
            Alias::new("conversations"),
        )
        // SUM of integers is a NUMERIC on PostgreSQL: brought back to an integer.
        .expr_as(
            unread.sum().cast_as(Alias::new("BIGINT")),
            Alias::new("messages"),
        )
        .from(participants::Entity)
        .inner_join(
            conversations::Entity,
            Expr::col((conversations::Entity, conversations::Column::Id))
                .equals((participants::Entity, participants::Column::ConversationId)),
        )
        .and_where(Expr::col((participants::Entity, participants::Column::UserId)).eq(me.0))
        .and_where(
            Expr::col((conversations::Entity, conversations::Column::LastSeq)).gt(Expr::col((
                participants::Entity,
                participants::Column::LastReadSeq,
            ))),
        )
        .to_owned();
    let Some(row) = db.query_one(&query).await? else {
        return Ok(UnreadTotal::default());
    };
    Ok(UnreadTotal {
        messages: row.try_get::<Option<i64>>("", "messages")?.unwrap_or(0),
        conversations: row.try_get::<i64>("", "conversations")?,
    })
}

/// Turns conversation rows into summaries with three more queries in all (the users, both
/// participants' positions, last messages), whatever the number of rows.
async fn summarise(
    db: &impl ConnectionTrait,
    me: UserId,
    rows: Vec<conversations::Model>,
) -> Result<Vec<ConversationSummary>, ConversationsError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
    let mut people: Vec<i64> = rows.iter().map(|c| other_of(c, me)).collect();
    people.push(me.0);
    // A conversation's last message is the one at its counter.
    let last_positions: Vec<(i64, i64)> = rows
        .iter()
        .filter(|c| c.last_seq > 0)
        .map(|c| (c.id, c.last_seq))
        .collect();

    let users: HashMap<i64, users::Model> = users::Entity::find()
        .filter(users::Column::Id.is_in(people))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let positions: HashMap<(i64, i64), participants::Model> = participants::Entity::find()
        .filter(participants::Column::ConversationId.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|p| ((p.conversation_id, p.user_id), p))
        .collect();
    let last_messages: HashMap<i64, messages::Model> = if last_positions.is_empty() {
        HashMap::new()
    } else {
        // In scope here only: its `min` and `max` would shadow the integers' elsewhere.
        use sea_orm::ExprTrait;
        messages::Entity::find()
            .filter(
                Expr::tuple([
                    Expr::col(messages::Column::ConversationId),
                    Expr::col(messages::Column::Seq),
                ])
                .in_tuples(last_positions),
            )
            .all(db)
            .await?
            .into_iter()
            .map(|m| (m.conversation_id, m))
            .collect()
    };
    let i_share = users.get(&me.0).is_some_and(|u| u.read_receipts);

    Ok(rows
        .into_iter()
        .filter_map(|conversation| {
            let other = users.get(&other_of(&conversation, me))?;
            let mine = positions.get(&(conversation.id, me.0));
            let theirs = positions.get(&(conversation.id, other.id));
            let last_read = mine.map_or(0, |p| p.last_read_seq);
            let last_message = last_messages.get(&conversation.id).map(|m| {
                let card = ContextCard::from_stored(m.card.as_deref());
                let text = crate::model::message_text(&m.body, card.as_ref());
                MessagePreview::new(UserId(m.sender_id), text, m.created_at)
            });
            Some(ConversationSummary {
                id: ConversationId(conversation.id),
                other: UserView {
                    id: UserId(other.id),
                    username: other.username.clone(),
                    display_name: other.display_name.clone(),
                },
                last_message,
                last_activity_at: conversation.last_activity_at,
                last_seq: conversation.last_seq,
                unread: (conversation.last_seq - last_read).max(0),
                // Filled in by `with_presence`, which knows who is connected.
                other_online: false,
                other_last_seen_at: other.last_seen_at,
                other_delivered_seq: theirs.map_or(0, |p| p.last_delivered_seq),
                other_read_seq: (i_share && other.read_receipts)
                    .then(|| theirs.map_or(0, |p| p.last_read_seq)),
                about: ContextCard::from_stored(conversation.context.as_deref()),
                waiting_card: mine
                    .and_then(|p| ContextCard::from_stored(p.waiting_card.as_deref())),
            })
        })
        .collect())
}

/// How a read receipt moved `me`'s positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadMoved {
    /// The new read position, if it moved.
    pub read: Option<i64>,
    /// The new delivery position, if reading moved it too (the messages had not been
    /// acknowledged as delivered yet).
    pub delivered: Option<i64>,
}

/// Records that `me` has read the conversation up to `seq` (clamped to the messages that
/// exist). Read positions only move forward, and what has been read has been delivered.
///
/// # Errors
/// [`ConversationsError::NotFound`] if `me` is not a participant.
pub async fn mark_read(
    db: &(impl ConnectionTrait + TransactionTrait),
    me: UserId,
    id: ConversationId,
    seq: i64,
) -> Result<ReadMoved, ConversationsError> {
    let conversation = find_for_member(db, me, id).await?;
    let seq = seq.clamp(0, conversation.last_seq);
    // One transaction, so that what is reported as moved is what this call moved.
    let txn = crate::entity::begin_write(db).await?;
    let mine = |column: participants::Column| {
        participants::Entity::update_many()
            .col_expr(column, Expr::value(seq))
            .filter(participants::Column::ConversationId.eq(id.0))
            .filter(participants::Column::UserId.eq(me.0))
            .filter(column.lt(seq))
    };
    let read = mine(participants::Column::LastReadSeq).exec(&txn).await?;
    let delivered = mine(participants::Column::LastDeliveredSeq)
        .exec(&txn)
        .await?;
    if read.rows_affected > 0 {
        let people = events::people(&txn, [me]).await?;
        events::record(
            &txn,
            [(
                EventKind::MessageSeen,
                Some(id),
                json!({"conversation_id": id.0, "user": people.get(&me), "seq": seq}),
            )],
        )
        .await?;
    }
    txn.commit().await?;
    Ok(ReadMoved {
        read: (read.rows_affected > 0).then_some(seq),
        delivered: (delivered.rows_affected > 0).then_some(seq),
    })
}

/// Records that a device of `me` has received the conversation's messages up to `seq`
/// (clamped to the messages that exist). Delivery positions only move forward.
///
/// Returns the new delivery position, or `None` if it did not move.
///
/// # Errors
/// [`ConversationsError::NotFound`] if `me` is not a participant.
pub async fn mark_delivered(
    db: &impl ConnectionTrait,
    me: UserId,
    id: ConversationId,
    seq: i64,
) -> Result<Option<i64>, ConversationsError> {
    let conversation = find_for_member(db, me, id).await?;
    let seq = seq.clamp(0, conversation.last_seq);
    let result = participants::Entity::update_many()
        .col_expr(participants::Column::LastDeliveredSeq, Expr::value(seq))
        .filter(participants::Column::ConversationId.eq(id.0))
        .filter(participants::Column::UserId.eq(me.0))
        .filter(participants::Column::LastDeliveredSeq.lt(seq))
        .exec(db)
        .await?;
    Ok((result.rows_affected > 0).then_some(seq))
}

/// Whether two people see each other's read receipts: only when both share theirs.
///
/// # Errors
/// The database failed.
pub async fn read_receipts_shared(
    db: &impl ConnectionTrait,
    one: UserId,
    other: UserId,
) -> Result<bool, DbErr> {
    let sharing = users::Entity::find()
        .filter(users::Column::Id.is_in([one.0, other.0]))
        .filter(users::Column::ReadReceipts.eq(true))
        .count(db)
        .await?;
    Ok(sharing == 2)
}
