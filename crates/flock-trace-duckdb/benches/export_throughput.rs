//! Rough export throughput: how fast spans made with `tracing` reach the DuckDB
//! file, and what one span costs the instrumented thread.
//!
//! `cargo xtask cargo bench -p flock-rs-trace-duckdb --no-default-features --bench export_throughput [-- N]`
//!
//! Not a criterion benchmark: one run of N spans (default 200 000) shaped like
//! the runtime's `batch.flush` spans, with the queue sized to hold them all so
//! the figure is the exporter's, not the drop rate.

use std::{num::NonZeroUsize, time::Instant};

use flock_trace_duckdb::TraceConfig;
use tracing_subscriber::layer::SubscriberExt as _;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("flock-trace-bench-{}", std::process::id()));
    let path = dir.join("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .queue_size(NonZeroUsize::new(n.max(512)).expect("non-zero"))
        .build()
        .expect("trace pipeline");
    let subscriber = tracing_subscriber::registry().with(guard.layer());

    let started = Instant::now();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..n {
            let _span = tracing::info_span!(
                "batch.flush",
                batch_size = (i % 25) as i64 + 1,
                flush_reason = "size",
                agent = "bench",
                efficiency = 1.0,
            )
            .entered();
        }
    });
    let emitted = started.elapsed();
    let report = guard.shutdown();
    let total = started.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "{n} spans: {:.2} µs/span on the instrumented thread; {} exported, {} not, in {:.2} s = {:.0} spans/s into the file ({:.1} MB)",
        emitted.as_secs_f64() * 1e6 / n as f64,
        report.exported,
        report.unexported,
        total.as_secs_f64(),
        report.exported as f64 / total.as_secs_f64(),
        size as f64 / 1e6,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
