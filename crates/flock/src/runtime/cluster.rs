//! The runtime in a cluster: publishes go to the shared store only, runs commit
//! under the epoch their unit's lease had when they were created, and the feed
//! (read by the cluster driver) is collected for the units this process owns.
//!
//! Ownership changes under the core's lock (the units lost are forgotten in the
//! same step), and whether an artifact goes to a unit is decided under it too: what
//! the core holds of a unit was always collected while this process owned it, under
//! its current epoch.

use std::sync::{Arc, atomic::Ordering};

use flock_core::{
    Artifact, ArtifactId, FailureCommit, PublishError, RunCommit, StoreError, WorkUnit,
};
use rustc_hash::{FxHashMap, FxHashSet};

use super::Runtime;
use crate::{
    agent::Agent,
    clock::Now,
    cluster::{Membership, Owned, UnitKey},
    decision::{Cause, Held, Phase, Routed, Scope, Source},
    failed::FailedRun,
    run::Origin,
    work::{BatchKey, Work},
};

impl Runtime {
    /// The cluster membership, when this flock is in a cluster.
    pub(crate) fn membership(&self) -> Option<&Arc<Membership>> {
        self.membership.as_ref()
    }

    /// Keeps the takes of `routed` for the units this process owns that `keep`
    /// accepts. Called under the core's lock, where ownership changes.
    fn keep_owned(&self, routed: &mut Routed, keep: impl Fn(UnitKey, Owned) -> bool) {
        if let (Some(membership), Routed::Takes(takes)) = (&self.membership, routed) {
            takes.retain(|take| {
                let unit = membership.unit_of(take);
                membership
                    .owned(&unit)
                    .is_some_and(|owned| keep(unit, owned))
            });
        }
    }

    /// Where a held artifact whose visibility began at `now` goes: in a cluster,
    /// only to the units of its scope that this process still owns.
    pub(crate) fn route_released(&self, held: &Held, now: Now) -> Routed {
        let mut routed = self
            .routing
            .read()
            .route_for(&held.artifact, now, held.only.as_deref());
        match &held.scope {
            Scope::Any => self.keep_owned(&mut routed, |_, _| true),
            Scope::Fed(seq) => self.keep_owned(&mut routed, |_, owned| *seq > owned.from_seq),
            Scope::TakenOver(units) => self.keep_owned(&mut routed, |unit, owned| {
                units.get(&unit) == Some(&owned.epoch)
            }),
        }
        routed
    }

    /// Records the leases held now (`(unit, epoch)`), forgetting in the same step
    /// what the core holds of the units lost.
    pub(crate) fn apply_leases(self: &Arc<Self>, held: &[(UnitKey, u64)]) {
        let membership = self.membership.as_ref().expect("in a cluster");
        let ready = {
            let mut core = self.core.lock();
            let lost = membership.apply(held);
            tracing::debug!(process = %membership.config.process, ?held, ?lost, "leases");
            if lost.is_empty() {
                return;
            }
            tracing::info!(
                process = %membership.config.process,
                units = lost.len(),
                "units moved to other processes; what was collected for them is theirs to collect again"
            );
            let lost: FxHashSet<UnitKey> = lost.into_iter().collect();
            // Their failed runs go with them: the new owner restores them.
            self.failed
                .lock()
                .retain(|run| !lost.contains(&self.unit_of_failed_run(run)));
            core.forget(|key: &BatchKey| lost.contains(&membership.unit_of_key(key)))
        };
        self.act(ready);
    }

    /// Collects an artifact of the feed (sequence `seq`) for the units this process
    /// owns whose feed starts before it.
    pub(crate) fn collect_fed(self: &Arc<Self>, seq: u64, artifact: Arc<Artifact>) {
        let now = self.now();
        let mut routed = self.routing.read().route(&artifact, now);
        let ready = {
            let mut core = self.core.lock();
            if core.phase() != Phase::Open {
                // Shutting down: what arrives now is the next owner's (it is not
                // consumed, so the process that takes the units over collects it).
                return;
            }
            self.keep_owned(&mut routed, |_, owned| seq > owned.from_seq);
            if let Routed::Takes(takes) = &routed
                && takes.is_empty()
            {
                return;
            }
            core.reserve(&routed, Source::Output)
                .unwrap_or_else(|_| unreachable!("fed artifacts are never refused"));
            let held = Held {
                artifact,
                only: None,
                scope: Scope::Fed(seq),
            };
            core.collect_for(held, routed, now, Cause::None)
        };
        self.act(ready);
    }

