//! Side by side with Python Flock: what a Python Flock user's program with
//! `BatchSpec(size=100)` and `SimpleBatchEngine` does (`benches/python/simple_batch.py`
//! is that program), done with flock-rs: publish N `BatchItem`s from outside, an
//! agent batching 100 of them into one `SimpleBatchEngine` run that publishes a
//! `BatchSummary`, then wait until idle; every summary checked.
//!
//! ```sh
//! cargo xtask cargo bench -p flock-rs --no-default-features --bench python_side_by_side
//! # and Python Flock in the same run (its N = 10,000 and 50,000; 1,000,000 when
//! # FLOCK_PYTHON_MAX allows it):
//! FLOCK_PYTHON=/tmp/flockpy/bin/python cargo xtask cargo bench -p flock-rs \
//!     --no-default-features --bench python_side_by_side
//! ```
//!
//! Not a criterion benchmark: each size runs once per side (three times for
//! flock-rs, the best kept), as a user's program would, and the rates and their
//! ratio are printed.

#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use flock::prelude::*;

async fn flock_rs(n: i64) -> Duration {
    let flock = Flock::builder().no_trace().build();
    flock
        .agent("simple_batch")
        .consumes::<BatchItem>(Subscribe::new().batch(BatchSpec::size(100)))
        .publishes::<BatchSummary>()
        .with_engine(SimpleBatchEngine)
        .register()
        .expect("register");
    let start = Instant::now();
    for value in 0..n {
        flock.publish(BatchItem { value }).await.expect("publish");
    }
    flock.run_until_idle().await;
    let elapsed = start.elapsed();
    flock.shutdown().await;
    let summaries = flock
        .query(&ArtifactFilter::new().type_name("BatchSummary"))
        .await
        .expect("query");
    let items: usize = summaries
        .iter()
        .map(|a| a.get::<BatchSummary>().expect("a summary").batch_size)
        .sum();
    assert_eq!(items as i64, n, "every item summarized once");
    elapsed
}

/// Runs the Python program for `n` items; its last line is the seconds it took.
fn python(interpreter: &str, n: i64) -> Option<Duration> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/python/simple_batch.py");
    let output = Command::new(interpreter)
        .arg(&script)
        .arg(n.to_string())
        .output()
        .map_err(|e| eprintln!("python: could not run {interpreter}: {e}"))
        .ok()?;
    if !output.status.success() {
        eprintln!(
            "python: {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seconds: f64 = stdout.lines().last()?.trim().parse().ok()?;
    Some(Duration::from_secs_f64(seconds))
}

fn main() {
    // Cargo passes `--bench` (and filters) to every bench binary: ignored here.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let interpreter = std::env::var("FLOCK_PYTHON").ok();
    let python_max: i64 = std::env::var("FLOCK_PYTHON_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    for n in [10_000_i64, 50_000, 1_000_000] {
        let rust = (0..3)
            .map(|_| rt.block_on(flock_rs(n)))
            .min()
            .expect("a run");
        let rust_rate = n as f64 / rust.as_secs_f64();
        let line = format!(
            "side by side: {n:>9} items: flock-rs {:>12.0} items/s ({:.1} ms)",
            rust_rate,
            rust.as_secs_f64() * 1e3
        );
        match interpreter.as_deref().filter(|_| n <= python_max) {
            Some(interpreter) => match python(interpreter, n) {
                Some(py) => {
                    let py_rate = n as f64 / py.as_secs_f64();
                    println!(
                        "{line}, Python Flock {py_rate:>8.0} items/s ({:.1} s), ratio {:.0}x",
                        py.as_secs_f64(),
                        rust_rate / py_rate
                    );
                }
                None => println!("{line}, Python Flock: no figure (see above)"),
            },
            None => println!("{line}"),
        }
    }
}
