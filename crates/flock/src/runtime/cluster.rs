//! The runtime in a cluster: publishes go to the shared store only, runs commit
//! under their unit's lease, and the feed (read by the cluster driver) is collected
//! for the units this process owns.

use std::sync::{Arc, atomic::Ordering};

use flock_core::{Artifact, ArtifactId, PublishError, RunCommit, StoreError, WorkUnit};
use rustc_hash::FxHashSet;
use tracing::Span;

use super::Runtime;
use crate::{
    agent::Agent,
    clock::Now,
    cluster::{Membership, UnitKey},
    decision::{Held, Routed, Source},
    failed::FailedRun,
    work::Work,
};

impl Runtime {
    /// The cluster membership, when this flock is in a cluster.
    pub(crate) fn membership(&self) -> Option<&Arc<Membership>> {
        self.membership.as_ref()
    }

    /// Where `artifact` goes at `now` for the agents `only` names: in a cluster,
    /// only its takes for the units this process owns (and, with `units`, only those
    /// units; with `after`, only units whose feed starts before that sequence).
    pub(crate) fn route_owned(
        &self,
        artifact: &Artifact,
        now: Now,
        only: Option<&[u32]>,
        units: Option<(&FxHashSet<UnitKey>, Option<u64>)>,
    ) -> Routed {
        let mut routed = self.routing.read().route_for(artifact, now, only);
        if let (Some(membership), Routed::Takes(takes)) = (&self.membership, &mut routed) {
            takes.retain(|take| {
                let unit = membership.unit_of(take);
                let Some(owned) = membership.owned(&unit) else {
                    return false;
                };
                match units {
                    Some((units, _)) if !units.contains(&unit) => false,
                    Some((_, Some(seq))) => seq > owned.from_seq,
                    _ => true,
                }
            });
        }
        routed
    }

    /// Collects an artifact of the feed (sequence `seq`) for the units this process
    /// owns whose feed starts before it.
    pub(crate) fn collect_fed(self: &Arc<Self>, seq: u64, artifact: Arc<Artifact>) {
        let now = self.now();
        let Some(membership) = &self.membership else {
            return;
        };
        if self.core.lock().phase() != crate::decision::Phase::Open {
            // Shutting down: what arrives now is the next owner's (it is not
            // consumed, so the process that takes the units over collects it).
            return;
        }
        let mut routed = self.routing.read().route(&artifact, now);
        if let Routed::Takes(takes) = &mut routed {
            takes.retain(|take| {
                membership
                    .owns(take)
                    .is_some_and(|owned| seq > owned.from_seq)
            });
            if takes.is_empty() {
                return;
            }
        }
        let ready = {
            let mut core = self.core.lock();
            core.reserve(&routed, Source::Output)
                .unwrap_or_else(|_| unreachable!("fed artifacts are never refused"));
            core.collect(artifact, routed, now, &Span::none())
        };
        self.act(ready);
    }

    /// Collects again, at their original arrival times, what the agents of newly
    /// owned `units` had not consumed up to the feed position they start from.
    pub(crate) fn replay_units(
        self: &Arc<Self>,
        pending: Vec<(Arc<Artifact>, Vec<u32>)>,
        units: &FxHashSet<UnitKey>,
    ) {
        self.replaying.store(true, Ordering::Release);
        for (artifact, only) in pending {
            let now = Now {
                mono: self.clock.mono_at(artifact.created_at),
                wall: artifact.created_at,
            };
            let ready = self.core.lock().tick(now);
            self.act(ready);
            let routed = self.route_owned(&artifact, now, Some(&only), Some((units, None)));
            if routed.takes().is_empty() && !matches!(routed, Routed::Deferred(_)) {
                continue;
            }
            self.replayed.lock().insert(artifact.id);
            let ready = {
                let mut core = self.core.lock();
                core.reserve(&routed, Source::Output)
                    .unwrap_or_else(|_| unreachable!("recovered artifacts are never refused"));
                let held = Held {
                    artifact,
                    only: Some(only.into()),
                };
                core.collect_for(held, routed, now, &Span::none())
            };
            self.act(ready);
        }
        self.replaying.store(false, Ordering::Release);
        self.timer.notify_one();
        let ready = self.core.lock().tick(self.now());
        self.act(ready);
    }

