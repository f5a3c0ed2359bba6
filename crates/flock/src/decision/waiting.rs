//! Admission bookkeeping: how many units (artifacts, or complete join groups) wait
//! for their run, in total and per subscription, counted from admission until the
//! run that processes them finishes; and the registration check that `OnFull::Wait`
//! can never wait forever.

use std::sync::Arc;

use flock_core::PublishError;
use flock_subscription::BatchSpec;
use rustc_hash::FxHashMap;

use super::route::Take;
use crate::{
    admission::{Admission, AdmissionCounts},
    agent::{Agent, RegistrationError},
};

/// Units waiting for their run; kept only when the flock has admission bounds.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    bounds: Option<Admission>,
    total: usize,
    per_subscription: FxHashMap<(u32, u32), usize>,
}

impl Waiting {
    pub(crate) fn new(admission: Admission) -> Self {
        Self {
            bounds: admission.is_bounded().then_some(admission),
            ..Self::default()
        }
    }

    /// The bounds, when the flock has any.
    pub(crate) fn bounds(&self) -> Option<Admission> {
        self.bounds
    }

    /// Whether units are counted (the flock has bounds).
    pub(crate) fn is_counting(&self) -> bool {
        self.bounds.is_some()
    }

    /// The bound an external publish taken by `takes` would exceed, if any: the
    /// total, or the bound of a subscription that would count it.
    pub(crate) fn full_for(&self, agents: &[Arc<Agent>], takes: &[Take]) -> Option<PublishError> {
        let bounds = self.bounds?;
        if let Some(limit) = bounds.max_waiting
            && self.total >= limit.get()
        {
            return Some(PublishError::Full {
                scope: "the flock".to_owned(),
                waiting: self.total,
                limit: limit.get(),
            });
        }
        let limit = bounds.per_subscription?;
        takes.iter().filter(|t| t.is_counted()).find_map(|take| {
            let waiting = self.of(take.agent, take.subscription);
            (waiting >= limit.get()).then(|| PublishError::Full {
                scope: format!(
                    "agent '{}', subscription {}",
                    agents[take.agent as usize].name, take.subscription
                ),
                waiting,
                limit: limit.get(),
            })
        })
    }

    /// Units of one subscription waiting.
    pub(crate) fn of(&self, agent: u32, subscription: u32) -> usize {
        self.per_subscription
            .get(&(agent, subscription))
            .copied()
            .unwrap_or(0)
    }

    /// The counts, when the flock has bounds.
    pub(crate) fn counts(&self, agents: &[Arc<Agent>]) -> Option<AdmissionCounts> {
        self.bounds?;
        let mut per_subscription: Vec<_> = self
            .per_subscription
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(&(agent, subscription), &n)| (agent, subscription, n))
            .collect();
        per_subscription.sort_unstable();
        Some(AdmissionCounts {
            total: self.total,
            per_subscription: per_subscription
                .into_iter()
                .map(|(agent, subscription, n)| {
                    (
                        agents[agent as usize].name.to_string(),
                        subscription as usize,
                        n,
                    )
                })
                .collect(),
        })
    }

    /// Counts `units` more for a subscription.
    pub(crate) fn charge(&mut self, agent: u32, subscription: u32, units: usize) {
        if self.bounds.is_none() {
            return;
        }
        self.total += units;
        *self
            .per_subscription
            .entry((agent, subscription))
            .or_default() += units;
    }

    /// Counts the units of `takes` that wait for a run.
    pub(crate) fn charge_takes(&mut self, takes: &[Take]) {
        if self.bounds.is_none() {
            return;
        }
        for take in takes.iter().filter(|t| t.is_counted()) {
            self.charge(take.agent, take.subscription, 1);
        }
    }

    /// Stops counting `units` of a subscription.
    pub(crate) fn release(&mut self, agent: u32, subscription: u32, units: usize) {
        if self.bounds.is_none() {
            return;
        }
        self.total -= units;
        let count = self
            .per_subscription
            .get_mut(&(agent, subscription))
            .expect("released units were charged");
        *count -= units;
    }

    /// Stops counting the units of `takes`.
    pub(crate) fn release_takes(&mut self, takes: &[Take]) {
        if self.bounds.is_none() {
            return;
        }
        for take in takes.iter().filter(|t| t.is_counted()) {
            self.release(take.agent, take.subscription, 1);
        }
    }
}

/// Refuses an agent with a size-only batch subscription that the flock's admission
/// bounds could wedge (see [`Admission::would_block`]).
pub(crate) fn check_registration(
    admission: &Admission,
    agents: &[Arc<Agent>],
    agent: &Agent,
) -> Result<(), RegistrationError> {
    // Items the size-only batches can hold without any of them filling.
    let size_only = |agent: &Agent| -> usize {
        agent
            .subscriptions
            .iter()
            .filter_map(|s| s.batch())
            .filter(|spec| spec.max_wait().is_none())
            .filter_map(|spec| spec.max_size())
            .map(|size| size.get() - 1)
            .sum()
    };
    let mut held: usize = agents.iter().map(|a| size_only(a)).sum();
    for (index, subscription) in agent.subscriptions.iter().enumerate() {
        let Some(size) = subscription
            .batch()
            .filter(|spec| spec.max_wait().is_none())
            .and_then(BatchSpec::max_size)
        else {
            continue;
        };
        let join = agent.join_shapes[index].is_some();
        if let Some(reason) = admission.would_block(size.get(), subscription.is_keyed(), join, held)
        {
            return Err(RegistrationError::WouldBlock {
                agent: agent.name.to_string(),
                index,
                reason,
            });
        }
        held += size.get() - 1;
    }
    Ok(())
}
