//! Messages: storing a sent message exactly once, and reading a conversation's history.
//!
//! The WebSocket handler stores through a [`writer::MessageWriter`] (which combines
//! concurrent sends into shared transactions, falling back on [`send`] for one message at a
//! time) and then publishes the result; the `history` server function calls [`history`]. Ordering is by `seq`, which [`send`] assigns inside the insert
//! transaction; the same transaction keeps `created_at` from ever going backwards within a
//! conversation, so `seq` order is also the order of (server time, id).

pub mod writer;

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    ExprTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionSession, TransactionTrait,
    sea_query::Expr,
};

use crate::{
    accounts::User,
    attachments::{self, AttachError},
    conversations::{self, ConversationsError, involving},
    entity::{conversations as conversation_rows, messages, participants, users},
    error::AppError,
    integration::{events, identities},
    model::{
        AttachmentId, AttachmentView, ClientMsgId, ContextCard, ConversationId, HISTORY_PAGE_SIZE,
        HistoryPage, MessageBody, MessageId, MessageKind, MessageView, UserId, UserView,
    },
};

/// What can go wrong in this module.
#[derive(Debug, thiserror::Error)]
pub enum MessagesError {
    /// No such conversation, or the user is not part of it.
    #[error("not found")]
    NotFound,
    /// The sender already used this `client_msg_id` for a message in another conversation.
    #[error("client_msg_id was already used for another conversation")]
    ClientMsgIdReused,
    /// An attachment id is not one of the sender's unsent uploads in this conversation.
    #[error("an attachment is not available; upload it again")]
    AttachmentUnavailable,
    #[error("database error")]
    Database(#[from] DbErr),
}

impl From<ConversationsError> for MessagesError {
    fn from(error: ConversationsError) -> Self {
        match error {
            ConversationsError::Database(cause) => Self::Database(cause),
            ConversationsError::NotFound | ConversationsError::WithSelf => Self::NotFound,
        }
    }
}

impl From<AttachError> for MessagesError {
    fn from(error: AttachError) -> Self {
        match error {
            AttachError::Unavailable => Self::AttachmentUnavailable,
            AttachError::Database(cause) => Self::Database(cause),
        }
    }
}

impl From<MessagesError> for AppError {
    fn from(error: MessagesError) -> Self {
        match error {
            MessagesError::NotFound => AppError::NotFound,
            MessagesError::ClientMsgIdReused => AppError::invalid(
                "client_msg_id",
                MessagesError::ClientMsgIdReused.to_string(),
            ),
            MessagesError::AttachmentUnavailable => AppError::invalid(
                "attachment_ids",
                MessagesError::AttachmentUnavailable.to_string(),
            ),
            MessagesError::Database(cause) => AppError::internal(&cause),
        }
    }
}

/// The outcome of a send.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message: MessageView,
    /// `false` when this `client_msg_id` had been stored before: a retry, nothing new to publish.
    pub created: bool,
}

/// What a message carries: its text (empty only when there are files or a card), its files'
/// ids, and the marketplace's card for a product or an order (already checked).
#[derive(Debug, Clone)]
pub struct Content {
    pub body: MessageBody,
    pub attachments: Vec<AttachmentId>,
    pub card: Option<ContextCard>,
}

impl Content {
    /// Text alone.
    pub fn text(body: MessageBody) -> Self {
        Self {
            body,
            attachments: Vec::new(),
            card: None,
        }
    }
}

/// Stores a message from `sender` in a conversation they take part in, exactly once per
/// `client_msg_id`, with its attachments (all or nothing).
///
/// # Errors
/// [`MessagesError::NotFound`] if `sender` is not a participant (nothing is stored),
/// [`MessagesError::ClientMsgIdReused`] if the id belongs to a message elsewhere,
/// [`MessagesError::AttachmentUnavailable`] if an attachment is not the sender's unsent upload
/// in this conversation (nothing is stored).
pub async fn send(
    db: &(impl ConnectionTrait + TransactionTrait),
    sender: &UserView,
    conversation_id: ConversationId,
    client_msg_id: &ClientMsgId,
    content: &Content,
) -> Result<Sent, MessagesError> {
    store(
        db,
        sender,
        conversation_id,
        client_msg_id,
        content,
        MessageKind::User,
    )
    .await
}

