//! Behaviour of the batch and join state machines, driven with explicit instants.

#![allow(
    clippy::disallowed_methods,
    reason = "tests take base instants, and watchdogs their limits, from the real clock"
)]

mod invariants;
mod join_invariants;
mod joins;
mod triggers;

use std::time::{Duration, Instant};

use flock_subscription::BatchSpec;

fn spec(size: Option<usize>, timeout_ms: Option<u64>) -> BatchSpec {
    BatchSpec::new(size, timeout_ms.map(Duration::from_millis)).unwrap()
}

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}
