//! Artifacts as rows: the columns of `artifacts`, the arrays one insert binds for
//! many artifacts, and a row decoded back with the store's type registry.

use std::{collections::BTreeSet, sync::Arc};

use chrono::{DateTime, TimeDelta, Utc};
use flock_core::{Artifact, ArtifactId, StoreError, TypeRegistry, Visibility, WorkUnit};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{PostgresError, error::decode};

/// The columns every read selects, in the order [`decode`] reads them.
pub(crate) const COLUMNS: &str = "seq, id, type_name, payload, produced_by, correlation_id, \
     partition_key, tags, visibility, created_at, created_sub, version";

/// A timestamp as PostgreSQL keeps it (microseconds) and the nanoseconds below.
pub(crate) fn split_time(at: DateTime<Utc>) -> (DateTime<Utc>, i32) {
    let sub = at.timestamp_subsec_nanos() % 1_000;
    (at - TimeDelta::nanoseconds(i64::from(sub)), sub as i32)
}

fn join_time(micros: DateTime<Utc>, sub: i32) -> DateTime<Utc> {
    micros + TimeDelta::nanoseconds(i64::from(sub))
}

/// Artifacts as the parallel arrays of `Sql::insert_artifacts`.
#[derive(Default)]
pub(crate) struct Columns {
    pub(crate) ids: Vec<Uuid>,
    pub(crate) type_names: Vec<&'static str>,
    pub(crate) payloads: Vec<serde_json::Value>,
    pub(crate) produced_by: Vec<String>,
    pub(crate) correlation_ids: Vec<Option<Uuid>>,
    pub(crate) partition_keys: Vec<Option<String>>,
    pub(crate) tags: Vec<serde_json::Value>,
    pub(crate) visibility: Vec<serde_json::Value>,
    pub(crate) created_at: Vec<DateTime<Utc>>,
    pub(crate) created_sub: Vec<i32>,
    pub(crate) versions: Vec<i64>,
}

impl Columns {
    /// The columns of `artifacts`, in order.
    ///
    /// # Errors
    /// An artifact whose payload or visibility does not serialize.
    pub(crate) fn of(artifacts: &[Arc<Artifact>]) -> Result<Self, StoreError> {
        let mut c = Self::default();
        for artifact in artifacts {
            let encode = |reason: serde_json::Error| PostgresError::Encode {
                id: artifact.id.to_string(),
                reason: reason.to_string(),
            };
            let (micros, sub) = split_time(artifact.created_at);
            c.ids.push(artifact.id.0);
            c.type_names.push(artifact.type_name());
            c.payloads.push(artifact.payload.to_json().map_err(encode)?);
            c.produced_by.push(artifact.produced_by.to_string());
            c.correlation_ids.push(artifact.correlation_id());
            c.partition_keys
                .push(artifact.partition_key().map(str::to_owned));
            c.tags
                .push(serde_json::to_value(artifact.tags()).map_err(encode)?);
            c.visibility
                .push(serde_json::to_value(artifact.visibility()).map_err(encode)?);
            c.created_at.push(micros);
            c.created_sub.push(sub);
            c.versions.push(i64::from(artifact.version));
        }
        Ok(c)
    }
}

/// A row of [`COLUMNS`] as its sequence number and artifact, the payload typed when
/// `types` knows its type.
///
/// # Errors
/// A column of an unexpected type, or a stored value that no longer decodes.
pub(crate) fn decode_row(
    row: &Row,
    types: &TypeRegistry,
) -> Result<(u64, Arc<Artifact>), StoreError> {
    let id: Uuid = row.try_get(1).map_err(crate::error::db)?;
    let what = || format!("artifact {id}");
    let seq: i64 = row.try_get(0).map_err(crate::error::db)?;
    let type_name: String = row.try_get(2).map_err(crate::error::db)?;
    let payload: serde_json::Value = row.try_get(3).map_err(crate::error::db)?;
    let produced_by: String = row.try_get(4).map_err(crate::error::db)?;
    let correlation_id: Option<Uuid> = row.try_get(5).map_err(crate::error::db)?;
    let partition_key: Option<String> = row.try_get(6).map_err(crate::error::db)?;
    let tags: serde_json::Value = row.try_get(7).map_err(crate::error::db)?;
    let visibility: serde_json::Value = row.try_get(8).map_err(crate::error::db)?;
    let created_at: DateTime<Utc> = row.try_get(9).map_err(crate::error::db)?;
    let created_sub: i32 = row.try_get(10).map_err(crate::error::db)?;
    let version: i64 = row.try_get(11).map_err(crate::error::db)?;

    let payload = types
        .decode_stored(&type_name, payload)
        .map_err(|err| decode(what(), err))?;
    let mut artifact = Artifact::new_at(payload, produced_by, join_time(created_at, created_sub));
    artifact.id = ArtifactId(id);
    artifact.set_correlation_id(correlation_id);
    artifact.set_partition_key(partition_key);
    artifact.set_tags(
        serde_json::from_value::<BTreeSet<String>>(tags)
            .map_err(|err| decode(what(), format!("tags: {err}")))?,
    );
    artifact.set_visibility(
        serde_json::from_value::<Visibility>(visibility)
            .map_err(|err| decode(what(), format!("visibility: {err}")))?,
    );
    artifact.version = u32::try_from(version)
        .map_err(|_| decode(what(), format!("version {version} is out of range")))?;
    let seq = u64::try_from(seq).map_err(|_| decode(what(), format!("sequence {seq}")))?;
    Ok((seq, Arc::new(artifact)))
}

/// Rows of [`COLUMNS`] as artifacts, in their order.
///
/// # Errors
/// As [`decode_row`].
pub(crate) fn decode_all(
    rows: &[Row],
    types: &TypeRegistry,
) -> Result<Vec<Arc<Artifact>>, StoreError> {
    rows.iter()
        .map(|row| decode_row(row, types).map(|(_, artifact)| artifact))
        .collect()
}

/// A sequence number as PostgreSQL's `bigint` (numbers past its range are past
/// every stored one).
pub(crate) fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A unit's key in the `leases` table: unambiguous whatever the agent's name holds.
pub(crate) fn unit_key(unit: &WorkUnit) -> String {
    serde_json::json!([unit.agent, unit.subscription, unit.partition]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_split_into_microseconds_and_the_nanoseconds_below() {
        for text in [
            "2030-01-01T00:00:07.123456789Z",
            "1969-12-31T23:59:59.999999999Z",
            "1900-02-03T04:05:06.000000001Z",
            "2030-01-01T00:00:00Z",
        ] {
            let at: DateTime<Utc> = text.parse().unwrap();
            let (micros, sub) = split_time(at);
            assert_eq!(micros.timestamp_subsec_nanos() % 1_000, 0, "{text}");
            assert!((0..1_000).contains(&sub), "{text}");
            assert_eq!(join_time(micros, sub), at, "{text}");
        }
    }
}
