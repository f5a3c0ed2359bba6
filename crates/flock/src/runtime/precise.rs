//! A precise wake-up for the flocks' timers. Tokio's timer wheel has millisecond
//! ticks: a sleep is rounded up to its millisecond, and the driver rounds its own
//! wait up to the millisecond again, so a sleep ends on average about 1 ms after its
//! deadline and up to 2 ms after it (`docs/performance.md`, benchmark 3). One thread
//! per process waits on a condition variable for the earliest deadline any flock's
//! timer asked for, which the OS keeps to tens of microseconds, and wakes that timer.
//!
//! It only ever wakes a timer early, never late: each timer keeps its tokio sleep
//! too, so the later of the two is harmless, and under tokio's paused clock (tests)
//! the timer does not ask this thread at all (`Clock::follows_real_time`).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, OnceLock, Weak},
    time::Instant,
};

use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

use crate::clock;

/// The deadlines asked for, one per timer.
#[derive(Default)]
struct Wakes {
    /// By deadline, then timer.
    by_deadline: BTreeMap<(Instant, u64), Weak<Notify>>,
    /// Each timer's deadline.
    by_timer: HashMap<u64, Instant>,
}

/// The process's waker of timers.
pub(crate) struct Precise {
    wakes: Mutex<Wakes>,
    changed: Condvar,
}

impl Precise {
    /// The process's one, its thread started on first use. `None` when the thread
    /// cannot be started; the timers then rely on tokio's sleep alone.
    pub(crate) fn get() -> Option<&'static Self> {
        static PRECISE: OnceLock<Option<&'static Precise>> = OnceLock::new();
        *PRECISE.get_or_init(|| {
            let precise: &'static Self = Box::leak(Box::new(Self {
                wakes: Mutex::default(),
                changed: Condvar::new(),
            }));
            match std::thread::Builder::new()
                .name("flock-timer".into())
                .spawn(move || precise.run())
            {
                Ok(_) => Some(precise),
                Err(error) => {
                    tracing::warn!(%error, "could not start the precise timer thread; batch deadlines fire within tokio's millisecond ticks");
                    None
                }
            }
        })
    }

    /// Wakes `timer` (whose id is `id`) at `at`, instead of when it last asked.
    pub(crate) fn wake_at(&self, id: u64, at: Instant, timer: &Arc<Notify>) {
        let mut wakes = self.wakes.lock();
        if let Some(previous) = wakes.by_timer.insert(id, at) {
            wakes.by_deadline.remove(&(previous, id));
        }
        wakes.by_deadline.insert((at, id), Arc::downgrade(timer));
        let earliest = wakes.by_deadline.keys().next() == Some(&(at, id));
        drop(wakes);
        if earliest {
            self.changed.notify_one();
        }
    }

    /// Forgets what `id` asked for (its timer ended).
    pub(crate) fn forget(&self, id: u64) {
        let mut wakes = self.wakes.lock();
        if let Some(at) = wakes.by_timer.remove(&id) {
            wakes.by_deadline.remove(&(at, id));
        }
    }

    fn run(&self) {
        let mut wakes = self.wakes.lock();
        loop {
            let Some(&(at, _)) = wakes.by_deadline.keys().next() else {
                self.changed.wait(&mut wakes);
                continue;
            };
            let now = clock::real_now();
            if at > now {
                self.changed.wait_until(&mut wakes, at);
                continue;
            }
            let later = wakes.by_deadline.split_off(&(now, u64::MAX));
            let due = std::mem::replace(&mut wakes.by_deadline, later);
            for &(_, id) in due.keys() {
                wakes.by_timer.remove(&id);
            }
            drop(wakes);
            for timer in due.into_values() {
                if let Some(timer) = timer.upgrade() {
                    timer.notify_one();
                }
            }
            wakes = self.wakes.lock();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A timer is woken at the deadline it asked for.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_a_timer_at_its_deadline() {
        let precise = Precise::get().expect("the thread starts");
        let timer = Arc::new(Notify::new());
        precise.wake_at(
            u64::MAX - 1,
            clock::real_now() + Duration::from_millis(5),
            &timer,
        );
        // Only a guard against hanging: the wake is due in 5 ms.
        tokio::time::timeout(Duration::from_secs(60), timer.notified())
            .await
            .expect("the timer was woken");
        assert!(
            !precise.wakes.lock().by_timer.contains_key(&(u64::MAX - 1)),
            "a wake given is forgotten"
        );
    }

    /// A timer that asks again replaces its earlier wish; one that ends forgets it.
    #[test]
    fn each_timer_has_one_wish() {
        let precise = Precise::get().expect("the thread starts");
        let timer = Arc::new(Notify::new());
        let far = clock::real_now() + Duration::from_secs(3_600);
        precise.wake_at(u64::MAX - 2, far, &timer);
        precise.wake_at(u64::MAX - 2, far + Duration::from_secs(1), &timer);
        let wishes = |precise: &Precise| {
            precise
                .wakes
                .lock()
                .by_deadline
                .keys()
                .filter(|(_, id)| *id == u64::MAX - 2)
                .count()
        };
        assert_eq!(wishes(precise), 1);
        precise.forget(u64::MAX - 2);
        assert_eq!(wishes(precise), 0);
    }
}
