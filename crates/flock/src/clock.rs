//! The runtime's clock: the one place the facade reads the time.
//!
//! Every instant the runtime uses comes from [`Clock::now`]: a monotonic reading of
//! tokio's clock (so tests on tokio's paused clock control it) and the UTC time
//! derived from it. A UTC reading is taken once, when the flock is built, and
//! advanced by the monotonic clock, so `created_at` values, visibility and batch
//! deadlines always agree. The workspace's `clippy.toml` forbids reading the time
//! anywhere else.

use std::{
    cell::Cell,
    time::{Duration, Instant},
};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

/// One reading of the runtime's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    /// Monotonic: deadlines and waits.
    pub(crate) mono: Instant,
    /// UTC: `created_at` values and visibility.
    pub(crate) wall: DateTime<Utc>,
}

/// The runtime's clock. A copy reads the same time (a view of the blackboard keeps
/// one, not the runtime).
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    wall: DateTime<Utc>,
    /// `wall` as seconds and nanoseconds since the epoch (when it is after it):
    /// adding to integers and reusing the day's date is several times cheaper than
    /// chrono's calendar arithmetic, on every publish.
    since_epoch: Option<(i64, u32)>,
    mono: Instant,
}

impl Clock {
    /// A clock starting now.
    #[expect(
        clippy::disallowed_methods,
        reason = "the clock module is where the runtime reads the time"
    )]
    pub(crate) fn new() -> Self {
        let wall = Utc::now();
        Self {
            wall,
            since_epoch: Some((wall.timestamp(), wall.timestamp_subsec_nanos()))
                .filter(|&(secs, nanos)| secs >= 0 && nanos < 1_000_000_000),
            mono: tokio_now(),
        }
    }

    /// Now.
    pub(crate) fn now(&self) -> Now {
        let mono = tokio_now();
        Now {
            mono,
            wall: self.wall_at(mono),
        }
    }

    /// Whether tokio's clock follows the real one: not paused and not advanced by
    /// hand (tests on tokio's paused clock). Tokio's clock reads the real clock
    /// unless it was paused, so a gap of a millisecond between the two means it was.
    pub(crate) fn follows_real_time(&self) -> bool {
        let tokio = tokio_now();
        let real = real_now();
        let gap = if tokio > real {
            tokio - real
        } else {
            real - tokio
        };
        gap < Duration::from_millis(1)
    }

    /// The monotonic instant of a UTC time of this clock (an arrival recorded by an
    /// earlier process, say). Before the monotonic clock's range, the earliest
    /// instant it can represent near that time.
    pub(crate) fn mono_at(&self, wall: DateTime<Utc>) -> Instant {
        match (wall - self.wall).to_std() {
            Ok(ahead) => self.mono.checked_add(ahead).unwrap_or(self.mono),
            Err(_) => {
                let behind = (self.wall - wall).to_std().unwrap_or_default();
                self.mono.checked_sub(behind).unwrap_or(self.mono)
            }
        }
    }

    /// The UTC time of a monotonic instant of this clock.
    pub(crate) fn wall_at(&self, mono: Instant) -> DateTime<Utc> {
        match mono.checked_duration_since(self.mono) {
            Some(elapsed) => self
                .since_epoch
                .and_then(|start| utc_after(start, elapsed))
                .unwrap_or_else(|| self.wall + delta(elapsed)),
            None => self.wall - delta(self.mono.duration_since(mono)),
        }
    }
}

/// Tokio's monotonic clock (which tests may pause), as the runtime reads it.
#[expect(
    clippy::disallowed_methods,
    reason = "the clock module is where the runtime reads the time"
)]
fn tokio_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The real monotonic clock, whatever tokio's says: for the thread that wakes the
/// timers at their deadlines ([`crate::runtime`]'s `precise.rs`).
#[expect(
    clippy::disallowed_methods,
    reason = "the clock module is where the runtime reads the time"
)]
pub(crate) fn real_now() -> Instant {
    Instant::now()
}

thread_local! {
    /// The last day [`utc_after`] converted on this thread, and its date: the
    /// date changes once a day, and computing it is most of chrono's conversion.
    static DAY: Cell<(i64, NaiveDate)> = const { Cell::new((i64::MIN, NaiveDate::MIN)) };
}

/// The UTC time `elapsed` after `start` (seconds and nanoseconds since the epoch,
/// seconds not negative). `None` past chrono's range.
fn utc_after((secs, nanos): (i64, u32), elapsed: Duration) -> Option<DateTime<Utc>> {
    let mut secs = secs.checked_add(i64::try_from(elapsed.as_secs()).ok()?)?;
    let mut nanos = nanos + elapsed.subsec_nanos();
    if nanos >= 1_000_000_000 {
        nanos -= 1_000_000_000;
        secs = secs.checked_add(1)?;
    }
    let (day, second) = (secs / 86_400, (secs % 86_400) as u32);
    let (cached, date) = DAY.get();
    let date = if cached == day {
        date
    } else {
        let date = DateTime::from_timestamp(day.checked_mul(86_400)?, 0)?.date_naive();
        DAY.set((day, date));
        date
    };
    let time = NaiveTime::from_num_seconds_from_midnight_opt(second, nanos)?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_follows_the_monotonic_clock() {
        let clock = Clock::new();
        let before = clock.now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let after = clock.now();
        assert_eq!(after.mono - before.mono, Duration::from_secs(3600));
        assert_eq!(after.wall - before.wall, TimeDelta::seconds(3600));
        assert_eq!(clock.wall_at(before.mono), before.wall);
        let earlier = before.mono.checked_sub(Duration::from_secs(1)).unwrap();
        assert_eq!(before.wall - clock.wall_at(earlier), TimeDelta::seconds(1));
        assert_eq!(clock.mono_at(before.wall), before.mono);
        assert_eq!(clock.mono_at(before.wall - TimeDelta::seconds(1)), earlier);
        assert_eq!(clock.mono_at(after.wall), after.mono);
    }

    /// The fast conversion agrees with chrono's across midnights, years and the
    /// carry of nanoseconds, on one thread and so through its cached day.
    #[test]
    fn utc_after_agrees_with_chrono() {
        let starts = [
            (0, 0),
            (86_399, 999_999_999),
            (951_782_399, 500_000_000), // 2000-02-28T23:59:59.5, a leap day next
            (1_795_000_000, 123_456_789),
            (4_102_444_799, 999_999_000), // 2099-12-31T23:59:59
        ];
        let steps = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(500_000_001),
            Duration::from_secs(1),
            Duration::from_secs(86_399),
            Duration::from_secs(86_400),
            Duration::from_millis(86_400_001),
            Duration::from_secs(366 * 86_400 + 7),
        ];
        for (secs, nanos) in starts {
            let start = DateTime::from_timestamp(secs, nanos).unwrap();
            // Forwards, backwards and forwards again: the cached day changes.
            for elapsed in steps.iter().chain(steps.iter().rev()).chain(&steps) {
                let expected = start + TimeDelta::from_std(*elapsed).unwrap();
                assert_eq!(
                    utc_after((secs, nanos), *elapsed),
                    Some(expected),
                    "{start} + {elapsed:?}"
                );
            }
        }
        // Past chrono's range: none, for the clock's fallback.
        assert_eq!(utc_after((i64::MAX - 1, 0), Duration::from_secs(5)), None);
        assert_eq!(utc_after((0, 0), Duration::from_secs(u64::MAX)), None);
    }
}
