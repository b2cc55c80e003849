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
//! a time in the same lane: messages with attachments or a card (rare, and each needs its own
//! checks and writes),
//! and every message of a batch whose transaction failed (a race with another instance over a
//! retried `client_msg_id`, a database hiccup), so one bad message never fails the others.
//!
//! On PostgreSQL a batch is one statement (its own transaction): every list goes as an array
//! parameter, so the statement's text never changes, it is planned once per connection, and a
//! batch costs one round trip. Its connections are set to use only nested loops over indexes
//! ([`connect_options`]), so that a plan made while the tables were empty stays right as they
//! grow. On SQLite a batch is a transaction of a few statements built by sea-query (it plans
//! in process for next to nothing, and has no arrays).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    ExprTrait, QueryFilter, Statement,
    sea_query::{CaseStatement, Expr},
};
use tokio::sync::{mpsc, oneshot};

use super::{Content, MessagesError, Sent, already_sent, send, view};
use crate::{
    conversations,
    entity::{conversations as conversation_rows, messages, participants},
    integration::events,
    model::{ClientMsgId, ConversationId, MessageKind, MessageView, UserId, UserView},
};

/// The most messages in one transaction: enough to share each commit among many, and small
/// enough that a batch's statement stays quick (see `postgres::STORE`).
pub const MAX_BATCH: usize = 64;
/// The histogram of messages per transaction (exported by the server's `/metrics`).
pub const MESSAGES_PER_COMMIT: &str = "parley_messages_per_commit";
/// The histogram of the time to write and commit a batch, in seconds.
pub const COMMIT_DURATION: &str = "parley_commit_seconds";
/// Sends queued per lane before senders wait for room.
const LANE_QUEUE: usize = 4 * MAX_BATCH;

/// Settings of the connections the writer uses on PostgreSQL: just enough of them for the
/// lanes, and a planner that looks rows up through indexes with nested loops. Batches are
/// small lists against large tables, which is always what those plans are best at; without
/// this, a plan cached on a connection while a table was still empty (a new deployment, or
/// autovacuum off) would scan the whole table on every batch ever after (measured here: 31 ms
/// a batch at 100,000 messages, instead of 0.1).
pub fn connect_options(options: &mut sea_orm::ConnectOptions, lanes: usize) {
    let connections = u32::try_from(lanes.max(1)).unwrap_or(u32::MAX);
    options
        .max_connections(connections)
        .min_connections(0)
        .map_sqlx_postgres_opts(|postgres| {
            postgres.options([
                ("enable_seqscan", "off"),
                ("enable_hashjoin", "off"),
                ("enable_mergejoin", "off"),
                ("plan_cache_mode", "force_generic_plan"),
            ])
        });
}

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
    /// only while writing a batch. On PostgreSQL, `db` should be opened with
    /// [`connect_options`] (a plan could otherwise pick a table scan; answers would be the same,
    /// only slower).
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
        let (single, grouped): (Vec<Job>, Vec<Job>) = batch
            .drain(..)
            .partition(|job| !job.content.attachments.is_empty() || job.content.card.is_some());
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
    metrics::histogram!(MESSAGES_PER_COMMIT).record(jobs.len() as f64);
    let started = std::time::Instant::now();
    let written = write(db, &jobs).await;
    metrics::histogram!(COMMIT_DURATION).record(started.elapsed().as_secs_f64());
    match written {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.answer.send(result);
            }
        }
        Err(error) => {
            tracing::warn!(
                %error,
                messages = jobs.len(),
                "a batch failed; storing its messages one by one"
            );
            for job in jobs {
                answer_alone(db, job).await;
            }
        }
    }
}

/// What a batch did with one message.
enum Outcome {
    /// Stored now.
    Stored(MessageView),
    /// Stored before under the same sender and `client_msg_id`: this row (a resend, or an id
    /// reused for another conversation).
    Before(messages::Model),
    /// Not stored: the sender does not take part in the conversation, or there is none.
    Refused,
}

