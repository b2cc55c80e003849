//! [`MessageWriter`]: group commit. Sends that arrive while a transaction is being written
//! wait for the next one and are stored together, so the database commits (and syncs its log)
//! once per batch instead of once per message. Under light load a batch holds one message and
//! nothing waits; under heavy load batches grow, up to [`MAX_BATCH`].
//!
//! Nothing is acknowledged before its batch has committed: each sender awaits its own answer,
//! which comes after the commit. A batch gives every message exactly what [`super::send`]
//! would have: a `seq` from the conversation's counter (one bump per conversation and batch,
//! under the row lock, so there are no gaps and no two writers share a number), a
//! `created_at` that never goes backwards, attachments, the conversation's last activity and
//! the sender's read position.
//!
//! Conversations are spread over a few *lanes* (by id), each a task writing one batch at a
//! time: a conversation's messages are stored in the order they reached its lane, and lanes
//! never touch each other's rows. Two cases leave the batch for [`super::send`], one message at
//! a time in the same lane: messages with attachments (rare, and each needs its own checks),
//! and every message of a batch whose transaction failed (a race with another instance over a
//! retried `client_msg_id`, a database hiccup), so one bad message never fails the others.

use std::collections::{HashMap, hash_map::Entry};

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait,
    QueryFilter, TransactionTrait,
    sea_query::{CaseStatement, Expr},
};
use tokio::sync::{mpsc, oneshot};

use super::{Content, MessagesError, Sent, already_sent, send, view};
use crate::{
    conversations,
    entity::{conversations as conversation_rows, messages, participants},
    model::{ClientMsgId, ConversationId, MessageView, UserView},
};

/// The most messages in one transaction.
pub const MAX_BATCH: usize = 256;
/// The histogram of messages per transaction (exported by the server's `/metrics`).
pub const MESSAGES_PER_COMMIT: &str = "parley_messages_per_commit";
/// Sends queued per lane before senders wait for room.
const LANE_QUEUE: usize = 4 * MAX_BATCH;

/// One message waiting to be stored.
struct Job {
    sender: UserView,
    conversation_id: ConversationId,
    client_msg_id: ClientMsgId,
    content: Content,
    answer: oneshot::Sender<Result<Sent, MessagesError>>,
}

/// Hands messages to the lanes. Cloning is cheap; clones share the lanes.
#[derive(Clone)]
pub struct MessageWriter {
    lanes: std::sync::Arc<[mpsc::Sender<Job>]>,
}

impl MessageWriter {
    /// Starts `lanes` writer tasks on `db` (at least one). Each holds a database connection
    /// only while writing a batch.
    pub fn start(db: &DatabaseConnection, lanes: usize) -> Self {
        let lanes: Vec<_> = (0..lanes.max(1))
            .map(|_| {
                let (sender, receiver) = mpsc::channel(LANE_QUEUE);
                tokio::spawn(run_lane(db.clone(), receiver));
                sender
            })
            .collect();
        Self {
            lanes: lanes.into(),
        }
    }

    /// Stores a message from `sender` in a conversation they take part in, exactly once per
    /// `client_msg_id`, and answers once it is committed. The same contract as
    /// [`super::send`].
    ///
    /// # Errors
    /// As [`super::send`]; [`MessagesError::Database`] also if the writer has stopped.
    pub async fn send(
        &self,
        sender: UserView,
        conversation_id: ConversationId,
        client_msg_id: ClientMsgId,
        content: Content,
    ) -> Result<Sent, MessagesError> {
        let lane = usize::try_from(conversation_id.0.rem_euclid(self.lanes.len() as i64))
            .unwrap_or_default();
        let (answer, answered) = oneshot::channel();
        let job = Job {
            sender,
            conversation_id,
            client_msg_id,
            content,
            answer,
        };
        if self.lanes[lane].send(job).await.is_err() {
            return Err(stopped());
        }
        answered.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> MessagesError {
    MessagesError::Database(DbErr::Custom("the message writer has stopped".into()))
}

/// A lane: takes whatever has queued up (at least one message, at most [`MAX_BATCH`]) and
/// stores it, until every [`MessageWriter`] is gone.
async fn run_lane(db: DatabaseConnection, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!(MESSAGES_PER_COMMIT).record(batch.len() as f64);
        let (single, grouped): (Vec<Job>, Vec<Job>) = batch
            .drain(..)
            .partition(|job| !job.content.attachments.is_empty());
        store_batch(&db, grouped).await;
        for job in single {
            answer_alone(&db, job).await;
        }
    }
}

/// Stores one message on its own.
async fn answer_alone(db: &DatabaseConnection, job: Job) {
    let result = send(
        db,
        &job.sender,
        job.conversation_id,
        &job.client_msg_id,
        &job.content,
    )
    .await;
    let _ = job.answer.send(result);
}

/// Stores `jobs` in one transaction and answers each; if the transaction fails, stores them
/// one at a time instead.
async fn store_batch(db: &DatabaseConnection, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    match write(db, &jobs).await {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.answer.send(result);
            }
        }
        Err(error) => {
            tracing::warn!(%error, messages = jobs.len(), "a batch failed; storing its messages one by one");
            for job in jobs {
                answer_alone(db, job).await;
            }
        }
    }
}

