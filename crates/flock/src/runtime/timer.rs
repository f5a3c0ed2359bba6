//! The one timer of a flock: it sleeps until the earliest deadline (a batch's
//! timeout, a join window, a visibility beginning), carries out what is due, and
//! re-arms; woken early when an earlier deadline appears, and at the deadline
//! itself by the process's precise thread (`precise.rs`, ADR 0017), ahead of
//! tokio's millisecond ticks. No scan of batches or groups: the core keeps its
//! deadlines ordered.

use std::sync::{
    Arc, Weak,
    atomic::{AtomicU64, Ordering},
};

use tokio::{sync::Notify, time::Instant};

use super::{Runtime, precise::Precise};
use crate::decision::Phase;

/// A timer's wishes to the precise thread, forgotten when the timer ends.
struct Wishes {
    precise: &'static Precise,
    id: u64,
}

impl Drop for Wishes {
    fn drop(&mut self) {
        self.precise.forget(self.id);
    }
}

/// The timer task; it ends when the flock is gone or shutdown drained it.
pub(super) async fn run(runtime: Weak<Runtime>, wake: Arc<Notify>) {
    static TIMERS: AtomicU64 = AtomicU64::new(0);
    let precise = Precise::get().map(|precise| Wishes {
        precise,
        id: TIMERS.fetch_add(1, Ordering::Relaxed),
    });
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = {
            let Some(runtime) = runtime.upgrade() else {
                return;
            };
            if runtime.replaying.load(Ordering::Acquire) {
                // Recovery ticks through the past itself; it wakes us when done.
                drop(runtime);
                notified.await;
                continue;
            }
            let (ready, next, drained) = {
                let mut core = runtime.core.lock();
                let ready = core.tick(runtime.now());
                (ready, core.next_deadline(), core.phase() == Phase::Drained)
            };
            runtime.act(ready);
            if drained {
                return;
            }
            // Tokio's sleep ends up to 2 ms after the deadline; the precise
            // thread wakes us within tens of microseconds of it. Not under tokio's
            // paused clock, whose deadlines are not real instants.
            if let (Some(deadline), Some(wishes)) = (next, &precise)
                && runtime.clock().follows_real_time()
            {
                wishes.precise.wake_at(wishes.id, deadline, &wake);
            }
            next
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(Instant::from_std(deadline)) => {}
                    () = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}
