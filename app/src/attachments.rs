//! Attachments: the database side of files sent in conversations.
//!
//! A file's life: the server stores an upload's bytes (see the server's `files` module) and
//! calls [`create`], which records it as *pending*: it belongs to a conversation and its
//! uploader, but to no message yet, and only the uploader may fetch it. Sending a message with
//! its id calls [`attach`] inside the message's insert transaction; from then on both
//! participants may fetch it. Uploads that are never sent are removed by [`take_unsent`].
//!
//! Access rule, in one place ([`find_for_download`]): anyone else gets "not found", whether
//! or not the file exists.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionSession, TransactionTrait, sea_query::Expr,
};

use crate::{
    conversations,
    entity::{attachments, users},
    model::{AttachmentId, AttachmentView, ConversationId, FileName, UserId},
};

/// An upload whose bytes are stored, to be recorded.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub conversation_id: ConversationId,
    pub uploader: UserId,
    pub storage_key: String,
    pub thumbnail_key: Option<String>,
    pub file_name: FileName,
    pub content_type: String,
    pub size_bytes: u64,
    /// Width and height, for images.
    pub dimensions: Option<(u32, u32)>,
}

/// What a download needs.
#[derive(Debug, Clone)]
pub struct StoredAttachment {
    pub view: AttachmentView,
    pub storage_key: String,
    pub thumbnail_key: Option<String>,
}

/// An unsent upload taken out of the database, whose objects are to be deleted.
#[derive(Debug, Clone)]
pub struct Abandoned {
    pub storage_key: String,
    pub thumbnail_key: Option<String>,
}

/// Why [`create`] refused.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The upload would pass its uploader's storage quota; this much was in use already.
    #[error("over the storage quota")]
    OverQuota { used_bytes: u64 },
    #[error("database error")]
    Database(#[from] DbErr),
}

