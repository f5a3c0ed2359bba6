//! The probe engine: one engine for the runtime property tests and the stress test.
//!
//! Every input of a probed agent implements [`Probe`]: a number unique in its test,
//! a [`Fault`] and the agents the fault targets. The engine logs each call it gets
//! (agent, attempt, batch figures, the inputs' numbers, a stamp from the log's
//! sequence), then succeeds with one [`Summary`], returns an error or panics, as its
//! inputs' faults plan: every outcome is known in advance. A test takes stamps from
//! the same sequence before the calls it makes (`flush_batches`, `shutdown`, ...),
//! so its checks can tell what the engine saw before and after each of them.

use std::{
    sync::{
        Arc, Once,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use flock::{ArtifactId, prelude::*};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// How an input makes the engines of the agents it targets fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Fault {
    /// Never.
    None,
    /// Every attempt returns an error.
    Error,
    /// Every attempt panics.
    Panic,
    /// The first attempt returns an error; retries succeed.
    Flaky,
}

/// What the probe engine reads from an input.
pub(crate) trait Probe: Sync {
    /// A number unique among the test's inputs.
    fn n(&self) -> u32;
    fn fault(&self) -> Fault;
    /// Bit `i`: the agent the probe engine calls agent `i` is affected by the fault.
    fn targets(&self) -> u8;
}

/// Implements [`Probe`] for types with the fields `n`, `fault` and `targets`.
macro_rules! probe_fields {
    ($($t:ty),*) => {$(
        impl $crate::support::probe::Probe for $t {
            fn n(&self) -> u32 { self.n }
            fn fault(&self) -> $crate::support::probe::Fault { self.fault }
            fn targets(&self) -> u8 { self.targets }
        }
    )*};
}

pub(crate) use probe_fields;

/// Reads an artifact of one type as a probe.
pub(crate) type Decoder = fn(&Artifact) -> Option<&dyn Probe>;

/// The [`Decoder`] of `T`.
pub(crate) fn decoder<T: Probe + FlockType>(artifact: &Artifact) -> Option<&dyn Probe> {
    artifact.get::<T>().map(|t| t as &dyn Probe)
}

fn probe_of<'a>(types: &[Decoder], artifact: &'a Artifact) -> &'a dyn Probe {
    types
        .iter()
        .find_map(|decode| decode(artifact))
        .unwrap_or_else(|| panic!("unexpected input type {}", artifact.type_name()))
}

/// Induced panics and errors carry this marker; the panic hook keeps them off stderr.
pub(crate) const INDUCED: &str = "[induced]";

/// Silences the panics the tests induce on purpose (thousands of them), keeping
/// every other panic's report.
pub(crate) fn quiet_induced_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = flock::core::panic_message(info.payload());
            if !message.contains(INDUCED) {
                default(info);
            }
        }));
    });
}

/// What an engine call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Panic,
}

/// What attempt `attempt` of a run over inputs with these (fault, targets) does for
/// the agent with bit `bit`: a panic wins over an error.
pub(crate) fn planned_outcome(
    faults: impl IntoIterator<Item = (Fault, u8)>,
    bit: u8,
    attempt: u32,
) -> Outcome {
    let mut outcome = Outcome::Ok;
    for (fault, targets) in faults {
        if targets & bit == 0 {
            continue;
        }
        match fault {
            Fault::Panic => return Outcome::Panic,
            Fault::Error => outcome = Outcome::Error,
            Fault::Flaky if attempt == 1 => outcome = Outcome::Error,
            Fault::Flaky | Fault::None => {}
        }
    }
    outcome
}

/// One engine call, as the probe saw it.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) agent: usize,
    pub(crate) attempt: u32,
    pub(crate) batch: Option<BatchMetrics>,
    /// The inputs' numbers per item: one per artifact, or a join group's.
    pub(crate) units: Vec<Vec<u32>>,
    pub(crate) outcome: Outcome,
    /// When the engine was called, on the log's sequence of stamps.
    pub(crate) stamp: u64,
}

impl Attempt {
    /// The run's first input: with the agent, it names the run.
    pub(crate) fn first(&self) -> u32 {
        self.units[0][0]
    }
}

/// Every engine call of a test, and the sequence its stamps come from.
#[derive(Default)]
pub(crate) struct Log {
    attempts: Mutex<Vec<Attempt>>,
    stamps: AtomicU64,
}

impl Log {
    /// The next stamp. Taken before a call, it is smaller than the stamp of every
    /// engine call that call causes.
    pub(crate) fn stamp(&self) -> u64 {
        self.stamps.fetch_add(1, Ordering::SeqCst)
    }

