//! Collecting: how a stored artifact reaches the subscriptions that take it (a
//! batch, a join group, a run of its own, or the deferral of its visibility). The
//! publish path's share of the core, one step per artifact under the core's lock.

use std::sync::Arc;

use flock_core::Artifact;
use flock_subscription::JoinKey;

use super::{Cause, Core, Held, JoinDone, Ready, Routed, RunInput, Scope, Take, Way, report};
use crate::{
    clock::Now,
    work::{BatchKey, Unit},
};

impl Core {
    /// Hands a stored artifact to the subscriptions that take it: batches, join
    /// groups, runs, or the deferral of its visibility.
    pub(crate) fn collect(
        &mut self,
        artifact: Arc<Artifact>,
        routed: Routed,
        now: Now,
        cause: Cause<'_>,
    ) -> Ready {
        let mut ready = Ready::default();
        self.collect_into(artifact, routed, now, cause, &mut ready);
        ready
    }

    /// [`Core::collect`] into `ready`: the publish path's, which keeps its work list
    /// where it is rather than moving it through two returns.
    pub(crate) fn collect_into(
        &mut self,
        artifact: Arc<Artifact>,
        routed: Routed,
        now: Now,
        cause: Cause<'_>,
        ready: &mut Ready,
    ) {
        let held = Held {
            artifact,
            only: None,
            scope: Scope::Any,
        };
        self.collect_held(held, routed, now, cause, ready);
    }

    /// [`Core::collect`], for the agents `held.only` names when it names some.
    pub(crate) fn collect_for(
        &mut self,
        held: Held,
        routed: Routed,
        now: Now,
        cause: Cause<'_>,
    ) -> Ready {
        let mut ready = Ready::default();
        self.collect_held(held, routed, now, cause, &mut ready);
        ready
    }

    fn collect_held(
        &mut self,
        held: Held,
        routed: Routed,
        now: Now,
        cause: Cause<'_>,
        ready: &mut Ready,
    ) {
        self.dispatching -= 1;
        match routed {
            Routed::Deferred(at) => ready.rearm |= self.deferred.push(at, held),
            Routed::Takes(takes) => {
                let last = takes.len().saturating_sub(1);
                let mut artifact = Some(held.artifact);
                for (index, take) in takes.into_iter().enumerate() {
                    // The last take keeps the caller's reference.
                    let artifact = if index < last {
                        artifact.clone()
                    } else {
                        artifact.take()
                    }
                    .expect("the artifact is kept until the last take");
                    self.take(artifact, take, now, cause, ready);
                }
            }
        }
        self.settle(ready);
    }

    /// Hands `artifact` to `take`'s subscription. The agent is looked up where it
    /// is needed: a batch push, the common take, reads it without holding a
    /// reference of its own.
    fn take(
        &mut self,
        artifact: Arc<Artifact>,
        take: Take,
        now: Now,
        cause: Cause<'_>,
        ready: &mut Ready,
    ) {
        let subscription = take.subscription;
        match take.way {
            Way::Run => {
                let agent = self.agents[take.agent as usize].clone();
                let input = RunInput::Single(Unit::One(artifact));
                self.schedule(&agent, subscription, input, 1, cause, None, ready);
            }
            Way::Batch(partition) => {
                let unit = Unit::One(artifact);
                self.push_to_batch(
                    take.agent,
                    subscription,
                    partition,
                    unit,
                    now,
                    cause,
                    None,
                    ready,
                );
            }
            Way::Join { key, slot } => {
                let agent = &self.agents[take.agent as usize].clone();
                let shape = agent.join_shapes[subscription as usize]
                    .as_ref()
                    .expect("a join take has a join shape");
                let pool = BatchKey {
                    agent: agent.index,
                    subscription,
                    partition: None,
                };
                let joined = self.joiner.push(pool, shape, key, slot, artifact, now.mono);
                ready.rearm |= joined.earlier_deadline.is_some();
                self.discarded(joined.discarded, ready);
                let Some(group) = joined.completed else {
                    return;
                };
                if self.events {
                    ready.events.push(report::join_completed(agent, &group));
                }
                let done = JoinDone {
                    subscription,
                    key: group.key.clone(),
                    size: group.items.len(),
                    wait: group.wait(),
                };
                // From here the group waits for a run as one unit.
                self.waiting.charge(agent.index, subscription, 1);
                let unit = Unit::Group(group.items.into_boxed_slice());
                if agent.subscriptions[subscription as usize].batch().is_some() {
                    self.push_to_batch(
                        agent.index,
                        subscription,
                        None,
                        unit,
                        now,
                        cause,
                        Some(done),
                        ready,
                    );
                } else {
                    self.schedule(
                        agent,
                        subscription,
                        RunInput::Single(unit),
                        1,
                        cause,
                        Some(done),
                        ready,
                    );
                }
            }
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one step's whole context, private"
    )]
    fn push_to_batch(
        &mut self,
        agent: u32,
        subscription: u32,
        partition: Option<JoinKey>,
        unit: Unit,
        now: Now,
        cause: Cause<'_>,
        joined: Option<JoinDone>,
        ready: &mut Ready,
    ) {
        let spec = *self.agents[agent as usize].subscriptions[subscription as usize]
            .batch()
            .expect("a batch take has a batch spec");
        let key = BatchKey {
            agent,
            subscription,
            partition,
        };
        let added = self.events.then(|| (key.clone(), unit.clone()));
        let pushed = self.batcher.push(key, spec, unit, now.mono);
        ready.rearm |= pushed.earlier_deadline.is_some();
        if let Some((key, unit)) = added {
            let agent = &self.agents[agent as usize];
            let event = match &pushed.flushed {
                Some(batch) => {
                    report::item_added(agent, &key, &spec, batch.items.len(), None, now, &unit)
                }
                None => {
                    let (items, deadline) =
                        self.batcher.collecting(&key).expect("the batch just grew");
                    report::item_added(agent, &key, &spec, items.len(), deadline, now, &unit)
                }
            };
            ready.events.push(event);
            if let Some(batch) = &pushed.flushed {
                ready.events.push(report::batch_flushed(agent, batch, now));
            }
        }
        match pushed.flushed {
            Some(batch) => {
                let agent = self.agents[agent as usize].clone();
                let units = batch.items.len();
                let input = RunInput::Batch(batch);
                self.schedule(&agent, subscription, input, units, cause, joined, ready);
            }
            None => ready
                .completed
                .extend(joined.map(|done| (self.agents[agent as usize].clone(), done))),
        }
    }
}
