//! The trace file on disk: attaching it (DuckDB allows one writing process, or any
//! number of reading ones), appending rows in transactions, checkpoints, TTL and
//! clearing.
//!
//! A [`TraceFile`] keeps one in-memory DuckDB instance for its whole life and
//! attaches the file only to write: attaching takes about a millisecond, where
//! opening a database instance took tens. DuckDB's checkpoint on detach is off; the
//! writer checkpoints when the write-ahead log has grown past a bound (a reader
//! replays the log when it opens the file, so it sees every committed span either
//! way), and always before it stops, so the file it leaves behind is complete.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use duckdb::{AccessMode, Config, Connection, arrow::record_batch::RecordBatch, params};

use crate::{TraceError, schema};

/// How long [`clear_traces`], the startup work and a [`DuckDbSpanExporter`]
/// (crate::DuckDbSpanExporter) wait for another process to release the file.
pub(crate) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// First wait after finding the file locked; doubles up to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(2);
/// The longest wait between two attempts to attach a locked file. Short: a
/// failed attempt costs well under a millisecond, and a writer that gets in
/// right after a reader lets go is done before that reader (or the next) opens
/// the file again.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_millis(20);

/// The name the trace file is attached under in the writer's in-memory database.
const CATALOG: &str = "flock_traces";
/// Rows per row group of what a steady export appends (DuckDB's default is
/// 122,880). An export appends to the last row group, partly filled, and DuckDB's
/// checkpoint rewrites that row group whole: with row groups this small, the
/// rewrite, done while the file is locked, stays short. Measured at 2,000 spans/s
/// (a session of 32,768 spans every 16 s): 113–146 ms held per session, against
/// 225–320 ms with the default. A burst (a backlog appended in large transactions)
/// keeps the default: its row groups fill, and small ones cost it 10–20% of its rate.
const STEADY_ROW_GROUP_SIZE: usize = 16_384;

/// The row groups an attach appends: see [`STEADY_ROW_GROUP_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowGroups {
    /// [`STEADY_ROW_GROUP_SIZE`] rows: a steady export's short session.
    Small,
    /// DuckDB's default: a burst, a checkpoint, a clear.
    Default,
}

/// The writer's staging table, in its in-memory database.
const STAGING: &str = "spans_staging";

/// A trace file and the in-memory DuckDB instance that writes it.
pub(crate) struct TraceFile {
    path: PathBuf,
    wal: PathBuf,
    conn: Connection,
    attach_sql: String,
    attached: bool,
}

impl RowGroups {
    /// The `ATTACH` options that ask for these row groups.
    fn options(self) -> String {
        match self {
            Self::Small => format!(" (ROW_GROUP_SIZE {STEADY_ROW_GROUP_SIZE})"),
            Self::Default => String::new(),
        }
    }
}

/// What [`TraceFile::try_attach`] found.
pub(crate) enum Attach {
    /// The file is attached: the lock is held until [`TraceFile::detach`].
    Attached,
    /// Another process holds the file.
    Locked(duckdb::Error),
}

// === impl TraceFile ===

impl TraceFile {
    /// A writer for the file at `path`; nothing is opened yet.
    pub(crate) fn new(path: &Path) -> Result<Self, TraceError> {
        let text = path.to_str().ok_or_else(|| {
            TraceError::InvalidConfig(format!(
                "trace file path must be valid UTF-8, got `{}`",
                path.display()
            ))
        })?;
        // The writer's work is small; one DuckDB thread is plenty and spares the
        // application's cores. No extension autoloading: JSON is built in, and
        // loading would try the network.
        let config = Config::default()
            .threads(1)
            .and_then(|c| c.enable_autoload_extension(false))
            .map_err(|err| database(path, err))?;
        let conn =
            Connection::open_in_memory_with_flags(config).map_err(|err| database(path, err))?;
        // Checkpoints are the writer's decision (see the module docs), not a side
        // effect of detaching. A commit that would grow the log past 8 MiB (a
        // burst) checkpoints instead of writing the log: DuckDB then skips writing
        // the rows twice.
        conn.execute_batch(
            "PRAGMA disable_checkpoint_on_shutdown; SET checkpoint_threshold = '8MiB';",
        )
        .map_err(|err| database(path, err))?;
        conn.execute_batch(&schema::create_staging(STAGING))
            .map_err(|err| database(path, err))?;
        let mut wal = path.as_os_str().to_owned();
        wal.push(".wal");
        Ok(TraceFile {
            path: path.to_owned(),
            wal: PathBuf::from(wal),
            conn,
            attach_sql: format!("ATTACH '{}' AS {CATALOG}", text.replace('\'', "''")),
            attached: false,
        })
    }

