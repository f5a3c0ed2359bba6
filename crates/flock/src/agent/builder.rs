//! The agent builder: declaring what an agent consumes and publishes, and
//! validating the declaration at registration.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    num::NonZeroUsize,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use flock_batch::JoinShape;
use flock_core::{AgentIdentity, FlockType, TypeConflict, TypeRegistry, panic_message};
use flock_engines::{AgentComponent, Engine};
use flock_subscription::{AllOf, Subscribe, Subscription, SubscriptionError};

use super::{
    Agent, AgentHandle, OutputCount, OutputDecl, OutputVisibility, RegistrationError,
    VisibilityRule, visibility_rule,
};
use crate::RetryPolicy;

type RegisterType = fn(&TypeRegistry) -> Result<(), TypeConflict>;

/// Where a validated agent is registered: the runtime, as the builder sees it.
pub(crate) trait Registrar: Send + Sync {
    /// The flock's artifact types.
    fn registry(&self) -> &TypeRegistry;
    /// Adds the agent to the flock.
    ///
    /// # Errors
    /// A closed flock, a duplicate name, admission bounds the agent could wedge.
    fn register(&self, agent: Agent) -> Result<(), RegistrationError>;
}

/// Declares an agent: what it consumes, what it publishes, and its engine.
///
/// Start one with [`Flock::agent`](crate::Flock::agent); finish with [`AgentBuilder::register`].
#[must_use = "an agent does nothing until .register() is called"]
pub struct AgentBuilder {
    runtime: Arc<dyn Registrar>,
    name: String,
    description: Option<String>,
    subscriptions: Vec<Result<Subscription, SubscriptionError>>,
    outputs: Vec<(&'static str, OutputCount, Option<VisibilityRule>)>,
    types: Vec<RegisterType>,
    engine: Option<Arc<dyn Engine>>,
    components: Vec<Arc<dyn AgentComponent>>,
    retry: RetryPolicy,
    max_iterations: Option<usize>,
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
            .field(
                "outputs",
                &self
                    .outputs
                    .iter()
                    .map(|(name, count, _)| (name, count))
                    .collect::<Vec<_>>(),
            )
            .field("engine", &self.engine.as_ref().map(|e| e.name().to_owned()))
            .field(
                "components",
                &self.components.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .field("retry", &self.retry)
            .field("max_iterations", &self.max_iterations)
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    pub(crate) fn new(runtime: Arc<dyn Registrar>, name: String) -> Self {
        Self {
            runtime,
            name,
            description: None,
            subscriptions: Vec::new(),
            outputs: Vec::new(),
            types: Vec::new(),
            engine: None,
            components: Vec::new(),
            retry: RetryPolicy::none(),
            max_iterations: None,
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

    /// Declares an output type, exactly one per run (every run must publish one `T`).
    ///
    /// Its visibility is derived from the run's inputs: visible to whoever could see
    /// every input (public when the inputs are public; a tenant's when they are that
    /// tenant's; see [`Visibility::derived_from`](crate::Visibility::derived_from)(crate::Visibility::derived_from)). Give an explicit visibility with
    /// [`publishes_with`](Self::publishes_with).
    ///
    /// The output contract is checked after each engine call: an output of an
    /// undeclared type, or another count than declared, fails the run with an error
    /// naming the type and the counts. Declare [`publishes_many`](Self::publishes_many)
    /// for any number (none included), [`publishes_per_input`](Self::publishes_per_input)
    /// for one per input item; the `_with` variants also set the visibility.
    pub fn publishes<T: FlockType>(self) -> Self {
        self.declare::<T>(OutputCount::ExactlyOne, None)
    }

    /// Declares an output type, exactly one per run, with its visibility: a fixed
    /// [`Visibility`](crate::Visibility), or a function of the output value.
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
    pub fn publishes_with<T: FlockType>(self, visibility: impl OutputVisibility<T>) -> Self {
        self.declare::<T>(OutputCount::ExactlyOne, Some(visibility_rule(visibility)))
    }

    /// Declares an output type of which a run may publish any number, none included.
    pub fn publishes_many<T: FlockType>(self) -> Self {
        self.declare::<T>(OutputCount::Any, None)
    }

    /// [`publishes_many`](Self::publishes_many) with a visibility, as
    /// [`publishes_with`](Self::publishes_with).
    pub fn publishes_many_with<T: FlockType>(self, visibility: impl OutputVisibility<T>) -> Self {
        self.declare::<T>(OutputCount::Any, Some(visibility_rule(visibility)))
    }

    /// Declares an output type of which a run publishes exactly one per input item:
    /// one per artifact of a batch (one per group for join subscriptions), one for a
    /// run of a single artifact.
    pub fn publishes_per_input<T: FlockType>(self) -> Self {
        self.declare::<T>(OutputCount::PerInput, None)
    }

    /// [`publishes_per_input`](Self::publishes_per_input) with a visibility, as
    /// [`publishes_with`](Self::publishes_with).
    pub fn publishes_per_input_with<T: FlockType>(
        self,
        visibility: impl OutputVisibility<T>,
    ) -> Self {
        self.declare::<T>(OutputCount::PerInput, Some(visibility_rule(visibility)))
    }

    fn declare<T: FlockType>(
        mut self,
        count: OutputCount,
        visibility: Option<VisibilityRule>,
    ) -> Self {
        self.outputs.push((T::TYPE_NAME, count, visibility));
        self.types.push(TypeRegistry::register::<T>);
        self
    }

    /// Attaches a component: hooks called around the agent's runs, ordered by
    /// [`AgentComponent::priority`] (lower first; ties in attachment order).
    pub fn with_component(mut self, component: impl AgentComponent) -> Self {
        self.components.push(Arc::new(component));
        self
    }

    /// What happens when a run fails (default [`RetryPolicy::none`]: one attempt,
    /// then a `WorkflowError` and a failed run kept for `Flock::failed_runs`).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Circuit breaker: at most `n` runs of this agent between two moments the flock
    /// is idle (Flock's `max_agent_iterations`; it counts runs, not artifacts, so a
    /// batch of 100 is one). Default: no limit.
    ///
    /// It stops runaway feedback loops (agents triggering each other forever). A run
    /// the breaker refuses is not lost: it is not executed, a `WorkflowError` saying
    /// so is published, and its inputs are kept as a failed run in
    /// `Flock::failed_runs` (kind `CircuitOpen`), from which
    /// `Flock::retry_failed_run` can run it later. The count starts again from zero
    /// whenever no run is scheduled or running.
    pub fn max_iterations(mut self, n: usize) -> Self {
        self.max_iterations = Some(n);
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
    /// engine without batch evaluation (or the reverse), `max_concurrency(0)`,
    /// `max_iterations(0)`, an output type declared with two counts, or an artifact
    /// type name conflict.
    pub fn register(self) -> Result<AgentHandle, RegistrationError> {
        // Validation asks user code (the engine's capabilities, components'
        // priorities): a panic there is an error, not a crash.
        let agent = catch_unwind(AssertUnwindSafe(|| self.validate())).map_err(|panic| {
            RegistrationError::Panicked {
                agent: self.name.trim().to_owned(),
                message: panic_message(panic.as_ref()),
            }
        })??;
        let name = agent.name.clone();
        self.runtime.register(agent)?;
        Ok(AgentHandle::new(name))
    }

    pub(crate) fn validate(&self) -> Result<Agent, RegistrationError> {
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
        let Some(max_concurrency) = NonZeroUsize::new(self.max_concurrency) else {
            return Err(RegistrationError::ZeroConcurrency(name));
        };
        let max_iterations = match self.max_iterations {
            None => None,
            Some(n) => {
                Some(NonZeroUsize::new(n).ok_or(RegistrationError::ZeroIterations(name.clone()))?)
            }
        };
        // A type declared twice keeps its last visibility; two counts are an error.
        let mut outputs: BTreeMap<&'static str, OutputDecl> = BTreeMap::new();
        for (type_name, count, visibility) in &self.outputs {
            let decl = OutputDecl {
                count: *count,
                visibility: visibility.clone(),
            };
            if let Some(first) = outputs.insert(type_name, decl)
                && first.count != *count
            {
                return Err(RegistrationError::ConflictingOutput {
                    agent: name,
                    type_name,
                    first: first.count.declaration(type_name),
                    second: count.declaration(type_name),
                });
            }
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
                .register_types(self.runtime.registry())
                .map_err(|source| RegistrationError::TypeConflict {
                    agent: name.clone(),
                    source,
                })?;
            subscriptions.push(subscription);
        }
        for register in &self.types {
            register(self.runtime.registry()).map_err(|source| {
                RegistrationError::TypeConflict {
                    agent: name.clone(),
                    source,
                }
            })?;
        }
        Ok(Agent {
            index: 0,
            identity: Arc::new(AgentIdentity {
                name: name.clone(),
                labels: self.labels.clone(),
                tenant_id: self.tenant_id.clone(),
            }),
            name: name.into(),
            description: self.description.clone(),
            join_shapes: subscriptions.iter().map(JoinShape::of).collect(),
            subscriptions,
            outputs,
            engine,
            components: {
                let mut components = self.components.clone();
                // A stable sort: equal priorities keep their attachment order.
                components.sort_by_key(|c| c.priority());
                components
            },
            retry: self.retry,
            max_iterations,
            max_concurrency,
            prevent_self_trigger: self.prevent_self_trigger,
        })
    }
}
