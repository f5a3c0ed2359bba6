//! The syncer thread of [`Durability::Full`](crate::Durability::Full): flushes the
//! write-ahead log to the disk after the writer's commits, then answers their
//! writers. The writer meanwhile builds the next transaction, so the disk's flush
//! and the CPU's work overlap instead of taking turns (ADR 0009).
//!
//! Why this is as durable as SQLite's own `synchronous=FULL`: in WAL mode a commit
//! is the log frames it appended, and FULL differs from NORMAL only in an `fsync` of
//! the log after each commit. `fdatasync` of the log file (through a descriptor of
//! our own: it flushes the file, whoever wrote it) after the commit returned, and
//! before anyone is told, flushes those frames; one flush covers every commit
//! before it. Checkpoints stay SQLite's: NORMAL syncs the log before copying it
//! into the database and the database after.

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::mpsc,
    thread::JoinHandle,
};

use flock_core::StoreError;

use crate::{SqliteError, job::Job};

/// The jobs of one committed transaction with their outcomes, to send once the log
/// is on disk (their writes are freed here too, not on the writer's thread).
pub(crate) type Committed = Vec<(Job, Result<(), StoreError>)>;

/// The handle on the syncer thread; dropping it lets the thread flush and answer
/// what it was sent, and waits for it.
pub(crate) struct Syncer {
    groups: Option<mpsc::Sender<Committed>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the syncer for the database at `path` (its log is `path` + `-wal`).
    pub(crate) fn start(path: &Path) -> Result<Self, SqliteError> {
        let (groups, queue) = mpsc::channel();
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let thread = std::thread::Builder::new()
            .name("flock-sqlite-sync".to_owned())
            .spawn(move || run(&wal, &queue))
            .map_err(|e| SqliteError::Sqlite {
                path: path.to_owned(),
                action: "start the syncer thread",
                reason: e.to_string(),
            })?;
        Ok(Self {
            groups: Some(groups),
            thread: Some(thread),
        })
    }

    /// Answers `committed` once the log is flushed.
    pub(crate) fn answer_when_durable(&self, committed: Committed) {
        if let Some(groups) = &self.groups
            && let Err(mpsc::SendError(committed)) = groups.send(committed)
        {
            // The thread is gone (it never panics; this is a last resort): say so
            // rather than claim durability.
            for (job, _) in committed {
                job.reply.send(Err(StoreError::Backend(
                    "sqlite store: the syncer thread has stopped; the write is committed but may not be durable".into(),
                )));
            }
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.groups.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(wal: &Path, queue: &mpsc::Receiver<Committed>) {
    // Opened at the first flush: SQLite creates the log when the writer first reads
    // or writes the database.
    let mut file: Option<File> = None;
    while let Ok(first) = queue.recv() {
        let mut groups = vec![first];
        groups.extend(queue.try_iter());
        if file.is_none() {
            match File::open(wal) {
                Ok(opened) => file = Some(opened),
                // No log yet: no commit has appended anything to flush.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    answer(groups, &Err(err), wal);
                    continue;
                }
            }
        }
        let flushed = file.as_ref().map_or(Ok(()), File::sync_data);
        answer(groups, &flushed, wal);
    }
}

/// Answers the writes of `groups`: as committed, unless the flush failed.
fn answer(groups: Vec<Committed>, flushed: &std::io::Result<()>, wal: &Path) {
    for (job, outcome) in groups.into_iter().flatten() {
        job.reply.send(match (flushed, outcome) {
            (Err(err), Ok(())) => Err(StoreError::from(SqliteError::Sqlite {
                path: wal.to_owned(),
                action: "flush the write-ahead log to the disk",
                reason: format!("{err}; the write is committed but may not survive a power loss"),
            })),
            (_, outcome) => outcome,
        });
    }
}
