//! The read side: a pool of read connections (in WAL mode they never wait for the
//! writer) and every query of the store, filtered in SQL where SQL can, by
//! visibility in Rust.

use std::{path::Path, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use flock_core::{Artifact, ArtifactFilter, ArtifactId, FailureRecord, TypeRegistry};
use parking_lot::Mutex;
use rusqlite::{Connection, types::Value};

use crate::{
    SqliteError,
    row::{COLUMNS, Stored, nanos_bound},
    schema,
};

/// Read connections kept open between queries (more may be open at once; the
/// extra ones are closed after their query).
const IDLE_READERS: usize = 8;

/// What every read needs: the file, its read connections, the type registry.
pub(crate) struct Readers {
    pub(crate) path: Arc<Path>,
    pub(crate) types: TypeRegistry,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: Arc<Path>, types: TypeRegistry, busy_timeout: Duration) -> Self {
        Self {
            path,
            types,
            busy_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on an idle read connection, or a new one.
    fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, SqliteError>,
    ) -> Result<T, SqliteError> {
        let idle = self.idle.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => schema::open_reader(&self.path, self.busy_timeout)?,
        };
        let result = read(&conn);
        let mut idle = self.idle.lock();
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        result
    }

    fn failed(&self, action: &'static str) -> impl FnOnce(rusqlite::Error) -> SqliteError + '_ {
        SqliteError::doing(&self.path, action)
    }

    /// Runs a query selecting [`COLUMNS`] and decodes the rows that `keep` accepts
    /// (judged on id, visibility and creation time, before the payload is decoded),
    /// up to `limit` of them.
    fn artifacts(
        &self,
        sql: &str,
        params: &[Value],
        limit: Option<usize>,
        keep: impl Fn(&Stored<'_, '_>) -> bool,
    ) -> Result<Vec<Arc<Artifact>>, SqliteError> {
        self.with(|conn| {
            let mut statement = conn
                .prepare_cached(sql)
                .map_err(self.failed("prepare a query"))?;
            let mut rows = statement
                .query(rusqlite::params_from_iter(params))
                .map_err(self.failed("run a query"))?;
            let mut out = Vec::new();
            let limit = limit.unwrap_or(usize::MAX);
            while out.len() < limit {
                let Some(row) = rows.next().map_err(self.failed("read a row"))? else {
                    break;
                };
                let stored = Stored::read(row, &self.path)?;
                if keep(&stored) {
                    out.push(Arc::new(stored.decode(&self.types, &self.path)?));
                }
            }
            Ok(out)
        })
    }

    pub(crate) fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, SqliteError> {
        let sql = format!("SELECT {COLUMNS} FROM artifacts WHERE id = ?1");
        let found = self.artifacts(&sql, &[Value::Blob(id.0.as_bytes().to_vec())], None, |_| {
            true
        })?;
        Ok(found.into_iter().next())
    }

    /// The largest `seq`: artifacts are never deleted and each takes the next
    /// `seq` from 1 (a rolled-back insert leaves no gap), so it is the count, read
    /// from the end of the table instead of counting every row.
    pub(crate) fn count(&self) -> Result<usize, SqliteError> {
        self.with(|conn| {
            let count: i64 = conn
                .prepare_cached("SELECT coalesce(max(seq), 0) FROM artifacts")
                .and_then(|mut count| count.query_row([], |row| row.get(0)))
                .map_err(self.failed("count the artifacts"))?;
            Ok(usize::try_from(count).unwrap_or(usize::MAX))
        })
    }

    pub(crate) fn query(
        &self,
        filter: &ArtifactFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<Arc<Artifact>>, SqliteError> {
        let (sql, params) = select(filter);
        let Some(identity) = &filter.visible_to else {
            // Without an identity SQL applies the limit itself.
            return self.artifacts(&sql, &params, None, |_| true);
        };
        self.artifacts(&sql, &params, filter.limit, |stored| {
            stored.visibility.allows(identity, stored.created_at, now)
        })
    }

    pub(crate) fn unconsumed(&self, agent: &str) -> Result<Vec<Arc<Artifact>>, SqliteError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM artifacts AS a
             WHERE a.seq > (SELECT since FROM agents WHERE name = ?1)
               AND NOT EXISTS (SELECT 1 FROM consumptions AS c WHERE c.agent = ?1 AND c.seq = a.seq)
             ORDER BY a.seq"
        );
        self.artifacts(&sql, &[Value::Text(agent.to_owned())], None, |_| true)
    }

    pub(crate) fn failures(&self) -> Result<Vec<FailureRecord>, SqliteError> {
        self.with(|conn| {
            let mut statement = conn
                .prepare_cached("SELECT id, record FROM failures ORDER BY seq")
                .map_err(self.failed("prepare a query"))?;
            let mut rows = statement
                .query([])
                .map_err(self.failed("read the failed runs"))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(self.failed("read a failed run"))? {
                let json: String = row.get(1).map_err(self.failed("read a failed run"))?;
                let record = serde_json::from_str(&json).map_err(|e| {
                    let id = row
                        .get_ref(0)
                        .ok()
                        .and_then(|id| id.as_blob().ok())
                        .and_then(|id| crate::row::uuid(id).ok());
                    let what = match id {
                        Some(id) => format!("failed run {id}"),
                        None => "a failed run".to_owned(),
                    };
                    SqliteError::decode(&self.path, what, e)
                })?;
                out.push(record);
            }
            Ok(out)
        })
    }
}

/// The SQL of a filter, except visibility (judged in Rust on the rows it returns),
/// oldest first; the limit is in the SQL when no visibility is judged.
fn select(filter: &ArtifactFilter) -> (String, Vec<Value>) {
    let mut sql = format!("SELECT {COLUMNS} FROM artifacts WHERE 1");
    let mut params = Vec::new();
    let mut any_of = |sql: &mut String, column: &str, values: &mut dyn Iterator<Item = Value>| {
        let start = params.len();
        params.extend(values);
        let marks = vec!["?"; params.len() - start].join(", ");
        sql.push_str(&format!(" AND {column} IN ({marks})"));
    };
    if let Some(types) = &filter.type_names {
        any_of(
            &mut sql,
            "type_name",
            &mut types.iter().cloned().map(Value::Text),
        );
    }
    if let Some(producers) = &filter.produced_by {
        any_of(
            &mut sql,
            "produced_by",
            &mut producers.iter().cloned().map(Value::Text),
        );
    }
    if !filter.tags.is_empty() {
        any_of(
            &mut sql,
            "EXISTS (SELECT 1 FROM json_each(artifacts.tags) WHERE json_each.value",
            &mut filter.tags.iter().cloned().map(Value::Text),
        );
        sql.push(')');
    }
    if let Some(id) = filter.correlation_id {
        sql.push_str(" AND correlation_id = ?");
        params.push(Value::Blob(id.as_bytes().to_vec()));
    }
    if let Some(after) = filter.created_after {
        sql.push_str(" AND created_at >= ?");
        params.push(Value::Integer(nanos_bound(after)));
    }
    if let Some(before) = filter.created_before {
        sql.push_str(" AND created_at < ?");
        params.push(Value::Integer(nanos_bound(before)));
    }
    sql.push_str(" ORDER BY seq");
    if let (Some(limit), None) = (filter.limit, &filter.visible_to) {
        sql.push_str(" LIMIT ?");
        params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    }
    (sql, params)
}
