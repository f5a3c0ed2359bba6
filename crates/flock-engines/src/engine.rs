//! The `Engine` trait, its errors and its outputs.

use std::error::Error as StdError;

use async_trait::async_trait;
use flock_core::{FlockType, Payload};

use crate::{BatchInputs, EngineContext, Inputs};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Why an engine run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine cannot evaluate this kind of run.
    #[error("engine `{engine}` does not support {what}")]
    Unsupported {
        /// The engine's name.
        engine: String,
        /// What was asked of it, e.g. "batch evaluation".
        what: &'static str,
    },
    /// An input was not of the type the engine expects.
    #[error("engine expected input of type '{expected}', got '{got}'")]
    UnexpectedInput {
        /// The type expected.
        expected: &'static str,
        /// The type received.
        got: &'static str,
    },
    /// The engine asked for batch figures in a run that is not a flushed batch.
    #[error(
        "agent `{agent}` asked for batch metrics in a run that is not a batch; \
         give its subscription a BatchSpec, or use `ctx.batch` (an Option) for agents that run both ways"
    )]
    NotABatch {
        /// The agent.
        agent: String,
    },
    /// The engine's own failure.
    #[error("{0}")]
    Failed(#[source] BoxError),
}

impl EngineError {
    /// An error from any error value or message.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self::Failed(error.into())
    }
}

/// What a run publishes.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    payloads: Vec<Payload>,
}

impl Outputs {
    /// No outputs.
    pub fn none() -> Self {
        Self::default()
    }

    /// One output.
    pub fn one<T: FlockType>(value: T) -> Self {
        Self {
            payloads: vec![Payload::new(value)],
        }
    }

    /// Adds an output.
    pub fn push<T: FlockType>(&mut self, value: T) {
        self.payloads.push(Payload::new(value));
    }

    /// Adds an already erased output.
    pub fn push_payload(&mut self, payload: Payload) {
        self.payloads.push(payload);
    }

    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    /// The outputs, erased.
    pub fn into_payloads(self) -> Vec<Payload> {
        self.payloads
    }

    /// The outputs, erased, by reference.
    pub fn payloads(&self) -> &[Payload] {
        &self.payloads
    }
}

impl<T: FlockType> FromIterator<T> for Outputs {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self {
            payloads: iter.into_iter().map(Payload::new).collect(),
        }
    }
}

/// What a function engine may return: one value, or [`Outputs`] for none or several
/// (`Outputs::none()`, or `values.into_iter().collect::<Outputs>()`).
pub trait IntoOutputs {
    /// The outputs.
    fn into_outputs(self) -> Outputs;
}

impl IntoOutputs for Outputs {
    fn into_outputs(self) -> Outputs {
        self
    }
}

impl<T: FlockType> IntoOutputs for T {
    fn into_outputs(self) -> Outputs {
        Outputs::one(self)
    }
}

/// What an agent does with its inputs.
///
/// Implement [`Engine::evaluate`] for one input at a time, and
/// [`Engine::evaluate_batch`] (returning `true` from [`Engine::supports_batch`]) to
/// receive whole batches. A batch subscription on an engine without batch evaluation
/// is refused when the agent registers.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// A name for errors and traces.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Whether [`Engine::evaluate`] is implemented (default: yes).
    fn supports_single(&self) -> bool {
        true
    }

    /// Whether [`Engine::evaluate_batch`] is implemented (default: no).
    fn supports_batch(&self) -> bool {
        false
    }

    /// Processes one unit of input: one artifact, or one complete join group.
    ///
    /// # Errors
    /// Any failure; the runtime publishes it as a `WorkflowError` with the input ids.
    async fn evaluate(&self, ctx: &EngineContext, inputs: Inputs) -> Result<Outputs, EngineError>;

    /// Processes a flushed batch.
    ///
    /// # Errors
    /// Any failure; the runtime publishes it as a `WorkflowError` with the input ids.
    async fn evaluate_batch(
        &self,
        ctx: &EngineContext,
        batch: BatchInputs,
    ) -> Result<Outputs, EngineError> {
        let _ = (ctx, batch);
        Err(EngineError::Unsupported {
            engine: self.name().to_owned(),
            what: "batch evaluation",
        })
    }
}
