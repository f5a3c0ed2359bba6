//! Vocabulary types shared by the runtime and engines: flush reasons and `WorkflowError`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ArtifactId;

/// Why a batch was handed to its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushReason {
    /// The batch reached its configured size.
    Size,
    /// The configured timeout elapsed since the batch's first item.
    Timeout,
    /// The orchestrator shut down and flushed every partial batch.
    Shutdown,
    /// An explicit flush call.
    Manual,
}

impl FlushReason {
    /// The reason as it appears in traces and reports: `size`, `timeout`, `shutdown`, `manual`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Timeout => "timeout",
            Self::Shutdown => "shutdown",
            Self::Manual => "manual",
        }
    }
}

impl fmt::Display for FlushReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run is among the failed runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// Every attempt failed: an engine error or panic, a component hook, or outputs
    /// that broke the output contract (or that the store refused).
    Failed,
    /// The agent's circuit breaker (`max_iterations`) refused the run; it never ran.
    CircuitOpen,
}

/// Published by the runtime when an agent run fails, so the failure and its inputs
/// are on the blackboard instead of lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, flock_macros::FlockType)]
#[flock(crate = "crate")]
pub struct WorkflowError {
    /// The agent whose run failed.
    pub agent: String,
    /// What went wrong.
    pub error: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// The artifacts the failed run consumed.
    pub input_ids: Vec<ArtifactId>,
    /// The flush reason, when the run was a batch.
    pub flush_reason: Option<FlushReason>,
}
