//! The burst of issue 17, with tracing on as a program turns it on: 200 000 artifacts
//! published as fast as possible to a per-artifact agent and a `BatchSpec::size(100)`
//! agent, on a multi-thread runtime, traced into DuckDB with the default settings
//! (`Flock::builder().trace(..)`, which installs the global subscriber). That is
//! 404 000 spans: `agent.run` and `engine.evaluate` per artifact, `batch.flush` and
//! `engine.evaluate` per batch.
//!
//! `cargo xtask bench -p flock-rs --bench trace_burst [-- ROUNDS]`
//!
//! Prints, per round, the spans that ended, were written and were not, and the time
//! from the first publish to the last span in the file; panics if a span is lost.
//! Not a criterion benchmark: its point is the count (no loss at default
//! settings), the rate is a by-product.

#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use flock::{TraceConfig, prelude::*};
use serde::{Deserialize, Serialize};

#[path = "support/proc_cpu.rs"]
mod proc_cpu;

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Event {
    n: u64,
}

const ARTIFACTS: u64 = 200_000;

async fn burst(path: &std::path::Path) -> (u64, std::time::Duration, flock::ExportReport) {
    let flock = Flock::builder()
        .trace(TraceConfig::new(path).service_name("trace_burst"))
        .try_build()
        .expect("tracing starts");
    let seen = Arc::new(AtomicUsize::new(0));
    let (each, batched) = (seen.clone(), seen.clone());
    flock
        .agent("per_artifact")
        .consumes::<Event>(Subscribe::new())
        .max_concurrency(4)
        .with_engine(map_fn(move |_: &EngineContext, _: Arc<Event>| {
            each.fetch_add(1, Ordering::Relaxed);
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .expect("register");
    flock
        .agent("batched")
        .consumes::<Event>(Subscribe::new().batch(BatchSpec::size(100)))
        .with_engine(batch_fn(
            move |_: &EngineContext, batch: Vec<Arc<Event>>| {
                batched.fetch_add(batch.len(), Ordering::Relaxed);
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .expect("register");
    let started = Instant::now();
    for n in 0..ARTIFACTS {
        flock.publish(Event { n }).await.expect("publish");
    }
    flock.run_until_idle().await;
    let report = flock.shutdown().await;
    let elapsed = started.elapsed();
    assert_eq!(seen.load(Ordering::Relaxed) as u64, 2 * ARTIFACTS);
    let traces = report.traces.expect("the flock traces");
    (ARTIFACTS, elapsed, traces)
}

/// CPU time (user and system, all threads) of this process so far, in seconds.
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    proc_cpu::stat_cpu(&stat).as_secs_f64()
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(1);
    let dir = std::env::temp_dir().join(format!("flock-trace-burst-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // One file for every round: the process's pipeline stays installed, and
    // each round's report covers the pipeline so far.
    let path = dir.join("traces.duckdb");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut before = 0;
    for round in 1..=rounds {
        let cpu = process_cpu();
        let (artifacts, elapsed, traces) = rt.block_on(burst(&path));
        let cpu = process_cpu() - cpu;
        let exported = traces.exported - before;
        before = traces.exported;
        println!(
            "round {round}: {artifacts} artifacts, {exported} spans written in {:.2} s \
             ({:.0} spans/s, publish to file; {:.2} s of CPU), {} not written in all{}",
            elapsed.as_secs_f64(),
            exported as f64 / elapsed.as_secs_f64(),
            cpu,
            traces.unexported,
            traces
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
        );
        assert_eq!(traces.unexported, 0, "spans were lost: {traces}");
        assert_eq!(exported, 2 * artifacts + 2 * (artifacts / 100));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
