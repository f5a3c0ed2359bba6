//! The bounded buffer between the threads that end spans and the writer thread,
//! with its backpressure rule and the counters behind every report.
//!
//! A finished span is queued at once while there is room (spans the writer took
//! but has not written yet take room too). When the buffer is full:
//!
//! - while the writer is writing, the thread that ended the span waits for room
//!   (backpressure): a burst slows down to the writer's pace instead of losing spans;
//! - while the writer waits for another process to release the file, or after it
//!   stopped, the span is dropped and counted with its cause: a reader holding the
//!   file must never stall the application.
//!
//! Spans are settled in the order they were queued (written or failed), so "every
//! span queued before this point is settled" is one comparison of sequence numbers,
//! which is what a flush waits for. Generic over the item so the rules are tested
//! with plain numbers.

use std::{
    cell::Cell,
    collections::VecDeque,
    sync::{Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// The bounded queue and its counters, shared by producers and the writer.
#[derive(Debug)]
pub(crate) struct Buffer<T> {
    capacity: usize,
    /// Pending spans that wake the writer before its interval ends.
    wake_at: usize,
    state: Mutex<State<T>>,
    /// Wakes the writer: enough spans, a flush, closing.
    writer: Condvar,
    /// Wakes producers waiting for room and callers waiting for a flush.
    progress: Condvar,
}

#[derive(Debug)]
struct State<T> {
    pending: VecDeque<T>,
    /// Spans settled so far: written, failed, or given up. Spans are settled in
    /// queue order, so these are the first `settled` spans queued.
    settled: u64,
    /// Flushes asked for so far, and the last one the writer completed (its spans
    /// written and the file checkpointed).
    flushes_asked: u64,
    flushes_done: u64,
    /// The spans the latest flush waits for: those queued before it.
    flush_target: u64,
    writer: WriterState,
    closing: Option<Instant>,
    counts: Counts,
    last_error: Option<String>,
}

/// What the writer is doing, as producers need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterState {
    /// Writing, or waiting for spans: a full buffer will have room soon.
    Writing,
    /// Waiting for another process to release the file: a full buffer stays full.
    Locked,
    /// The writer thread has ended (shut down, or it failed to start).
    Stopped,
}

/// Counters since the buffer was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Spans queued.
    pub(crate) queued: u64,
    /// Spans written to the file.
    pub(crate) exported: u64,
    /// Spans whose write failed, or that were still waiting for a locked file when
    /// the shutdown timeout passed.
    pub(crate) failed: u64,
    /// Spans dropped because the buffer was full while the file was locked.
    pub(crate) dropped_locked: u64,
    /// Spans dropped because the writer had stopped (or because they ended on the
    /// writer's own thread while the buffer was full).
    pub(crate) dropped_stopped: u64,
    /// Spans that ended after shutdown began.
    pub(crate) late: u64,
    /// How often a producer waited for room (backpressure).
    pub(crate) waits: u64,
    /// How often the writer found the file locked by another process and waited.
    pub(crate) lock_retries: u64,
    /// Times the writer held the file (sessions), and for how long in all.
    pub(crate) sessions: u64,
    pub(crate) held: Duration,
}

impl Counts {
    /// Spans that ended but will never be written.
    pub(crate) fn lost(&self) -> u64 {
        self.failed + self.dropped() + self.late
    }

    /// Spans dropped without a write being tried.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped_locked + self.dropped_stopped
    }

    /// Why spans are missing, one clause per cause, or `None` if none is.
    pub(crate) fn describe_losses(
        &self,
        capacity: usize,
        last_error: Option<&str>,
    ) -> Option<String> {
        let mut causes = Vec::new();
        if self.dropped_locked > 0 {
            causes.push(format!(
                "{} dropped: the buffer ({capacity} spans) was full while another process held the trace file",
                self.dropped_locked
            ));
        }
        if self.dropped_stopped > 0 {
            causes.push(format!(
                "{} dropped: the buffer was full after the writer had stopped",
                self.dropped_stopped
            ));
        }
        if self.failed > 0 {
            let error = last_error.unwrap_or("unknown error");
            causes.push(format!("{} not written: {error}", self.failed));
        }
        if self.late > 0 {
            causes.push(format!(
                "{} ended after the trace shutdown began",
                self.late
            ));
        }
        (!causes.is_empty()).then(|| causes.join("; "))
    }
}

