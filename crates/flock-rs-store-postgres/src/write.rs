//! Every write of the store as one transaction: artifacts stored (all of them or
//! none), consumption recorded, a failed run kept, a fence checked, listeners
//! notified; under the schema's shared order lock (see `lib.rs`).

use std::{collections::HashSet, sync::Arc};

use deadpool_postgres::Transaction;
use flock_core::{Artifact, ArtifactId, FailureRecord, StoreError, WorkUnit};
use uuid::Uuid;

use crate::{
    PostgresError,
    error::{db, pool},
    inner::Inner,
    rows::{Columns, unit_key},
};

/// What one write transaction does.
#[derive(Default)]
pub(crate) struct Write<'a> {
    /// Artifacts to store, in this order.
    pub(crate) outputs: &'a [Arc<Artifact>],
    /// An agent and the artifacts it consumed.
    pub(crate) consumed: Option<(&'a str, &'a [ArtifactId])>,
    /// A failed run to keep.
    pub(crate) failure: Option<&'a FailureRecord>,
    /// Commit only while this lease epoch of the unit is current.
    pub(crate) fence: Option<(&'a WorkUnit, u64)>,
    /// A failed run to forget (the one this write's run retried).
    pub(crate) forget: Option<Uuid>,
}

impl Inner {
    /// Carries out `write` in one transaction: all of it, or (on any error) none.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] for the first output whose id is stored or repeated,
    /// [`StoreError::Fenced`] when the fence's epoch is no longer current, or a
    /// backend failure.
    pub(crate) async fn write(&self, write: Write<'_>) -> Result<(), StoreError> {
        let consumes = write.consumed.is_some_and(|(_, inputs)| !inputs.is_empty());
        if write.outputs.is_empty()
            && !consumes
            && write.failure.is_none()
            && write.fence.is_none()
            && write.forget.is_none()
        {
            return Ok(());
        }
        // Encoding may fail on a payload; find out before taking a connection.
        let columns = Columns::of(write.outputs)?;
        let mut client = self.pool.get().await.map_err(pool)?;
        let tx = client.transaction().await.map_err(db)?;
        match self.write_in(&tx, &write, &columns).await {
            Ok(()) => tx.commit().await.map_err(db),
            Err(err) => {
                // A failed rollback leaves the transaction to the connection's
                // reset; the error that matters is the first one.
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    async fn write_in(
        &self,
        tx: &Transaction<'_>,
        write: &Write<'_>,
        c: &Columns,
    ) -> Result<(), StoreError> {
        let lock = tx.prepare_cached(&self.sql.lock_shared).await.map_err(db)?;
        tx.execute(&lock, &[&self.keys.order]).await.map_err(db)?;
        if let Some((unit, epoch)) = write.fence {
            self.check_fence(tx, unit, epoch).await?;
        }
        if !write.outputs.is_empty() {
            let insert = tx
                .prepare_cached(&self.sql.insert_artifacts)
                .await
                .map_err(db)?;
            let rows = tx
                .query(
                    &insert,
                    &[
                        &c.ids,
                        &c.type_names,
                        &c.payloads,
                        &c.produced_by,
                        &c.correlation_ids,
                        &c.partition_keys,
                        &c.tags,
                        &c.visibility,
                        &c.created_at,
                        &c.created_sub,
                        &c.versions,
                    ],
                )
                .await
                .map_err(db)?;
            let inserted = rows
                .iter()
                .map(|row| row.try_get::<_, Uuid>(0))
                .collect::<Result<HashSet<Uuid>, _>>()
                .map_err(db)?;
            if let Some(id) = first_duplicate(write.outputs, &inserted) {
                return Err(StoreError::Duplicate(id));
            }
        }
        if let Some(failure) = write.failure {
            let record = serde_json::to_value(failure).map_err(|err| PostgresError::Encode {
                id: failure.workflow_error.to_string(),
                reason: format!("failed run {}: {err}", failure.id),
            })?;
            let insert = tx
                .prepare_cached(&self.sql.insert_failure)
                .await
                .map_err(db)?;
            tx.execute(&insert, &[&failure.id, &failure.agent, &record])
                .await
                .map_err(db)?;
        }
        if let Some(id) = write.forget {
            let forget = tx
                .prepare_cached(&self.sql.delete_failure)
                .await
                .map_err(db)?;
            tx.execute(&forget, &[&id]).await.map_err(db)?;
        }
        if let Some((agent, inputs)) = write.consumed
            && !inputs.is_empty()
        {
            let ids: Vec<Uuid> = inputs.iter().map(|id| id.0).collect();
            let insert = tx
                .prepare_cached(&self.sql.insert_consumed)
                .await
                .map_err(db)?;
            tx.execute(&insert, &[&agent, &ids]).await.map_err(db)?;
        }
        if !write.outputs.is_empty() {
            let notify = tx.prepare_cached(&self.sql.notify).await.map_err(db)?;
            tx.execute(&notify, &[&self.sql.channel])
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    /// Locks the unit's lease row (`FOR SHARE`: no balancer takes it until this
    /// transaction ends) and checks that `epoch` is its current, unexpired epoch.
    async fn check_fence(
        &self,
        tx: &Transaction<'_>,
        unit: &WorkUnit,
        epoch: u64,
    ) -> Result<(), StoreError> {
        let fence = tx.prepare_cached(&self.sql.fence).await.map_err(db)?;
        let row = tx.query_opt(&fence, &[&unit_key(unit)]).await.map_err(db)?;
        let current = match row {
            Some(row) => {
                let held: i64 = row.try_get(0).map_err(db)?;
                let live: bool = row.try_get(1).map_err(db)?;
                live && u64::try_from(held) == Ok(epoch)
            }
            None => false,
        };
        if current {
            Ok(())
        } else {
            Err(StoreError::Fenced {
                unit: unit.to_string(),
                epoch,
            })
        }
    }
}

/// The first artifact whose id was stored before (the insert skipped it) or
/// repeats an earlier one of `artifacts`.
fn first_duplicate(artifacts: &[Arc<Artifact>], inserted: &HashSet<Uuid>) -> Option<ArtifactId> {
    let mut seen = HashSet::with_capacity(artifacts.len());
    artifacts
        .iter()
        .find(|a| !seen.insert(a.id) || !inserted.contains(&a.id.0))
        .map(|a| a.id)
}
