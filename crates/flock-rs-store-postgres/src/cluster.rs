//! `ClusterStore` for PostgreSQL: members with expiry, leases on units of work
//! (taken and renewed in one transaction per `balance`, epochs for fencing), the
//! feed in settled store order, and `head`.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use flock_core::{Artifact, ClusterStore, Fed, Lease, StoreError, WorkUnit};
use tokio_postgres::Row;

use crate::{
    PostgresStore,
    error::{db, decode, pool},
    inner::Inner,
    rows::{decode_row, seq_param, unit_key},
};

/// A duration as the microseconds the statements add to the server's clock.
fn micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)
}

/// A row of `unit, agent, subscription, partition, epoch, expires_at`.
fn lease(row: &Row) -> Result<Lease, StoreError> {
    let unit: String = row.try_get(0).map_err(db)?;
    let what = || format!("lease of {unit}");
    let agent: String = row.try_get(1).map_err(db)?;
    let subscription: i64 = row.try_get(2).map_err(db)?;
    let partition: Option<i64> = row.try_get(3).map_err(db)?;
    let epoch: i64 = row.try_get(4).map_err(db)?;
    let expires_at: DateTime<Utc> = row.try_get(5).map_err(db)?;
    Ok(Lease {
        unit: WorkUnit {
            agent,
            subscription: usize::try_from(subscription)
                .map_err(|_| decode(what(), format!("subscription {subscription}")))?,
            partition: partition
                .map(u32::try_from)
                .transpose()
                .map_err(|_| decode(what(), format!("partition {partition:?}")))?,
        },
        epoch: u64::try_from(epoch).map_err(|_| decode(what(), format!("epoch {epoch}")))?,
        expires_at,
    })
}

impl Inner {
    /// The last sequence number handed out, once every transaction that holds one
    /// has ended: nothing numbered at or below it can appear later.
    pub(crate) async fn settled_head(&self) -> Result<u64, StoreError> {
        let mut client = self.pool.get().await.map_err(pool)?;
        let lock = client
            .prepare_cached(&self.sql.lock_exclusive)
            .await
            .map_err(db)?;
        let last = client
            .prepare_cached(&self.sql.last_seq)
            .await
            .map_err(db)?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(&lock, &[&self.keys.order]).await.map_err(db)?;
        let head: i64 = tx
            .query_one(&last, &[])
            .await
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        u64::try_from(head).map_err(|_| decode("sequence", head))
    }

