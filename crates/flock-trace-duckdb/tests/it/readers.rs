//! Stock DuckDB (the Python package) reading the trace file while the program
//! writes it: between writes the file is free, and the guide's reader, which
//! retries while a write holds the file, always gets in and sees every span.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use flock_trace_duckdb::TraceConfig;

use crate::{TempDir, spans, stock_count, stock_duckdb, traced};

/// The guide's reader (`crates/flock/guide/traces.md`), verbatim.
const GUIDE_READER: &str = r#"import time

import duckdb


def connect_read_only(path, timeout=5.0):
    """Opens a flock trace file while the program writes it. A write holds the
    file for a few milliseconds; retry while it does."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            return duckdb.connect(path, read_only=True)
        except duckdb.IOException as err:
            if "Could not set lock" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
"#;

#[test]
fn the_guide_shows_the_reader_these_tests_use() {
    let guide = include_str!("../../../flock/guide/traces.md");
    assert!(
        guide.contains(GUIDE_READER),
        "crates/flock/guide/traces.md must show GUIDE_READER of this test verbatim"
    );
}

/// The writer holds the file only while it writes: with nothing due, the seed's
/// snippet (no retry) opens it every time, however many spans wait in memory.
#[test]
fn between_writes_the_file_is_free_for_the_seeds_snippet() {
    let dir = TempDir::new("readers-free");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .export_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    traced(&guard, || spans(1_000));
    let out = stock_duckdb(
        "import duckdb, sys\n\
         failures = 0\n\
         for _ in range(20):\n    \
             try:\n        \
                 conn = duckdb.connect(sys.argv[1], read_only=True)\n        \
                 conn.execute('SELECT count(*) FROM spans').fetchall()\n        \
                 conn.close()\n    \
             except duckdb.IOException:\n        \
                 failures += 1\n\
         print(failures)",
        &[path.to_str().unwrap()],
    );
    assert_eq!(out.trim(), "0");
    assert!(guard.shutdown().is_complete());
    assert_eq!(stock_count(&path, "true"), 1_000);
}

/// While spans are written every 50 ms, the guide's reader opens the file 20
/// times in a row without an error, and each read sees at least as many spans as
/// the one before.
#[test]
fn the_guides_reader_gets_in_while_the_program_writes() {
    let dir = TempDir::new("readers-retry");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .export_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let done = AtomicBool::new(false);
    let total = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut total = 0;
            traced(&guard, || {
                while !done.load(Ordering::Acquire) {
                    spans(10);
                    total += 10;
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
            total
        });
        let program = format!(
            "{GUIDE_READER}\n\
             import sys\n\
             counts = []\n\
             for _ in range(20):\n    \
                 conn = connect_read_only(sys.argv[1])\n    \
                 counts.append(conn.execute('SELECT count(*) FROM spans').fetchone()[0])\n    \
                 conn.close()\n    \
                 time.sleep(0.02)\n\
             assert counts == sorted(counts), counts\n\
             print(counts[0], counts[-1])"
        );
        let out = stock_duckdb(&program, &[path.to_str().unwrap()]);
        done.store(true, Ordering::Release);
        let total = writer.join().unwrap();
        let (first, last) = out.trim().split_once(' ').unwrap();
        let (first, last): (u64, u64) = (first.parse().unwrap(), last.parse().unwrap());
        assert!(first < last, "the reader saw no new spans: {out}");
        total
    });
    let report = guard.shutdown();
    assert_eq!((report.exported, report.unexported), (total, 0), "{report}");
    assert_eq!(stock_count(&path, "name = 'work.step'"), total);
}
