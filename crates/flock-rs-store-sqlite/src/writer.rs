//! The writer thread: the one connection that writes, committing every write that
//! is waiting as one transaction (group commit) and answering each writer only
//! after the commit, so an accepted write is durable.

use std::{
    path::Path,
    sync::{Arc, mpsc},
    thread::JoinHandle,
};
use uuid::Uuid;

use flock_core::{ArtifactId, StoreError};
use rusqlite::{Connection, ErrorCode};
use tokio::sync::oneshot;

pub(crate) use crate::job::{Job, Outcome, Reply, Write};
use crate::{
    Durability, SqliteError,
    row::Row,
    statements::{CHUNK, Statements},
    sync::Syncer,
};

/// At most this many writes go into one transaction, so one commit's latency stays
/// bounded however many publishers wait.
const MAX_GROUP: usize = 8192;

/// The handle on the writer thread; dropping it lets the thread finish the writes
/// already sent, close the connection, and waits for it.
pub(crate) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    path: Arc<Path>,
}

impl Writer {
    /// Starts the writer thread on `conn` (and, for [`Durability::Full`], the
    /// syncer thread that flushes the log before writers are answered).
    pub(crate) fn start(
        conn: Connection,
        path: Arc<Path>,
        durability: Durability,
    ) -> Result<Self, SqliteError> {
        let (jobs, queue) = mpsc::channel();
        let syncer = match durability {
            Durability::Full => Some(Syncer::start(&path)?),
            Durability::Normal => None,
        };
        let thread_path = path.clone();
        let (ready, started) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("flock-sqlite-writer".to_owned())
            .spawn(move || run(&conn, &queue, &thread_path, syncer, &ready))
            .map_err(|e| SqliteError::Sqlite {
                path: path.to_path_buf(),
                action: "start the writer thread",
                reason: e.to_string(),
            })?;
        // The thread prepares its statements first; a failure is the open's.
        let prepared = started.recv().unwrap_or_else(|_| {
            Err(SqliteError::Sqlite {
                path: path.to_path_buf(),
                action: "start the writer thread",
                reason: "the thread stopped before it was ready".to_owned(),
            })
        });
        if let Err(err) = prepared {
            drop(jobs);
            let _ = thread.join();
            return Err(err);
        }
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
            path,
        })
    }

    /// Sends `write` and waits, without blocking the thread, until it is committed
    /// (or refused).
    pub(crate) async fn write(&self, write: Write) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        self.send(Job {
            write,
            reply: Reply::Task(reply),
        })?;
        outcome.await.unwrap_or_else(|_| Err(self.closed()))
    }

    /// Sends `write` and blocks the calling thread until it is committed.
    pub(crate) fn write_blocking(&self, write: Write) -> Outcome {
        let (reply, outcome) = mpsc::sync_channel(1);
        self.send(Job {
            write,
            reply: Reply::Thread(reply),
        })?;
        outcome.recv().unwrap_or_else(|_| Err(self.closed()))
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| self.closed())
    }

    fn closed(&self) -> StoreError {
        SqliteError::Closed {
            path: self.path.to_path_buf(),
        }
        .into()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once it has committed what was sent.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// === the thread ===

/// Prepares the writer's statements (telling `ready` whether it could), then
/// commits groups of writes until the queue closes; answers each write after its
/// group's commit (through the syncer, if there is one, after the flush). Dropping
/// the syncer at the end waits for its last flush.
fn run(
    conn: &Connection,
    queue: &mpsc::Receiver<Job>,
    path: &Path,
    syncer: Option<Syncer>,
    ready: &mpsc::SyncSender<Result<(), SqliteError>>,
) {
    let mut statements = match Statements::prepare(conn) {
        Ok(statements) => statements,
        Err(err) => {
            let _ = ready.send(Err(SqliteError::sqlite(
                path,
                "prepare the writer's statements",
                err,
            )));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut group = Vec::new();
    while let Ok(job) = queue.recv() {
        group.push(job);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match commit_group(conn, &mut statements, path, &group) {
            Ok(outcomes) => {
                let answers = group.drain(..).zip(outcomes);
                match &syncer {
                    // The jobs go along and are freed there, off this busy thread.
                    Some(syncer) => syncer.answer_when_durable(answers.collect()),
                    None => answers.for_each(|(job, outcome)| job.reply.send(outcome)),
                }
            }
            Err(err) => {
                for job in group.drain(..) {
                    job.reply.send(Err(err.clone().into()));
                }
            }
        }
    }
}

/// Why a write failed: it alone (its changes are undone, the others go on), or the
/// whole transaction (nothing of the group is kept).
enum Failed {
    Write(StoreError),
    Group(SqliteError),
}

fn group_failure(path: &Path, action: &'static str) -> impl FnOnce(rusqlite::Error) -> Failed {
    move |err| Failed::Group(SqliteError::sqlite(path, action, err))
}

/// Applies every write of the group in one transaction and commits it: the outcome
/// of each write, or the failure of the whole group (then nothing was committed).
fn commit_group(
    conn: &Connection,
    statements: &mut Statements<'_>,
    path: &Path,
    group: &[Job],
) -> Result<Vec<Outcome>, SqliteError> {
    statements
        .begin()
        .map_err(SqliteError::doing(path, "begin a transaction"))?;
    let mut outcomes = Vec::with_capacity(group.len());
    let mut next = 0;
    while next < group.len() {
        // Single publishes in a row: CHUNK of them with one statement; if it is
        // refused (a known or repeated id), nothing of it was stored, and they go
        // one by one below for their own outcomes.
        if let Some(rows) = publishes(&group[next..]) {
            match statements.insert_chunk(&rows) {
                Ok(()) => {
                    outcomes.extend(rows.iter().map(|_| Ok(())));
                    next += CHUNK;
                    continue;
                }
                Err(err) if is_constraint(&err) => {}
                Err(err) => {
                    rollback(conn);
                    return Err(SqliteError::sqlite(path, "store artifacts", err));
                }
            }
        }
        let end = match publishes(&group[next..]) {
            Some(_) => next + CHUNK,
            None => next + 1,
        };
        for job in &group[next..end] {
            match apply(statements, path, &job.write) {
                Ok(()) => outcomes.push(Ok(())),
                Err(Failed::Write(err)) => outcomes.push(Err(err)),
                Err(Failed::Group(err)) => {
                    rollback(conn);
                    return Err(err);
                }
            }
        }
        next = end;
    }
    if let Err(err) = statements.commit() {
        rollback(conn);
        return Err(SqliteError::sqlite(path, "commit a group of writes", err));
    }
    Ok(outcomes)
}

/// The rows of the first [`CHUNK`] jobs, if they are all single publishes.
fn publishes(jobs: &[Job]) -> Option<[&Row; CHUNK]> {
    let jobs = jobs.get(..CHUNK)?;
    if !jobs
        .iter()
        .all(|job| matches!(job.write, Write::Publish(_)))
    {
        return None;
    }
    Some(std::array::from_fn(|at| match &jobs[at].write {
        Write::Publish(row) => row,
        _ => unreachable!("checked above: every job is a single publish"),
    }))
}

fn rollback(conn: &Connection) {
    // SQLite may have rolled back already (after an I/O error or a full disk).
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

fn apply(statements: &mut Statements<'_>, path: &Path, write: &Write) -> Result<(), Failed> {
    match write {
        Write::Publish(row) => insert(statements, path, row),
        Write::PublishAll(rows) => match rows.as_slice() {
            [] => Ok(()),
            [row] => insert(statements, path, row),
            rows => all_or_none(statements, path, |statements| {
                insert_all(statements, path, rows)
            }),
        },
        Write::CommitRun {
            agent,
            inputs,
            outputs,
            retries,
        } => all_or_none(statements, path, |statements| {
            insert_all(statements, path, outputs)?;
            forget_retried(statements, path, *retries)?;
            consume(statements, path, agent, inputs)
        }),
        Write::CommitFailure {
            id,
            record,
            agent,
            inputs,
            error,
            retries,
        } => all_or_none(statements, path, |statements| {
            insert(statements, path, error)?;
            forget_retried(statements, path, *retries)?;
            statements
                .keep_failure(*id, record)
                .map_err(|err| match is_constraint(&err) {
                    true => Failed::Write(
                        SqliteError::FailureExists {
                            path: path.to_owned(),
                            id: *id,
                        }
                        .into(),
                    ),
                    false => group_failure(path, "keep a failed run")(err),
                })?;
            consume(statements, path, agent, inputs)
        }),
        Write::ForgetFailure(id) => statements
            .forget_failure(*id)
            .map_err(group_failure(path, "forget a failed run")),
        Write::RegisterAgent(name) => statements
            .register_agent(name)
            .map_err(group_failure(path, "record an agent")),
    }
}

/// Forgets the failed run a run retried, in the run's commit.
fn forget_retried(
    statements: &mut Statements<'_>,
    path: &Path,
    retries: Option<Uuid>,
) -> Result<(), Failed> {
    match retries {
        Some(id) => statements
            .forget_failure(id)
            .map_err(group_failure(path, "forget a retried failed run")),
        None => Ok(()),
    }
}

/// Runs a write of several statements under a savepoint, so that a refusal (a
/// duplicate id) undoes its earlier statements and leaves the group's other writes.
fn all_or_none<'c>(
    statements: &mut Statements<'c>,
    path: &Path,
    write: impl FnOnce(&mut Statements<'c>) -> Result<(), Failed>,
) -> Result<(), Failed> {
    statements
        .savepoint()
        .map_err(group_failure(path, "open a savepoint"))?;
    match write(statements) {
        Ok(()) => statements
            .release()
            .map_err(group_failure(path, "release a savepoint")),
        Err(Failed::Write(err)) => {
            statements
                .rollback_to()
                .and_then(|()| statements.release())
                .map_err(group_failure(path, "roll back a refused write"))?;
            Err(Failed::Write(err))
        }
        Err(group) => Err(group),
    }
}

/// Inserts the rows of one write (under its savepoint), [`CHUNK`] at a time where
/// it can; a refused chunk was undone and goes again row by row, to name the id.
fn insert_all(statements: &mut Statements<'_>, path: &Path, rows: &[Row]) -> Result<(), Failed> {
    let mut chunks = rows.chunks_exact(CHUNK);
    for chunk in &mut chunks {
        let chunk: [&Row; CHUNK] = std::array::from_fn(|at| &chunk[at]);
        match statements.insert_chunk(&chunk) {
            Ok(()) => {}
            Err(err) if is_constraint(&err) => {
                for row in chunk {
                    insert(statements, path, row)?;
                }
            }
            Err(err) => return Err(group_failure(path, "store artifacts")(err)),
        }
    }
    chunks
        .remainder()
        .iter()
        .try_for_each(|row| insert(statements, path, row))
}

fn insert(statements: &mut Statements<'_>, path: &Path, row: &Row) -> Result<(), Failed> {
    statements
        .insert(row)
        .map_err(|err| match is_constraint(&err) {
            // The only constraint a row can break is the uniqueness of its id.
            true => Failed::Write(StoreError::Duplicate(row.id)),
            false => group_failure(path, "store an artifact")(err),
        })
}

fn consume(
    statements: &mut Statements<'_>,
    path: &Path,
    agent: &str,
    inputs: &[ArtifactId],
) -> Result<(), Failed> {
    for input in inputs {
        statements
            .consume(agent, *input)
            .map_err(group_failure(path, "record a consumption"))?;
    }
    Ok(())
}

fn is_constraint(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation)
}
