//! Direct invocation: one agent run on given inputs, outside its subscriptions
//! (Python Flock's `direct_invoke`, the server's `POST /api/v1/agents/{name}/run`).

use std::{collections::HashSet, sync::Arc};

use flock_core::{Artifact, ArtifactFilter, ArtifactId, Payload, RunCommit, StoreError};
use uuid::Uuid;

use crate::{Flock, PublishOptions, decision::Phase, run::Outcome, work::Work};

/// Why [`Flock::invoke`] did not run the agent, or how the run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No agent has this name.
    #[error("no agent named '{name}'; registered agents: {}", known.join(", "))]
    UnknownAgent {
        /// The name given.
        name: String,
        /// The registered agents.
        known: Vec<String>,
    },
    /// An input's type is none the agent consumes.
    #[error("agent '{agent}' does not consume '{type_name}'; it consumes: {}", consumes.join(", "))]
    NotConsumed {
        /// The agent.
        agent: String,
        /// The input's type.
        type_name: String,
        /// The types its subscriptions take.
        consumes: Vec<String>,
    },
    /// No inputs were given.
    #[error("an agent run needs at least one input")]
    NoInputs,
    /// The run failed for good; its inputs are kept as a failed run.
    #[error("agent '{agent}' failed: {error}; failed run {failed_run} holds its inputs")]
    RunFailed {
        /// The agent.
        agent: String,
        /// The last error.
        error: String,
        /// The failed run, for `Flock::retry_failed_run`.
        failed_run: Uuid,
    },
    /// The flock shut down before the run could start or end.
    #[error("the flock has shut down; agents no longer run")]
    Closed,
    /// The flock is in a cluster, where every stored artifact reaches the
    /// subscriptions of its units' owners through the feed: a direct run would be a
    /// second delivery. Nothing was stored.
    #[error(
        "agent '{agent}' cannot be invoked directly in a cluster: the cluster's feed delivers \
         every stored artifact to the subscriptions of its owners; publish the inputs instead"
    )]
    InCluster {
        /// The agent.
        agent: String,
    },
    /// Storing the inputs or reading the outputs failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Flock {
    /// Runs the agent `agent` once on `inputs`, directly, and returns the artifacts
    /// the run published.
    ///
    /// The inputs are stored on the blackboard (external, with `options`; a fresh
    /// correlation id unless one is given, which the outputs inherit) but delivered
    /// to this agent alone, as one run: they bypass its subscriptions' predicates,
    /// joins and batches, and other agents do not receive them. Outputs go
    /// through the usual publish, so agents subscribed to them react. The run
    /// counts for the agent's concurrency, retries and circuit breaker.
    ///
    /// # Errors
    /// [`InvokeError::UnknownAgent`], [`InvokeError::NotConsumed`],
    /// [`InvokeError::NoInputs`], [`InvokeError::InCluster`] before anything is
    /// stored;
    /// [`InvokeError::RunFailed`] when the run failed for good (its inputs are in
    /// [`Flock::failed_runs`]); [`InvokeError::Closed`] after shutdown.
    pub async fn invoke(
        &self,
        agent: &str,
        inputs: Vec<Payload>,
        options: PublishOptions,
    ) -> Result<Vec<Arc<Artifact>>, InvokeError> {
        self.recovered().await;
        let (index, name) = self.agent_for(agent, &inputs)?;
        let now = self.runtime.now();
        let correlation = options.correlation_id.unwrap_or_else(Uuid::now_v7);
        let artifacts: Vec<Arc<Artifact>> = inputs
            .into_iter()
            .map(|payload| {
                let mut artifact =
                    Artifact::new_at(payload, Artifact::external_producer(), now.wall);
                artifact.set_correlation_id(Some(correlation));
                artifact.set_partition_key(options.partition_key.clone());
                artifact.set_tags(options.tags.clone());
                artifact.set_visibility(options.visibility.clone());
                Arc::new(artifact)
            })
            .collect();
        let outputs = ArtifactFilter {
            correlation_id: Some(correlation),
            ..ArtifactFilter::new()
        }
        .produced_by(name.clone());
        let before: HashSet<_> = self
            .runtime
            .store()
            .query(&outputs)
            .await?
            .iter()
            .map(|a| a.id)
            .collect();
        self.runtime.store().publish_all(&artifacts).await?;
        self.consumed_by_others(index, &artifacts).await?;
        let ended = self
            .runtime
            .invoke(index, Work::Single(artifacts))
            .ok_or(InvokeError::Closed)?;
        match ended.await.map_err(|_| InvokeError::Closed)? {
            Outcome::Done { .. } => Ok(self
                .runtime
                .store()
                .query(&outputs)
                .await?
                .into_iter()
                .filter(|a| !before.contains(&a.id))
                .collect()),
            Outcome::Failed { failed_run, error } => Err(InvokeError::RunFailed {
                agent: name,
                error,
                failed_run,
            }),
            // Only a run of a cluster moves, and a cluster refuses invocations.
            Outcome::Moved => Err(InvokeError::InCluster { agent: name }),
        }
    }

    /// Records `inputs` as consumed by every other agent that consumes one of their
    /// types, in a durable store: an invocation delivers to no subscription, and
    /// recovery after a restart must not either. (A crash between storing the
    /// inputs and this leaves them to those agents' recovery.)
    async fn consumed_by_others(
        &self,
        index: u32,
        inputs: &[Arc<Artifact>],
    ) -> Result<(), StoreError> {
        let store = self.runtime.store();
        if !store.is_durable() {
            return Ok(());
        }
        let ids: Vec<ArtifactId> = inputs.iter().map(|a| a.id).collect();
        let types: HashSet<&str> = inputs.iter().map(|a| a.type_name()).collect();
        for other in self.runtime.agents() {
            let takes_one = other.consumed_types().any(|t| types.contains(t));
            if other.index == index || !takes_one {
                continue;
            }
            store
                .commit_run(RunCommit {
                    agent: &other.name,
                    run_id: Uuid::now_v7(),
                    inputs: &ids,
                    outputs: &[],
                    fence: None,
                    retries: None,
                })
                .await?;
        }
        Ok(())
    }

    /// The agent's index and name, once the inputs are checked against what it
    /// consumes.
    fn agent_for(&self, agent: &str, inputs: &[Payload]) -> Result<(u32, String), InvokeError> {
        let core = self.runtime.core();
        if core.phase() != Phase::Open {
            return Err(InvokeError::Closed);
        }
        let Some(found) = core.agents().iter().find(|a| &*a.name == agent) else {
            return Err(InvokeError::UnknownAgent {
                name: agent.to_owned(),
                known: core.agents().iter().map(|a| a.name.to_string()).collect(),
            });
        };
        if inputs.is_empty() {
            return Err(InvokeError::NoInputs);
        }
        if self.runtime.membership().is_some() {
            return Err(InvokeError::InCluster {
                agent: agent.to_owned(),
            });
        }
        let consumes: Vec<&'static str> = found.consumed_types().collect();
        if let Some(other) = inputs.iter().find(|p| !consumes.contains(&p.type_name())) {
            return Err(InvokeError::NotConsumed {
                agent: agent.to_owned(),
                type_name: other.type_name().to_owned(),
                consumes: consumes.iter().map(|t| (*t).to_owned()).collect(),
            });
        }
        Ok((found.index, found.name.to_string()))
    }
}
