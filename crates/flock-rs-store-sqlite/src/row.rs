//! Artifacts as rows: encoded by the publishing task (so JSON is produced on the
//! publishers' threads, not the writer's), decoded by readers through the store's
//! type registry.

use std::{collections::BTreeSet, path::Path, sync::Arc};

use chrono::{DateTime, Datelike, Utc};
use flock_core::{Artifact, ArtifactId, TypeRegistry, Visibility};
use rusqlite::Statement;
use uuid::Uuid;

use crate::SqliteError;

/// The columns a query selects to decode an artifact, in [`decode`]'s order.
pub(crate) const COLUMNS: &str = "id, type_name, produced_by, correlation_id, partition_key, tags, visibility, created_at, version, payload";

/// The columns of an artifact's row, in the order [`Row::bind`] binds them.
const INSERT_COLUMNS: &str = "INSERT INTO artifacts (id, type_name, produced_by, correlation_id, partition_key, tags, visibility, created_at, version, payload) VALUES ";

/// The parameters [`Row::bind`] binds per row.
pub(crate) const PARAMETERS: usize = 10;

/// Inserts `rows` artifacts with one statement: `(?1, .., ?10), (?11, .., ?20), ..`,
/// each row bound by [`Row::bind`] at its offset.
pub(crate) fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(INSERT_COLUMNS);
    for row in 0..rows {
        let first = row * PARAMETERS + 1;
        let marks: Vec<String> = (first..first + PARAMETERS)
            .map(|i| format!("?{i}"))
            .collect();
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&marks.join(", "));
        sql.push(')');
    }
    sql
}

/// An artifact ready to insert.
pub(crate) struct Row {
    pub(crate) id: ArtifactId,
    type_name: &'static str,
    produced_by: Arc<str>,
    correlation_id: Option<Uuid>,
    partition_key: Option<String>,
    /// `None` for no tags, the most common case (`NULL`, not `[]`: less to store).
    tags: Option<String>,
    /// `None` for `Visibility::Public`, the most common case.
    visibility: Option<String>,
    created_at: i64,
    version: u32,
    payload: String,
}

impl Row {
    /// Encodes `artifact`: payload, tags and visibility as JSON, `created_at` as
    /// nanoseconds since the Unix epoch.
    pub(crate) fn encode(artifact: &Artifact) -> Result<Self, SqliteError> {
        let fail = |reason: String| SqliteError::Encode {
            id: artifact.id,
            reason,
        };
        let created_at = artifact.created_at.timestamp_nanos_opt().ok_or_else(|| {
            fail(format!(
                "created_at {} is outside the years 1677 to 2262 that the store keeps to the nanosecond",
                artifact.created_at
            ))
        })?;
        let payload = artifact
            .payload
            .to_json_string()
            .map_err(|e| fail(format!("its payload does not serialize: {e}")))?;
        let tags = match artifact.tags().is_empty() {
            true => None,
            false => Some(serde_json::to_string(artifact.tags()).map_err(|e| fail(e.to_string()))?),
        };
        let visibility = match artifact.visibility() {
            Visibility::Public => None,
            visibility => Some(serde_json::to_string(visibility).map_err(|e| fail(e.to_string()))?),
        };
        Ok(Self {
            id: artifact.id,
            type_name: artifact.type_name(),
            produced_by: artifact.produced_by.clone(),
            correlation_id: artifact.correlation_id(),
            partition_key: artifact.partition_key().map(str::to_owned),
            tags,
            visibility,
            created_at,
            version: artifact.version,
            payload,
        })
    }

    /// Binds the row to the parameters of row `at` (from 0) of an [`insert_sql`]
    /// statement. Every parameter is bound each time (`NULL`s too), so nothing of
    /// the previous row remains.
    pub(crate) fn bind(&self, insert: &mut Statement<'_>, at: usize) -> rusqlite::Result<()> {
        let first = at * PARAMETERS;
        insert.raw_bind_parameter(first + 1, self.id.0.as_bytes())?;
        insert.raw_bind_parameter(first + 2, self.type_name)?;
        insert.raw_bind_parameter(first + 3, &*self.produced_by)?;
        insert.raw_bind_parameter(first + 4, self.correlation_id.as_ref().map(Uuid::as_bytes))?;
        insert.raw_bind_parameter(first + 5, self.partition_key.as_deref())?;
        insert.raw_bind_parameter(first + 6, self.tags.as_deref())?;
        insert.raw_bind_parameter(first + 7, self.visibility.as_deref())?;
        insert.raw_bind_parameter(first + 8, self.created_at)?;
        insert.raw_bind_parameter(first + 9, self.version)?;
        insert.raw_bind_parameter(first + 10, self.payload.as_str())
    }
}

