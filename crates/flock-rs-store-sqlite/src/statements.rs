//! The writer's statements, prepared once when its thread starts and kept for its
//! life: a write binds and steps them, with no statement-cache lookup (hashing the
//! SQL text) and no clearing of bindings per row.

use flock_core::ArtifactId;
use rusqlite::{Connection, Statement, params};
use uuid::Uuid;

use crate::row::{Row, insert_sql};

/// Single publishes that follow one another in a group are inserted this many at a
/// time, with one statement (one set of cursors, one step, for all of them).
pub(crate) const CHUNK: usize = 32;

/// Every statement the writer runs, on its connection.
pub(crate) struct Statements<'c> {
    begin: Statement<'c>,
    commit: Statement<'c>,
    savepoint: Statement<'c>,
    release: Statement<'c>,
    rollback_to: Statement<'c>,
    insert: Statement<'c>,
    insert_chunk: Statement<'c>,
    consume: Statement<'c>,
    keep_failure: Statement<'c>,
    forget_failure: Statement<'c>,
    register_agent: Statement<'c>,
}

impl<'c> Statements<'c> {
    /// Prepares them all on `conn`, whose tables exist.
    pub(crate) fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            begin: conn.prepare("BEGIN IMMEDIATE")?,
            commit: conn.prepare("COMMIT")?,
            savepoint: conn.prepare("SAVEPOINT write")?,
            release: conn.prepare("RELEASE write")?,
            rollback_to: conn.prepare("ROLLBACK TO write")?,
            insert: conn.prepare(&insert_sql(1))?,
            insert_chunk: conn.prepare(&insert_sql(CHUNK))?,
            // The artifact's `seq`, looked up by id: consumption is kept per `seq`.
            consume: conn.prepare(
                "INSERT OR IGNORE INTO consumptions (agent, seq) SELECT ?1, seq FROM artifacts WHERE id = ?2",
            )?,
            keep_failure: conn.prepare("INSERT INTO failures (id, record) VALUES (?1, ?2)")?,
            forget_failure: conn.prepare("DELETE FROM failures WHERE id = ?1")?,
            // The first time: the largest `seq` so far; an agent's artifacts come after.
            register_agent: conn.prepare(
                "INSERT OR IGNORE INTO agents (name, since) SELECT ?1, coalesce(max(seq), 0) FROM artifacts",
            )?,
        })
    }

    pub(crate) fn begin(&mut self) -> rusqlite::Result<()> {
        self.begin.execute([]).map(drop)
    }

    pub(crate) fn commit(&mut self) -> rusqlite::Result<()> {
        self.commit.execute([]).map(drop)
    }

    pub(crate) fn savepoint(&mut self) -> rusqlite::Result<()> {
        self.savepoint.execute([]).map(drop)
    }

    pub(crate) fn release(&mut self) -> rusqlite::Result<()> {
        self.release.execute([]).map(drop)
    }

    pub(crate) fn rollback_to(&mut self) -> rusqlite::Result<()> {
        self.rollback_to.execute([]).map(drop)
    }

    /// Inserts an artifact's row.
    pub(crate) fn insert(&mut self, row: &Row) -> rusqlite::Result<()> {
        row.bind(&mut self.insert, 0)?;
        self.insert.raw_execute().map(drop)
    }

    /// Inserts [`CHUNK`] rows with one statement: all of them, or (on an error,
    /// such as a known or repeated id) none.
    pub(crate) fn insert_chunk(&mut self, rows: &[&Row; CHUNK]) -> rusqlite::Result<()> {
        for (at, row) in rows.iter().enumerate() {
            row.bind(&mut self.insert_chunk, at)?;
        }
        self.insert_chunk.raw_execute().map(drop)
    }

    /// Records that `agent` consumed the stored artifact `input` (again: harmless).
    pub(crate) fn consume(&mut self, agent: &str, input: ArtifactId) -> rusqlite::Result<()> {
        self.consume
            .execute(params![agent, input.0.as_bytes()])
            .map(drop)
    }

    /// Keeps a failed run's record (JSON) under its id.
    pub(crate) fn keep_failure(&mut self, id: Uuid, record: &str) -> rusqlite::Result<()> {
        self.keep_failure
            .execute(params![id.as_bytes(), record])
            .map(drop)
    }

    pub(crate) fn forget_failure(&mut self, id: Uuid) -> rusqlite::Result<()> {
        self.forget_failure.execute([id.as_bytes()]).map(drop)
    }

    pub(crate) fn register_agent(&mut self, name: &str) -> rusqlite::Result<()> {
        self.register_agent.execute([name]).map(drop)
    }
}