/// Records a stored upload as pending, if it fits in its uploader's storage quota.
///
/// The sum and the insert are one write transaction, and the uploader's row is locked first
/// (PostgreSQL; SQLite's write lock, taken at `BEGIN`, serialises every writer): two uploads of
/// one person at once add up one after the other, so together they never pass the quota.
///
/// # Errors
/// [`CreateError::OverQuota`], or a database error (the caller then deletes the stored
/// objects either way).
pub async fn create(
    db: &impl TransactionTrait,
    new: NewAttachment,
    quota_bytes: u64,
) -> Result<AttachmentView, CreateError> {
    let txn = crate::entity::begin_write(db).await?;
    users::Entity::find_by_id(new.uploader.0)
        .lock_exclusive()
        .one(&txn)
        .await?;
    let used_bytes = used_bytes(&txn, new.uploader).await?;
    if used_bytes.saturating_add(new.size_bytes) > quota_bytes {
        return Err(CreateError::OverQuota { used_bytes });
    }
    let (width, height) = new.dimensions.map_or((None, None), |(w, h)| {
        (i32::try_from(w).ok(), i32::try_from(h).ok())
    });
    let row = attachments::ActiveModel {
        conversation_id: Set(new.conversation_id.0),
        uploader_id: Set(new.uploader.0),
        message_id: Set(None),
        position: Set(None),
        storage_key: Set(new.storage_key),
        thumbnail_key: Set(new.thumbnail_key),
        file_name: Set(new.file_name.as_str().to_owned()),
        content_type: Set(new.content_type),
        size_bytes: Set(i64::try_from(new.size_bytes).unwrap_or(i64::MAX)),
        width: Set(width),
        height: Set(height),
        created_at: Set(conversations::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(view(&row))
}

/// How many bytes `user`'s uploads take, sent or not: what counts against their storage quota.
///
/// # Errors
/// A database error.
pub async fn used_bytes(db: &impl ConnectionTrait, user: UserId) -> Result<u64, DbErr> {
    // In scope here only: its `min` and `max` would shadow the integers' elsewhere.
    use sea_orm::ExprTrait;

    let total: Option<i64> = attachments::Entity::find()
        .select_only()
        .column_as(
            Expr::col(attachments::Column::SizeBytes)
                .sum()
                .cast_as(sea_orm::sea_query::Alias::new("BIGINT")),
            "total",
        )
        .filter(attachments::Column::UploaderId.eq(user.0))
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    Ok(total.map_or(0, |total| u64::try_from(total).unwrap_or(0)))
}

/// The attachment `id`, if `user` may fetch it: a participant of its conversation, once it is
/// sent; before that, only its uploader.
///
/// # Errors
/// A database error.
pub async fn find_for_download(
    db: &impl ConnectionTrait,
    user: UserId,
    id: AttachmentId,
) -> Result<Option<StoredAttachment>, DbErr> {
    let Some(row) = attachments::Entity::find_by_id(id.0).one(db).await? else {
        return Ok(None);
    };
    let visible = if row.message_id.is_some() {
        match conversations::find_for_member(db, user, ConversationId(row.conversation_id)).await {
            Ok(_) => true,
            Err(conversations::ConversationsError::Database(error)) => return Err(error),
            Err(_) => false,
        }
    } else {
        row.uploader_id == user.0
    };
    Ok(visible.then(|| StoredAttachment {
        view: view(&row),
        storage_key: row.storage_key,
        thumbnail_key: row.thumbnail_key,
    }))
}

/// Why [`attach`] refused.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// An id is not a pending upload of this sender in this conversation (someone else's,
    /// already sent, cleaned up, or never existed), or appears twice.
    #[error("an attachment is not available: upload it again")]
    Unavailable,
    #[error("database error")]
    Database(#[from] DbErr),
}

/// Attaches pending uploads to a new message, in the given order. Meant to run inside the
/// message's insert transaction, so that a refusal stores nothing.
///
/// # Errors
/// [`AttachError::Unavailable`] unless every id is a distinct pending upload of `sender` in
/// this conversation.
pub async fn attach(
    txn: &impl ConnectionTrait,
    sender: UserId,
    conversation_id: ConversationId,
    message_id: i64,
    ids: &[AttachmentId],
) -> Result<Vec<AttachmentView>, AttachError> {
    for (position, id) in ids.iter().enumerate() {
        let position = i16::try_from(position).map_err(|_| AttachError::Unavailable)?;
        // The `message_id IS NULL` condition also makes a duplicate id fail the second time.
        let updated = attachments::Entity::update_many()
            .col_expr(attachments::Column::MessageId, Expr::value(message_id))
            .col_expr(attachments::Column::Position, Expr::value(position))
            .filter(attachments::Column::Id.eq(id.0))
            .filter(attachments::Column::UploaderId.eq(sender.0))
            .filter(attachments::Column::ConversationId.eq(conversation_id.0))
            .filter(attachments::Column::MessageId.is_null())
            .exec(txn)
            .await?;
        if updated.rows_affected != 1 {
            return Err(AttachError::Unavailable);
        }
    }
    Ok(for_messages(txn, &[message_id])
        .await?
        .remove(&message_id)
        .unwrap_or_default())
}

/// The attachments of each of these messages, in order. Messages without any are absent.
///
/// # Errors
/// A database error.
pub async fn for_messages(
    db: &impl ConnectionTrait,
    message_ids: &[i64],
) -> Result<HashMap<i64, Vec<AttachmentView>>, DbErr> {
    if message_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = attachments::Entity::find()
        .filter(attachments::Column::MessageId.is_in(message_ids.iter().copied()))
        .order_by_asc(attachments::Column::MessageId)
        .order_by_asc(attachments::Column::Position)
        .all(db)
        .await?;
    let mut by_message: HashMap<i64, Vec<AttachmentView>> = HashMap::new();
    for row in rows {
        if let Some(message_id) = row.message_id {
            by_message.entry(message_id).or_default().push(view(&row));
        }
    }
    Ok(by_message)
}

/// Removes up to `limit` uploads created before `cutoff` and never sent, and returns their
/// storage keys for the caller to delete.
///
/// Each row is deleted only while it is still unsent, so an upload that is being attached at
/// the same moment either stays (the message won) or is gone before the message could take it
/// (the send is then refused); never a message pointing at deleted bytes.
///
/// # Errors
/// A database error.
pub async fn take_unsent(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Abandoned>, DbErr> {
    let candidates = attachments::Entity::find()
        .filter(attachments::Column::MessageId.is_null())
        .filter(attachments::Column::CreatedAt.lt(cutoff))
        .order_by_asc(attachments::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await?;
    let mut taken = Vec::new();
    for row in candidates {
        let deleted = attachments::Entity::delete_many()
            .filter(attachments::Column::Id.eq(row.id))
            .filter(attachments::Column::MessageId.is_null())
            .exec(db)
            .await?;
        if deleted.rows_affected == 1 {
            taken.push(Abandoned {
                storage_key: row.storage_key,
                thumbnail_key: row.thumbnail_key,
            });
        }
    }
    Ok(taken)
}

fn view(row: &attachments::Model) -> AttachmentView {
    AttachmentView {
        id: AttachmentId(row.id),
        file_name: row.file_name.clone(),
        content_type: row.content_type.clone(),
        size_bytes: u64::try_from(row.size_bytes).unwrap_or_default(),
        width: row.width.and_then(|w| u32::try_from(w).ok()),
        height: row.height.and_then(|h| u32::try_from(h).ok()),
    }
}
