//! The one timer of a flock: it sleeps until the earliest deadline (a batch's
//! timeout, a join window, a visibility beginning), carries out what is due, and
//! re-arms; woken early when an earlier deadline appears. No scan of batches or
//! groups: the core keeps its deadlines ordered.

use std::sync::{Arc, Weak};

use tokio::{sync::Notify, time::Instant};

use super::Runtime;
use crate::decision::Phase;

/// The timer task; it ends when the flock is gone or shutdown drained it.
pub(super) async fn run(runtime: Weak<Runtime>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = {
            let Some(runtime) = runtime.upgrade() else {
                return;
            };
            if runtime.replaying.load(std::sync::atomic::Ordering::Acquire) {
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