    /// Commits a run under its unit's lease; the feed delivers its outputs.
    pub(crate) async fn commit_clustered(
        self: &Arc<Self>,
        agent: &Agent,
        subscription: u32,
        run_id: uuid::Uuid,
        work: &Work,
        outputs: &[Arc<Artifact>],
    ) -> Result<(), PublishError> {
        let membership = self.membership.as_ref().expect("in a cluster");
        let (key, unit) = run_unit(membership, agent, subscription, work);
        let Some(owned) = membership.owned(&key) else {
            return Err(StoreError::Fenced {
                unit: unit.to_string(),
                epoch: 0,
            }
            .into());
        };
        let inputs: Vec<ArtifactId> = work.artifacts().iter().map(|a| a.id).collect();
        let commit = RunCommit {
            agent: &agent.name,
            run_id,
            inputs: &inputs,
            outputs,
            fence: Some((&unit, owned.epoch)),
        };
        self.store.commit_run(commit).await?;
        for artifact in outputs {
            self.published(artifact);
        }
        Ok(())
    }

    /// Keeps a failed run of a unit this process still owns (one that moved is the
    /// new owner's to run).
    pub(crate) async fn commit_failure_clustered(
        self: &Arc<Self>,
        run: FailedRun,
        error: Arc<Artifact>,
    ) {
        let membership = self.membership.as_ref().expect("in a cluster");
        let (key, unit) = run_unit(membership, &run.agent_ref, run.subscription, &run.work);
        if membership.owned(&key).is_none() {
            tracing::info!(%unit, "a failed run of a unit that moved to another process is that process's to run");
            return;
        }
        match self.store.commit_failure(&run.record(), &error).await {
            Ok(()) => self.published(&error),
            Err(error) => tracing::error!(
                agent = %run.agent,
                %error,
                "could not store the failed run; it is kept in Flock::failed_runs()"
            ),
        }
        self.failed.lock().push(run);
    }

    /// In a cluster, waits until the feed has been read up to what the store holds
    /// now (what this process may still have to collect).
    pub(crate) async fn wait_fed(&self) {
        if self.membership.is_none() {
            return;
        }
        let Ok(head) = self.cluster_store().head().await else {
            return;
        };
        loop {
            let fed = self.fed.notified();
            tokio::pin!(fed);
            fed.as_mut().enable();
            if self.cursor.load(Ordering::Acquire) >= head {
                return;
            }
            fed.await;
        }
    }

    /// The registered agents, by index.
    pub(crate) fn agents(&self) -> Vec<Arc<Agent>> {
        self.routing.read().agents().to_vec()
    }

    /// Whether the cluster driver should stop (the flock drained).
    pub(crate) fn cluster_stopped(&self) -> bool {
        self.core.lock().phase() == crate::decision::Phase::Drained
    }

    /// Moves the feed's position.
    pub(crate) fn set_cursor(&self, seq: u64) {
        self.cursor.store(seq, Ordering::Release);
        self.fed.notify_waiters();
    }

    /// The cluster's store.
    pub(crate) fn cluster_store(&self) -> Arc<dyn flock_core::ClusterStore> {
        self.membership
            .as_ref()
            .expect("in a cluster")
            .config
            .store
            .clone()
    }
}

/// The unit of `agent`'s run over `work`, taken by `subscription`.
fn run_unit(
    membership: &Membership,
    agent: &Agent,
    subscription: u32,
    work: &Work,
) -> (UnitKey, WorkUnit) {
    let partition = match work {
        Work::Batch(flushed) => flushed
            .batch
            .key
            .partition
            .as_ref()
            .map(|key| membership.partition_of(key)),
        Work::Single(_) => None,
    };
    let key = (agent.index, subscription, partition);
    let unit = WorkUnit {
        agent: agent.name.to_string(),
        subscription: subscription as usize,
        partition,
    };
    (key, unit)
}