    /// The calls so far, in the order they were logged.
    pub(crate) fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().clone()
    }

    fn push(&self, mut attempt: Attempt) {
        let mut attempts = self.attempts.lock();
        attempt.stamp = self.stamp();
        attempts.push(attempt);
    }
}

/// What every successful run publishes: one per run, which an auditor consumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "probe.Summary")]
pub(crate) struct Summary {
    pub(crate) agent: String,
    pub(crate) first: u32,
}

/// How long a call works before it answers.
#[derive(Clone, Copy)]
enum Work {
    Fixed(Duration),
    /// By the run's first input.
    ByFirst(fn(u32) -> Duration),
}

/// Logs every call, works a while, then answers as its inputs' faults plan.
pub(crate) struct ProbeEngine {
    agent: usize,
    name: String,
    types: &'static [Decoder],
    work: Work,
    log: Arc<Log>,
}

impl ProbeEngine {
    /// The engine of agent `agent` (its bit in [`Probe::targets`]) named `name`,
    /// whose inputs are of `types`.
    pub(crate) fn new(
        agent: usize,
        name: impl Into<String>,
        types: &'static [Decoder],
        log: Arc<Log>,
    ) -> Self {
        Self {
            agent,
            name: name.into(),
            types,
            work: Work::Fixed(Duration::ZERO),
            log,
        }
    }

    /// Each call sleeps `work` before it answers.
    pub(crate) fn work(mut self, work: Duration) -> Self {
        self.work = Work::Fixed(work);
        self
    }

    /// Each call sleeps what `work` gives for the run's first input.
    pub(crate) fn work_by_first(mut self, work: fn(u32) -> Duration) -> Self {
        self.work = Work::ByFirst(work);
        self
    }

    async fn run(
        &self,
        ctx: &EngineContext,
        units: Vec<&[Arc<Artifact>]>,
    ) -> Result<Outputs, EngineError> {
        let probes = units
            .iter()
            .flat_map(|u| u.iter().map(|a| probe_of(self.types, a)));
        let bit = 1 << self.agent;
        let outcome = planned_outcome(probes.map(|p| (p.fault(), p.targets())), bit, ctx.attempt);
        let numbers: Vec<Vec<u32>> = units
            .iter()
            .map(|u| u.iter().map(|a| probe_of(self.types, a).n()).collect())
            .collect();
        let first = numbers[0][0];
        self.log.push(Attempt {
            agent: self.agent,
            attempt: ctx.attempt,
            batch: ctx.batch.clone(),
            units: numbers,
            outcome,
            stamp: 0,
        });
        let work = match self.work {
            Work::Fixed(work) => work,
            Work::ByFirst(work) => work(first),
        };
        if !work.is_zero() {
            tokio::time::sleep(work).await;
        }
        match outcome {
            Outcome::Ok => Ok(Outputs::one(Summary {
                agent: self.name.clone(),
                first,
            })),
            Outcome::Error => Err(EngineError::new(format!("{INDUCED} error"))),
            Outcome::Panic => panic!("{INDUCED} panic"),
        }
    }
}

#[async_trait]
impl Engine for ProbeEngine {
    fn name(&self) -> &str {
        "probe"
    }

    fn supports_batch(&self) -> bool {
        true
    }

    async fn evaluate(&self, ctx: &EngineContext, inputs: Inputs) -> Result<Outputs, EngineError> {
        self.run(ctx, vec![inputs.artifacts()]).await
    }

    async fn evaluate_batch(
        &self,
        ctx: &EngineContext,
        batch: BatchInputs,
    ) -> Result<Outputs, EngineError> {
        self.run(ctx, batch.items().collect()).await
    }
}

// === the auditor ===

/// What the auditor saw: the ids of each batch of [`Summary`] artifacts, with its
/// figures.
pub(crate) type Audited = Arc<Mutex<Vec<(Vec<ArtifactId>, BatchMetrics)>>>;

/// An engine for batches of [`Summary`] artifacts that records each batch.
pub(crate) fn auditor(sink: Audited) -> impl Engine {
    struct Auditor(Audited);

    #[async_trait]
    impl Engine for Auditor {
        fn supports_single(&self) -> bool {
            false
        }

        fn supports_batch(&self) -> bool {
            true
        }

        async fn evaluate(&self, _: &EngineContext, _: Inputs) -> Result<Outputs, EngineError> {
            unreachable!("the auditor batches")
        }

        async fn evaluate_batch(
            &self,
            ctx: &EngineContext,
            batch: BatchInputs,
        ) -> Result<Outputs, EngineError> {
            let ids = batch.artifacts().iter().map(|a| a.id).collect();
            self.0.lock().push((ids, ctx.batch.clone().unwrap()));
            Ok(Outputs::none())
        }
    }

    Auditor(sink)
}
