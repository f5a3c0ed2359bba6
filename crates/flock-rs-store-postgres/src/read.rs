//! Reads: one artifact, the count, filtered queries (conditions in SQL, visibility
//! in Rust), what an agent has not consumed, the failed runs, and waiting for
//! more.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use flock_core::{Artifact, ArtifactFilter, ArtifactId, FailureRecord, StoreError};
use tokio_postgres::types::ToSql;

use crate::{
    error::{db, decode, pool},
    inner::Inner,
    rows::{decode_all, decode_row, seq_param, split_time},
};

/// Parameters of a statement built at run time.
#[derive(Default)]
struct Params {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Params {
    /// Binds `value`, returning its placeholder (`$n`).
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| &**v as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The wall clock, for a visibility filter without `as_of` (as `InMemoryStore`).
#[expect(
    clippy::disallowed_methods,
    reason = "a filter without `as_of` judges visibility at the wall clock's now"
)]
fn wall_clock() -> DateTime<Utc> {
    Utc::now()
}

impl Inner {
    async fn any_after(&self, after: u64) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(pool)?;
        let any = client
            .prepare_cached(&self.sql.any_after)
            .await
            .map_err(db)?;
        client
            .query_one(&any, &[&seq_param(after)])
            .await
            .map_err(db)?
            .try_get(0)
            .map_err(db)
    }

    /// Resolves when an artifact after `after` is stored (at once if one is), a
    /// notification or a reconnection of the listener suggests one may be, or
    /// `timeout` passes.
    pub(crate) async fn wait_for_more(
        &self,
        after: u64,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let listener = self.listener.get(&self.config, &self.sql.channel);
        listener.wait(timeout, self.any_after(after)).await
    }

    pub(crate) async fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, StoreError> {
        let client = self.pool.get().await.map_err(pool)?;
        let get = client.prepare_cached(&self.sql.get).await.map_err(db)?;
        let row = client.query_opt(&get, &[&id.0]).await.map_err(db)?;
        row.map(|row| decode_row(&row, &self.types).map(|(_, a)| a))
            .transpose()
    }

    pub(crate) async fn count(&self) -> Result<usize, StoreError> {
        let client = self.pool.get().await.map_err(pool)?;
        let count = client.prepare_cached(&self.sql.count).await.map_err(db)?;
        let n: i64 = client
            .query_one(&count, &[])
            .await
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        usize::try_from(n).map_err(|_| decode("count", format!("{n} artifacts")))
    }

    /// The artifacts matching `filter`, oldest first. Every condition but
    /// visibility is SQL; with visibility, rows are checked here and the limit
    /// applied after.
    pub(crate) async fn query(
        &self,
        filter: &ArtifactFilter,
    ) -> Result<Vec<Arc<Artifact>>, StoreError> {
        let mut params = Params::default();
        let mut conditions = Vec::new();
        if let Some(names) = &filter.type_names {
            let names: Vec<String> = names.iter().cloned().collect();
            conditions.push(format!("type_name = ANY({}::text[])", params.bind(names)));
        }
        if let Some(producers) = &filter.produced_by {
            let producers: Vec<String> = producers.iter().cloned().collect();
            conditions.push(format!(
                "produced_by = ANY({}::text[])",
                params.bind(producers)
            ));
        }
        if let Some(id) = filter.correlation_id {
            conditions.push(format!("correlation_id = {}::uuid", params.bind(id)));
        }
        if !filter.tags.is_empty() {
            let tags: Vec<String> = filter.tags.iter().cloned().collect();
            conditions.push(format!("tags ?| {}::text[]", params.bind(tags)));
        }
        // Timestamps compare as (microseconds, nanoseconds below): exact.
        if let Some(after) = filter.created_after {
            let (micros, sub) = split_time(after);
            conditions.push(format!(
                "(created_at, created_sub) >= ({}::timestamptz, {}::int4)",
                params.bind(micros),
                params.bind(sub)
            ));
        }
        if let Some(before) = filter.created_before {
            let (micros, sub) = split_time(before);
            conditions.push(format!(
                "(created_at, created_sub) < ({}::timestamptz, {}::int4)",
                params.bind(micros),
                params.bind(sub)
            ));
        }
        let mut sql = self.sql.select.clone();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY seq");
        let limit = filter.limit.unwrap_or(usize::MAX);
        if filter.visible_to.is_none() && filter.limit.is_some() {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            sql.push_str(&format!(" LIMIT {}::int8", params.bind(limit)));
        }
        let client = self.pool.get().await.map_err(pool)?;
        let rows = client.query(&sql, &params.refs()).await.map_err(db)?;
        let artifacts = decode_all(&rows, &self.types)?;
        Ok(match &filter.visible_to {
            None => artifacts,
            Some(_) => {
                let now = filter.as_of.unwrap_or_else(wall_clock);
                artifacts
                    .into_iter()
                    .filter(|a| filter.matches(a, now))
                    .take(limit)
                    .collect()
            }
        })
    }

    /// What `agent` has not consumed since it was first recorded, in store order;
    /// with `(types, through)`, only artifacts of those types up to that sequence.
    pub(crate) async fn unconsumed(
        &self,
        agent: &str,
        through: Option<(&[&str], u64)>,
    ) -> Result<Vec<Arc<Artifact>>, StoreError> {
        let client = self.pool.get().await.map_err(pool)?;
        let rows = match through {
            None => {
                let unconsumed = client
                    .prepare_cached(&self.sql.unconsumed)
                    .await
                    .map_err(db)?;
                client.query(&unconsumed, &[&agent]).await
            }
            Some((types, through)) => {
                let unconsumed = client
                    .prepare_cached(&self.sql.unconsumed_through)
                    .await
                    .map_err(db)?;
                client
                    .query(&unconsumed, &[&agent, &seq_param(through), &types])
                    .await
            }
        }
        .map_err(db)?;
        decode_all(&rows, &self.types)
    }

    pub(crate) async fn failures(&self) -> Result<Vec<FailureRecord>, StoreError> {
        let client = self.pool.get().await.map_err(pool)?;
        let failures = client
            .prepare_cached(&self.sql.failures)
            .await
            .map_err(db)?;
        let rows = client.query(&failures, &[]).await.map_err(db)?;
        rows.iter()
            .map(|row| {
                let record: serde_json::Value = row.try_get(0).map_err(db)?;
                serde_json::from_value(record).map_err(|err| decode("failed run", err))
            })
            .collect()
    }

    pub(crate) async fn forget_failure(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool)?;
        let forget = client
            .prepare_cached(&self.sql.delete_failure)
            .await
            .map_err(db)?;
        client.execute(&forget, &[&id]).await.map_err(db)?;
        Ok(())
    }
}