    /// The trace file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Attaches the file (creating it and the `spans` table if missing), unless
    /// another process holds it.
    pub(crate) fn try_attach(&mut self, row_groups: RowGroups) -> Result<Attach, TraceError> {
        if self.attached {
            return Ok(Attach::Attached);
        }
        let sql = format!("{}{}", self.attach_sql, row_groups.options());
        match self.conn.execute_batch(&sql) {
            Ok(()) => {}
            Err(err) if is_lock_conflict(&err) => return Ok(Attach::Locked(err)),
            Err(err) => return Err(self.error(err)),
        }
        self.attached = true;
        if let Err(err) = self.conn.execute_batch(&schema::create_table(CATALOG)) {
            self.detach();
            return Err(self.error(err));
        }
        Ok(Attach::Attached)
    }

    /// Attaches the file, retrying with backoff while another process holds it,
    /// for up to `lock_timeout`; each retry is counted in `retries`.
    pub(crate) fn attach_waiting(
        &mut self,
        lock_timeout: Duration,
        retries: &AtomicU64,
    ) -> Result<(), TraceError> {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.try_attach(RowGroups::Default)? {
                Attach::Attached => return Ok(()),
                Attach::Locked(source) => {
                    let waited = started.elapsed();
                    if waited + backoff > lock_timeout {
                        return Err(TraceError::Locked {
                            path: self.path.clone(),
                            waited,
                            source,
                        });
                    }
                    retries.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Starts a transaction on the attached file.
    pub(crate) fn begin(&self) -> Result<(), TraceError> {
        self.execute("BEGIN TRANSACTION")
    }

    /// Commits the transaction: its rows are in the file (in its write-ahead log
    /// until the next checkpoint).
    pub(crate) fn commit(&self) -> Result<(), TraceError> {
        self.execute("COMMIT")
    }

    /// Abandons the transaction, if one is open.
    pub(crate) fn rollback(&self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    /// Appends `rows` to `spans` in the open transaction, through DuckDB's appender.
    pub(crate) fn append(&self, rows: RecordBatch) -> Result<(), TraceError> {
        let mut appender = self
            .conn
            .appender_to_catalog_and_db("spans", CATALOG, "main")
            .map_err(|err| self.error(err))?;
        appender
            .append_record_batch(rows)
            .map_err(|err| self.error(err))?;
        appender.flush().map_err(|err| self.error(err))
    }

    /// Empties the staging table in the in-memory database (no lock on the file).
    pub(crate) fn clear_staged(&self) -> Result<(), TraceError> {
        self.execute(&schema::create_staging(STAGING))
    }

    /// Appends `rows` to the staging table, through DuckDB's appender: conversion
    /// and checks happen here, before the file is locked.
    pub(crate) fn stage(&self, rows: RecordBatch) -> Result<(), TraceError> {
        let mut appender = self
            .conn
            .appender_to_catalog_and_db(STAGING, "temp", "main")
            .map_err(|err| self.error(err))?;
        appender
            .append_record_batch(rows)
            .map_err(|err| self.error(err))?;
        appender.flush().map_err(|err| self.error(err))
    }

    /// Copies the staged rows into `spans`, in the open transaction.
    pub(crate) fn insert_staged(&self) -> Result<(), TraceError> {
        self.execute(&format!(
            "INSERT INTO {CATALOG}.spans SELECT * FROM temp.main.{STAGING}"
        ))
    }

    /// Deletes spans that started before `cutoff_ns` (nanoseconds since the epoch).
    pub(crate) fn delete_before(&self, cutoff_ns: i64) -> Result<usize, TraceError> {
        self.conn
            .execute(
                &format!("DELETE FROM {CATALOG}.spans WHERE start_time < ?"),
                params![cutoff_ns],
            )
            .map_err(|err| self.error(err))
    }

    /// Bytes in the file's write-ahead log: committed rows not yet checkpointed.
    pub(crate) fn wal_bytes(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }

    /// Moves the write-ahead log into the database file.
    pub(crate) fn checkpoint(&self) -> Result<(), TraceError> {
        self.execute(&format!("CHECKPOINT {CATALOG}"))
    }

    /// Detaches the file, releasing the lock.
    pub(crate) fn detach(&mut self) {
        if self.attached {
            self.rollback();
            let _ = self.conn.execute_batch(&format!("DETACH {CATALOG}"));
            self.attached = false;
        }
    }

    fn execute(&self, sql: &str) -> Result<(), TraceError> {
        self.conn.execute_batch(sql).map_err(|err| self.error(err))
    }

    fn error(&self, source: duckdb::Error) -> TraceError {
        database(&self.path, source)
    }
}

impl Drop for TraceFile {
    fn drop(&mut self) {
        self.detach();
    }
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
    let mut file = TraceFile::new(path)?;
    file.attach_waiting(DEFAULT_LOCK_TIMEOUT, &AtomicU64::new(0))?;
    let deleted = file
        .conn
        .execute(&format!("DELETE FROM {CATALOG}.spans"), [])
        .map_err(|err| file.error(err))?;
    // DuckDB reuses freed blocks after a checkpoint.
    file.checkpoint()?;
    file.detach();
    Ok(deleted)
}

/// Opens the trace file at `path` read-only while a program may be writing it, as
/// the guide's readers do: a write holds the file for a few milliseconds, so this
/// retries with backoff while the file is locked, for up to `timeout`.
///
/// Keep the connection briefly: while it is open, the writer waits (its spans wait
/// in its buffer).
///
/// # Errors
///
/// [`TraceError::MissingFile`] if there is no file at `path`,
/// [`TraceError::Locked`] if it was still locked after `timeout`, and
/// [`TraceError::Database`] if it is not a DuckDB file.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
///
/// let conn = flock_trace_duckdb::open_read_only(".flock/traces.duckdb", Duration::from_secs(5))?;
/// let flushes: i64 = conn
///     .query_row("SELECT count(*) FROM spans WHERE name = 'batch.flush'", [], |row| row.get(0))
///     .map_err(|err| flock_trace_duckdb::TraceError::InvalidConfig(err.to_string()))?;
/// println!("{flushes} flushes so far");
/// # Ok::<(), flock_trace_duckdb::TraceError>(())
/// ```
pub fn open_read_only(path: impl AsRef<Path>, timeout: Duration) -> Result<Connection, TraceError> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(TraceError::MissingFile {
            path: PathBuf::from(path),
        });
    }
    let started = Instant::now();
    let mut backoff = Duration::from_millis(10);
    loop {
        let config = Config::default()
            .access_mode(AccessMode::ReadOnly)
            .and_then(|c| c.enable_autoload_extension(false))
            .map_err(|err| database(path, err))?;
        match Connection::open_with_flags(path, config) {
            Ok(conn) => return Ok(conn),
            Err(err) if is_lock_conflict(&err) => {
                let waited = started.elapsed();
                if waited + backoff > timeout {
                    return Err(TraceError::Locked {
                        path: path.to_owned(),
                        waited,
                        source: err,
                    });
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(err) => return Err(database(path, err)),
        }
    }
}
