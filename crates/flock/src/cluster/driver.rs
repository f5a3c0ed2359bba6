//! The cluster driver: one task per process. It heartbeats, balances leases every
//! third of the lease time (taking a fair share: the units divided by the live
//! processes), collects again what newly owned units had not consumed, and reads
//! the feed in sequence order, waiting on the store's notifications in between.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use flock_core::{ArtifactId, StoreError};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{Owned, UnitKey};
use crate::runtime::Runtime;

/// Artifacts read from the feed at once.
const FEED_BATCH: usize = 512;

/// Starts the driver of `runtime`'s cluster.
pub(crate) fn spawn(runtime: &Arc<Runtime>) {
    tokio::spawn(run(Arc::downgrade(runtime)));
}

async fn run(runtime: Weak<Runtime>) {
    let Some(start) = runtime.upgrade() else {
        return;
    };
    let membership = start.membership().expect("in a cluster").clone();
    let store = start.cluster_store();
    let every = membership.config.lease / 3;
    drop(start);
    let mut cursor = loop {
        match store.head().await {
            Ok(head) => break head,
            Err(error) => {
                tracing::warn!(%error, "cannot read the cluster's feed position; retrying");
                tokio::time::sleep(every).await;
            }
        }
    };
    if let Some(runtime) = runtime.upgrade() {
        runtime.set_cursor(cursor);
    }
    let mut balanced_at: Option<std::time::Instant> = None;
    loop {
        let Some(rt) = runtime.upgrade() else {
            return;
        };
        if rt.cluster_stopped() {
            return;
        }
        let now = rt.now().mono;
        if balanced_at.is_none_or(|at| now.saturating_duration_since(at) >= every) {
            if let Err(error) = balance(&rt, cursor).await {
                tracing::warn!(%error, "cluster balance failed; units held stay until their leases lapse");
            }
            balanced_at = Some(rt.now().mono);
        }
        match store.feed(cursor, FEED_BATCH).await {
            Ok(fed) if !fed.is_empty() => {
                for (seq, artifact) in fed {
                    rt.collect_fed(seq, artifact);
                    cursor = seq;
                }
                rt.set_cursor(cursor);
            }
            Ok(_) => {
                drop(rt);
                if let Err(error) = store.wait_for_more(cursor, every).await {
                    tracing::warn!(%error, "waiting for the cluster's feed failed");
                    tokio::time::sleep(every.min(Duration::from_millis(200))).await;
                }
            }
            Err(error) => {
                drop(rt);
                tracing::warn!(%error, "reading the cluster's feed failed; retrying");
                tokio::time::sleep(every.min(Duration::from_millis(200))).await;
            }
        }
    }
}

/// Heartbeats, balances the leases, and takes over newly owned units.
async fn balance(runtime: &Arc<Runtime>, cursor: u64) -> Result<(), StoreError> {
    let membership = runtime.membership().expect("in a cluster").clone();
    let store = runtime.cluster_store();
    let config = &membership.config;
    let agents = runtime.agents();
    let units = membership.units(&agents);
    let members = store.heartbeat(&config.process, config.lease).await?;
    let want = units.len().div_ceil(members.len().max(1));
    let names: Vec<_> = units.iter().map(|(_, unit)| unit.clone()).collect();
    let leases = store
        .balance(&config.process, &names, want, config.lease)
        .await?;
    let by_name: FxHashMap<_, UnitKey> = units.into_iter().map(|(key, unit)| (unit, key)).collect();
    let mut owned: FxHashMap<UnitKey, Owned> = FxHashMap::default();
    let mut acquired: FxHashSet<UnitKey> = FxHashSet::default();
    for lease in leases {
        let Some(&key) = by_name.get(&lease.unit) else {
            continue;
        };
        match membership.owned(&key) {
            Some(held) if held.epoch == lease.epoch => {
                owned.insert(key, held);
            }
            _ => {
                acquired.insert(key);
                owned.insert(
                    key,
                    Owned {
                        epoch: lease.epoch,
                        from_seq: u64::MAX,
                    },
                );
            }
        }
    }
    if acquired.is_empty() {
        membership.set_owned(owned);
        return Ok(());
    }
    // Everything up to `through` is collected again from the store; the feed
    // delivers what comes after (and, for the units owned before, goes on as is).
    let through = store.head().await?.max(cursor);
    for key in &acquired {
        if let Some(unit) = owned.get_mut(key) {
            unit.from_seq = through;
        }
    }
    membership.set_owned(owned);
    let mut pending: Vec<(Arc<flock_core::Artifact>, Vec<u32>)> = Vec::new();
    let mut index: FxHashMap<ArtifactId, usize> = FxHashMap::default();
    let agents_acquired: FxHashSet<u32> = acquired.iter().map(|(agent, _, _)| *agent).collect();
    for agent in agents.iter().filter(|a| agents_acquired.contains(&a.index)) {
        for artifact in store.unconsumed_through(&agent.name, through).await? {
            match index.get(&artifact.id) {
                Some(&i) => pending[i].1.push(agent.index),
                None => {
                    index.insert(artifact.id, pending.len());
                    pending.push((artifact, vec![agent.index]));
                }
            }
        }
    }
    pending.sort_by_key(|(artifact, _)| artifact.created_at);
    tracing::info!(
        process = %config.process,
        units = acquired.len(),
        artifacts = pending.len(),
        "took over units; collecting again what they had not consumed"
    );
    runtime.replay_units(pending, &acquired);
    Ok(())
}