    /// Collects again, at their original arrival times, what the agents of newly
    /// owned `units` (with the epochs they were taken under) had not consumed up to
    /// the feed position they start from.
    pub(crate) fn replay_units(
        self: &Arc<Self>,
        pending: Vec<(Arc<Artifact>, Vec<u32>)>,
        units: &FxHashMap<UnitKey, u64>,
    ) {
        self.replaying.store(true, Ordering::Release);
        let scope = Scope::TakenOver(Arc::new(units.clone()));
        for (artifact, only) in pending {
            let now = Now {
                mono: self.clock.mono_at(artifact.created_at),
                wall: artifact.created_at,
            };
            let ready = self.core.lock().tick(now);
            self.act(ready);
            let mut routed = self.routing.read().route_for(&artifact, now, Some(&only));
            let ready = {
                let mut core = self.core.lock();
                // Only the units of this takeover, still held under its epoch.
                self.keep_owned(&mut routed, |unit, owned| {
                    units.get(&unit) == Some(&owned.epoch)
                });
                if routed.takes().is_empty() && !matches!(routed, Routed::Deferred(_)) {
                    continue;
                }
                self.replayed.lock().insert(artifact.id);
                core.reserve(&routed, Source::Output)
                    .unwrap_or_else(|_| unreachable!("recovered artifacts are never refused"));
                let held = Held {
                    artifact,
                    only: Some(only.into()),
                    scope: scope.clone(),
                };
                core.collect_for(held, routed, now, Cause::None)
            };
            self.act(ready);
        }
        self.replaying.store(false, Ordering::Release);
        self.timer.notify_one();
        let ready = self.core.lock().tick(self.now());
        self.act(ready);
    }

    /// Commits a run under the fence it was created with; the feed delivers its
    /// outputs.
    pub(crate) async fn commit_clustered(
        self: &Arc<Self>,
        agent: &Agent,
        origin: Origin,
        run_id: uuid::Uuid,
        work: &Work,
        outputs: &[Arc<Artifact>],
    ) -> Result<(), PublishError> {
        let membership = self.membership.as_ref().expect("in a cluster");
        let (_, unit) = run_unit(membership, agent, origin.subscription, work);
        let Some(epoch) = origin.fence else {
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
            fence: Some((&unit, epoch)),
            retries: origin.retries,
        };
        self.store.commit_run(commit).await?;
        for artifact in outputs {
            self.published(artifact);
        }
        Ok(())
    }

    /// Keeps a failed run of a unit this process still owns under the run's fence,
    /// checked here and again in the store's transaction (one that moved is the new
    /// owner's to run).
    pub(crate) async fn commit_failure_clustered(
        self: &Arc<Self>,
        run: FailedRun,
        error: Arc<Artifact>,
    ) {
        let membership = self.membership.as_ref().expect("in a cluster");
        let (key, unit) = run_unit(membership, &run.agent_ref, run.subscription, &run.work);
        let Some(epoch) = run
            .fence
            .filter(|&e| membership.owned(&key).map(|o| o.epoch) == Some(e))
        else {
            tracing::info!(%unit, "a failed run of a unit that moved to another process is that process's to run");
            return;
        };
        let record = run.record();
        let commit = FailureCommit {
            failure: &record,
            error: &error,
            fence: Some((&unit, epoch)),
            retries: run.retries,
        };
        match self.store.commit_failure(commit).await {
            Ok(()) => self.published(&error),
            Err(StoreError::Fenced { .. }) => {
                tracing::info!(%unit, "the unit moved to another process before the failed run was kept; that process runs the inputs");
                return;
            }
            Err(error) => tracing::error!(
                agent = %run.agent,
                %error,
                "could not store the failed run; it is kept in Flock::failed_runs()"
            ),
        }
        self.failed.lock().push(run);
    }

    /// Whether a failed run may be retried here: outside a cluster always; in one,
    /// while this process owns its unit.
    pub(crate) fn owns_failed_run(&self, run: &FailedRun) -> bool {
        let Some(membership) = &self.membership else {
            return true;
        };
        membership.owned(&self.unit_of_failed_run(run)).is_some()
    }

    /// The unit of a failed run (in a cluster).
    pub(crate) fn unit_of_failed_run(&self, run: &FailedRun) -> UnitKey {
        let membership = self.membership.as_ref().expect("in a cluster");
        run_unit(membership, &run.agent_ref, run.subscription, &run.work).0
    }

    /// In a cluster, the fence to record a discarded join group of `pool` as
    /// consumed with: `Some(None)` when the unit is not this process's (the owner
    /// records it); `None` outside a cluster.
    pub(crate) fn discard_fence(
        &self,
        agent: &Agent,
        pool: &BatchKey,
    ) -> Option<Option<(WorkUnit, u64)>> {
        let membership = self.membership.as_ref()?;
        let (_, subscription, partition) = membership.unit_of_key(pool);
        let unit = WorkUnit {
            agent: agent.name.to_string(),
            subscription: subscription as usize,
            partition,
        };
        Some(membership.fence(pool).map(|epoch| (unit, epoch)))
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

    /// Whether the flock still accepts work (shutdown has not begun).
    pub(crate) fn is_open(&self) -> bool {
        self.core.lock().phase() == Phase::Open
    }

    /// Whether the cluster driver should stop (the flock drained).
    pub(crate) fn cluster_stopped(&self) -> bool {
        self.core.lock().phase() == Phase::Drained
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
