//! Errors of publishing and of the blackboard store.

/// Two Rust types claim the same artifact type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "artifact type name '{type_name}' is already registered by rust type `{existing}`, cannot register `{new}` under it; give one of them another name with #[flock(name = \"...\")]"
)]
pub struct TypeConflict {
    /// The contested name.
    pub type_name: String,
    /// The Rust type registered first.
    pub existing: &'static str,
    /// The Rust type that was refused.
    pub new: &'static str,
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// JSON named a type nobody registered.
    #[error("unknown artifact type '{type_name}'; registered types: {}", known_list(.known))]
    UnknownType {
        /// The name given.
        type_name: String,
        /// The names that are registered.
        known: Vec<String>,
    },
    /// The payload does not deserialize into the named type.
    #[error(
        "payload does not fit artifact type '{type_name}'{}: {source}",
        at_field(.path.as_deref())
    )]
    InvalidPayload {
        /// The type the payload was meant for.
        type_name: String,
        /// Where in the payload it does not fit, as `items[2].price`; `None` when the
        /// payload as a whole does not (a missing field is named by `source`).
        path: Option<String>,
        /// What serde reported.
        source: serde_json::Error,
    },
    /// The JSON is not of the form `{"type": "...", "payload": {...}}`.
    #[error(
        "malformed artifact envelope: {reason}; expected {{\"type\": \"TypeName\", \"payload\": {{...}}}}"
    )]
    MalformedEnvelope {
        /// What is wrong with it.
        reason: String,
    },
    /// The value's type name is taken by another Rust type.
    #[error(transparent)]
    TypeConflict(#[from] TypeConflict),
    /// Admission control refused the artifact: too many are waiting in batches.
    #[error(
        "admission limit reached: {waiting} items waiting in {scope}, limit {limit}; publish later, raise the limit, or configure OnFull::Wait for backpressure"
    )]
    Full {
        /// Where the limit applies: "all batches" or "agent 'x', subscription n".
        scope: String,
        /// Items waiting there.
        waiting: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The orchestrator has shut down.
    #[error("the flock has shut down; artifacts published after shutdown() are refused")]
    Closed,
    /// The store refused the artifact.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn at_field(path: Option<&str>) -> String {
    path.map(|path| format!(" at field '{path}'"))
        .unwrap_or_default()
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    }
}

/// A failure of a [`BlackboardStore`](crate::BlackboardStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An artifact with this id is already stored.
    #[error("artifact {0} is already stored")]
    Duplicate(crate::ArtifactId),
    /// A cluster store refused a commit: the process no longer holds the lease of
    /// the run's unit (another process took it over and runs the inputs again).
    #[error("the lease of {unit} changed owner (epoch {epoch}); the new owner runs these inputs")]
    Fenced {
        /// The unit, as `agent/subscription[/partition]`.
        unit: String,
        /// The epoch the commit carried.
        epoch: u64,
    },
    /// Any other failure of a store backend.
    #[error("store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}
