//! Declaring agents: the `AgentBuilder`, its validation, and the registered `Agent`.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    sync::Arc,
};

use flock_batch::JoinShape;
use flock_core::{AgentIdentity, FlockType, Payload, TypeConflict, TypeRegistry, Visibility};
use flock_engines::Engine;
use flock_subscription::{AllOf, Subscribe, Subscription, SubscriptionError};
use tokio::sync::Semaphore;

use crate::Flock;

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
}

type RegisterType = fn(&TypeRegistry) -> Result<(), TypeConflict>;

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

/// Declares an agent: what it consumes, what it publishes, and its engine.
///
/// Start one with [`Flock::agent`]; finish with [`AgentBuilder::register`].
#[must_use = "an agent does nothing until .register() is called"]
pub struct AgentBuilder {
    flock: Flock,
    name: String,
    description: Option<String>,
    subscriptions: Vec<Result<Subscription, SubscriptionError>>,
    outputs: BTreeMap<&'static str, Option<VisibilityRule>>,
    types: Vec<RegisterType>,
    engine: Option<Arc<dyn Engine>>,
    max_concurrency: usize,
    prevent_self_trigger: bool,
    labels: BTreeSet<String>,
    tenant_id: Option<String>,
}

impl fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("name", &self.name)
            .field("subscriptions", &self.subscriptions)
            .field("outputs", &self.outputs.keys().collect::<Vec<_>>())
            .field("engine", &self.engine.as_ref().map(|e| e.name().to_owned()))
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    pub(crate) fn new(flock: Flock, name: String) -> Self {
        Self {
            flock,
            name,
            description: None,
            subscriptions: Vec::new(),
            outputs: BTreeMap::new(),
            types: Vec::new(),
            engine: None,
            max_concurrency: 1,
            prevent_self_trigger: true,
            labels: BTreeSet::new(),
            tenant_id: None,
        }
    }

    /// What the agent does and why (shown in traces and inspection).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds a subscription to artifacts of type `T`. Several calls are alternatives
    /// (OR): an artifact matching any of them triggers the agent, once.
    pub fn consumes<T: FlockType>(mut self, subscription: Subscribe<T>) -> Self {
        self.subscriptions.push(subscription.build());
        self
    }

    /// Adds an AND gate: the agent runs once a group holds every type of `gate` (as
    /// many of each as listed), grouped by correlation id, or by the gate's
    /// [`JoinSpec`](crate::JoinSpec) within its window. A complete group is one input
    /// of `evaluate`, or one item of the batch when the gate batches. Like
    /// [`AgentBuilder::consumes`], each call is one alternative (OR).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use flock::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, FlockType)]
    /// # struct XRay { patient_id: String }
    /// # #[derive(Serialize, Deserialize, FlockType)]
    /// # struct LabResult { patient_id: String }
    /// # #[derive(Serialize, Deserialize, FlockType)]
    /// # struct Diagnosis { patient_id: String }
    /// # let flock = Flock::new();
    /// flock
    ///     .agent("diagnostician")
    ///     .consumes_all(
    ///         AllOf::new().of::<XRay>().of::<LabResult>().join(
    ///             JoinSpec::by(|x: &XRay| x.patient_id.clone())
    ///                 .by(|l: &LabResult| l.patient_id.clone())
    ///                 .within(Duration::from_secs(300)),
    ///         ),
    ///     )
    ///     .publishes::<Diagnosis>()
    ///     .with_engine(group_fn(|_: &EngineContext, inputs: Inputs| {
    ///         let xray = inputs.get::<XRay>().expect("a group holds one XRay");
    ///         Ok::<_, String>(Diagnosis { patient_id: xray.patient_id.clone() })
    ///     }))
    ///     .register()?;
    /// # Ok::<(), flock::RegistrationError>(())
    /// ```
    pub fn consumes_all(mut self, gate: AllOf) -> Self {
        self.subscriptions.push(gate.build());
        self
    }

    /// Declares an output type, published with public visibility. An engine output
    /// of an undeclared type fails the run.
    pub fn publishes<T: FlockType>(mut self) -> Self {
        self.outputs.insert(T::TYPE_NAME, None);
        self.types.push(TypeRegistry::register::<T>);
        self
    }

    /// Declares an output type with its visibility: a fixed [`Visibility`], or a
    /// function of the output value.
    ///
    /// ```
    /// # use flock::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize, FlockType)]
    /// # struct Event { tenant_id: String }
    /// # #[derive(Serialize, Deserialize, FlockType)]
    /// # struct BatchReport { tenant_id: String, events: usize }
    /// # let flock = Flock::new();
    /// flock
    ///     .agent("tenant_batch")
    ///     .consumes::<Event>(Subscribe::new().batch(BatchSpec::size(50)))
    ///     // Each report is visible only to its own tenant.
    ///     .publishes_with(|r: &BatchReport| Visibility::tenant(r.tenant_id.clone()))
    /// #   .with_engine(SimpleBatchEngine)
    /// #   .register()
    /// #   .unwrap();
    /// ```
    pub fn publishes_with<T: FlockType>(mut self, visibility: impl OutputVisibility<T>) -> Self {
        let rule: VisibilityRule = Arc::new(move |payload: &Payload| {
            payload
                .downcast_ref::<T>()
                .map(|output| visibility.visibility_for(output))
        });
        self.outputs.insert(T::TYPE_NAME, Some(rule));
        self.types.push(TypeRegistry::register::<T>);
        self
    }

    /// The engine that processes the agent's inputs.
    pub fn with_engine(mut self, engine: impl Engine) -> Self {
        self.engine = Some(Arc::new(engine));
        self
    }

    /// The engine, already shared.
    pub fn with_shared_engine(mut self, engine: Arc<dyn Engine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// How many runs of this agent may execute at once (default 1, which also keeps
    /// batches processed in flush order).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n;
        self
    }

    /// Whether the agent ignores its own outputs (default: yes).
    pub fn prevent_self_trigger(mut self, prevent: bool) -> Self {
        self.prevent_self_trigger = prevent;
        self
    }

    /// Labels the agent holds, for labelled visibility.
    pub fn labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.labels.extend(labels.into_iter().map(Into::into));
        self
    }

    /// The tenant the agent acts for, for tenant visibility.
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// Validates the declaration and adds the agent to the flock.
    ///
    /// # Errors
    /// [`RegistrationError`] for an empty or duplicate name, no subscription, no
    /// engine, an invalid subscription (e.g. batch spec), a batch subscription on an
    /// engine without batch evaluation (or the reverse), `max_concurrency(0)`, or an
    /// artifact type name conflict.
    pub fn register(self) -> Result<AgentHandle, RegistrationError> {
        let agent = self.validate()?;
        let name = agent.name.clone();
        self.flock.shared.register(agent)?;
        Ok(AgentHandle { name })
    }

    fn validate(&self) -> Result<Agent, RegistrationError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(RegistrationError::EmptyName);
        }
        let name = name.to_owned();
        if self.subscriptions.is_empty() {
            return Err(RegistrationError::NoSubscriptions(name));
        }
        let Some(engine) = self.engine.clone() else {
            return Err(RegistrationError::NoEngine(name));
        };
        if self.max_concurrency == 0 {
            return Err(RegistrationError::ZeroConcurrency(name));
        }
        let mut subscriptions = Vec::with_capacity(self.subscriptions.len());
        for (index, subscription) in self.subscriptions.iter().enumerate() {
            let subscription =
                subscription
                    .clone()
                    .map_err(|source| RegistrationError::InvalidSubscription {
                        agent: name.clone(),
                        index,
                        source,
                    })?;
            let engine_name = || engine.name().to_owned();
            if subscription.batch().is_some() && !engine.supports_batch() {
                return Err(RegistrationError::BatchUnsupported {
                    agent: name,
                    index,
                    engine: engine_name(),
                });
            }
            if subscription.batch().is_none() && !engine.supports_single() {
                return Err(RegistrationError::SingleUnsupported {
                    agent: name,
                    index,
                    engine: engine_name(),
                });
            }
            subscription
                .register_types(&self.flock.shared.registry)
                .map_err(|source| RegistrationError::TypeConflict {
                    agent: name.clone(),
                    source,
                })?;
            subscriptions.push(subscription);
        }
        for register in &self.types {
            register(&self.flock.shared.registry).map_err(|source| {
                RegistrationError::TypeConflict {
                    agent: name.clone(),
                    source,
                }
            })?;
        }
        Ok(Agent {
            identity: Arc::new(AgentIdentity {
                name: name.clone(),
                labels: self.labels.clone(),
                tenant_id: self.tenant_id.clone(),
            }),
            name: name.into(),
            description: self.description.clone(),
            join_shapes: subscriptions.iter().map(JoinShape::of).collect(),
            subscriptions,
            outputs: self.outputs.clone(),
            engine,
            permits: Arc::new(Semaphore::new(self.max_concurrency)),
            prevent_self_trigger: self.prevent_self_trigger,
        })
    }
}

/// A registered agent, as the runtime holds it.
pub(crate) struct Agent {
    pub(crate) name: Arc<str>,
    #[expect(
        dead_code,
        reason = "kept for inspection and traces, which read it later"
    )]
    pub(crate) description: Option<String>,
    pub(crate) identity: Arc<AgentIdentity>,
    pub(crate) subscriptions: Vec<Subscription>,
    /// Per subscription: the shape of its groups, for AND gates and joins.
    pub(crate) join_shapes: Vec<Option<JoinShape>>,
    pub(crate) outputs: BTreeMap<&'static str, Option<VisibilityRule>>,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) prevent_self_trigger: bool,
}

/// A registered agent.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    name: Arc<str>,
}

impl AgentHandle {
    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
