//! The database file: its tables, and how the writer and the readers open it
//! (WAL journal, the durability level, the schema version).

use std::{path::Path, time::Duration};

use rusqlite::{Connection, OpenFlags};

use crate::SqliteError;

/// The schema version this crate writes (`PRAGMA user_version`).
pub(crate) const VERSION: i64 = 1;

/// Pages in the write-ahead log that make the writer's commit checkpoint it into
/// the database (16 MiB of 4 KiB pages).
const CHECKPOINT_PAGES: i64 = 4096;

/// The tables. `seq` is the arrival order (SQLite's rowid: one more than the
/// largest so far, and artifacts are never deleted). Ids are 16-byte blobs,
/// `created_at` nanoseconds since the Unix epoch, `tags` and `visibility` JSON
/// (`NULL` for no tags and for public: most artifacts, and less to write).
/// `agents.since` is the largest `seq` when the agent was first recorded;
/// `consumptions` says which agent consumed which artifact.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS artifacts (
    seq            INTEGER PRIMARY KEY,
    id             BLOB    NOT NULL UNIQUE,
    type_name      TEXT    NOT NULL,
    produced_by    TEXT    NOT NULL,
    correlation_id BLOB,
    partition_key  TEXT,
    tags           TEXT,
    visibility     TEXT,
    created_at     INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    payload        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_by_type ON artifacts (type_name);
CREATE TABLE IF NOT EXISTS agents (
    name  TEXT    PRIMARY KEY,
    since INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumptions (
    agent TEXT    NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (agent, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failures (
    seq    INTEGER PRIMARY KEY,
    id     BLOB    NOT NULL UNIQUE,
    record TEXT    NOT NULL
);
";

/// Opens (creating if needed) the database for the writer: WAL journal, commits
/// without a flush of their own, the tables.
pub(crate) fn open_writer(path: &Path, busy_timeout: Duration) -> Result<Connection, SqliteError> {
    let err = |action| SqliteError::doing(path, action);
    let conn = Connection::open(path).map_err(err("open the database"))?;
    conn.busy_timeout(busy_timeout)
        .map_err(err("set the busy timeout"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(err("switch to the WAL journal"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::Sqlite {
            path: path.to_owned(),
            action: "switch to the WAL journal",
            reason: format!("the journal mode stayed '{mode}'"),
        });
    }
    // Both levels commit with NORMAL (no flush per commit); `Durability::Full` adds
    // the syncer's flush of the log before answering (sync.rs, ADR 0009).
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err("set the durability level"))?;
    // Checkpoints (run by the writer when it commits) less often than SQLite's 1000
    // pages: each costs two flushes, and a page rewritten by many commits (the last
    // page of a table or index, which every group appends to) is copied once.
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)
        .map_err(err("set the checkpoint interval"))?;
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(err("read the schema version"))?;
    if found > VERSION {
        return Err(SqliteError::Schema {
            path: path.to_owned(),
            found,
            supported: VERSION,
        });
    }
    if found < VERSION {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {TABLES} PRAGMA user_version = {VERSION}; COMMIT;"
        ))
        .map_err(err("create the tables"))?;
    }
    Ok(conn)
}

/// Opens a read connection to a database the writer has set up: it never writes
/// (`query_only`) and, in WAL mode, never waits for the writer.
pub(crate) fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection, SqliteError> {
    let err = |action| SqliteError::doing(path, action);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(err("open a read connection"))?;
    conn.busy_timeout(busy_timeout)
        .map_err(err("set the busy timeout"))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(err("make a read connection read-only"))?;
    Ok(conn)
}
