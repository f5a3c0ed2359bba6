//! How often a reader finds the trace file locked while a program writes traces:
//! the user guide's Python snippet (`duckdb.connect(path, read_only=True)`, stock
//! DuckDB, no retry) run every 50 ms while this program ends spans at a steady rate.
//!
//! `cargo xtask bench -p flock-rs-trace-duckdb --bench reader_availability [-- SECONDS RATE INTERVAL_MS]`
//!
//! Defaults: 20 seconds, 2 000 spans per second (`batch.flush`-shaped), the
//! configuration's default export interval (when `INTERVAL_MS` is not given). Prints the attempts, the failures and their share.
//! Needs `python3` with the `duckdb` package. Not a criterion benchmark: the figure
//! is a rate of failures, not a duration.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use flock_trace_duckdb::TraceConfig;
use tracing_subscriber::layer::SubscriberExt as _;

/// The seed's snippet, in a loop: one attempt every 50 ms for `seconds`.
const READER: &str = r#"
import duckdb, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
attempts = failures = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    attempts += 1
    try:
        conn = duckdb.connect(path, read_only=True)
        conn.execute("SELECT count(*) FROM spans WHERE name LIKE '%batch%'").fetchall()
        conn.close()
    except Exception as err:
        if "Could not set lock" not in str(err):
            raise
        failures += 1
    time.sleep(0.05)
print(attempts, failures)
"#;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(20);
    let rate = args.get(1).copied().unwrap_or(2_000);
    let interval = args.get(2).copied().map(Duration::from_millis);

    let dir = std::env::temp_dir().join(format!("flock-reader-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("traces.duckdb");
    let config = TraceConfig::new(&path);
    let config = match interval {
        Some(interval) => config.export_interval(interval),
        None => config,
    };
    let guard = config.build().expect("trace pipeline");
    let subscriber = tracing_subscriber::registry().with(guard.layer());

    let reader = Command::new("python3")
        .args(["-c", READER, path.to_str().expect("utf-8 path")])
        .arg(seconds.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with the duckdb package");

    // Spans in steady ticks of 10 ms, `rate / 100` each.
    let per_tick = (rate / 100).max(1);
    let started = Instant::now();
    let mut emitted = 0_u64;
    tracing::subscriber::with_default(subscriber, || {
        let mut tick = 0_u64;
        while started.elapsed() < Duration::from_secs(seconds) {
            for _ in 0..per_tick {
                let _span = tracing::info_span!(
                    "batch.flush",
                    batch_size = 25_i64,
                    flush_reason = "size",
                    agent = "bench",
                    efficiency = 1.0,
                )
                .entered();
                emitted += 1;
            }
            tick += 1;
            let next = started + Duration::from_millis(10 * tick);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    });
    let output = reader.wait_with_output().expect("reader");
    // The machine's load over the last minute, printed with the figure.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    let stats = guard.stats();
    let report = guard.shutdown();
    // A reader that did not run (no `duckdb` package, say) is an error, not 0 of 0.
    assert!(
        output.status.success(),
        "the Python reader failed ({}); it needs python3 with the duckdb package",
        output.status
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<u64> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [attempts, failures] = numbers[..] else {
        panic!("the Python reader printed {text:?}, not its attempts and failures");
    };
    assert!(attempts > 0, "the Python reader made no attempt");
    println!(
        "{seconds} s at {rate} spans/s, export interval {}: {failures} of {attempts} \
         reader attempts failed to lock the file ({:.2}%); the writer held it {} times, {:.1} ms \
         each on average ({:.2}% of the time); {emitted} spans emitted, {report}; file {:.1} MB; \
         load {load}",
        interval.map_or_else(|| "default".to_owned(), |i| format!("{} ms", i.as_millis())),
        100.0 * failures as f64 / attempts as f64,
        stats.writes,
        stats.file_held.as_secs_f64() * 1e3 / stats.writes.max(1) as f64,
        100.0 * stats.file_held.as_secs_f64() / seconds as f64,
        std::fs::metadata(&path).map_or(0.0, |m| m.len() as f64 / 1e6),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