/// Writes a batch and answers each job, in order, or fails as a whole.
async fn write(
    db: &DatabaseConnection,
    jobs: &[Job],
) -> Result<Vec<Result<Sent, MessagesError>>, DbErr> {
    // The same message twice in one batch (a resend racing its original): stored once, and
    // the copy answered as a resend. Each job's slot: its unique job, and whether a copy.
    let mut index_of: HashMap<(i64, &str), usize> = HashMap::new();
    let mut unique: Vec<&Job> = Vec::new();
    let slots: Vec<(usize, bool)> = jobs
        .iter()
        .map(|job| {
            let key = (job.sender.id.0, job.client_msg_id.as_str());
            if let Some(index) = index_of.get(&key) {
                (*index, true)
            } else {
                index_of.insert(key, unique.len());
                unique.push(job);
                (unique.len() - 1, false)
            }
        })
        .collect();

    let outcomes = match db.get_database_backend() {
        DbBackend::Postgres => postgres::store(db, &unique).await?,
        _ => portable::store(db, &unique).await?,
    };
    let mut answers = Vec::with_capacity(unique.len());
    for (job, outcome) in unique.iter().zip(outcomes) {
        answers.push(match outcome {
            Outcome::Stored(message) => Ok(Sent {
                message,
                created: true,
            }),
            Outcome::Before(row) => already_sent(db, row, &job.sender, job.conversation_id).await,
            Outcome::Refused => Err(MessagesError::NotFound),
        });
    }
    Ok(slots
        .into_iter()
        .map(|(index, copy)| clone_answer(&answers[index], !copy))
        .collect())
}

/// An answer again: the original's as it is, a copy's as a resend (nothing new to publish).
fn clone_answer(
    answer: &Result<Sent, MessagesError>,
    original: bool,
) -> Result<Sent, MessagesError> {
    match answer {
        Ok(sent) => Ok(Sent {
            message: sent.message.clone(),
            created: sent.created && original,
        }),
        Err(MessagesError::NotFound) => Err(MessagesError::NotFound),
        Err(MessagesError::ClientMsgIdReused) => Err(MessagesError::ClientMsgIdReused),
        Err(MessagesError::AttachmentUnavailable) => Err(MessagesError::AttachmentUnavailable),
        Err(MessagesError::Database(error)) => {
            Err(MessagesError::Database(DbErr::Custom(error.to_string())))
        }
    }
}

/// A row as stored, seen from the job that wrote it.
fn stored(job: &Job, id: i64, seq: i64, created_at: DateTime<Utc>) -> MessageView {
    let row = messages::Model {
        id,
        conversation_id: job.conversation_id.0,
        seq,
        sender_id: job.sender.id.0,
        client_msg_id: job.client_msg_id.as_str().to_owned(),
        body: job.content.body.as_str().to_owned(),
        created_at,
        kind: MessageKind::User.as_str().to_owned(),
        // Messages with a card are stored one at a time (`run_lane`).
        card: None,
    };
    view(row, job.sender.clone(), Vec::new())
}

/// PostgreSQL: the whole batch in one statement.
mod postgres {
    use super::*;

