//! What a registered agent declared, as [`Flock::agents`] reports it to dashboards
//! and servers.

use std::num::NonZeroUsize;

use flock_core::AgentIdentity;
use flock_subscription::Subscription;

use super::{Agent, OutputCount};
use crate::Flock;

/// A registered agent's declaration: what it consumes and publishes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentInfo {
    /// The agent's name.
    pub name: String,
    /// Its description, if it has one.
    pub description: Option<String>,
    /// Who it is for visibility checks (tenant, labels).
    pub identity: AgentIdentity,
    /// Its subscriptions, in declaration order (types, batch, join).
    pub subscriptions: Vec<Subscription>,
    /// The types it publishes, with how many per run, by type name.
    pub outputs: Vec<(&'static str, OutputCount)>,
    /// How many of its runs may run at once.
    pub max_concurrency: NonZeroUsize,
}

impl AgentInfo {
    fn of(agent: &Agent) -> Self {
        Self {
            name: agent.name.to_string(),
            description: agent.description.clone(),
            identity: (*agent.identity).clone(),
            subscriptions: agent.subscriptions.clone(),
            outputs: agent
                .outputs
                .iter()
                .map(|(name, decl)| (*name, decl.count))
                .collect(),
            max_concurrency: agent.max_concurrency,
        }
    }
}

impl Flock {
    /// The registered agents, in registration order.
    pub fn agents(&self) -> Vec<AgentInfo> {
        self.runtime
            .core()
            .agents()
            .iter()
            .map(|agent| AgentInfo::of(agent))
            .collect()
    }
}
