//! Property: whatever happens (publishes to several agents with different batch
//! specs, keyed batches and predicates, AND-gate joins, admission limits, the clock
//! moving, manual flushes, engines that fail, panic or fail once, predicates and key
//! functions that panic, and a final shutdown), every accepted artifact reaches
//! exactly one flush of the subscription it matched, or is reported failed with its
//! ids, or (joins) leaves in one traced discard; a batch keeps arrival order and
//! never exceeds its size; and every flush reason is true.
//!
//! The paused-clock histories run each case on its own current-thread tokio runtime
//! with the clock paused. Time passes only through `tokio::time::sleep` (in the test,
//! in engines, between retries), which the paused clock auto-advances timer by timer,
//! so a timeout must fire exactly at its deadline. Flush times are reconstructed from
//! the model's arrival times and the `wait` the engine is handed, and checked against
//! the model:
//!
//! - `size`: the batch holds `size` items and flushed when the last one arrived;
//! - `timeout`: it flushed exactly `timeout` after its first item, not full;
//! - `manual`: it flushed at the first `flush_batches` call after its first item;
//! - `shutdown`: it flushed during `shutdown`, and no manual flush came after its
//!   first item.
//!
//! The concurrent histories ([`concurrent`]) run the same model on a multi-thread
//! runtime with the real clock: publishers racing each other, deadlines,
//! `run_until_idle` and `shutdown`.
//!
//! Files: [`model`] (artifacts, cases, what the model expects), [`strategies`],
//! [`run`] and [`checks`] (one paused-clock case), [`concurrent`] and
//! [`concurrent_checks`] (one concurrent case); here, the
//! properties and the watchdog. `docs/reliability.md` lists the cases run and how
//! long they take.

mod checks;
mod concurrent;
mod concurrent_checks;
mod model;
mod run;
mod strategies;

use std::{collections::HashMap, fmt::Debug, time::Duration};

use parking_lot::Mutex;
use proptest::{prelude::*, test_runner::TestCaseError};

use self::model::Case;
use crate::support::probe::quiet_induced_panics;

/// Runs a paused-clock case and checks it.
fn run(case: &Case) -> Result<(), TestCaseError> {
    quiet_induced_panics();
    let _watchdog = Watchdog::arm(case);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    match rt.block_on(run::run_case(case))? {
        Some(observed) => checks::check_case(case, &observed),
        // Under OnFull::Wait the bounds refused an agent: nothing ran.
        None => Ok(()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_SHORT))]

    /// Short histories, many of them.
    #[test]
    fn every_artifact_is_flushed_once_or_reported_failed(case in strategies::case(24)) {
        run(&case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_LONG))]

    /// Longer histories: more batches per subscription, more retries in flight.
    #[test]
    fn long_histories_lose_nothing(case in strategies::case(96)) {
        run(&case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_CONCURRENT))]

    /// Publishers, deadlines, `run_until_idle` and `shutdown` racing on a
    /// multi-thread runtime with the real clock.
    #[test]
    fn concurrent_histories_lose_nothing(case in strategies::concurrent()) {
        concurrent::run(&case)?;
    }
}

/// Cases of the short-history property (see `docs/reliability.md`).
pub(crate) const CASES_SHORT: u32 = 8_000;
/// Cases of the long-history property.
pub(crate) const CASES_LONG: u32 = 2_000;
/// Cases of the concurrent property: each takes milliseconds of real time.
pub(crate) const CASES_CONCURRENT: u32 = 200;

// === hangs ===

/// Real time one case may take before the watchdog calls it a hang. A case takes
/// milliseconds; this only turns a livelock into a failure with the case printed.
const HANG: Duration = Duration::from_secs(120);

/// Aborts the test binary, printing the case, when a case runs longer than [`HANG`].
///
/// On the paused clock a runtime that spins (a timer re-armed for a deadline it never
/// clears, say) never lets tokio's time move, so no tokio timeout can fire; real time
/// still moves. One thread watches every case of the binary.
struct Watchdog(u64);

type Running = HashMap<u64, (std::time::Instant, String)>;

fn running() -> &'static Mutex<Running> {
    static RUNNING: std::sync::OnceLock<Mutex<Running>> = std::sync::OnceLock::new();
    RUNNING.get_or_init(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if let Some((_, case)) = running()
                    .lock()
                    .values()
                    .find(|(started, _)| started.elapsed() > HANG)
                {
                    // Not `eprintln!`: libtest captures it in threads tests spawn.
                    let message = format!("a case ran longer than {HANG:?}; hung on:\n{case}\n");
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
                    std::process::abort();
                }
            }
        });
        Mutex::default()
    })
}

impl Watchdog {
    fn arm(case: &impl Debug) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        running()
            .lock()
            .insert(id, (std::time::Instant::now(), format!("{case:#?}")));
        Self(id)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        running().lock().remove(&self.0);
    }
}