    /// Resends are found by (sender, `client_msg_id`); the rest, from participants only, are
    /// numbered from their conversation's counter (bumped once per conversation, under its row
    /// lock; `row_number` in the batch's order), stamped with the conversation's last activity
    /// moved to now (never back), inserted, and their senders' read positions moved to them.
    /// Each input row comes back by its position (`ord`): stored now, stored before, or not at
    /// all (not a participant). Ids are taken from the table's sequence as rows are numbered,
    /// so nothing needs the insert's output.
    ///
    /// The connections plan only nested loops ([`connect_options`]): the lookups in the tables
    /// are index probes, and the joins between the batch's own lists cost their product, which
    /// [`MAX_BATCH`] keeps small.
    const STORE: &str = "\
        WITH k AS ( \
            SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) \
                WITH ORDINALITY AS k(conversation_id, sender_id, client_msg_id, body, ord) \
        ), before AS ( \
            SELECT k.ord, m.id, m.conversation_id, m.seq, m.created_at, m.body \
            FROM k JOIN messages AS m \
                ON m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id \
        ), fresh AS ( \
            SELECT k.* FROM k JOIN conversations AS c ON c.id = k.conversation_id \
            WHERE k.sender_id IN (c.user_low_id, c.user_high_id) \
              AND NOT EXISTS (SELECT 1 FROM messages AS m \
                              WHERE m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id) \
        ), counts AS ( \
            SELECT conversation_id, count(*) AS n FROM fresh GROUP BY conversation_id \
        ), bumped AS ( \
            UPDATE conversations AS c \
            SET last_seq = c.last_seq + counts.n, \
                last_activity_at = GREATEST(c.last_activity_at, $5) \
            FROM counts WHERE c.id = counts.conversation_id \
            RETURNING c.id, c.last_seq - counts.n AS base, c.last_activity_at \
        ), numbered AS ( \
            SELECT f.*, b.last_activity_at AS created_at, \
                   b.base + row_number() OVER (PARTITION BY f.conversation_id ORDER BY f.ord) AS seq, \
                   nextval((SELECT pg_get_serial_sequence('messages', 'id'))::regclass) AS id \
            FROM fresh AS f JOIN bumped AS b ON b.id = f.conversation_id \
        ), inserted AS ( \
            INSERT INTO messages \
                (id, conversation_id, seq, sender_id, client_msg_id, body, created_at) \
            SELECT id, conversation_id, seq, sender_id, client_msg_id, body, created_at \
            FROM numbered \
        ), readers AS ( \
            UPDATE participants AS p SET last_read_seq = r.seq, last_delivered_seq = r.seq \
            FROM (SELECT conversation_id, sender_id, max(seq) AS seq FROM numbered \
                  GROUP BY conversation_id, sender_id) AS r \
            WHERE p.conversation_id = r.conversation_id AND p.user_id = r.sender_id \
        ) \
        SELECT ord, id, conversation_id, seq, created_at, NULL::text AS body, TRUE AS fresh \
            FROM numbered \
        UNION ALL \
        SELECT ord, id, conversation_id, seq, created_at, body, FALSE FROM before";

    pub(super) async fn store(
        db: &DatabaseConnection,
        jobs: &[&Job],
    ) -> Result<Vec<Outcome>, DbErr> {
        let conversations: Vec<i64> = jobs.iter().map(|j| j.conversation_id.0).collect();
        let senders: Vec<i64> = jobs.iter().map(|j| j.sender.id.0).collect();
        let ids: Vec<String> = jobs
            .iter()
            .map(|j| j.client_msg_id.as_str().to_owned())
            .collect();
        let bodies: Vec<String> = jobs
            .iter()
            .map(|j| j.content.body.as_str().to_owned())
            .collect();
        // The statement and the events of what it stored commit together.
        let txn = crate::entity::begin_write(db).await?;
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                STORE,
                [
                    conversations.into(),
                    senders.into(),
                    ids.into(),
                    bodies.into(),
                    conversations::now().into(),
                ],
            ))
            .await?;
        let mut outcomes: Vec<Outcome> = jobs.iter().map(|_| Outcome::Refused).collect();
        for row in rows {
            let ord: i64 = row.try_get("", "ord")?;
            let index = usize::try_from(ord - 1)
                .ok()
                .filter(|index| *index < jobs.len())
                .ok_or_else(|| DbErr::Custom(format!("a batch row came back as {ord}")))?;
            let job = jobs[index];
            let id: i64 = row.try_get("", "id")?;
            let seq: i64 = row.try_get("", "seq")?;
            let created_at: DateTime<Utc> = row.try_get("", "created_at")?;
            outcomes[index] = if row.try_get::<bool>("", "fresh")? {
                Outcome::Stored(stored(job, id, seq, created_at))
            } else {
                Outcome::Before(messages::Model {
                    id,
                    conversation_id: row.try_get("", "conversation_id")?,
                    seq,
                    sender_id: job.sender.id.0,
                    client_msg_id: job.client_msg_id.as_str().to_owned(),
                    body: row.try_get("", "body")?,
                    created_at,
                    // The writer stores people's messages only.
                    kind: MessageKind::User.as_str().to_owned(),
                    card: None,
                })
            };
        }
        let stored: Vec<&MessageView> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Outcome::Stored(message) => Some(message),
                _ => None,
            })
            .collect();
        if !stored.is_empty() {
            let members: HashMap<i64, [UserId; 2]> = conversation_rows::Entity::find()
                .filter(
                    conversation_rows::Column::Id
                        .is_in(stored.iter().map(|message| message.conversation_id.0)),
                )
                .all(&txn)
                .await?
                .into_iter()
                .map(|c| (c.id, [UserId(c.user_low_id), UserId(c.user_high_id)]))
                .collect();
            let created: Vec<(MessageView, [UserId; 2])> = stored
                .into_iter()
                .filter_map(|message| {
                    Some((message.clone(), *members.get(&message.conversation_id.0)?))
                })
                .collect();
            events::messages_created(&txn, &created).await?;
        }
        txn.commit().await?;
        Ok(outcomes)
    }
}