/// A bound of a created range as nanoseconds: the instants the store cannot hold
/// lie beyond every stored one, so they saturate.
pub(crate) fn nanos_bound(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt()
        .unwrap_or(if at.year() > 1970 { i64::MAX } else { i64::MIN })
}

pub(crate) fn uuid(bytes: &[u8]) -> Result<Uuid, String> {
    Uuid::from_slice(bytes).map_err(|e| format!("an id of {} bytes: {e}", bytes.len()))
}

fn text<'a>(row: &'a rusqlite::Row<'_>, column: usize) -> rusqlite::Result<&'a str> {
    Ok(row.get_ref(column)?.as_str()?)
}

fn text_or_null<'a>(
    row: &'a rusqlite::Row<'_>,
    column: usize,
) -> rusqlite::Result<Option<&'a str>> {
    Ok(row.get_ref(column)?.as_str_or_null()?)
}

/// The metadata of a stored artifact, before its payload is decoded (visibility is
/// judged on it, so hidden artifacts are never decoded).
pub(crate) struct Stored<'a, 'stmt> {
    row: &'a rusqlite::Row<'stmt>,
    pub(crate) id: ArtifactId,
    pub(crate) visibility: Visibility,
    pub(crate) created_at: DateTime<Utc>,
}

impl<'a, 'stmt> Stored<'a, 'stmt> {
    /// Reads the id, visibility and creation time of a row selected with [`COLUMNS`].
    pub(crate) fn read(row: &'a rusqlite::Row<'stmt>, path: &Path) -> Result<Self, SqliteError> {
        let id = row
            .get_ref(0)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(|e| e.to_string())
            .and_then(uuid)
            .map_err(|e| SqliteError::decode(path, "artifact id".to_owned(), e))?;
        let id = ArtifactId(id);
        let bad = |reason: String| SqliteError::decode(path, format!("artifact {id}"), reason);
        let visibility = match text_or_null(row, 6).map_err(|e| bad(e.to_string()))? {
            None => Visibility::Public,
            Some(json) => {
                serde_json::from_str(json).map_err(|e| bad(format!("visibility: {e}")))?
            }
        };
        let created_at =
            DateTime::from_timestamp_nanos(row.get(7).map_err(|e| bad(e.to_string()))?);
        Ok(Self {
            row,
            id,
            visibility,
            created_at,
        })
    }

    /// The whole artifact, its payload decoded with `types`: typed when its type is
    /// registered, raw JSON otherwise.
    pub(crate) fn decode(self, types: &TypeRegistry, path: &Path) -> Result<Artifact, SqliteError> {
        let Self {
            row,
            id,
            visibility,
            created_at,
        } = self;
        let bad = |reason: String| SqliteError::decode(path, format!("artifact {id}"), reason);
        let column = |e: rusqlite::Error| bad(e.to_string());
        let type_name = text(row, 1).map_err(column)?;
        let value: serde_json::Value = serde_json::from_str(text(row, 9).map_err(column)?)
            .map_err(|e| bad(format!("payload: {e}")))?;
        let payload = types.decode_stored(type_name, value).map_err(|e| {
            SqliteError::decode(path, format!("artifact {id} of type '{type_name}'"), e)
        })?;
        let produced_by: Arc<str> = text(row, 2).map_err(column)?.into();
        let mut artifact = Artifact::new_at(payload, produced_by, created_at);
        artifact.id = id;
        artifact.set_visibility(visibility);
        artifact.set_correlation_id(match row.get_ref(3).map_err(column)?.as_blob_or_null() {
            Ok(Some(bytes)) => Some(uuid(bytes).map_err(bad)?),
            Ok(None) => None,
            Err(e) => return Err(bad(e.to_string())),
        });
        artifact.set_partition_key(row.get(4).map_err(column)?);
        artifact.set_tags(match text_or_null(row, 5).map_err(column)? {
            None => BTreeSet::new(),
            Some(json) => serde_json::from_str(json).map_err(|e| bad(format!("tags: {e}")))?,
        });
        artifact.version = row.get(8).map_err(column)?;
        Ok(artifact)
    }
}