/// Stores a notice from the marketplace itself (`kind: system`) in a conversation, exactly
/// once per `client_msg_id`: text, a card (an order's new status), or both. Its author is the
/// marketplace's account ([`identities::marketplace`]); it moves nobody's read position, so
/// it is unread for both people until they see it.
///
/// # Errors
/// [`MessagesError::NotFound`] if there is no such conversation (nothing is stored),
/// [`MessagesError::ClientMsgIdReused`] if the id belongs to a notice elsewhere.
pub async fn send_system(
    db: &(impl ConnectionTrait + TransactionTrait),
    conversation_id: ConversationId,
    client_msg_id: &ClientMsgId,
    body: MessageBody,
    card: Option<ContextCard>,
) -> Result<Sent, MessagesError> {
    let author = identities::marketplace(db).await?;
    let content = Content {
        body,
        attachments: Vec::new(),
        card,
    };
    store(
        db,
        &author,
        conversation_id,
        client_msg_id,
        &content,
        MessageKind::System,
    )
    .await
}

/// [`send`], for a message of either kind.
async fn store(
    db: &(impl ConnectionTrait + TransactionTrait),
    sender: &UserView,
    conversation_id: ConversationId,
    client_msg_id: &ClientMsgId,
    content: &Content,
    kind: MessageKind,
) -> Result<Sent, MessagesError> {
    if let Some(existing) = find_by_client_msg_id(db, sender.id, client_msg_id).await? {
        return already_sent(db, existing, sender, conversation_id).await;
    }
    match insert(db, sender, conversation_id, client_msg_id, content, kind).await {
        Ok(message) => Ok(Sent {
            message,
            created: true,
        }),
        // The same send raced itself (two tabs, a retry on a second connection): the other
        // attempt stored it first, so this one is a duplicate.
        Err(MessagesError::Database(error))
            if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
        {
            let existing = find_by_client_msg_id(db, sender.id, client_msg_id)
                .await?
                .ok_or(MessagesError::Database(error))?;
            already_sent(db, existing, sender, conversation_id).await
        }
        Err(error) => Err(error),
    }
}

async fn already_sent(
    db: &impl ConnectionTrait,
    existing: messages::Model,
    sender: &UserView,
    conversation_id: ConversationId,
) -> Result<Sent, MessagesError> {
    if existing.conversation_id != conversation_id.0 {
        return Err(MessagesError::ClientMsgIdReused);
    }
    let files = attachments::for_messages(db, &[existing.id])
        .await?
        .remove(&existing.id)
        .unwrap_or_default();
    Ok(Sent {
        message: view(existing, sender.clone(), files),
        created: false,
    })
}

async fn find_by_client_msg_id(
    db: &impl ConnectionTrait,
    sender: UserId,
    client_msg_id: &ClientMsgId,
) -> Result<Option<messages::Model>, DbErr> {
    messages::Entity::find()
        .filter(messages::Column::SenderId.eq(sender.0))
        .filter(messages::Column::ClientMsgId.eq(client_msg_id.as_str()))
        .one(db)
        .await
}