/// What the writer should do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Spans are due: write them.
    Write,
    /// Nothing is pending and shutdown began: finish.
    Stop,
}

thread_local! {
    /// Set on the writer's thread, which must never wait for room it alone makes.
    static ON_WRITER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as the writer's.
pub(crate) fn mark_writer_thread() {
    ON_WRITER_THREAD.with(|flag| flag.set(true));
}

// === impl Buffer ===

impl<T> Buffer<T> {
    /// A buffer of `capacity` spans whose writer wakes when `wake_at` are pending.
    pub(crate) fn new(capacity: usize, wake_at: usize) -> Self {
        Buffer {
            capacity,
            wake_at: wake_at.clamp(1, capacity.max(1)),
            state: Mutex::new(State {
                pending: VecDeque::new(),
                settled: 0,
                flushes_asked: 0,
                flushes_done: 0,
                flush_target: 0,
                writer: WriterState::Writing,
                closing: None,
                counts: Counts::default(),
                last_error: None,
            }),
            writer: Condvar::new(),
            progress: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The state stays consistent whatever a panicking holder did: every
        // change is a push, a pop or a counter.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The capacity in spans.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues a finished span, waiting for room while the writer writes (see the
    /// module docs); a span that cannot be queued is counted with its cause.
    pub(crate) fn push(&self, item: T) {
        let mut state = self.lock();
        loop {
            if state.closing.is_some() {
                state.counts.late += 1;
                return;
            }
            // Spans the writer took but has not settled yet count too: the bound
            // holds for everything between ending and the file.
            if state.counts.queued - state.settled < self.capacity as u64 {
                state.pending.push_back(item);
                state.counts.queued += 1;
                if state.pending.len() == self.wake_at {
                    self.writer.notify_one();
                }
                return;
            }
            match state.writer {
                WriterState::Locked => {
                    state.counts.dropped_locked += 1;
                    return;
                }
                WriterState::Stopped => {
                    state.counts.dropped_stopped += 1;
                    return;
                }
                WriterState::Writing if ON_WRITER_THREAD.with(Cell::get) => {
                    state.counts.dropped_stopped += 1;
                    return;
                }
                WriterState::Writing => {
                    state.counts.waits += 1;
                    self.writer.notify_one();
                    state = self
                        .progress
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Waits until spans are due (a full batch, a flush, shutdown, or `interval`
    /// since `since` with anything pending) and says what to do.
    pub(crate) fn next(&self, since: Instant, interval: Duration) -> Next {
        let mut state = self.lock();
        loop {
            let pending = state.pending.len();
            if state.closing.is_some() {
                return if pending == 0 {
                    Next::Stop
                } else {
                    Next::Write
                };
            }
            let due = since + interval;
            let now = Instant::now();
            if pending >= self.wake_at
                || state.flushes_asked > state.flushes_done
                || (pending > 0 && now >= due)
            {
                return Next::Write;
            }
            let wait = if pending == 0 {
                // Nothing to write: sleep until something arrives.
                interval.max(Duration::from_millis(100))
            } else {
                due - now
            };
            state = self
                .writer
                .wait_timeout(state, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Takes up to `max` pending spans, oldest first, making room.
    pub(crate) fn take(&self, max: usize) -> Vec<T> {
        let mut state = self.lock();
        let n = state.pending.len().min(max);
        let taken: Vec<T> = if n == state.pending.len() {
            // All of them: hand the queue's storage over instead of moving each.
            std::mem::take(&mut state.pending).into()
        } else {
            state.pending.drain(..n).collect()
        };
        if n > 0 {
            self.progress.notify_all();
        }
        taken
    }

    /// How many spans wait in the buffer, not yet taken by the writer.
    pub(crate) fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// How many spans are queued and not settled yet: waiting, or being written.
    pub(crate) fn unsettled(&self) -> u64 {
        let state = self.lock();
        state.counts.queued - state.settled
    }

    /// Records the fate of the next `n` spans taken: written, or failed with `error`.
    pub(crate) fn settle(&self, n: usize, outcome: Result<(), String>) {
        let mut state = self.lock();
        state.settled += n as u64;
        match outcome {
            Ok(()) => state.counts.exported += n as u64,
            Err(error) => {
                state.counts.failed += n as u64;
                state.last_error = Some(error);
            }
        }
        self.progress.notify_all();
    }

    /// Gives up on every pending span (the file stayed locked past the shutdown
    /// deadline, or the writer cannot run): counted as failed with `error`.
    pub(crate) fn fail_pending(&self, error: String) {
        let mut state = self.lock();
        let n = state.pending.len();
        state.pending.clear();
        state.settled += n as u64;
        state.counts.failed += n as u64;
        state.last_error = Some(error);
        self.progress.notify_all();
    }

    /// Counts one session that held the file for `held`.
    pub(crate) fn note_session(&self, held: Duration) {
        let mut state = self.lock();
        state.counts.sessions += 1;
        state.counts.held += held;
    }

    /// Counts one more attempt that found the file locked.
    pub(crate) fn note_lock_retry(&self) {
        self.lock().counts.lock_retries += 1;
    }

    /// Tells producers what the writer is doing; a change wakes the ones waiting
    /// for room, so that they drop instead of waiting for a locked file.
    pub(crate) fn set_writer(&self, writer: WriterState) {
        let mut state = self.lock();
        if state.writer != writer {
            state.writer = writer;
            self.progress.notify_all();
        }
    }

    /// Asks the writer to write every span queued so far and checkpoint the file,
    /// and waits until it did, at most `timeout`. Returns whether every span queued
    /// before the call is settled.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let target = state.counts.queued;
        state.flushes_asked += 1;
        state.flush_target = target;
        let ticket = state.flushes_asked;
        self.writer.notify_one();
        while (state.settled < target || state.flushes_done < ticket)
            && state.writer != WriterState::Stopped
        {
            let now = Instant::now();
            if now >= deadline {
                return state.settled >= target;
            }
            state = self
                .progress
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.settled >= target
    }

    /// The flushes asked for so far, and whether one is not done yet; a writer
    /// that completes a session reports it back with [`flushed`](Self::flushed).
    pub(crate) fn flushes(&self) -> (u64, bool) {
        let state = self.lock();
        (
            state.flushes_asked,
            state.flushes_asked > state.flushes_done,
        )
    }

    /// Whether every span the latest flush waits for is settled (spans that
    /// arrived after it do not hold it up).
    pub(crate) fn flush_target_settled(&self) -> bool {
        let state = self.lock();
        state.settled >= state.flush_target
    }

    /// The writer settled every span flush `asked` waits for, and checkpointed.
    pub(crate) fn flushed(&self, asked: u64) {
        let mut state = self.lock();
        if asked > state.flushes_done {
            state.flushes_done = asked;
            self.progress.notify_all();
        }
    }

    /// Begins shutdown: spans ending from now on are counted as late; the writer
    /// writes what is pending and may wait for a locked file until `deadline`.
    pub(crate) fn close(&self, deadline: Instant) {
        let mut state = self.lock();
        state.closing.get_or_insert(deadline);
        self.writer.notify_all();
        self.progress.notify_all();
    }

    /// The shutdown deadline, once shutdown began.
    pub(crate) fn closing(&self) -> Option<Instant> {
        self.lock().closing
    }

    /// Sleeps up to `timeout`, waking early when shutdown begins.
    pub(crate) fn sleep(&self, timeout: Duration) {
        let state = self.lock();
        if state.closing.is_none() {
            let _ = self.writer.wait_timeout(state, timeout);
        }
    }

    /// The counters so far and the last write error.
    pub(crate) fn counts(&self) -> (Counts, Option<String>) {
        let state = self.lock();
        (state.counts, state.last_error.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, thread};

    use super::*;

    #[test]
    fn a_full_buffer_waits_for_a_writing_writer_and_loses_nothing() {
        let buffer = Arc::new(Buffer::<u32>::new(4, 2));
        let producer = {
            let buffer = buffer.clone();
            thread::spawn(move || (0..100).for_each(|i| buffer.push(i)))
        };
        let mut seen = Vec::new();
        while seen.len() < 100 {
            let taken = buffer.take(3);
            buffer.settle(taken.len(), Ok(()));
            seen.extend(taken);
            thread::yield_now();
        }
        producer.join().unwrap();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        let (counts, _) = buffer.counts();
        assert_eq!(
            (counts.queued, counts.exported, counts.lost()),
            (100, 100, 0)
        );
        assert!(counts.waits > 0, "{counts:?}");
    }

    #[test]
    fn a_full_buffer_drops_while_the_file_is_locked_and_counts_why() {
        let buffer = Buffer::<u32>::new(3, 3);
        buffer.set_writer(WriterState::Locked);
        (0..5).for_each(|i| buffer.push(i));
        let (counts, _) = buffer.counts();
        assert_eq!((counts.queued, counts.dropped_locked), (3, 2));
        buffer.set_writer(WriterState::Stopped);
        buffer.push(9);
        assert_eq!(buffer.counts().0.dropped_stopped, 1);
    }

    #[test]
    fn producers_waiting_for_room_drop_when_the_file_becomes_locked() {
        let buffer = Arc::new(Buffer::<u32>::new(1, 1));
        buffer.push(0);
        let waiting = {
            let buffer = buffer.clone();
            thread::spawn(move || buffer.push(1))
        };
        while buffer.counts().0.waits == 0 {
            thread::yield_now();
        }
        buffer.set_writer(WriterState::Locked);
        waiting.join().unwrap();
        assert_eq!(buffer.counts().0.dropped_locked, 1);
    }

    #[test]
    fn a_flush_waits_for_every_span_queued_before_it() {
        let buffer = Arc::new(Buffer::<u32>::new(10, 10));
        (0..3).for_each(|i| buffer.push(i));
        let writer = {
            let buffer = buffer.clone();
            thread::spawn(move || {
                assert_eq!(
                    buffer.next(Instant::now(), Duration::from_secs(3600)),
                    Next::Write
                );
                let (asked, outstanding) = buffer.flushes();
                assert!(outstanding);
                let taken = buffer.take(2);
                buffer.settle(taken.len(), Ok(()));
                let taken = buffer.take(2);
                buffer.settle(taken.len(), Err("disk full".into()));
                buffer.flushed(asked);
            })
        };
        assert!(buffer.flush(Duration::from_secs(60)));
        writer.join().unwrap();
        let (counts, error) = buffer.counts();
        assert_eq!((counts.exported, counts.failed), (2, 1));
        assert_eq!(error.as_deref(), Some("disk full"));
        // Nothing pending: a flush waits only for the writer's checkpoint.
        assert!(buffer.flush(Duration::ZERO));
    }

    #[test]
    fn a_flush_is_done_when_its_own_spans_are_settled_while_more_keep_coming() {
        let buffer = Arc::new(Buffer::<u32>::new(100, 100));
        (0..3).for_each(|i| buffer.push(i));
        let writer = {
            let buffer = buffer.clone();
            thread::spawn(move || {
                while !buffer.flushes().1 {
                    thread::yield_now();
                }
                let (asked, _) = buffer.flushes();
                let taken = buffer.take(10);
                (10..15).for_each(|i| buffer.push(i)); // the program goes on
                assert!(!buffer.flush_target_settled());
                buffer.settle(taken.len(), Ok(()));
                assert!(buffer.flush_target_settled());
                assert_eq!(buffer.pending(), 5);
                buffer.flushed(asked);
            })
        };
        assert!(buffer.flush(Duration::from_secs(60)));
        writer.join().unwrap();
    }

    #[test]
    fn after_close_spans_are_late_and_the_writer_stops_once_drained() {
        let buffer = Buffer::<u32>::new(10, 10);
        buffer.push(1);
        buffer.close(Instant::now());
        buffer.push(2);
        assert_eq!(buffer.counts().0.late, 1);
        let since = Instant::now();
        assert_eq!(buffer.next(since, Duration::from_secs(3600)), Next::Write);
        buffer.fail_pending("locked".into());
        assert_eq!(buffer.next(since, Duration::from_secs(3600)), Next::Stop);
        assert_eq!(buffer.counts().0.lost(), 2);
    }
}
