//! Another process holding the trace file (a reader) delays exports but loses no
//! span, also past the lock timeout: the spans wait in the bounded buffer.
//!
//! The reader is this test binary run again as a child process (see
//! [`child_reader`]): DuckDB's file lock is per process, so a second connection
//! in this process would not conflict.

use std::{
    io::{BufRead as _, BufReader},
    num::NonZeroUsize,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use flock_trace_duckdb::{
    TraceConfig,
    duckdb::{AccessMode, Config, Connection},
};

use crate::{TempDir, count, spans, traced};

const READER_FILE: &str = "FLOCK_TRACE_IT_READER_FILE";
const READER_HOLD_MS: &str = "FLOCK_TRACE_IT_READER_HOLD_MS";

/// The child process's side: when started by [`hold_read_only`], opens the file
/// read-only, prints how many spans it sees, and holds the file open for a
/// while. Run as an ordinary test (variables unset) it has nothing to do.
#[test]
fn child_reader() {
    let (Ok(path), Ok(hold_ms)) = (std::env::var(READER_FILE), std::env::var(READER_HOLD_MS))
    else {
        return;
    };
    let config = Config::default().access_mode(AccessMode::ReadOnly).unwrap();
    let conn = Connection::open_with_flags(&path, config).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM spans", [], |row| row.get(0))
        .unwrap();
    println!("reader-ready {n}");
    std::thread::sleep(Duration::from_millis(hold_ms.parse().unwrap()));
}

/// Starts a child process holding `path` open read-only for `hold`; returns once
/// it has the file open, with the number of spans it saw.
pub(crate) fn hold_read_only(path: &Path, hold: Duration) -> (Child, i64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "locked_file::child_reader",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(READER_FILE, path)
        .env(READER_HOLD_MS, hold.as_millis().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut output = String::new();
    while let Some(line) = lines.next() {
        let line = line.unwrap();
        // libtest prints the test's name on the same line first.
        if let Some((_, n)) = line.split_once("reader-ready ") {
            // Keep draining, so the child can write its test summary and exit cleanly.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, n.trim().parse().unwrap());
        }
        output.push_str(&line);
        output.push('\n');
    }
    let status = child.wait().unwrap();
    panic!(
        "reader process exited ({status}) before opening `{}`:\n{output}",
        path.display()
    );
}

#[test]
fn reader_holding_the_file_loses_no_spans() {
    let dir = TempDir::new("reader");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .export_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    traced(&guard, || spans(10));
    guard.force_flush().unwrap();

    let hold = Duration::from_millis(1500);
    let started = Instant::now();
    let (mut reader, seen) = hold_read_only(&path, hold);
    assert_eq!(seen, 10);
    traced(&guard, || spans(10));
    // The export waits for the reader to let go (force_flush allows 5 seconds).
    guard.force_flush().unwrap();
    assert!(started.elapsed() >= hold);
    assert!(reader.wait().unwrap().success());

    let stats = guard.stats();
    assert!(stats.lock_retries > 0, "{stats:?}");
    assert_eq!((stats.exported, stats.failed), (20, 0));
    let report = guard.shutdown();
    assert_eq!((report.exported, report.unexported), (20, 0), "{report}");
    assert_eq!(count(&path), 20);
}

#[test]
fn a_reader_holding_the_file_past_the_lock_timeout_delays_the_export_and_loses_nothing() {
    let dir = TempDir::new("locked-timeout");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .export_interval(Duration::from_secs(3600))
        .lock_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    // The reader holds the file seven times the lock timeout.
    let (mut reader, _) = hold_read_only(&path, Duration::from_millis(1400));
    traced(&guard, || spans(7));
    let report = guard.shutdown();
    assert!(reader.wait().unwrap().success());
    assert_eq!((report.exported, report.unexported), (7, 0), "{report}");
    assert_eq!(crate::stock_count(&path, "name = 'work.step'"), 7);
}

/// The documented bound: while a reader holds the file, spans wait in the buffer;
/// once it is full, further spans are dropped, counted while the program runs, and
/// reported with their cause.
#[test]
fn spans_that_find_the_buffer_full_while_the_file_is_locked_are_counted_and_reported() {
    let dir = TempDir::new("queue-full");
    let path = dir.file("traces.duckdb");
    let ten = NonZeroUsize::new(10).unwrap();
    let guard = TraceConfig::new(&path)
        .queue_size(ten)
        .export_batch_size(ten)
        .build()
        .unwrap();
    let (mut reader, _) = hold_read_only(&path, Duration::from_millis(1500));
    traced(&guard, || spans(100));
    let stats = guard.stats();
    assert_eq!((stats.dropped, stats.waiting), (90, 10), "{stats:?}");
    let report = guard.shutdown();
    assert!(reader.wait().unwrap().success());
    assert_eq!(
        (
            report.exported,
            report.unexported,
            report.dropped,
            report.failed
        ),
        (10, 90, 90, 0),
        "{report}"
    );
    assert_eq!(
        report.error.as_deref(),
        Some(
            "90 dropped: the buffer (10 spans) was full while another process held the trace file"
        )
    );
    assert_eq!(crate::stock_count(&path, "true"), 10);
}

const WARN_CHILD: &str = "FLOCK_TRACE_IT_WARN_FILE";
const DROP_WARNING: &str = "spans could not be written to the trace file";

/// Losses are logged when they happen, not only at shutdown, and at most every
/// ten seconds: two bursts of drops a moment apart make one warning. The child
/// process installs the pipeline as the global subscriber, as a program does.
#[test]
fn losses_are_logged_as_a_warning_when_they_happen_at_most_every_ten_seconds() {
    let dir = TempDir::new("warn");
    let path = dir.file("traces.duckdb");
    drop(TraceConfig::new(&path).build().unwrap());
    let (mut reader, _) = hold_read_only(&path, Duration::from_millis(3000));
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "locked_file::child_drops_spans_while_the_file_is_locked",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WARN_CHILD, &path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(reader.wait().unwrap().success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let warnings: Vec<usize> = stderr
        .lines()
        .enumerate()
        .filter(|(_, line)| line.contains(DROP_WARNING))
        .map(|(i, _)| i)
        .collect();
    let emitted = stderr
        .lines()
        .position(|line| line.contains("child: emitted"))
        .unwrap_or_else(|| panic!("no marker in {stderr}"));
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0] < emitted, "the warning came late:\n{stderr}");
    assert!(
        stderr.contains("was full while another process held the trace file"),
        "{stderr}"
    );
    assert!(
        stdout.contains("report: 10 spans exported, 90 not exported"),
        "{stdout}"
    );
}

/// The child side of the test above.
#[test]
fn child_drops_spans_while_the_file_is_locked() {
    let Ok(path) = std::env::var(WARN_CHILD) else {
        return;
    };
    let ten = NonZeroUsize::new(10).unwrap();
    let guard = TraceConfig::new(&path)
        .queue_size(ten)
        .export_batch_size(ten)
        .install()
        .unwrap();
    spans(50);
    std::thread::sleep(Duration::from_millis(400));
    spans(50);
    std::thread::sleep(Duration::from_millis(400));
    eprintln!("child: emitted");
    let report = guard.shutdown();
    println!("report: {report}");
}

#[test]
fn startup_does_not_wait_for_a_reader_and_ttl_runs_at_the_first_export() {
    let dir = TempDir::new("startup-locked");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path).build().unwrap();
    traced(&guard, || spans(4));
    assert!(guard.shutdown().is_complete());

    let (mut reader, seen) = hold_read_only(&path, Duration::from_millis(1500));
    assert_eq!(seen, 4);
    let started = Instant::now();
    // TTL 0 days: every span from before this start goes, at the first export.
    let guard = TraceConfig::new(&path).ttl_days(Some(0)).build().unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500));
    traced(&guard, || spans(2));
    let report = guard.shutdown();
    assert!(reader.wait().unwrap().success());
    assert_eq!((report.exported, report.unexported), (2, 0), "{report}");
    assert_eq!(count(&path), 2);
}