/// SQLite (and anything else): a transaction of a few statements built by sea-query.
mod portable {
    use super::*;

    pub(super) async fn store(
        db: &DatabaseConnection,
        jobs: &[&Job],
    ) -> Result<Vec<Outcome>, DbErr> {
        let txn = crate::entity::begin_write(db).await?;
        // Stored before: exactly these (sender, client_msg_id) pairs, by a row-value IN that
        // the unique index on the pair serves (two lists would match every other pairing too).
        let pairs = jobs
            .iter()
            .map(|j| (j.sender.id.0, j.client_msg_id.as_str().to_owned()));
        let mut before: HashMap<(i64, String), messages::Model> = messages::Entity::find()
            .filter(
                Expr::tuple([
                    Expr::col(messages::Column::SenderId),
                    Expr::col(messages::Column::ClientMsgId),
                ])
                .in_tuples(pairs),
            )
            .all(&txn)
            .await?
            .into_iter()
            .map(|row| ((row.sender_id, row.client_msg_id.clone()), row))
            .collect();
        let members: HashMap<i64, (i64, i64)> = conversation_rows::Entity::find()
            .filter(conversation_rows::Column::Id.is_in(jobs.iter().map(|j| j.conversation_id.0)))
            .all(&txn)
            .await?
            .into_iter()
            .map(|c| (c.id, (c.user_low_id, c.user_high_id)))
            .collect();

        let mut outcomes: Vec<Outcome> = Vec::with_capacity(jobs.len());
        let mut fresh: Vec<(usize, &Job)> = Vec::new();
        for (index, job) in jobs.iter().enumerate() {
            let key = (job.sender.id.0, job.client_msg_id.as_str().to_owned());
            outcomes.push(if let Some(row) = before.remove(&key) {
                Outcome::Before(row)
            } else if members
                .get(&job.conversation_id.0)
                .is_some_and(|(low, high)| [*low, *high].contains(&job.sender.id.0))
            {
                fresh.push((index, job));
                Outcome::Refused
            } else {
                Outcome::Refused
            });
        }
        if !fresh.is_empty() {
            let stored = insert(&txn, &fresh).await?;
            let created: Vec<(MessageView, [UserId; 2])> = stored
                .iter()
                .filter_map(|message| {
                    let (low, high) = members.get(&message.conversation_id.0)?;
                    Some((message.clone(), [UserId(*low), UserId(*high)]))
                })
                .collect();
            events::messages_created(&txn, &created).await?;
            for ((index, _), message) in fresh.iter().zip(stored) {
                outcomes[*index] = Outcome::Stored(message);
            }
        }
        txn.commit().await?;
        Ok(outcomes)
    }

