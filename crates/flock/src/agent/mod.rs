//! Agents: their declaration as the runtime holds it ([`Agent`]), what and how
//! many they publish, and the builder that validates a declaration
//! ([`AgentBuilder`]).

mod builder;
mod error;
mod info;

use std::{collections::BTreeMap, num::NonZeroUsize, sync::Arc};

use chrono::{DateTime, Utc};
use flock_batch::JoinShape;
use flock_core::{AgentIdentity, Artifact, FlockType, Payload, Visibility};
use flock_engines::{AgentComponent, Engine};
use flock_subscription::Subscription;

pub use builder::AgentBuilder;
pub(crate) use builder::Registrar;
pub use error::RegistrationError;
pub use info::AgentInfo;

use crate::RetryPolicy;

/// How many outputs of one type an agent's run publishes: its output contract, checked
/// after every engine call. A run whose outputs break it fails with an error naming
/// the type and both counts (published as a `WorkflowError`, retried under the agent's
/// [`RetryPolicy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutputCount {
    /// Exactly one per run: [`AgentBuilder::publishes`].
    ExactlyOne,
    /// Any number per run, none included: [`AgentBuilder::publishes_many`].
    Any,
    /// Exactly one per input item (an artifact, or a join group), so a batch of 100
    /// publishes 100: [`AgentBuilder::publishes_per_input`].
    PerInput,
}

impl OutputCount {
    /// The builder call that declares this count, for messages.
    pub(crate) fn declaration(self, type_name: &str) -> String {
        match self {
            Self::ExactlyOne => format!(".publishes::<{type_name}>()"),
            Self::Any => format!(".publishes_many::<{type_name}>()"),
            Self::PerInput => format!(".publishes_per_input::<{type_name}>()"),
        }
    }
}

/// The visibility an agent gives one of its outputs: fixed, or computed from the
/// output value (Python Flock's `TenantVisibility(tenant_id_extractor=...)`).
///
/// Implemented for [`Visibility`] and for closures `Fn(&T) -> Visibility`.
pub trait OutputVisibility<T>: Send + Sync + 'static {
    /// The visibility of `output`.
    fn visibility_for(&self, output: &T) -> Visibility;
}

impl<T> OutputVisibility<T> for Visibility {
    fn visibility_for(&self, _output: &T) -> Visibility {
        self.clone()
    }
}

impl<T, F> OutputVisibility<T> for F
where
    F: Fn(&T) -> Visibility + Send + Sync + 'static,
{
    fn visibility_for(&self, output: &T) -> Visibility {
        self(output)
    }
}

/// An erased visibility rule: `None` for outputs of another type (never happens once
/// outputs are checked against the declaration).
pub(crate) type VisibilityRule = Arc<dyn Fn(&Payload) -> Option<Visibility> + Send + Sync>;

pub(crate) fn visibility_rule<T: FlockType>(
    visibility: impl OutputVisibility<T>,
) -> VisibilityRule {
    Arc::new(move |payload: &Payload| {
        payload
            .downcast_ref::<T>()
            .map(|output| visibility.visibility_for(output))
    })
}

/// One declared output type of a registered agent.
pub(crate) struct OutputDecl {
    pub(crate) count: OutputCount,
    /// `None`: whoever could see every input of the run (see
    /// [`Visibility::derived_from`]).
    pub(crate) visibility: Option<VisibilityRule>,
}

/// A registered agent, as the runtime holds it: its declaration, immutable once
/// registered. What changes while the flock runs (slots, backlog, circuit breaker,
/// component lifecycle) lives with the runtime.
pub(crate) struct Agent {
    /// Its index in registration order, set by registration.
    pub(crate) index: u32,
    pub(crate) name: Arc<str>,
    pub(crate) description: Option<String>,
    pub(crate) identity: Arc<AgentIdentity>,
    pub(crate) subscriptions: Vec<Subscription>,
    /// Per subscription: the shape of its groups, for AND gates and joins.
    pub(crate) join_shapes: Vec<Option<JoinShape>>,
    /// Declared output types: how many of each a run publishes, and their visibility.
    pub(crate) outputs: BTreeMap<&'static str, OutputDecl>,
    pub(crate) engine: Arc<dyn Engine>,
    /// Sorted by priority.
    pub(crate) components: Vec<Arc<dyn AgentComponent>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_iterations: Option<NonZeroUsize>,
    pub(crate) max_concurrency: NonZeroUsize,
    pub(crate) prevent_self_trigger: bool,
}

impl Agent {
    /// The first two steps of matching, before any subscription: self-trigger
    /// prevention, then visibility at `now`.
    pub(crate) fn may_receive(&self, artifact: &Artifact, now: DateTime<Utc>) -> bool {
        !(self.prevent_self_trigger && *artifact.produced_by == *self.name)
            && artifact
                .visibility()
                .allows(&self.identity, artifact.created_at, now)
    }

    /// The types its subscriptions consume, in declaration order (a type taken by
    /// several subscriptions appears once per slot).
    pub(crate) fn consumed_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.subscriptions
            .iter()
            .flat_map(|s| s.slots().iter().map(|slot| slot.type_name))
    }
}

/// A registered agent.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    name: Arc<str>,
}

impl AgentHandle {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self { name }
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
