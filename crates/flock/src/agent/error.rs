//! Why an agent could not be registered.

use flock_core::TypeConflict;
use flock_subscription::SubscriptionError;

/// Why an agent could not be registered. Every check happens at registration, never
/// at the first artifact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// The agent name is empty or blank.
    #[error("agent name must not be empty")]
    EmptyName,
    /// Another agent has this name.
    #[error("an agent named '{0}' is already registered; agent names must be unique")]
    DuplicateAgent(String),
    /// The agent consumes nothing.
    #[error("agent '{0}' consumes nothing; add at least one .consumes::<T>(..)")]
    NoSubscriptions(String),
    /// The agent has no engine.
    #[error("agent '{0}' has no engine; add .with_engine(..)")]
    NoEngine(String),
    /// A subscription is invalid.
    #[error("agent '{agent}', subscription {index}: {source}")]
    InvalidSubscription {
        /// The agent.
        agent: String,
        /// The subscription's index, in declaration order.
        index: usize,
        /// What is wrong with it.
        source: SubscriptionError,
    },
    /// A batch subscription on an engine that cannot evaluate batches.
    #[error(
        "agent '{agent}', subscription {index} batches, but engine `{engine}` has no batch evaluation; implement Engine::evaluate_batch and supports_batch, or drop .batch(..)"
    )]
    BatchUnsupported {
        /// The agent.
        agent: String,
        /// The subscription's index.
        index: usize,
        /// The engine's name.
        engine: String,
    },
    /// A one-at-a-time subscription on an engine that only evaluates batches.
    #[error(
        "agent '{agent}', subscription {index} delivers one artifact (or one join group) at a time, but engine `{engine}` only evaluates batches; add .batch(..) to the subscription"
    )]
    SingleUnsupported {
        /// The agent.
        agent: String,
        /// The subscription's index.
        index: usize,
        /// The engine's name.
        engine: String,
    },
    /// `max_concurrency(0)`.
    #[error("agent '{0}': max_concurrency must be at least 1, got 0")]
    ZeroConcurrency(String),
    /// `max_iterations(0)`.
    #[error("agent '{0}': max_iterations must be at least 1, got 0")]
    ZeroIterations(String),
    /// One output type declared with two different counts.
    #[error(
        "agent '{agent}' declares output type '{type_name}' twice, as {first} and as {second}; keep one"
    )]
    ConflictingOutput {
        /// The agent.
        agent: String,
        /// The type.
        type_name: &'static str,
        /// The first declaration.
        first: String,
        /// The second declaration.
        second: String,
    },
    /// An artifact type name is taken by another Rust type.
    #[error("agent '{agent}': {source}")]
    TypeConflict {
        /// The agent.
        agent: String,
        /// The conflict.
        source: TypeConflict,
    },
    /// The flock has shut down.
    #[error("cannot register agent '{0}': the flock has shut down")]
    Closed(String),
    /// The durable store could not record the agent.
    #[error("cannot register agent '{agent}': the store failed: {source}")]
    Store {
        /// The agent.
        agent: String,
        /// The store's error.
        source: flock_core::StoreError,
    },
    /// User code asked during registration (the engine's capabilities or name, a
    /// component's priority) panicked.
    #[error("agent '{agent}': registration panicked: {message}")]
    Panicked {
        /// The agent.
        agent: String,
        /// The panic message.
        message: String,
    },
    /// Under the flock's admission bounds with `OnFull::Wait`, a batch of this
    /// subscription could stop filling while publishes wait for it to make room:
    /// publishing would wait forever.
    #[error(
        "agent '{agent}', subscription {index}: {reason}; add a timeout to the batch (a timeout always makes room), raise the limit, or use OnFull::Reject"
    )]
    WouldBlock {
        /// The agent.
        agent: String,
        /// The subscription's index.
        index: usize,
        /// How publishing would get stuck.
        reason: String,
    },
}