    /// Numbers, inserts and accounts for the new messages, returning them in order.
    async fn insert(
        txn: &impl ConnectionTrait,
        jobs: &[(usize, &Job)],
    ) -> Result<Vec<MessageView>, DbErr> {
        let mut counts: HashMap<i64, i64> = HashMap::new();
        for (_, job) in jobs {
            *counts.entry(job.conversation_id.0).or_default() += 1;
        }
        // One bump per conversation: the counter moves by its count, and the batch numbers
        // its messages from the old value up; their time never goes back.
        let by = counts.iter().fold(CaseStatement::new(), |case, (id, n)| {
            case.case(conversation_rows::Column::Id.eq(*id), *n)
        });
        let now = conversations::now();
        let mut next: HashMap<i64, (i64, DateTime<Utc>)> = conversation_rows::Entity::update_many()
            .col_expr(
                conversation_rows::Column::LastSeq,
                Expr::col(conversation_rows::Column::LastSeq).add(case(by.finally(0))),
            )
            .filter(conversation_rows::Column::Id.is_in(counts.keys().copied()))
            .exec_with_returning(txn)
            .await?
            .into_iter()
            .map(|c| {
                let count = counts.get(&c.id).copied().unwrap_or_default();
                (
                    c.id,
                    (c.last_seq - count + 1, Ord::max(now, c.last_activity_at)),
                )
            })
            .collect();

        let mut rows = Vec::with_capacity(jobs.len());
        let mut places = Vec::with_capacity(jobs.len());
        let mut read: HashMap<(i64, i64), i64> = HashMap::new();
        for (_, job) in jobs {
            let conversation = job.conversation_id.0;
            let (seq, created_at) = next
                .get_mut(&conversation)
                .map(|(seq, at)| {
                    *seq += 1;
                    (*seq - 1, *at)
                })
                .ok_or_else(|| DbErr::Custom("a conversation was not bumped".into()))?;
            // Jobs come in order, so each later one is the newer.
            read.insert((conversation, job.sender.id.0), seq);
            places.push((conversation, seq, created_at));
            rows.push(messages::ActiveModel {
                conversation_id: Set(conversation),
                seq: Set(seq),
                sender_id: Set(job.sender.id.0),
                client_msg_id: Set(job.client_msg_id.as_str().to_owned()),
                body: Set(job.content.body.as_str().to_owned()),
                created_at: Set(created_at),
                ..Default::default()
            });
        }
        // RETURNING promises no order: rows are found by (conversation, seq).
        let ids: HashMap<(i64, i64), i64> = messages::Entity::insert_many(rows)
            .exec_with_returning(txn)
            .await?
            .into_iter()
            .map(|row| ((row.conversation_id, row.seq), row.id))
            .collect();

        let activity = next
            .iter()
            .fold(CaseStatement::new(), |case, (id, (_, at))| {
                case.case(conversation_rows::Column::Id.eq(*id), *at)
            });
        conversation_rows::Entity::update_many()
            .col_expr(conversation_rows::Column::LastActivityAt, case(activity))
            .filter(conversation_rows::Column::Id.is_in(next.keys().copied()))
            .exec(txn)
            .await?;
        // Writing a message means having received and read everything before it.
        let reader = |(conversation, user): &(i64, i64)| {
            Condition::all()
                .add(participants::Column::ConversationId.eq(*conversation))
                .add(participants::Column::UserId.eq(*user))
        };
        let seq = read.iter().fold(CaseStatement::new(), |c, (key, seq)| {
            c.case(reader(key), *seq)
        });
        participants::Entity::update_many()
            .col_expr(participants::Column::LastReadSeq, case(seq.clone()))
            .col_expr(participants::Column::LastDeliveredSeq, case(seq))
            .filter(
                read.keys()
                    .fold(Condition::any(), |any, key| any.add(reader(key))),
            )
            .exec(txn)
            .await?;

        jobs.iter()
            .zip(places)
            .map(|((_, job), (conversation, seq, created_at))| {
                let id = ids
                    .get(&(conversation, seq))
                    .copied()
                    .ok_or_else(|| DbErr::Custom("an inserted message went missing".into()))?;
                Ok(stored(job, id, seq, created_at))
            })
            .collect()
    }

    /// A `CASE … END` as a value to set.
    fn case(statement: CaseStatement) -> Expr {
        Expr::Case(Box::new(statement))
    }
}
