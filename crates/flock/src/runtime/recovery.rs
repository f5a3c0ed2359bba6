//! Recovery: a flock on a durable store collects again, on start, everything its
//! agents had not consumed when the previous process stopped, and restores the
//! failed runs.
//!
//! Unconsumed artifacts are replayed in their original arrival order, each at its
//! original arrival time: the core ticks to that time before collecting it, so
//! batches and join groups form as they did, their deadlines count from the
//! original arrivals, and a batch whose timeout passed while the process was down
//! flushes at once (reason `timeout`, its span marked `recovered`). The timer stays
//! out of the way until the replay is done.
//!
//! Join groups a window discards are recorded as consumed (`consume_discards`),
//! so recovery does not collect them again.

use std::sync::{Arc, atomic::Ordering};

use flock_core::{Artifact, ArtifactId, RunCommit, StoreError};
use rustc_hash::FxHashMap;

use super::Runtime;
use crate::{
    agent::Agent,
    clock::Now,
    decision::{Cause, Discard, Held, Scope, Source},
    failed::FailedRun,
    options::RecoveryReport,
};

impl Runtime {
    /// Recovers once; later calls return the first report.
    pub(crate) async fn recover(self: &Arc<Self>) -> Result<RecoveryReport, StoreError> {
        let report = self.recovery.get_or_try_init(|| self.replay()).await?;
        Ok(report.clone())
    }

    /// Recovers first, if the store is durable and it has not happened yet (in a
    /// cluster: starts the cluster driver, which takes over units as it gets them).
    pub(crate) async fn ensure_recovered(self: &Arc<Self>) -> Result<(), StoreError> {
        if self.needs_recovery() {
            self.recover().await?;
        }
        Ok(())
    }

    /// Whether [`Runtime::ensure_recovered`] has anything to do (checked without an
    /// await on the publish path).
    pub(crate) fn needs_recovery(&self) -> bool {
        self.durable && !self.recovery.initialized()
    }

    async fn replay(self: &Arc<Self>) -> Result<RecoveryReport, StoreError> {
        if self.membership().is_some() {
            super::driver::spawn(self);
            return Ok(RecoveryReport::default());
        }
        if !self.store.is_durable() {
            return Ok(RecoveryReport::default());
        }
        let agents: Vec<Arc<Agent>> = self.routing.read().agents().to_vec();
        let failed_runs = self.restore_failed_runs(&agents, |_| true).await?;
        let pending = self.unconsumed(&agents).await?;
        let report = RecoveryReport {
            artifacts: pending.len(),
            deliveries: pending.iter().map(|(_, agents)| agents.len()).sum(),
            failed_runs,
        };
        tracing::info!(
            artifacts = report.artifacts,
            deliveries = report.deliveries,
            failed_runs = report.failed_runs,
            "recovering from the durable store"
        );
        self.replaying.store(true, Ordering::Release);
        for (artifact, only) in pending {
            let now = Now {
                mono: self.clock.mono_at(artifact.created_at),
                wall: artifact.created_at,
            };
            let ready = self.core.lock().tick(now);
            self.act(ready);
            self.replayed.lock().insert(artifact.id);
            let only: Arc<[u32]> = only.into();
            let routed = self.routing.read().route_for(&artifact, now, Some(&only));
            let ready = {
                let mut core = self.core.lock();
                core.reserve(&routed, Source::Output)
                    .unwrap_or_else(|_| unreachable!("recovered artifacts are never refused"));
                let held = Held {
                    artifact,
                    only: Some(only),
                    scope: Scope::Any,
                };
                core.collect_for(held, routed, now, Cause::None)
            };
            self.act(ready);
        }
        self.replaying.store(false, Ordering::Release);
        // The timer takes over: whatever came due during the downtime flushes now.
        self.timer.notify_one();
        let ready = self.core.lock().tick(self.now());
        self.act(ready);
        Ok(report)
    }

    /// Every unconsumed artifact with the agents that have yet to consume it, in
    /// arrival order.
    async fn unconsumed(
        &self,
        agents: &[Arc<Agent>],
    ) -> Result<Vec<(Arc<Artifact>, Vec<u32>)>, StoreError> {
        let mut index: FxHashMap<ArtifactId, usize> = FxHashMap::default();
        let mut pending: Vec<(Arc<Artifact>, Vec<u32>)> = Vec::new();
        for agent in agents {
            for artifact in self.store.unconsumed(&agent.name).await? {
                match index.get(&artifact.id) {
                    Some(&i) => pending[i].1.push(agent.index),
                    None => {
                        index.insert(artifact.id, pending.len());
                        pending.push((artifact, vec![agent.index]));
                    }
                }
            }
        }
        // Stable: equal times keep the store's order.
        pending.sort_by_key(|(artifact, _)| artifact.created_at);
        Ok(pending)
    }

    /// Restores the failed runs the store kept for `agents` that `keep` accepts
    /// (in a cluster: those of the units taken over), unless already listed.
    pub(crate) async fn restore_failed_runs(
        &self,
        agents: &[Arc<Agent>],
        keep: impl Fn(&FailedRun) -> bool,
    ) -> Result<usize, StoreError> {
        let mut restored = 0;
        for record in self.store.failures().await? {
            if self.failed.lock().iter().any(|run| run.id == record.id) {
                continue;
            }
            let Some(agent) = agents.iter().find(|a| *a.name == record.agent) else {
                if self.membership.is_some() {
                    // Another agent's: not this takeover's.
                    continue;
                }
                tracing::warn!(
                    agent = %record.agent,
                    failed_run = %record.id,
                    "a failed run of an agent this flock does not register stays in the store"
                );
                continue;
            };
            let mut inputs = Vec::with_capacity(record.inputs.len());
            for id in &record.inputs {
                match self.store.get(*id).await? {
                    Some(artifact) => inputs.push(artifact),
                    None => tracing::warn!(
                        failed_run = %record.id,
                        artifact_id = %id,
                        "an input of a failed run is no longer in the store"
                    ),
                }
            }
            let run = FailedRun::restore(record, agent.clone(), inputs, self.now().mono);
            if keep(&run) {
                self.failed.lock().push(run);
                restored += 1;
            }
        }
        Ok(restored)
    }
}

impl Runtime {
    /// With a durable store, records a discarded group's artifacts as consumed by
    /// its agent, so recovery does not collect them again. In the background: if
    /// the process stops first, recovery replays the group and its window discards
    /// it again.
    pub(crate) fn consume_discards(&self, discarded: &[Discard]) {
        if discarded.is_empty() || !self.store.is_durable() {
            return;
        }
        for (agent, group) in discarded {
            // In a cluster, under the lease of the join's unit (if still owned).
            let fence = match self.discard_fence(agent, &group.pool) {
                Some(None) => continue,
                Some(fence) => fence,
                None => None,
            };
            let store = self.store.clone();
            let agent = agent.name.clone();
            let inputs: Vec<ArtifactId> = group.items.iter().map(|a| a.id).collect();
            tokio::spawn(async move {
                let run_id = crate::run::run_id_of(&agent, inputs.iter().copied());
                let commit = RunCommit {
                    agent: &agent,
                    run_id,
                    inputs: &inputs,
                    outputs: &[],
                    fence: fence.as_ref().map(|(unit, epoch)| (unit, *epoch)),
                    retries: None,
                };
                if let Err(error) = store.commit_run(commit).await {
                    tracing::warn!(
                        %agent,
                        %error,
                        "could not record a discarded join group as consumed; recovery would discard it again"
                    );
                }
            });
        }
    }
}
