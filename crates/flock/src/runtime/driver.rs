//! The cluster driver: two tasks per process.
//!
//! - The **lease task** heartbeats and balances the leases every quarter of the
//!   lease time (taking a fair share: the units divided by the live processes), and
//!   records what this process holds (forgetting the units it lost). It does nothing
//!   else, so no amount of work elsewhere delays a renewal.
//! - The **feed task** takes over newly held units (collects again what their
//!   agents had not consumed) and reads the feed in sequence order, waiting on the
//!   store's notifications in between. Takeovers and the feed are one task, so a
//!   unit's replayed artifacts always come before those the feed delivers after.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use flock_core::{Artifact, ArtifactId, StoreError};
use rustc_hash::{FxHashMap, FxHashSet};

use super::Runtime;
use crate::{
    agent::Agent,
    cluster::{Membership, UnitKey},
};

/// Artifacts read from the feed at once.
const FEED_BATCH: usize = 512;
/// The most a failed store call delays the next try.
const RETRY: Duration = Duration::from_millis(200);

/// Starts the driver of `runtime`'s cluster.
pub(crate) fn spawn(runtime: &Arc<Runtime>) {
    tokio::spawn(leases(Arc::downgrade(runtime)));
    tokio::spawn(feed(Arc::downgrade(runtime)));
}

impl Runtime {
    /// Stops the lease task for good (waiting for a balance under way): shutdown
    /// releases the leases after this, and nothing takes them back.
    pub(crate) async fn leave_cluster(&self) {
        if let Some(membership) = &self.membership {
            *membership.balancing.lock().await = true;
        }
    }
}

async fn leases(runtime: Weak<Runtime>) {
    loop {
        let Some(rt) = runtime.upgrade() else {
            return;
        };
        let membership = rt.membership().expect("in a cluster").clone();
        let (period, _) = membership.timing();
        {
            let left = membership.balancing.lock().await;
            if *left || rt.cluster_stopped() {
                return;
            }
            if let Err(error) = balance(&rt, &membership).await {
                tracing::warn!(%error, "cluster balance failed; units held stay until their leases lapse");
            }
        }
        drop(rt);
        tokio::time::sleep(period).await;
    }
}

/// Heartbeats, balances the leases, and records what this process holds.
async fn balance(runtime: &Arc<Runtime>, membership: &Membership) -> Result<(), StoreError> {
    let store = runtime.cluster_store();
    let config = &membership.config;
    let (_, ttl) = membership.timing();
    let units = membership.units(&runtime.agents());
    if units.is_empty() {
        // No agents (a process that only publishes): not a process the units are
        // shared among.
        return Ok(());
    }
    let members = store.heartbeat(&config.process, ttl).await?;
    // While shutting down, keep what is held (its runs drain) and take nothing new.
    let want = if runtime.is_open() {
        units.len().div_ceil(members.len().max(1))
    } else {
        membership.owned_count()
    };
    let names: Vec<_> = units.iter().map(|(_, unit)| unit.clone()).collect();
    let leases = store.balance(&config.process, &names, want, ttl).await?;
    let by_name: FxHashMap<_, UnitKey> = units.into_iter().map(|(key, unit)| (unit, key)).collect();
    let held: Vec<(UnitKey, u64)> = leases
        .iter()
        .filter_map(|lease| by_name.get(&lease.unit).map(|&key| (key, lease.epoch)))
        .collect();
    runtime.apply_leases(&held);
    Ok(())
}

async fn feed(runtime: Weak<Runtime>) {
    let Some(start) = runtime.upgrade() else {
        return;
    };
    let membership = start.membership().expect("in a cluster").clone();
    let store = start.cluster_store();
    let (period, _) = membership.timing();
    drop(start);
    let mut cursor = loop {
        match store.head().await {
            Ok(head) => break head,
            Err(error) => {
                tracing::warn!(%error, "cannot read the cluster's feed position; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    if let Some(runtime) = runtime.upgrade() {
        runtime.set_cursor(cursor);
    }
    loop {
        let Some(rt) = runtime.upgrade() else {
            return;
        };
        if rt.cluster_stopped() {
            return;
        }
        if rt.is_open() {
            let takeovers = membership.take_takeovers();
            if !takeovers.is_empty()
                && let Err(error) = take_over(&rt, &membership, &takeovers, cursor).await
            {
                tracing::warn!(%error, "taking over units failed; trying again");
                membership.retry_takeovers(takeovers);
                drop(rt);
                tokio::time::sleep(RETRY).await;
                continue;
            }
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
                tokio::select! {
                    waited = store.wait_for_more(cursor, period) => {
                        if let Err(error) = waited {
                            tracing::warn!(%error, "waiting for the cluster's feed failed");
                            tokio::time::sleep(RETRY).await;
                        }
                    }
                    () = membership.wake.notified() => {}
                }
            }
            Err(error) => {
                drop(rt);
                tracing::warn!(%error, "reading the cluster's feed failed; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Collects again, for newly held `units` (with their epochs), what their agents
/// had not consumed up to `through` (the store's head, or the feed's position if
/// ahead); the feed delivers what comes after.
async fn take_over(
    runtime: &Arc<Runtime>,
    membership: &Membership,
    units: &FxHashMap<UnitKey, u64>,
    cursor: u64,
) -> Result<(), StoreError> {
    let store = runtime.cluster_store();
    let through = store.head().await?.max(cursor);
    let agents: FxHashSet<u32> = units.keys().map(|(agent, _, _)| *agent).collect();
    let taken: Vec<Arc<Agent>> = runtime
        .agents()
        .into_iter()
        .filter(|a| agents.contains(&a.index))
        .collect();
    let mut pending: Vec<(Arc<Artifact>, Vec<u32>)> = Vec::new();
    let mut index: FxHashMap<ArtifactId, usize> = FxHashMap::default();
    for agent in &taken {
        let types: Vec<&str> = agent.consumed_types().collect();
        for artifact in store
            .unconsumed_through(&agent.name, &types, through)
            .await?
        {
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
        process = %membership.config.process,
        units = units.len(),
        artifacts = pending.len(),
        through,
        "took over units; collecting again what they had not consumed"
    );
    runtime.replay_units(pending, units);
    // The failed runs of these units (kept in the store by their old owner) are
    // this process's to list and retry now.
    let restored = runtime
        .restore_failed_runs(&taken, |run| {
            units.contains_key(&runtime.unit_of_failed_run(run))
        })
        .await?;
    if restored > 0 {
        tracing::info!(
            process = %membership.config.process,
            failed_runs = restored,
            "failed runs of the units taken over restored"
        );
    }
    membership.taken_over(units, through);
    Ok(())
}
