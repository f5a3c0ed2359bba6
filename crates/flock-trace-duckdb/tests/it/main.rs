//! Integration tests of flock-trace-duckdb: spans made with `tracing`, exported
//! through the real pipeline into a DuckDB file, then read back with DuckDB.
//!
//! Each test builds its own pipeline and uses it through
//! `tracing::subscriber::with_default`, so tests run in parallel without sharing
//! a global subscriber (only `install` touches the global one).

mod burst;
mod clear;
mod guide_query;
mod install;
mod locked_file;
#[cfg(feature = "otlp")]
mod otlp;
mod readers;
mod schema;
mod shutdown;
mod ttl;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

pub(crate) use flock_test_support::stock_duckdb::run as stock_duckdb;
use flock_trace_duckdb::{TraceGuard, duckdb};
use tracing_subscriber::layer::SubscriberExt as _;

/// A fresh, empty directory for one test, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "flock-trace-it-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` with `guard`'s layer as this thread's subscriber.
pub(crate) fn traced<R>(guard: &TraceGuard, f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry().with(guard.layer());
    tracing::subscriber::with_default(subscriber, f)
}

/// Opens a trace file for reading.
pub(crate) fn read(path: &Path) -> duckdb::Connection {
    duckdb::Connection::open(path).unwrap()
}

/// `SELECT count(*) FROM spans`.
pub(crate) fn count(path: &Path) -> i64 {
    read(path)
        .query_row("SELECT count(*) FROM spans", [], |row| row.get(0))
        .unwrap()
}

/// Makes `n` root spans named `work.step` with attribute `i`.
pub(crate) fn spans(n: usize) {
    for i in 0..n {
        let _span = tracing::info_span!("work.step", i = i as i64).entered();
    }
}

/// How many spans match `condition`, as stock DuckDB (the `duckdb` Python package,
/// `python3 -m pip install duckdb`) counts them, opening the file read-only as the
/// guide does.
pub(crate) fn stock_count(path: &Path, condition: &str) -> u64 {
    let out = stock_duckdb(
        "import duckdb, sys\n\
         conn = duckdb.connect(sys.argv[1], read_only=True)\n\
         print(conn.execute(f'SELECT count(*) FROM spans WHERE {sys.argv[2]}').fetchone()[0])",
        &[path.to_str().unwrap(), condition],
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {out}"))
}
