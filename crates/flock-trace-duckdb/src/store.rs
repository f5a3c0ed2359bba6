//! Working on the trace file: opening it (retrying while another process holds the
//! lock), creating the schema, appending a batch of rows, TTL and clearing.
//!
//! Every operation opens the file and closes it before returning, so between two
//! exports any other process (the DuckDB CLI, Python, `cargo xtask traces`) can
//! open it, read-only or not.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use duckdb::{Config, Connection, params};

use crate::{
    TraceError,
    schema::{COLUMNS, CREATE_SCHEMA, CREATE_STAGING, SpanRow},
};

/// How long [`clear_traces`] and the startup work wait for another process to
/// release the file.
pub(crate) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// First wait after finding the file locked; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Opens the trace file for writing, creating it if missing, and makes sure the
/// schema exists.
///
/// While another process holds the file (DuckDB allows one writer process, or
/// any number of read-only ones), retries with exponential backoff until
/// `lock_timeout` has passed, counting each retry in `retries`.
pub(crate) fn open(
    path: &Path,
    lock_timeout: Duration,
    retries: &AtomicU64,
) -> Result<Connection, TraceError> {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let conn = loop {
        match Connection::open_with_flags(path, config(path)?) {
            Ok(conn) => break conn,
            Err(err) if is_lock_conflict(&err) => {
                let waited = started.elapsed();
                if waited + backoff > lock_timeout {
                    return Err(TraceError::Locked {
                        path: path.to_owned(),
                        waited,
                        source: err,
                    });
                }
                retries.fetch_add(1, Ordering::Relaxed);
                thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(err) => return Err(database(path, err)),
        }
    };
    conn.execute_batch(CREATE_SCHEMA)
        .map_err(|err| database(path, err))?;
    Ok(conn)
}

fn config(path: &Path) -> Result<Config, TraceError> {
    // The exporter's work is small; one DuckDB thread is plenty and spares the
    // application's cores. No extension autoloading: JSON is built in, and loading
    // would try the network.
    Config::default()
        .threads(1)
        .and_then(|c| c.enable_autoload_extension(false))
        .map_err(|err| database(path, err))
}

/// DuckDB reports a file held by another process as an IO error naming the lock.
fn is_lock_conflict(err: &duckdb::Error) -> bool {
    let message = err.to_string();
    message.contains("Could not set lock") || message.contains("Conflicting lock")
}

pub(crate) fn database(path: &Path, source: duckdb::Error) -> TraceError {
    TraceError::Database {
        path: path.to_owned(),
        source,
    }
}

/// Appends `rows` to `spans` in one statement: all of the batch or nothing.
pub(crate) fn insert(
    conn: &Connection,
    path: &Path,
    rows: &[SpanRow],
    resource: &str,
) -> Result<(), TraceError> {
    let fail = |err| database(path, err);
    conn.execute_batch(CREATE_STAGING).map_err(fail)?;
    {
        let mut appender = conn
            .appender_to_catalog_and_db("spans_staging", "temp", "main")
            .map_err(fail)?;
        for row in rows {
            appender
                .append_row(params![
                    row.trace_id,
                    row.span_id,
                    row.parent_id,
                    row.name,
                    row.service,
                    row.operation,
                    row.kind,
                    row.start_time,
                    row.end_time,
                    row.duration_ms,
                    row.status_code,
                    row.status_description,
                    row.attributes,
                    row.events,
                    row.links,
                    resource,
                ])
                .map_err(fail)?;
        }
        appender.flush().map_err(fail)?;
    }
    conn.execute_batch(&format!(
        "INSERT INTO spans ({COLUMNS}) SELECT {COLUMNS} FROM temp.spans_staging ON CONFLICT DO NOTHING;
         DROP TABLE temp.spans_staging;"
    ))
    .map_err(fail)?;
    Ok(())
}

/// Deletes spans that started before `cutoff_ns` (nanoseconds since the epoch).
pub(crate) fn delete_before(
    conn: &Connection,
    path: &Path,
    cutoff_ns: i64,
) -> Result<usize, TraceError> {
    conn.execute("DELETE FROM spans WHERE start_time < ?", params![cutoff_ns])
        .map_err(|err| database(path, err))
}

/// Deletes every span in the trace file at `path` and compacts the file.
///
/// Returns how many spans were deleted. Waits up to 30 seconds for another
/// process holding the file to release it.
///
/// # Errors
///
/// [`TraceError::MissingFile`] if there is no file at `path` (none is created),
/// [`TraceError::Locked`] if another process keeps it open, and
/// [`TraceError::Database`] if it is not a DuckDB file or DuckDB fails.
///
/// # Example
///
/// ```
/// let missing = std::env::temp_dir().join("flock-doc-no-such-traces.duckdb");
/// let err = flock_trace_duckdb::clear_traces(&missing).unwrap_err();
/// assert!(err.to_string().contains("does not exist"));
/// ```
pub fn clear_traces(path: impl AsRef<Path>) -> Result<usize, TraceError> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(TraceError::MissingFile {
            path: PathBuf::from(path),
        });
    }
    let conn = open(path, DEFAULT_LOCK_TIMEOUT, &AtomicU64::new(0))?;
    let deleted = conn
        .execute("DELETE FROM spans", [])
        .map_err(|err| database(path, err))?;
    // DuckDB reuses freed blocks after a checkpoint; VACUUM is accepted for
    // compatibility with Flock's own clear.
    conn.execute_batch("VACUUM; CHECKPOINT;")
        .map_err(|err| database(path, err))?;
    Ok(deleted)
}
