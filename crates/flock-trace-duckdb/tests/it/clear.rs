//! `clear_traces` empties an existing trace file and refuses a missing one.

use flock_trace_duckdb::{TraceConfig, TraceError, clear_traces};

use crate::{TempDir, count, spans, traced};

#[test]
fn clear_deletes_every_span_and_keeps_the_table() {
    let dir = TempDir::new("clear");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path).build().unwrap();
    traced(&guard, || spans(50));
    assert!(guard.shutdown().is_complete());
    assert_eq!(count(&path), 50);

    assert_eq!(clear_traces(&path).unwrap(), 50);
    assert_eq!(count(&path), 0);
    assert_eq!(clear_traces(&path).unwrap(), 0);
}

#[test]
fn clear_on_a_missing_file_is_an_error_and_creates_nothing() {
    let dir = TempDir::new("clear-missing");
    let path = dir.file("nothing-here.duckdb");
    let err = clear_traces(&path).unwrap_err();
    assert!(matches!(err, TraceError::MissingFile { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("trace file `{}` does not exist", path.display())
    );
    assert!(!path.exists());
}

#[test]
fn clear_on_a_file_that_is_not_duckdb_is_an_error() {
    let dir = TempDir::new("clear-garbage");
    let path = dir.file("notes.txt");
    std::fs::write(&path, "not a database").unwrap();
    let err = clear_traces(&path).unwrap_err();
    assert!(matches!(err, TraceError::Database { .. }), "{err:?}");
}