    async fn balance(
        &self,
        process: &str,
        units: &[WorkUnit],
        want: usize,
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        if units.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = units.iter().map(unit_key).collect();
        let agents: Vec<&str> = units.iter().map(|u| u.agent.as_str()).collect();
        let subscriptions: Vec<i64> = units
            .iter()
            .map(|u| i64::try_from(u.subscription).unwrap_or(i64::MAX))
            .collect();
        let partitions: Vec<Option<i64>> =
            units.iter().map(|u| u.partition.map(i64::from)).collect();
        let mut client = self.pool.get().await.map_err(pool)?;
        // Rows for new units first, in a statement of its own (in key order, so
        // processes adding the same units do not deadlock).
        let ensure = client
            .prepare_cached(&self.sql.ensure_units)
            .await
            .map_err(db)?;
        client
            .execute(&ensure, &[&keys, &agents, &subscriptions, &partitions])
            .await
            .map_err(db)?;

        let tx = client.transaction().await.map_err(db)?;
        // Its own rows, waiting for any lock on them (a commit checking its fence
        // holds one for a moment): a renewal is never skipped.
        let mine = tx.prepare_cached(&self.sql.lock_mine).await.map_err(db)?;
        let mut live = Vec::new();
        let mut lapsed = Vec::new();
        for row in tx.query(&mine, &[&keys, &process]).await.map_err(db)? {
            let unit: String = row.try_get(0).map_err(db)?;
            if row.try_get::<_, bool>(1).map_err(db)? {
                live.push(unit);
            } else {
                lapsed.push(unit);
            }
        }
        // Other rows: those another transaction holds are being balanced or
        // committed by their owner; skip them.
        let others = tx.prepare_cached(&self.sql.lock_others).await.map_err(db)?;
        let mut free = Vec::new();
        for row in tx.query(&others, &[&keys, &process]).await.map_err(db)? {
            if row.try_get::<_, bool>(1).map_err(db)? {
                free.push(row.try_get::<_, String>(0).map_err(db)?);
            }
        }
        let give_up = live.split_off(want.min(live.len()));
        let take: Vec<String> = lapsed
            .into_iter()
            .chain(free)
            .take(want - live.len())
            .collect();

        let ttl = micros(ttl);
        let mut leases = Vec::with_capacity(live.len() + take.len());
        if !live.is_empty() {
            let renew = tx.prepare_cached(&self.sql.renew).await.map_err(db)?;
            for row in tx.query(&renew, &[&live, &ttl]).await.map_err(db)? {
                leases.push(lease(&row)?);
            }
        }
        if !take.is_empty() {
            let taking = tx.prepare_cached(&self.sql.take).await.map_err(db)?;
            for row in tx
                .query(&taking, &[&take, &ttl, &process])
                .await
                .map_err(db)?
            {
                leases.push(lease(&row)?);
            }
        }
        if !give_up.is_empty() {
            let release = tx.prepare_cached(&self.sql.give_up).await.map_err(db)?;
            tx.execute(&release, &[&give_up]).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        leases.sort_by(|a, b| a.unit.cmp(&b.unit));
        Ok(leases)
    }

    async fn feed(&self, after: u64, limit: usize) -> Result<Vec<Fed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Nothing committed after `after`: no need to wait for writers in flight.
        let client = self.pool.get().await.map_err(pool)?;
        let any = client
            .prepare_cached(&self.sql.any_after)
            .await
            .map_err(db)?;
        let any: bool = client
            .query_one(&any, &[&seq_param(after)])
            .await
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        drop(client);
        if !any {
            return Ok(Vec::new());
        }
        let head = self.settled_head().await?;
        let client = self.pool.get().await.map_err(pool)?;
        let feed = client.prepare_cached(&self.sql.feed).await.map_err(db)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&feed, &[&seq_param(after), &seq_param(head), &limit])
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| decode_row(row, &self.types))
            .collect()
    }
}

#[async_trait]
impl ClusterStore for PostgresStore {
    async fn heartbeat(&self, process: &str, ttl: Duration) -> Result<Vec<String>, StoreError> {
        let inner = self.inner();
        let client = inner.pool.get().await.map_err(pool)?;
        let beat = client
            .prepare_cached(&inner.sql.heartbeat)
            .await
            .map_err(db)?;
        client
            .execute(&beat, &[&process, &micros(ttl)])
            .await
            .map_err(db)?;
        let members = client
            .prepare_cached(&inner.sql.members)
            .await
            .map_err(db)?;
        client
            .query(&members, &[])
            .await
            .map_err(db)?
            .iter()
            .map(|row| row.try_get(0).map_err(db))
            .collect()
    }

    async fn balance(
        &self,
        process: &str,
        units: &[WorkUnit],
        want: usize,
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        self.inner().balance(process, units, want, ttl).await
    }

    /// Gives up `process`'s leases and its membership (it stops).
    async fn release(&self, process: &str) -> Result<(), StoreError> {
        let inner = self.inner();
        let mut client = inner.pool.get().await.map_err(pool)?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(&inner.sql.release, &[&process])
            .await
            .map_err(db)?;
        tx.execute(&inner.sql.leave, &[&process])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn feed(&self, after: u64, limit: usize) -> Result<Vec<Fed>, StoreError> {
        self.inner().feed(after, limit).await
    }

    async fn unconsumed_through(
        &self,
        agent: &str,
        types: &[&str],
        through: u64,
    ) -> Result<Vec<Arc<Artifact>>, StoreError> {
        self.inner().unconsumed(agent, Some((types, through))).await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        self.inner().settled_head().await
    }

    async fn wait_for_more(&self, after: u64, timeout: Duration) -> Result<(), StoreError> {
        self.inner().wait_for_more(after, timeout).await
    }
}
