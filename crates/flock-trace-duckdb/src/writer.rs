//! The writer thread: takes finished spans from the buffer and writes them into the
//! trace file through DuckDB's appender, off the application's threads.
//!
//! One *session* holds the file: attach, write in transactions, checkpoint when
//! due, detach. A session starts when spans are due (the export interval passed,
//! `export_batch_size` spans wait, a flush, shutdown). Up to [`STAGE_MAX`]
//! pending spans are converted into a staging table first, so the file is held
//! only for one `INSERT … SELECT` and its commit. A backlog of [`BURST_AT`] is a burst:
//! appended straight into the file, [`CHUNK`] rows at a time while a helper thread
//! converts the next chunk, in transactions of up to [`MAX_TRANSACTION`] rows, for
//! up to [`MAX_HOLD`]. Between sessions the file is free for any other process.
//!
//! A file held by another process is waited for, with backoff, as long as it takes:
//! the spans wait in the bounded buffer meanwhile (ADR 0007). Only shutdown gives up
//! waiting, at its deadline. Losses (spans dropped or not written) are logged as a
//! WARN when they happen, at most every [`WARN_EVERY`].

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use duckdb::arrow::record_batch::RecordBatch;
use opentelemetry_sdk::trace::SpanData;

use crate::{
    TraceError,
    buffer::{self, Buffer, Next, WriterState},
    error::error_chain,
    lock,
    schema::Rows,
    store::{Attach, FIRST_BACKOFF, MAX_BACKOFF, RowGroups, TraceFile},
};

/// The longest one burst session holds the file while a backlog remains; then it
/// detaches, giving other processes a turn.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(1);

/// The most rows in one transaction (two of DuckDB's row groups).
pub(crate) const MAX_TRANSACTION: usize = 2 * 122_880;

/// Rows converted and appended at a time.
pub(crate) const CHUNK: usize = 8_192;

/// The most spans converted into the staging table before the file is locked, in
/// one session (the default `export_batch_size` wakes the writer at this many).
pub(crate) const STAGE_MAX: usize = 4 * CHUNK;

/// A backlog this large is a burst: more than a session stages, and more than
/// arrive between the writer's wake-up at `export_batch_size` (32,768 by default)
/// and its session at a steady rate. It is appended straight into the file,
/// converting as it goes, for throughput. Below it, a session stages up to
/// [`STAGE_MAX`] spans first, so that readers are locked out only for the insert
/// and commit.
pub(crate) const BURST_AT: usize = STAGE_MAX + CHUNK;

/// The exporter for hand-built pipelines checkpoints past this much log.
pub(crate) const CHECKPOINT_WAL_BYTES: u64 = 1 << 20;

/// The write-ahead log size past which a session checkpoints, given how much one
/// session adds to it (`grown`). Every attach (the writer's, and each reader's
/// open) replays the log, at about 10 ms per MB, and a checkpoint costs about
/// 30 ms (DuckDB 1.5 on the 2-core machine): checkpointing at `sqrt(2 * 30 / 10
/// * grown)` MB keeps their sum per session smallest. Bounded to 256 KiB..8 MiB.
pub(crate) fn checkpoint_after(grown: u64) -> u64 {
    const MB: f64 = 1024.0 * 1024.0;
    let optimum = (6.0 * grown as f64 / MB).sqrt() * MB;
    (optimum as u64).clamp(256 << 10, 8 << 20)
}

/// The shortest time between two warnings about lost spans, or about a file that
/// stays locked.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// How the writer paces itself.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// This many pending spans start a session before the interval ends.
    pub(crate) batch_size: usize,
    /// The longest a finished span waits before a session starts.
    pub(crate) interval: Duration,
    /// How long a session waits for a locked file before it warns.
    pub(crate) lock_timeout: Duration,
}

/// The writer's side of the pipeline, run on its own thread by [`Writer::run`].
pub(crate) struct Writer {
    buffer: Arc<Buffer<SpanData>>,
    file: TraceFile,
    settings: Settings,
    resource: Arc<Mutex<Arc<str>>>,
    ttl_cutoff: Option<i64>,
    rows: Rows,
    /// Committed rows not yet checkpointed.
    dirty: bool,
    warned_losses: (u64, Option<Instant>),
    warned_lock: Option<Instant>,
}

// === impl Writer ===

impl Writer {
    pub(crate) fn new(
        buffer: Arc<Buffer<SpanData>>,
        file: TraceFile,
        settings: Settings,
        resource: Arc<Mutex<Arc<str>>>,
        ttl_cutoff: Option<i64>,
    ) -> Self {
        let rows = Rows::with_capacity(CHUNK);
        Writer {
            buffer,
            file,
            settings,
            resource,
            ttl_cutoff,
            rows,
            dirty: false,
            warned_losses: (0, None),
            warned_lock: None,
        }
    }

    /// Writes spans as they come until shutdown, then leaves the file checkpointed.
    pub(crate) fn run(mut self) {
        buffer::mark_writer_thread();
        let mut since = Instant::now();
        while self.buffer.next(since, self.settings.interval) == Next::Write {
            self.session();
            since = Instant::now();
            self.warn_about_losses();
        }
        if self.dirty && self.attach(RowGroups::Default).is_ok() {
            self.checkpoint();
            self.file.detach();
        }
        self.warn_about_losses();
        self.buffer.set_writer(WriterState::Stopped);
    }