/// What becomes of each job in a batch.
enum Plan {
    /// Answered without writing (not a participant, an id used elsewhere, a resend).
    Settled(Result<Sent, MessagesError>),
    /// Stored as the `index`th new row.
    New { index: usize },
    /// The same message as an earlier job of this batch (a resend racing its original).
    SameAs(usize),
}

/// The batch's transaction. Answers each job, in order, or fails as a whole.
async fn write(
    db: &DatabaseConnection,
    jobs: &[Job],
) -> Result<Vec<Result<Sent, MessagesError>>, DbErr> {
    let txn = db.begin().await?;

    // Messages stored before, by (sender, client_msg_id): resends.
    let existing: HashMap<(i64, String), messages::Model> = messages::Entity::find()
        .filter(messages::Column::SenderId.is_in(jobs.iter().map(|j| j.sender.id.0)))
        .filter(messages::Column::ClientMsgId.is_in(jobs.iter().map(|j| j.client_msg_id.as_str())))
        .all(&txn)
        .await?
        .into_iter()
        .map(|row| ((row.sender_id, row.client_msg_id.clone()), row))
        .collect();
    // Who takes part in each conversation (membership never changes).
    let members: HashMap<i64, (i64, i64)> = conversation_rows::Entity::find()
        .filter(conversation_rows::Column::Id.is_in(jobs.iter().map(|j| j.conversation_id.0)))
        .all(&txn)
        .await?
        .into_iter()
        .map(|c| (c.id, (c.user_low_id, c.user_high_id)))
        .collect();

    let mut plans = Vec::with_capacity(jobs.len());
    let mut first_of: HashMap<(i64, &str), usize> = HashMap::new();
    let mut new_jobs: Vec<&Job> = Vec::new();
    for (position, job) in jobs.iter().enumerate() {
        let key = (job.sender.id.0, job.client_msg_id.as_str());
        let plan = if let Some(row) = existing.get(&(key.0, key.1.to_owned())) {
            Plan::Settled(already_sent(&txn, row.clone(), &job.sender, job.conversation_id).await)
        } else if let Some(first) = first_of.get(&key) {
            Plan::SameAs(*first)
        } else if !members
            .get(&job.conversation_id.0)
            .is_some_and(|(low, high)| [*low, *high].contains(&job.sender.id.0))
        {
            Plan::Settled(Err(MessagesError::NotFound))
        } else {
            first_of.insert(key, position);
            new_jobs.push(job);
            Plan::New {
                index: new_jobs.len() - 1,
            }
        };
        plans.push(plan);
    }

    let stored = if new_jobs.is_empty() {
        Vec::new()
    } else {
        insert_new(&txn, &new_jobs).await?
    };
    txn.commit().await?;

    let mut results: Vec<Result<Sent, MessagesError>> = Vec::with_capacity(jobs.len());
    for plan in plans {
        let result = match plan {
            Plan::Settled(result) => result,
            Plan::New { index } => Ok(Sent {
                message: stored[index].clone(),
                created: true,
            }),
            // The original's answer, as a resend (nothing new to publish).
            Plan::SameAs(first) => match &results[first] {
                Ok(sent) => Ok(Sent {
                    message: sent.message.clone(),
                    created: false,
                }),
                Err(_) => Err(MessagesError::NotFound),
            },
        };
        results.push(result);
    }
    Ok(results)
}

