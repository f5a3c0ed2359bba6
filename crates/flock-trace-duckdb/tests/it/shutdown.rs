//! Shutting down (or dropping the guard) writes every pending span, and spans
//! that cannot be written are counted, never silently lost.

use std::time::Duration;

use flock_trace_duckdb::TraceConfig;

use crate::{TempDir, count, spans, traced};

/// A pipeline that exports only when made to: the timer never fires in a test.
fn lazy(path: &std::path::Path) -> TraceConfig {
    TraceConfig::new(path).export_interval(Duration::from_secs(3600))
}

#[test]
fn shutdown_writes_pending_spans() {
    let dir = TempDir::new("shutdown");
    let path = dir.file("traces.duckdb");
    let guard = lazy(&path).build().unwrap();
    traced(&guard, || spans(100));
    // Nothing exported yet, and the file is readable while the program runs.
    assert_eq!(count(&path), 0);
    let report = guard.shutdown();
    assert_eq!((report.exported, report.unexported), (100, 0), "{report}");
    assert_eq!(count(&path), 100);
}

#[test]
fn dropping_the_guard_writes_pending_spans() {
    let dir = TempDir::new("drop");
    let path = dir.file("traces.duckdb");
    let guard = lazy(&path).build().unwrap();
    traced(&guard, || spans(10));
    drop(guard);
    assert_eq!(count(&path), 10);
}

#[test]
fn force_flush_writes_without_shutting_down() {
    let dir = TempDir::new("flush");
    let path = dir.file("traces.duckdb");
    let guard = lazy(&path).build().unwrap();
    traced(&guard, || spans(3));
    guard.force_flush().unwrap();
    assert_eq!(count(&path), 3);
    assert_eq!(wal_bytes(&path), 0);
    traced(&guard, || spans(2));
    assert_eq!(guard.shutdown().exported, 5);
    assert_eq!(count(&path), 5);
}

#[test]
fn large_bursts_are_written_in_batches() {
    let dir = TempDir::new("burst");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path).build().unwrap();
    traced(&guard, || spans(20_000));
    let report = guard.shutdown();
    assert_eq!(
        (report.exported, report.unexported),
        (20_000, 0),
        "{report}"
    );
    assert_eq!(count(&path), 20_000);
}

#[test]
fn failed_exports_are_reported() {
    let dir = TempDir::new("failed");
    let path = dir.file("traces.duckdb");
    let guard = lazy(&path).build().unwrap();
    // Something replaces the trace file with one DuckDB cannot open.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "not a database").unwrap();
    traced(&guard, || spans(10));
    let stats = guard.stats();
    assert_eq!((stats.exported, stats.failed), (0, 0));
    let report = guard.shutdown();
    assert_eq!((report.exported, report.unexported), (0, 10), "{report}");
    let error = report.error.unwrap();
    assert!(error.contains(&path.display().to_string()), "{error}");
}

/// Spans written by the regular export may sit in DuckDB's write-ahead log; a
/// flush (what a flock's shutdown does) checkpoints them into the file itself, so
/// a copy of the file alone is complete.
#[test]
fn a_flush_checkpoints_what_earlier_writes_left_in_the_log() {
    let dir = TempDir::new("flush-checkpoint");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .export_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    traced(&guard, || spans(20));
    while guard.stats().exported < 20 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(wal_bytes(&path) > 0, "the export left nothing in the log");
    guard.force_flush().unwrap();
    assert_eq!(wal_bytes(&path), 0);
    assert_eq!(crate::stock_count(&path, "true"), 20);
    assert!(guard.shutdown().is_complete());
}

fn wal_bytes(path: &std::path::Path) -> u64 {
    std::fs::metadata(path.with_extension("duckdb.wal")).map_or(0, |m| m.len())
}