    /// Writes what is due in one session: staged before the file is locked when
    /// it fits in one chunk (the steady state), appended straight into the file
    /// when a backlog waits (a burst).
    fn session(&mut self) {
        let (asked, flush) = self.buffer.flushes();
        if self.buffer.pending() == 0 && !self.dirty {
            // A flush with everything written and checkpointed already.
            self.buffer.flushed(asked);
            return;
        }
        let wal_before = self.file.wal_bytes();
        let started = if self.buffer.pending() >= BURST_AT {
            self.burst_session()
        } else {
            self.staged_session()
        };
        let Some(started) = started else {
            // Not attached: what was pending is given up (and counted); a flush
            // waits for nothing more.
            if flush && self.buffer.flush_target_settled() {
                self.buffer.flushed(asked);
            }
            return;
        };
        let wal = self.file.wal_bytes();
        let grown = wal.saturating_sub(wal_before);
        // A flush checkpoints once everything it waits for is written.
        let flushed = flush && self.buffer.flush_target_settled();
        if flushed
            || self.buffer.closing().is_some()
            || started.elapsed() >= MAX_HOLD
            || wal >= checkpoint_after(grown)
        {
            self.checkpoint();
        }
        self.file.detach();
        self.buffer.note_session(started.elapsed());
        if flushed {
            self.buffer.flushed(asked);
        }
    }

    /// Converts the pending spans into the staging table (no lock), then attaches
    /// the file and copies them in one transaction. Returns when the file was
    /// attached, `None` if it was not.
    fn staged_session(&mut self) -> Option<Instant> {
        let resource = lock(&self.resource).clone();
        let created_at = unix_micros(SystemTime::now());
        // What is pending now, not what keeps arriving while it is converted.
        let due = self.buffer.pending().min(STAGE_MAX);
        let mut n = 0;
        let mut staged = self.file.clear_staged();
        while staged.is_ok() && n < due {
            let spans = self.buffer.take(CHUNK.min(due - n));
            if spans.is_empty() {
                break;
            }
            n += spans.len();
            for span in &spans {
                self.rows.push(span, &resource, created_at);
            }
            drop(spans);
            staged = self.file.stage(self.rows.finish());
        }
        if let Err(err) = staged {
            self.buffer.settle(n, Err(error_chain(&err)));
            return None;
        }
        let started = match self.attach(RowGroups::Small) {
            // The file is held from here to the detach.
            Ok(started) => started,
            Err(error) => {
                self.buffer.settle(n, Err(error));
                return None;
            }
        };
        self.apply_ttl();
        if n > 0 {
            let written = self
                .file
                .begin()
                .and_then(|()| self.file.insert_staged())
                .and_then(|()| self.file.commit());
            match written {
                Ok(()) => {
                    self.dirty = true;
                    self.buffer.settle(n, Ok(()));
                }
                Err(err) => {
                    self.file.rollback();
                    self.buffer.settle(n, Err(error_chain(&err)));
                }
            }
        }
        Some(started)
    }

    /// Attaches the file and appends chunk after chunk straight into it until
    /// nothing is pending, for up to [`MAX_HOLD`]. Returns when the file was
    /// attached.
    fn burst_session(&mut self) -> Option<Instant> {
        // The file is held from here to the detach.
        let started = self.attach(RowGroups::Default).ok()?;
        self.apply_ttl();
        let resource = lock(&self.resource).clone();
        loop {
            if !self.transaction(&resource, started) {
                break;
            }
            if self.buffer.pending() == 0 || started.elapsed() >= MAX_HOLD {
                break;
            }
        }
        Some(started)
    }

    /// Deletes spans older than the TTL, once, at the first session.
    fn apply_ttl(&mut self) {
        if let Some(cutoff) = self.ttl_cutoff.take()
            && let Err(err) = self.file.delete_before(cutoff)
        {
            tracing::warn!(
                target: "flock_trace_duckdb",
                path = %self.file.path().display(),
                error = %error_chain(&err),
                "could not delete spans older than the trace TTL"
            );
        }
    }