/// Numbers, inserts and accounts for the new messages (all from participants, none stored
/// before), returning their views in the same order.
async fn insert_new(txn: &impl ConnectionTrait, jobs: &[&Job]) -> Result<Vec<MessageView>, DbErr> {
    // How many new messages each conversation gets, in order of first appearance.
    let mut counts: Vec<(i64, i64)> = Vec::new();
    for job in jobs {
        let id = job.conversation_id.0;
        match counts.iter_mut().find(|(c, _)| *c == id) {
            Some((_, count)) => *count += 1,
            None => counts.push((id, 1)),
        }
    }
    // One bump per conversation: the counter moves by its count, under the row lock, and the
    // batch numbers its messages from the old value up.
    let bump = counts
        .iter()
        .fold(CaseStatement::new(), |case, (id, count)| {
            case.case(conversation_rows::Column::Id.eq(*id), *count)
        })
        .finally(0);
    let bumped = conversation_rows::Entity::update_many()
        .col_expr(
            conversation_rows::Column::LastSeq,
            Expr::col(conversation_rows::Column::LastSeq).add(case(bump)),
        )
        .filter(conversation_rows::Column::Id.is_in(counts.iter().map(|(id, _)| *id)))
        .exec_with_returning(txn)
        .await?;
    let now = conversations::now();
    // Per conversation: the next `seq` to give, and the time of its messages.
    let mut next: HashMap<i64, (i64, chrono::DateTime<chrono::Utc>)> = bumped
        .iter()
        .filter_map(|row| {
            let count = counts.iter().find(|(id, _)| *id == row.id)?.1;
            Some((
                row.id,
                (
                    row.last_seq - count + 1,
                    Ord::max(now, row.last_activity_at),
                ),
            ))
        })
        .collect();

    // Each job's place, known before the insert.
    let mut places = Vec::with_capacity(jobs.len());
    let mut rows = Vec::with_capacity(jobs.len());
    for job in jobs {
        let Entry::Occupied(mut slot) = next.entry(job.conversation_id.0) else {
            return Err(DbErr::Custom("a conversation was not bumped".into()));
        };
        let (seq, created_at) = *slot.get();
        slot.get_mut().0 += 1;
        places.push((job.conversation_id.0, seq));
        rows.push(messages::ActiveModel {
            conversation_id: Set(job.conversation_id.0),
            seq: Set(seq),
            sender_id: Set(job.sender.id.0),
            client_msg_id: Set(job.client_msg_id.as_str().to_owned()),
            body: Set(job.content.body.as_str().to_owned()),
            created_at: Set(created_at),
            ..Default::default()
        });
    }
    let inserted = messages::Entity::insert_many(rows)
        .exec_with_returning(txn)
        .await?;
    // RETURNING promises no order: rows are found by (conversation, seq).
    let mut stored: HashMap<(i64, i64), messages::Model> = inserted
        .into_iter()
        .map(|row| ((row.conversation_id, row.seq), row))
        .collect();

    // Each conversation's last message is its highest `seq` now; each sender has read up to
    // their newest message.
    let mut last_message = CaseStatement::new();
    let mut last_activity = CaseStatement::new();
    for (conversation, (after_last, _)) in &next {
        let row = stored
            .get(&(*conversation, after_last - 1))
            .ok_or_else(|| DbErr::Custom("an inserted message went missing".into()))?;
        let this = conversation_rows::Column::Id.eq(*conversation);
        last_message = last_message.case(this.clone(), row.id);
        last_activity = last_activity.case(this, row.created_at);
    }
    conversation_rows::Entity::update_many()
        .col_expr(conversation_rows::Column::LastMessageId, case(last_message))
        .col_expr(
            conversation_rows::Column::LastActivityAt,
            case(last_activity),
        )
        .filter(conversation_rows::Column::Id.is_in(next.keys().copied()))
        .exec(txn)
        .await?;
    let mut read: HashMap<(i64, i64), i64> = HashMap::new();
    for (job, (conversation, seq)) in jobs.iter().zip(&places) {
        let position = read.entry((*conversation, job.sender.id.0)).or_insert(0);
        *position = Ord::max(*position, *seq);
    }
    let reader = |(conversation, user): &(i64, i64)| {
        Condition::all()
            .add(participants::Column::ConversationId.eq(*conversation))
            .add(participants::Column::UserId.eq(*user))
    };
    let position = read.iter().fold(CaseStatement::new(), |case, (key, seq)| {
        case.case(reader(key), *seq)
    });
    participants::Entity::update_many()
        .col_expr(participants::Column::LastReadSeq, case(position.clone()))
        .col_expr(participants::Column::LastDeliveredSeq, case(position))
        .filter(
            read.keys()
                .fold(Condition::any(), |any, key| any.add(reader(key))),
        )
        .exec(txn)
        .await?;

    jobs.iter()
        .zip(places)
        .map(|(job, place)| {
            stored
                .remove(&place)
                .map(|row| view(row, job.sender.clone(), Vec::new()))
                .ok_or_else(|| DbErr::Custom("an inserted message went missing".into()))
        })
        .collect()
}

/// A `CASE … END` as a value to set.
fn case(statement: CaseStatement) -> Expr {
    Expr::Case(Box::new(statement))
}