/// The insert transaction: next `seq`, the row, its attachments, the conversation's activity
/// (and, with a card, what it is about), and (for a person's message) the sender's read
/// position and the card that waited for this message, all or nothing.
async fn insert(
    db: &impl TransactionTrait,
    sender: &UserView,
    conversation_id: ConversationId,
    client_msg_id: &ClientMsgId,
    content: &Content,
    kind: MessageKind,
) -> Result<MessageView, MessagesError> {
    let txn = crate::entity::begin_write(db).await?;
    // Write first: bumping the counter takes the conversation's row lock (PostgreSQL) or the
    // database write lock (SQLite) before anything is read, so concurrent senders queue here
    // and each reads the counter it just set. The membership test is part of the same
    // statement: a non-participant changes nothing and gets NotFound. The marketplace writes
    // in every conversation.
    let mut bump = conversation_rows::Entity::update_many()
        .col_expr(
            conversation_rows::Column::LastSeq,
            Expr::col(conversation_rows::Column::LastSeq).add(1),
        )
        .filter(conversation_rows::Column::Id.eq(conversation_id.0));
    if kind == MessageKind::User {
        bump = bump.filter(involving(sender.id));
    }
    let bumped = bump.exec(&txn).await?;
    if bumped.rows_affected == 0 {
        return Err(MessagesError::NotFound);
    }
    let conversation = conversation_rows::Entity::find_by_id(conversation_id.0)
        .one(&txn)
        .await?
        .ok_or(MessagesError::NotFound)?;
    let created_at = Ord::max(conversations::now(), conversation.last_activity_at);

    let row = messages::ActiveModel {
        conversation_id: Set(conversation_id.0),
        seq: Set(conversation.last_seq),
        sender_id: Set(sender.id.0),
        client_msg_id: Set(client_msg_id.as_str().to_owned()),
        body: Set(content.body.as_str().to_owned()),
        created_at: Set(created_at),
        kind: Set(kind.as_str().to_owned()),
        card: Set(content.card.as_ref().map(ContextCard::to_json)),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let files = attachments::attach(
        &txn,
        sender.id,
        conversation_id,
        row.id,
        &content.attachments,
    )
    .await?;

    let mut activity = conversation_rows::Entity::update_many()
        .col_expr(
            conversation_rows::Column::LastActivityAt,
            Expr::value(created_at),
        )
        .filter(conversation_rows::Column::Id.eq(conversation_id.0));
    if let Some(card) = &row.card {
        activity = activity.col_expr(conversation_rows::Column::Context, Expr::value(card));
    }
    activity.exec(&txn).await?;
    let stored = view(row.clone(), sender.clone(), files);
    events::messages_created(
        &txn,
        &[(
            stored.clone(),
            [
                UserId(conversation.user_low_id),
                UserId(conversation.user_high_id),
            ],
        )],
    )
    .await?;
    // Writing a message means having received and read everything before it.
    if kind == MessageKind::User {
        participants::Entity::update_many()
            .col_expr(participants::Column::LastReadSeq, Expr::value(stored.seq))
            .col_expr(
                participants::Column::LastDeliveredSeq,
                Expr::value(stored.seq),
            )
            .filter(participants::Column::ConversationId.eq(conversation_id.0))
            .filter(participants::Column::UserId.eq(sender.id.0))
            .exec(&txn)
            .await?;
        // The card that waited above the composer went with this message.
        if let Some(card) = &row.card {
            participants::Entity::update_many()
                .col_expr(
                    participants::Column::WaitingCard,
                    Expr::value(Option::<String>::None),
                )
                .filter(participants::Column::ConversationId.eq(conversation_id.0))
                .filter(participants::Column::UserId.eq(sender.id.0))
                .filter(participants::Column::WaitingCard.eq(card))
                .exec(&txn)
                .await?;
        }
    }
    txn.commit().await?;
    Ok(stored)
}

fn view(row: messages::Model, sender: UserView, attachments: Vec<AttachmentView>) -> MessageView {
    MessageView {
        id: MessageId(row.id),
        conversation_id: ConversationId(row.conversation_id),
        seq: row.seq,
        sender,
        client_msg_id: row.client_msg_id,
        body: row.body,
        created_at: row.created_at,
        attachments,
        kind: MessageKind::from_stored(&row.kind),
        card: ContextCard::from_stored(row.card.as_deref()),
    }
}

/// Which part of a conversation's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The latest page.
    Latest,
    /// The page just before `seq` (scrolling up).
    Before(i64),
    /// The page just after `seq` (catching up after a disconnection).
    After(i64),
}

/// One page of history, oldest first, by keyset on `seq` (never an offset, so pages stay
/// right while new messages arrive).
///
/// # Errors
/// [`MessagesError::NotFound`] if `me` is not a participant.
pub async fn history(
    db: &impl ConnectionTrait,
    me: UserId,
    conversation_id: ConversationId,
    page: Page,
) -> Result<HistoryPage, MessagesError> {
    let conversation = conversations::find_for_member(db, me, conversation_id).await?;

    let mut query =
        messages::Entity::find().filter(messages::Column::ConversationId.eq(conversation_id.0));
    query = match page {
        Page::Latest => query.order_by_desc(messages::Column::Seq),
        Page::Before(seq) => query
            .filter(messages::Column::Seq.lt(seq))
            .order_by_desc(messages::Column::Seq),
        Page::After(seq) => query
            .filter(messages::Column::Seq.gt(seq))
            .order_by_asc(messages::Column::Seq),
    };
    // One extra row tells whether there is more beyond the page.
    let mut rows = query.limit(HISTORY_PAGE_SIZE + 1).all(db).await?;
    let has_more = rows.len() as u64 > HISTORY_PAGE_SIZE;
    rows.truncate(HISTORY_PAGE_SIZE as usize);
    if !matches!(page, Page::After(_)) {
        rows.reverse();
    }

    // The two people, and the marketplace if it wrote on this page.
    let mut people: Vec<i64> = rows.iter().map(|row| row.sender_id).collect();
    people.extend([conversation.user_low_id, conversation.user_high_id]);
    people.sort_unstable();
    people.dedup();
    let senders: HashMap<i64, UserView> = users::Entity::find()
        .filter(users::Column::Id.is_in(people))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, User::from(u).view()))
        .collect();
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let mut files = attachments::for_messages(db, &ids).await?;
    let messages = rows
        .into_iter()
        .filter_map(|row| {
            let sender = senders.get(&row.sender_id)?.clone();
            let attached = files.remove(&row.id).unwrap_or_default();
            Some(view(row, sender, attached))
        })
        .collect();
    Ok(HistoryPage { messages, has_more })
}