    /// One transaction of chunks taken from the buffer; returns whether it
    /// committed something (a failure is settled and ends the session).
    ///
    /// A helper thread converts chunk after chunk while this one appends them: a
    /// burst is written at DuckDB's pace, not at DuckDB's pace plus the
    /// conversion's.
    fn transaction(&mut self, resource: &str, started: Instant) -> bool {
        if let Err(err) = self.file.begin() {
            let spans = self.buffer.take(CHUNK);
            self.buffer.settle(spans.len(), Err(error_chain(&err)));
            return false;
        }
        let (buffer, file, rows) = (&*self.buffer, &self.file, &mut self.rows);
        let taken = AtomicUsize::new(0);
        let appended = thread::scope(|scope| {
            let (batches, received) = mpsc::sync_channel::<RecordBatch>(2);
            let taken = &taken;
            scope.spawn(move || {
                let mut total = 0;
                'take: while total < MAX_TRANSACTION && started.elapsed() < MAX_HOLD {
                    // Whatever is pending, at once (the queue's storage changes
                    // hands), then converted a chunk at a time.
                    let spans = buffer.take(MAX_TRANSACTION - total);
                    if spans.is_empty() {
                        break;
                    }
                    total += spans.len();
                    taken.store(total, Ordering::Release);
                    let created_at = unix_micros(SystemTime::now());
                    for chunk in spans.chunks(CHUNK) {
                        for span in chunk {
                            rows.push(span, resource, created_at);
                        }
                        // An error means the appending side stopped (an append
                        // failed).
                        if batches.send(rows.finish()).is_err() {
                            break 'take;
                        }
                    }
                }
            });
            // Ends when the converter is done (or, on an error, drops the
            // receiver so that a converter waiting to send gives up).
            for batch in received {
                file.append(batch)?;
            }
            Ok::<(), TraceError>(())
        });
        // Every span the converter took is settled, whatever happened to it.
        let taken = taken.load(Ordering::Acquire);
        if taken == 0 {
            self.file.rollback();
            return false;
        }
        match appended.and_then(|()| self.file.commit()) {
            Ok(()) => {
                self.dirty = true;
                self.buffer.settle(taken, Ok(()));
                true
            }
            Err(err) => {
                self.file.rollback();
                self.buffer.settle(taken, Err(error_chain(&err)));
                false
            }
        }
    }

    /// Attaches the file, waiting while another process holds it. On an error
    /// other than the lock (the file is not a usable DuckDB file), or when
    /// shutdown's deadline passed while it was still locked, the pending spans
    /// are given up and the error returned, for the caller's own spans too.
    /// Returns when the attempt that attached began: the file is held from then
    /// (the attach itself replays the write-ahead log under the lock).
    fn attach(&mut self, row_groups: RowGroups) -> Result<Instant, String> {
        let mut backoff = FIRST_BACKOFF;
        let mut locked_since: Option<Instant> = None;
        let attached = loop {
            let attempt = Instant::now();
            match self.file.try_attach(row_groups) {
                Ok(Attach::Attached) => break Ok(attempt),
                Ok(Attach::Locked(err)) => {
                    let since = *locked_since.get_or_insert_with(Instant::now);
                    self.buffer.set_writer(WriterState::Locked);
                    self.buffer.note_lock_retry();
                    let now = Instant::now();
                    let deadline = self.buffer.closing();
                    if deadline.is_some_and(|d| now >= d) {
                        break Err(format!(
                            "trace file `{}` was still held by another process when the shutdown timeout passed: {err}",
                            self.file.path().display()
                        ));
                    }
                    self.warn_locked(since);
                    self.warn_about_losses();
                    let wait = deadline.map_or(backoff, |d| backoff.min(d - now));
                    self.buffer.sleep(wait);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(err) => break Err(error_chain(&err)),
            }
        };
        if locked_since.is_some() {
            self.buffer.set_writer(WriterState::Writing);
            self.warned_lock = None;
        }
        if let Err(error) = &attached {
            self.buffer.fail_pending(error.clone());
        }
        attached
    }

    fn checkpoint(&mut self) {
        match self.file.checkpoint() {
            Ok(()) => self.dirty = false,
            // The rows are committed (in the write-ahead log); the next session
            // checkpoints again.
            Err(err) => tracing::warn!(
                target: "flock_trace_duckdb",
                path = %self.file.path().display(),
                error = %error_chain(&err),
                "trace file checkpoint failed"
            ),
        }
    }

    fn warn_locked(&mut self, since: Instant) {
        let waited = since.elapsed();
        let due = self
            .warned_lock
            .map_or(waited >= self.settings.lock_timeout, |at| {
                at.elapsed() >= WARN_EVERY
            });
        if due {
            self.warned_lock = Some(Instant::now());
            tracing::warn!(
                target: "flock_trace_duckdb",
                path = %self.file.path().display(),
                waited_ms = waited.as_millis() as u64,
                waiting_spans = self.buffer.unsettled(),
                buffer_capacity = self.buffer.capacity() as u64,
                "another process holds the trace file; spans wait in the buffer, and are dropped once it is full"
            );
        }
    }

    /// Logs a WARN when spans were lost since the last one, at most every
    /// [`WARN_EVERY`].
    fn warn_about_losses(&mut self) {
        let (counts, last_error) = self.buffer.counts();
        let lost = counts.lost();
        let (reported, at) = self.warned_losses;
        if lost > reported && at.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            self.warned_losses = (lost, Some(Instant::now()));
            let causes = counts
                .describe_losses(self.buffer.capacity(), last_error.as_deref())
                .unwrap_or_default();
            tracing::warn!(
                target: "flock_trace_duckdb",
                path = %self.file.path().display(),
                lost = lost - reported,
                lost_total = lost,
                "spans could not be written to the trace file: {causes}"
            );
        }
    }
}

/// Microseconds since the Unix epoch (the `created_at` column's unit).
fn unix_micros(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
