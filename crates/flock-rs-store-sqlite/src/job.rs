//! A write to the store and where its outcome goes: what publishers hand the writer
//! thread, and what the syncer answers once the write is durable.

use std::sync::mpsc;

use flock_core::{ArtifactId, StoreError};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::row::Row;

/// One write: each is all or nothing, and many share a transaction.
pub(crate) enum Write {
    /// One artifact.
    Publish(Row),
    /// Several artifacts, all or none.
    PublishAll(Vec<Row>),
    /// A run's outputs and its agent's consumption of its inputs; the failed run
    /// it retries forgotten.
    CommitRun {
        agent: String,
        inputs: Vec<ArtifactId>,
        outputs: Vec<Row>,
        retries: Option<Uuid>,
    },
    /// A failed run (as JSON), its `WorkflowError`, and its inputs consumed; the
    /// failed run it retried forgotten.
    CommitFailure {
        id: Uuid,
        record: String,
        agent: String,
        inputs: Vec<ArtifactId>,
        error: Row,
        retries: Option<Uuid>,
    },
    /// Forget a failed run.
    ForgetFailure(Uuid),
    /// Record an agent (the first time: where its artifacts start).
    RegisterAgent(String),
}

pub(crate) type Outcome = Result<(), StoreError>;

/// Where the outcome of a write goes: an async publisher, or a thread that blocks.
pub(crate) enum Reply {
    Task(oneshot::Sender<Outcome>),
    Thread(mpsc::SyncSender<Outcome>),
}

impl Reply {
    pub(crate) fn send(self, outcome: Outcome) {
        // A writer that stopped waiting (its future was dropped) needs no answer; its
        // write is committed or not all the same.
        let _ = match self {
            Self::Task(reply) => reply.send(outcome).map_err(drop),
            Self::Thread(reply) => reply.send(outcome).map_err(drop),
        };
    }
}

/// A write and where its outcome goes.
pub(crate) struct Job {
    pub(crate) write: Write,
    pub(crate) reply: Reply,
}
