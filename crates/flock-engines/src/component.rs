//! Agent components: lifecycle hooks the runtime calls around an agent's runs
//! (Flock's `AgentComponent`), for metrics, budgets, guards, auditing and the like.

use std::sync::Arc;

use async_trait::async_trait;
use flock_core::Artifact;

use crate::{EngineContext, EngineError, Outputs};

/// A failed attempt of a run, as [`AgentComponent::on_error`] sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RunFailure<'a> {
    /// What went wrong.
    pub error: &'a EngineError,
    /// The attempt that failed: 1 for the first.
    pub attempt: u32,
    /// Whether the runtime will try again (the agent's retry policy allows another
    /// attempt). When `false`, the runtime publishes a `WorkflowError` and keeps the
    /// inputs as a failed run.
    pub will_retry: bool,
}

impl<'a> RunFailure<'a> {
    /// A failure report.
    pub fn new(error: &'a EngineError, attempt: u32, will_retry: bool) -> Self {
        Self {
            error,
            attempt,
            will_retry,
        }
    }
}

/// Hooks around an agent's runs, attached with the agent builder's `.with_component(..)`.
///
/// Every method has a default that does nothing, so a component implements only the
/// hooks it needs. Components of one agent run in ascending [`priority`] order (ties
/// keep the order they were attached in). The runtime calls, for each run:
///
/// 1. [`initialize`] once per agent, before its first run (again on the next run if
///    it failed);
/// 2. [`before_consume`] once per run, with the run's input artifacts;
/// 3. per attempt: [`before_evaluate`], the engine, [`after_evaluate`] (which may
///    change the outputs), then the agent's output check;
/// 4. on success, [`after_publish`] for every published output;
/// 5. on a failed attempt, [`on_error`] (telling whether the run will be retried);
/// 6. [`on_terminate`] once per initialized agent, when the flock shuts down.
///
/// An error returned from `initialize`, `before_consume`, `before_evaluate` or
/// `after_evaluate` fails the attempt like an engine error (and is retried under the
/// agent's retry policy); a panic in any hook is caught and treated the same way.
///
/// [`priority`]: AgentComponent::priority
/// [`initialize`]: AgentComponent::initialize
/// [`before_consume`]: AgentComponent::before_consume
/// [`before_evaluate`]: AgentComponent::before_evaluate
/// [`after_evaluate`]: AgentComponent::after_evaluate
/// [`after_publish`]: AgentComponent::after_publish
/// [`on_error`]: AgentComponent::on_error
/// [`on_terminate`]: AgentComponent::on_terminate
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use async_trait::async_trait;
/// use flock_core::Artifact;
/// use flock_engines::{AgentComponent, EngineContext, EngineError};
///
/// /// Counts the artifacts an agent consumed.
/// #[derive(Default)]
/// struct Counter(AtomicUsize);
///
/// #[async_trait]
/// impl AgentComponent for Counter {
///     async fn before_consume(
///         &self,
///         _ctx: &EngineContext,
///         inputs: &[Arc<Artifact>],
///     ) -> Result<(), EngineError> {
///         self.0.fetch_add(inputs.len(), Ordering::Relaxed);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait AgentComponent: Send + Sync + 'static {
    /// A name for errors and traces.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Order among the agent's components: lower runs first (default 0).
    fn priority(&self) -> i32 {
        0
    }

    /// Called once per agent, before its first run.
    ///
    /// # Errors
    /// Fails the run's attempt; `initialize` is tried again before the next attempt.
    async fn initialize(&self, agent: &str) -> Result<(), EngineError> {
        let _ = agent;
        Ok(())
    }

    /// Called once per run, before any attempt, with the run's inputs in order.
    ///
    /// # Errors
    /// Fails the attempt.
    async fn before_consume(
        &self,
        ctx: &EngineContext,
        inputs: &[Arc<Artifact>],
    ) -> Result<(), EngineError> {
        let _ = (ctx, inputs);
        Ok(())
    }

    /// Called before every attempt to evaluate (`ctx.attempt` says which).
    ///
    /// # Errors
    /// Fails the attempt.
    async fn before_evaluate(
        &self,
        ctx: &EngineContext,
        inputs: &[Arc<Artifact>],
    ) -> Result<(), EngineError> {
        let _ = (ctx, inputs);
        Ok(())
    }

    /// Called after the engine succeeded, before the outputs are checked against the
    /// agent's declaration and published; may change them.
    ///
    /// # Errors
    /// Fails the attempt.
    async fn after_evaluate(
        &self,
        ctx: &EngineContext,
        outputs: &mut Outputs,
    ) -> Result<(), EngineError> {
        let _ = (ctx, outputs);
        Ok(())
    }

    /// Called for every output the run published, after it is on the blackboard.
    async fn after_publish(&self, ctx: &EngineContext, artifact: &Arc<Artifact>) {
        let _ = (ctx, artifact);
    }

    /// Called for every failed attempt.
    async fn on_error(&self, ctx: &EngineContext, failure: &RunFailure<'_>) {
        let _ = (ctx, failure);
    }

    /// Called once at shutdown, after the agent's last run, if it was initialized.
    async fn on_terminate(&self, agent: &str) {
        let _ = agent;
    }
}

#[async_trait]
impl<C: AgentComponent + ?Sized> AgentComponent for Arc<C> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn priority(&self) -> i32 {
        (**self).priority()
    }

    async fn initialize(&self, agent: &str) -> Result<(), EngineError> {
        (**self).initialize(agent).await
    }

    async fn before_consume(
        &self,
        ctx: &EngineContext,
        inputs: &[Arc<Artifact>],
    ) -> Result<(), EngineError> {
        (**self).before_consume(ctx, inputs).await
    }

    async fn before_evaluate(
        &self,
        ctx: &EngineContext,
        inputs: &[Arc<Artifact>],
    ) -> Result<(), EngineError> {
        (**self).before_evaluate(ctx, inputs).await
    }

    async fn after_evaluate(
        &self,
        ctx: &EngineContext,
        outputs: &mut Outputs,
    ) -> Result<(), EngineError> {
        (**self).after_evaluate(ctx, outputs).await
    }

    async fn after_publish(&self, ctx: &EngineContext, artifact: &Arc<Artifact>) {
        (**self).after_publish(ctx, artifact).await;
    }

    async fn on_error(&self, ctx: &EngineContext, failure: &RunFailure<'_>) {
        (**self).on_error(ctx, failure).await;
    }

    async fn on_terminate(&self, agent: &str) {
        (**self).on_terminate(agent).await;
    }
}
