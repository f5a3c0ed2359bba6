//! The recent flushes of this process, kept from the flock's live events in a
//! bounded ring (ADR 0008: the DuckDB trace file is the record afterwards; while
//! the program runs, the server reads its own flushes from memory).

use std::{collections::VecDeque, num::NonZeroUsize};

use chrono::{DateTime, Utc};
use flock::{FlushReason, Visibility};
use parking_lot::Mutex;
use serde::Serialize;

use crate::auth::Viewer;

/// One batch flush, as `GET /api/v1/flushes` reports it: the fields of the
/// `batch.flush` span.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FlushRecord {
    /// Counts flushes since the server started (1 is the first).
    pub(crate) seq: u64,
    pub(crate) at: DateTime<Utc>,
    pub(crate) agent: String,
    pub(crate) subscription_index: usize,
    pub(crate) key: Option<String>,
    pub(crate) reason: FlushReason,
    pub(crate) size: usize,
    pub(crate) efficiency: f64,
    pub(crate) wait_ms: u64,
    #[serde(skip)]
    pub(crate) visibility: Visibility,
}

/// The last `capacity` flushes, oldest first.
#[derive(Debug)]
pub(crate) struct FlushHistory {
    capacity: NonZeroUsize,
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    flushes: VecDeque<FlushRecord>,
    recorded: u64,
}

impl FlushHistory {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Ring::default()),
        }
    }

    /// Records a flush (its `seq` is assigned here), forgetting the oldest when full.
    pub(crate) fn record(&self, mut flush: FlushRecord) {
        let mut ring = self.inner.lock();
        ring.recorded += 1;
        flush.seq = ring.recorded;
        if ring.flushes.len() == self.capacity.get() {
            ring.flushes.pop_front();
        }
        ring.flushes.push_back(flush);
    }

    /// The flushes `viewer` may see (every artifact of the batch), newest first,
    /// at most `limit`, of `agent` only if given.
    pub(crate) fn recent(
        &self,
        viewer: &Viewer,
        agent: Option<&str>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Vec<FlushRecord> {
        let ring = self.inner.lock();
        ring.flushes
            .iter()
            .rev()
            .filter(|f| agent.is_none_or(|a| f.agent == a))
            .filter(|f| viewer.sees(&f.visibility, f.at, now))
            .take(limit)
            .cloned()
            .collect()
    }
}
