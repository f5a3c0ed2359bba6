//! The runtime's clock: the one place the facade reads the time.
//!
//! Every instant the runtime uses comes from [`Clock::now`]: a monotonic reading of
//! tokio's clock (so tests on tokio's paused clock control it) and the UTC time
//! derived from it. A UTC reading is taken once, when the flock is built, and
//! advanced by the monotonic clock, so `created_at` values, visibility and batch
//! deadlines always agree. The workspace's `clippy.toml` forbids reading the time
//! anywhere else.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

/// One reading of the runtime's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    /// Monotonic: deadlines and waits.
    pub(crate) mono: Instant,
    /// UTC: `created_at` values and visibility.
    pub(crate) wall: DateTime<Utc>,
}

/// The runtime's clock.
#[derive(Debug)]
pub(crate) struct Clock {
    wall: DateTime<Utc>,
    /// `wall` in nanoseconds since the epoch (until 2262): adding to an integer is
    /// several times cheaper than chrono's calendar arithmetic, on every publish.
    wall_nanos: Option<i64>,
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
            wall_nanos: wall.timestamp_nanos_opt(),
            mono: tokio::time::Instant::now().into_std(),
        }
    }

    /// Now.
    #[expect(
        clippy::disallowed_methods,
        reason = "the clock module is where the runtime reads the time"
    )]
    pub(crate) fn now(&self) -> Now {
        let mono = tokio::time::Instant::now().into_std();
        Now {
            mono,
            wall: self.wall_at(mono),
        }
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
            Some(elapsed) => {
                let nanos = i64::try_from(elapsed.as_nanos()).ok();
                match self.wall_nanos.zip(nanos) {
                    Some((wall, nanos)) => match wall.checked_add(nanos) {
                        Some(at) => DateTime::from_timestamp_nanos(at),
                        None => self.wall + delta(elapsed),
                    },
                    None => self.wall + delta(elapsed),
                }
            }
            None => self.wall - delta(self.mono.duration_since(mono)),
        }
    }
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
}
