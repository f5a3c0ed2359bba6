//! Property: whatever happens (publishes to several agents with different batch
//! specs, keyed batches and predicates, AND-gate joins, admission limits, the clock
//! moving, manual flushes, engines that fail, panic or fail once, predicates and key
//! functions that panic, and a final shutdown), every accepted artifact reaches
//! exactly one flush of the subscription it matched, or is reported failed with its
//! ids, or (joins) leaves in one traced discard; a batch keeps arrival order and
//! never exceeds its size; and every flush reason is true.
//!
//! Each case runs on its own current-thread tokio runtime with the clock paused.
//! Time passes only through `tokio::time::sleep` (in the test, in engines, between
//! retries), which the paused clock auto-advances timer by timer, so a timeout must
//! fire exactly at its deadline. Flush times are reconstructed from the model's
//! arrival times and the `wait` the engine is handed, and checked against the model:
//!
//! - `size`: the batch holds `size` items and flushed when the last one arrived;
//! - `timeout`: it flushed exactly `timeout` after its first item, not full;
//! - `manual`: it flushed at the first `flush_batches` call after its first item;
//! - `shutdown`: it flushed during `shutdown`, and no manual flush came after its
//!   first item.
//!
//! `docs/reliability.md` lists the cases run and how long they take.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Once},
    time::Duration,
};

use async_trait::async_trait;
use flock::{
    Admission, ArtifactId, OnFull, PublishError, PublishOptions, ShutdownReport, prelude::*,
};
use parking_lot::Mutex;
use proptest::{prelude::*, test_runner::TestCaseError};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::JoinSpans;

// === the model's artifacts ===

/// How an artifact makes the engines of the agents it targets fail.
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

/// What a probe engine needs to know about an input.
trait Probe: Sync {
    fn n(&self) -> u32;
    fn fault(&self) -> Fault;
    fn targets(&self) -> u8;
}

/// A unit of work for the item agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "reliability.Job")]
pub(crate) struct Job {
    /// Publish sequence number, unique per case.
    n: u32,
    /// What predicates look at.
    class: u8,
    fault: Fault,
    /// Bit `i`: agent `i` is affected by the fault.
    targets: u8,
    /// Predicates of "panicky" subscriptions panic on this job.
    predicate_panics: bool,
    /// Key functions of keyed subscriptions panic on this job.
    key_panics: bool,
}

/// The left side of the join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "reliability.Left")]
pub(crate) struct Left {
    n: u32,
    key: u8,
    fault: Fault,
    targets: u8,
    /// The join's key function panics on this one.
    key_panics: bool,
}

/// The right side of the join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "reliability.Right")]
pub(crate) struct Right {
    n: u32,
    key: u8,
    fault: Fault,
    targets: u8,
}

/// What every successful run publishes: one per run, consumed by the auditor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "reliability.Summary")]
pub(crate) struct Summary {
    agent: String,
    first: u32,
}

macro_rules! probe {
    ($($t:ty),*) => {$(
        impl Probe for $t {
            fn n(&self) -> u32 { self.n }
            fn fault(&self) -> Fault { self.fault }
            fn targets(&self) -> u8 { self.targets }
        }
    )*};
}

probe!(Job, Left, Right);

fn probe_of(artifact: &Artifact) -> &dyn Probe {
    if let Some(job) = artifact.get::<Job>() {
        job
    } else if let Some(left) = artifact.get::<Left>() {
        left
    } else if let Some(right) = artifact.get::<Right>() {
        right
    } else {
        panic!("unexpected input type {}", artifact.type_name())
    }
}

/// Induced panics carry this marker; the panic hook keeps them off stderr.
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

// === the probe engine ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Error,
    Panic,
}

/// One engine call, as the probe saw it.
#[derive(Debug, Clone)]
struct Attempt {
    agent: usize,
    attempt: u32,
    batch: Option<BatchMetrics>,
    /// Publish numbers per item (one per artifact, or a join group's).
    units: Vec<Vec<u32>>,
    outcome: Outcome,
}

type Log = Arc<Mutex<Vec<Attempt>>>;

/// Records every call, then fails or panics as its inputs' faults say.
struct ProbeEngine {
    agent: usize,
    name: String,
    work: Duration,
    log: Log,
}

/// What attempt `attempt` of a run over `inputs` does for the agent with bit `bit`.
fn planned_outcome<'a>(
    inputs: impl IntoIterator<Item = &'a dyn Probe>,
    bit: u8,
    attempt: u32,
) -> Outcome {
    let mut outcome = Outcome::Ok;
    for probe in inputs {
        if probe.targets() & bit == 0 {
            continue;
        }
        match probe.fault() {
            Fault::Panic => return Outcome::Panic,
            Fault::Error => outcome = Outcome::Error,
            Fault::Flaky if attempt == 1 => outcome = Outcome::Error,
            Fault::Flaky | Fault::None => {}
        }
    }
    outcome
}

impl ProbeEngine {
    async fn run(
        &self,
        ctx: &EngineContext,
        units: Vec<&[Arc<Artifact>]>,
    ) -> Result<Outputs, EngineError> {
        let probes: Vec<&dyn Probe> = units
            .iter()
            .flat_map(|u| u.iter().map(|a| probe_of(a)))
            .collect();
        let outcome = planned_outcome(probes.iter().copied(), 1 << self.agent, ctx.attempt);
        let numbers: Vec<Vec<u32>> = units
            .iter()
            .map(|u| u.iter().map(|a| probe_of(a).n()).collect())
            .collect();
        let first = numbers[0][0];
        self.log.lock().push(Attempt {
            agent: self.agent,
            attempt: ctx.attempt,
            batch: ctx.batch.clone(),
            units: numbers,
            outcome,
        });
        if !self.work.is_zero() {
            tokio::time::sleep(self.work).await;
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

// === the generated cases ===

/// A batch spec: size, timeout in ms (at least one).
type Spec = (Option<usize>, Option<u64>);

#[derive(Debug, Clone)]
struct SubCfg {
    /// `class % m == r`.
    filter: Option<(u8, u8)>,
    /// Its predicate panics on jobs with `predicate_panics`.
    panicky: bool,
    batch: Option<Spec>,
    /// Keyed batches (`keyed_by`): one accumulator per `class % k`.
    keyed: Option<u8>,
}

#[derive(Debug, Clone)]
struct AgentCfg {
    subs: Vec<SubCfg>,
    attempts: u32,
    retry_ms: u64,
    work_ms: u64,
    concurrency: usize,
}

#[derive(Debug, Clone, Copy)]
enum Window {
    Time(u64),
    Count(usize),
}

#[derive(Debug, Clone)]
struct JoinCfg {
    window: Window,
    batch: Option<Spec>,
    attempts: u32,
    work_ms: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Job {
        class: u8,
        fault: Fault,
        targets: u8,
        predicate_panics: bool,
        key_panics: bool,
        /// Published private to every agent but this one.
        hidden_from: Option<u8>,
        /// Published as JSON text through `publish_json_str`.
        json: bool,
    },
    Left {
        key: u8,
        fault: Fault,
        targets: u8,
        key_panics: bool,
    },
    Right {
        key: u8,
        fault: Fault,
        targets: u8,
    },
    Sleep(u64),
    Flush,
    CheckTimeouts,
    Idle,
}

#[derive(Debug, Clone)]
struct Case {
    agents: Vec<AgentCfg>,
    join: Option<JoinCfg>,
    /// Admission limits: per subscription, in all batches, and whether publishes
    /// wait for room (`OnFull::Wait`) or are refused (`OnFull::Reject`).
    admission: Option<(Option<usize>, Option<usize>, bool)>,
    ops: Vec<Op>,
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (1usize..=4).prop_map(|n| (Some(n), None)),
        (10u64..=200).prop_map(|ms| (None, Some(ms))),
        (1usize..=4, 10u64..=200).prop_map(|(n, ms)| (Some(n), Some(ms))),
    ]
}

fn sub() -> impl Strategy<Value = SubCfg> {
    (
        prop::option::weighted(0.5, (2u8..=3).prop_flat_map(|m| (Just(m), 0..m))),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.8, spec()),
        prop::option::weighted(0.4, 2u8..=3),
    )
        .prop_map(|(filter, panicky, batch, keyed)| SubCfg {
            filter,
            panicky,
            keyed: keyed.filter(|_| batch.is_some()),
            batch,
        })
}

fn agent() -> impl Strategy<Value = AgentCfg> {
    (
        prop::collection::vec(sub(), 1..=2),
        1u32..=3,
        0u64..=30,
        prop_oneof![3 => Just(0u64), 1 => 1u64..=40],
        prop_oneof![3 => Just(1usize), 1 => Just(2usize)],
    )
        .prop_map(
            |(subs, attempts, retry_ms, work_ms, concurrency)| AgentCfg {
                subs,
                attempts,
                retry_ms,
                work_ms,
                concurrency,
            },
        )
}

fn join() -> impl Strategy<Value = JoinCfg> {
    (
        prop_oneof![
            (20u64..=200).prop_map(Window::Time),
            (2usize..=6).prop_map(Window::Count),
        ],
        prop::option::weighted(0.6, spec()),
        1u32..=2,
        prop_oneof![3 => Just(0u64), 1 => 1u64..=30],
    )
        .prop_map(|(window, batch, attempts, work_ms)| JoinCfg {
            window,
            batch,
            attempts,
            work_ms,
        })
}

fn fault() -> impl Strategy<Value = (Fault, u8)> {
    prop_oneof![
        8 => Just((Fault::None, 0)),
        1 => any::<u8>().prop_map(|t| (Fault::Error, t)),
        1 => any::<u8>().prop_map(|t| (Fault::Panic, t)),
        1 => any::<u8>().prop_map(|t| (Fault::Flaky, t)),
    ]
}

fn op(joins: bool) -> impl Strategy<Value = Op> {
    let job = (
        0u8..6,
        fault(),
        (prop::bool::weighted(0.1), prop::bool::weighted(0.05)),
        prop::option::weighted(0.1, 0u8..3),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(class, (fault, targets), (predicate_panics, key_panics), hidden_from, json)| {
                Op::Job {
                    class,
                    fault,
                    targets,
                    predicate_panics,
                    key_panics,
                    hidden_from,
                    json,
                }
            },
        );
    let left = (0u8..2, fault(), prop::bool::weighted(0.1)).prop_map(
        |(key, (fault, targets), key_panics)| Op::Left {
            key,
            fault,
            targets,
            key_panics,
        },
    );
    let right = (0u8..2, fault()).prop_map(|(key, (fault, targets))| Op::Right {
        key,
        fault,
        targets,
    });
    let join_weight = if joins { 5 } else { 0 };
    prop_oneof![
        10 => job,
        join_weight => left,
        join_weight => right,
        5 => prop_oneof![Just(0u64), 1u64..=60, 60u64..=250].prop_map(Op::Sleep),
        1 => Just(Op::Flush),
        1 => Just(Op::CheckTimeouts),
        1 => Just(Op::Idle),
    ]
}

fn case(max_ops: usize) -> impl Strategy<Value = Case> {
    let admission = prop::option::weighted(
        0.25,
        (
            prop::option::weighted(0.7, 1usize..=6),
            prop::option::weighted(0.5, 2usize..=10),
            any::<bool>(),
        ),
    );
    (
        prop::collection::vec(agent(), 1..=3),
        prop::option::weighted(0.5, join()),
        admission,
    )
        .prop_flat_map(move |(agents, join, admission)| {
            let ops = prop::collection::vec(op(join.is_some()), 0..max_ops);
            (Just(agents), Just(join), Just(admission), ops)
        })
        .prop_map(|(agents, join, admission, ops)| Case {
            agents,
            join,
            admission,
            ops,
        })
}

// === running a case ===

const JOINER: &str = "joiner";
const AUDITOR: &str = "auditor";
const AUDIT_SIZE: usize = 3;
const AUDIT_TIMEOUT: Duration = Duration::from_millis(40);

fn agent_name(i: usize) -> String {
    format!("a{i}")
}

fn batch_spec((size, timeout_ms): Spec) -> flock::subscription::BatchSpecBuilder {
    let mut builder = flock::subscription::BatchSpecBuilder::default();
    if let Some(size) = size {
        builder = builder.size(size);
    }
    if let Some(ms) = timeout_ms {
        builder = builder.timeout(Duration::from_millis(ms));
    }
    builder
}

fn predicate(cfg: &SubCfg) -> impl Fn(&Job) -> bool + Send + Sync + 'static {
    let (filter, panicky) = (cfg.filter, cfg.panicky);
    move |job: &Job| {
        assert!(
            !(panicky && job.predicate_panics),
            "{INDUCED} predicate of job {}",
            job.n
        );
        filter.is_none_or(|(m, r)| job.class % m == r)
    }
}

/// One published artifact, as the model saw it.
#[derive(Debug, Clone)]
struct Published {
    op: usize,
    at: Duration,
    id: ArtifactId,
    kind: Kind,
}

/// What was published.
#[derive(Debug, Clone)]
enum Kind {
    Job {
        class: u8,
        predicate_panics: bool,
        key_panics: bool,
        hidden_from: Option<usize>,
    },
    Left {
        key: u8,
        key_panics: bool,
    },
    Right {
        key: u8,
    },
}

/// What happened while the case ran.
struct Observed {
    published: Vec<Published>,
    /// (op index, time) of each `flush_batches` call.
    manual: Vec<(usize, Duration)>,
    /// (op index, time) when `shutdown` began.
    shutdown: (usize, Duration),
    report: ShutdownReport,
    attempts: Vec<Attempt>,
    audited: Vec<(Vec<ArtifactId>, BatchMetrics)>,
    failed: Vec<FailedRun>,
    workflow_errors: Vec<Arc<WorkflowError>>,
    summaries: Vec<Arc<Artifact>>,
    discards: Vec<crate::CapturedSpan>,
}

/// Whether an agent registered. Under `OnFull::Wait`, registration refuses a batch
/// subscription the bounds could wedge; such a case ends there (what does register
/// must never wedge: the watchdog would see the case hang).
fn registered(
    result: Result<flock::AgentHandle, flock::RegistrationError>,
    wait: bool,
) -> Result<bool, TestCaseError> {
    match result {
        Ok(_) => Ok(true),
        Err(flock::RegistrationError::WouldBlock { .. }) if wait => Ok(false),
        Err(error) => Err(TestCaseError::fail(format!("registration failed: {error}"))),
    }
}

async fn run_case(case: &Case) -> Result<Option<Observed>, TestCaseError> {
    let (spans, _capture) = JoinSpans::install();
    let start = Instant::now();
    let elapsed = || start.elapsed();
    let mut builder = Flock::builder().no_trace();
    let wait = matches!(case.admission, Some((_, _, true)));
    if let Some((per_subscription, total, wait)) = case.admission {
        let on_full = if wait { OnFull::Wait } else { OnFull::Reject };
        let mut admission = Admission::new().on_full(on_full);
        if let Some(n) = per_subscription {
            admission = admission.max_waiting_per_subscription(n).unwrap();
        }
        if let Some(n) = total {
            admission = admission.max_waiting(n).unwrap();
        }
        builder = builder.admission(admission);
    }
    let flock = builder.build();
    let log: Log = Arc::default();
    for (i, cfg) in case.agents.iter().enumerate() {
        let mut builder = flock.agent(agent_name(i));
        for sub in &cfg.subs {
            let mut subscribe = Subscribe::<Job>::new().filter(predicate(sub));
            if let Some(spec) = sub.batch {
                subscribe = subscribe.batch(batch_spec(spec));
            }
            if let Some(k) = sub.keyed {
                subscribe = subscribe.keyed_by(move |job: &Job| {
                    assert!(!job.key_panics, "{INDUCED} batch key of job {}", job.n);
                    job.class % k
                });
            }
            builder = builder.consumes(subscribe);
        }
        let registration = builder
            .publishes::<Summary>()
            .retry(RetryPolicy::fixed(cfg.attempts, Duration::from_millis(cfg.retry_ms)).unwrap())
            .max_concurrency(cfg.concurrency)
            .with_engine(ProbeEngine {
                agent: i,
                name: agent_name(i),
                work: Duration::from_millis(cfg.work_ms),
                log: log.clone(),
            })
            .register();
        if !registered(registration, wait)? {
            return Ok(None);
        }
    }
    if let Some(join) = &case.join {
        let keys = JoinSpec::by(|l: &Left| {
            assert!(!l.key_panics, "{INDUCED} key of left {}", l.n);
            l.key
        })
        .by(|r: &Right| r.key);
        let keys = match join.window {
            Window::Time(ms) => keys.within(Duration::from_millis(ms)),
            Window::Count(n) => keys.within(n),
        };
        let mut gate = AllOf::new().of::<Left>().of::<Right>().join(keys);
        if let Some(spec) = join.batch {
            gate = gate.batch(batch_spec(spec));
        }
        let registration = flock
            .agent(JOINER)
            .consumes_all(gate)
            .publishes::<Summary>()
            .retry(RetryPolicy::fixed(join.attempts, Duration::from_millis(5)).unwrap())
            .with_engine(ProbeEngine {
                agent: case.agents.len(),
                name: JOINER.to_owned(),
                work: Duration::from_millis(join.work_ms),
                log: log.clone(),
            })
            .register();
        if !registered(registration, wait)? {
            return Ok(None);
        }
    }
    let audited: Audited = Arc::default();
    let sink = audited.clone();
    flock
        .agent(AUDITOR)
        .consumes::<Summary>(
            Subscribe::new().batch(BatchSpec::size(AUDIT_SIZE).timeout(AUDIT_TIMEOUT)),
        )
        .with_engine(batch_fn_artifacts(sink))
        .register()
        .unwrap();

    let names: Vec<String> = (0..case.agents.len()).map(agent_name).collect();
    let mut published = Vec::new();
    let mut manual = Vec::new();
    for (index, op) in case.ops.iter().enumerate() {
        let n = u32::try_from(published.len()).unwrap();
        let at = elapsed();
        let (result, kind) = match *op {
            Op::Job {
                class,
                fault,
                targets,
                predicate_panics,
                key_panics,
                hidden_from,
                json,
            } => {
                let job = Job {
                    n,
                    class,
                    fault,
                    targets,
                    predicate_panics,
                    key_panics,
                };
                let hidden_from = hidden_from
                    .map(|h| usize::from(h) % names.len())
                    .filter(|_| !json);
                let result = if json {
                    let text = serde_json::json!({"type": "reliability.Job", "payload": job});
                    flock.publish_json_str(&text.to_string()).await
                } else {
                    let visibility = match hidden_from {
                        None => Visibility::Public,
                        // The auditor may see every job, so it may see the
                        // outputs derived from them too.
                        Some(h) => Visibility::private(
                            names
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| *i != h)
                                .map(|(_, n)| n.as_str())
                                .chain([AUDITOR]),
                        ),
                    };
                    flock
                        .publish_with(job, PublishOptions::new().visibility(visibility))
                        .await
                };
                let kind = Kind::Job {
                    class,
                    predicate_panics,
                    key_panics,
                    hidden_from,
                };
                (result, kind)
            }
            Op::Left {
                key,
                fault,
                targets,
                key_panics,
            } => {
                let left = Left {
                    n,
                    key,
                    fault,
                    targets,
                    key_panics,
                };
                (flock.publish(left).await, Kind::Left { key, key_panics })
            }
            Op::Right {
                key,
                fault,
                targets,
            } => {
                let right = Right {
                    n,
                    key,
                    fault,
                    targets,
                };
                (flock.publish(right).await, Kind::Right { key })
            }
            Op::Sleep(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                continue;
            }
            Op::Flush => {
                manual.push((index, at));
                flock.flush_batches().await;
                continue;
            }
            Op::CheckTimeouts => {
                flock.check_batch_timeouts().await;
                continue;
            }
            Op::Idle => {
                flock.run_until_idle().await;
                // Idle means nothing is due: no batch and no join group is overdue.
                for batch in flock.active_batches() {
                    prop_assert!(
                        batch.time_left.is_none_or(|left| !left.is_zero()),
                        "overdue batch after run_until_idle: {batch:?}"
                    );
                }
                for group in flock.pending_joins() {
                    prop_assert!(
                        group.time_left.is_none_or(|left| !left.is_zero()),
                        "overdue join group after run_until_idle: {group:?}"
                    );
                }
                check_counts_at_rest(&flock)?;
                continue;
            }
        };
        match result {
            Ok(id) => published.push(Published {
                op: index,
                // Arrival: when the publish returned (it dispatches last).
                at: elapsed(),
                id,
                kind,
            }),
            Err(PublishError::Full {
                scope,
                waiting,
                limit,
            }) if case.admission.is_some() && !wait => {
                check_refusal(&flock, &scope, waiting, limit)?;
            }
            Err(error) => return Err(TestCaseError::fail(format!("publish failed: {error}"))),
        }
        if let Some((Some(limit), _, _)) = case.admission {
            // External publishes never push a subscription past its limit. Agents'
            // outputs may (the auditor's), and join groups are bounded by their window.
            let mut waiting: BTreeMap<(String, usize), usize> = BTreeMap::new();
            for batch in flock.active_batches() {
                *waiting
                    .entry((batch.agent, batch.subscription_index))
                    .or_default() += batch.items_waiting;
            }
            for ((agent, sub), waiting) in waiting {
                prop_assert!(
                    agent == AUDITOR || agent == JOINER || waiting <= limit,
                    "{waiting} items waiting in {agent}.sub{sub}, limit {limit}"
                );
            }
        }
    }
    let shutdown = (case.ops.len(), elapsed());
    let report = flock.shutdown().await;
    prop_assert!(
        flock.active_batches().is_empty(),
        "batches left after shutdown"
    );
    prop_assert!(
        flock.pending_joins().is_empty(),
        "join groups left after shutdown"
    );
    check_counts_at_rest(&flock)?;
    let refused = flock.publish(Summary {
        agent: "late".into(),
        first: 0,
    });
    prop_assert!(matches!(refused.await, Err(PublishError::Closed)));

    let summaries = flock
        .query(&ArtifactFilter::new().type_name("reliability.Summary"))
        .await
        .unwrap();
    let workflow_errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    let discards = spans.named("join.discard");
    let attempts = log.lock().clone();
    let audited = audited.lock().clone();
    Ok(Some(Observed {
        published,
        manual,
        shutdown,
        report,
        attempts,
        audited,
        failed: flock.failed_runs(),
        workflow_errors,
        summaries,
        discards,
    }))
}

/// A refusal by admission control names a bound really reached: the units it
/// reports are what the flock counts in that scope, and at least what visibly waits
/// there in batches (the rest are in runs not yet finished).
fn check_refusal(
    flock: &Flock,
    scope: &str,
    waiting: usize,
    limit: usize,
) -> Result<(), TestCaseError> {
    let counts = flock
        .admission_counts()
        .expect("a flock with bounds counts");
    let active = flock.active_batches();
    let (counted, visible): (usize, usize) = if scope == "the flock" {
        (counts.total, active.iter().map(|b| b.items_waiting).sum())
    } else {
        let Some((agent, sub)) = scope
            .strip_prefix("agent '")
            .and_then(|s| s.split_once("', subscription "))
        else {
            return Err(TestCaseError::fail(format!("unknown scope {scope:?}")));
        };
        let visible = active
            .iter()
            .filter(|b| b.agent == agent && b.subscription_index.to_string() == sub)
            .map(|b| b.items_waiting)
            .sum();
        (counts.of(agent, sub.parse().unwrap()), visible)
    };
    prop_assert!(
        waiting >= limit,
        "refused below the limit: {waiting} < {limit}"
    );
    prop_assert_eq!(
        waiting,
        counted,
        "refusal reports what is counted in {}",
        scope
    );
    prop_assert!(
        counted >= visible,
        "{scope} counts {counted} units, fewer than the {visible} waiting in its batches"
    );
    Ok(())
}

/// When no run is live, the admission counts are exactly the units waiting in
/// batches: every finished run released what it held.
fn check_counts_at_rest(flock: &Flock) -> Result<(), TestCaseError> {
    let Some(counts) = flock.admission_counts() else {
        return Ok(());
    };
    let mut visible: BTreeMap<(String, usize), usize> = BTreeMap::new();
    for batch in flock.active_batches() {
        *visible
            .entry((batch.agent.clone(), batch.subscription_index))
            .or_default() += batch.items_waiting;
    }
    let counted: BTreeMap<(String, usize), usize> = counts
        .per_subscription
        .iter()
        .map(|(agent, sub, n)| ((agent.clone(), *sub), *n))
        .collect();
    prop_assert_eq!(&counted, &visible, "admission counts at rest");
    prop_assert_eq!(
        counts.total,
        visible.values().sum::<usize>(),
        "total at rest"
    );
    Ok(())
}

/// What the auditor saw: the Summary artifacts of each batch, with its figures.
type Audited = Arc<Mutex<Vec<(Vec<ArtifactId>, BatchMetrics)>>>;

/// The auditor: records the Summary artifacts of each batch with its figures.
fn batch_fn_artifacts(sink: Audited) -> impl Engine {
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

// === checking a case ===

/// One item of a flushed batch, where the model places it.
#[derive(Debug, Clone, Copy)]
struct Unit {
    /// Order key: publish number of the artifact (of a group's last arrival).
    seq: u32,
    /// The op that made it arrive.
    op: usize,
    /// When it arrived.
    at: Duration,
}

/// A flushed batch of one subscription, as its first attempt saw it.
#[derive(Debug, Clone)]
struct Flushed {
    units: Vec<Unit>,
    metrics: BatchMetrics,
}

/// The flush-reason, size and order checks for the batches of one subscription.
/// `batches` must hold every batch of the subscription.
fn check_batches(
    what: &str,
    spec: Spec,
    mut batches: Vec<Flushed>,
    manual: &[(usize, Duration)],
    shutdown: (usize, Duration),
) -> Result<(), TestCaseError> {
    let (size, timeout) = (spec.0, spec.1.map(Duration::from_millis));
    batches.sort_by_key(|b| b.units[0].seq);
    let mut previous_last: Option<u32> = None;
    for (i, batch) in batches.iter().enumerate() {
        let units = &batch.units;
        let m = &batch.metrics;
        let (first, last) = (units[0], units[units.len() - 1]);
        prop_assert_eq!(m.batch_size, units.len(), "{}: batch_size", what);
        prop_assert_eq!(m.configured_size, size, "{}: configured size", what);
        prop_assert_eq!(
            m.configured_timeout,
            timeout,
            "{}: configured timeout",
            what
        );
        prop_assert!(
            size.is_none_or(|size| units.len() <= size),
            "{what}: batch of {} over its size {size:?}",
            units.len()
        );
        prop_assert!(
            units.windows(2).all(|w| w[0].seq < w[1].seq),
            "{what}: order not kept: {units:?}"
        );
        prop_assert!(
            previous_last.is_none_or(|p| p < first.seq),
            "{what}: batches interleave"
        );
        previous_last = Some(last.seq);
        let flushed_at = first.at + m.wait;
        prop_assert!(
            units.iter().all(|u| u.at <= flushed_at),
            "{what}: an item arrived after its batch flushed"
        );
        let not_full = size.is_none_or(|size| units.len() < size);
        let next = batches.get(i + 1).map(|b| b.units[0]);
        // The first manual flush after the batch started.
        let manual_after = manual.iter().find(|(op, _)| *op > first.op).copied();
        match m.flush_reason {
            FlushReason::Size => {
                prop_assert_eq!(Some(units.len()), size, "{}: size flush not full", what);
                prop_assert_eq!(
                    flushed_at,
                    last.at,
                    "{}: size flush not at the last arrival",
                    what
                );
                prop_assert!(
                    manual_after.is_none_or(|(op, _)| op > last.op),
                    "{what}: a manual flush came before the batch filled"
                );
            }
            FlushReason::Timeout => {
                prop_assert!(not_full, "{what}: timeout flush of a full batch");
                prop_assert_eq!(
                    Some(m.wait),
                    timeout,
                    "{}: timeout flush not exactly at the deadline",
                    what
                );
                prop_assert!(
                    manual_after.is_none_or(|(_, at)| at >= flushed_at),
                    "{what}: a manual flush came before the deadline"
                );
                prop_assert!(
                    next.is_none_or(|n| n.at >= flushed_at),
                    "{what}: an item that arrived before the deadline missed the batch"
                );
            }
            FlushReason::Manual => {
                prop_assert!(not_full, "{what}: manual flush of a full batch");
                prop_assert!(
                    timeout.is_none_or(|t| m.wait <= t),
                    "{what}: manual flush after the deadline"
                );
                let Some((op, at)) = manual_after else {
                    return Err(TestCaseError::fail(format!(
                        "{what}: manual flush without a flush_batches call"
                    )));
                };
                prop_assert_eq!(flushed_at, at, "{}: manual flush at the wrong time", what);
                prop_assert!(last.op < op, "{what}: manual flush holds a later item");
                prop_assert!(
                    next.is_none_or(|n| n.op > op),
                    "{what}: an item before the manual flush missed the batch"
                );
            }
            FlushReason::Shutdown => {
                prop_assert!(not_full, "{what}: shutdown flush of a full batch");
                prop_assert!(
                    timeout.is_none_or(|t| m.wait <= t),
                    "{what}: shutdown flush after the deadline"
                );
                prop_assert!(
                    flushed_at >= shutdown.1,
                    "{what}: shutdown flush before shutdown"
                );
                prop_assert!(
                    manual_after.is_none(),
                    "{what}: a manual flush should have taken this batch"
                );
                prop_assert!(next.is_none(), "{what}: a batch after the shutdown flush");
            }
        }
    }
    Ok(())
}

/// The subscription of agent `agent` a job goes to, if any: the first whose
/// predicate accepts it and whose batch key function (if keyed) gives a key; a
/// panicking predicate or key function does not. None if the agent may not see it.
fn expected_sub(cfg: &AgentCfg, agent: usize, kind: &Kind) -> Option<usize> {
    let Kind::Job {
        class,
        predicate_panics,
        key_panics,
        hidden_from,
    } = kind
    else {
        return None;
    };
    if *hidden_from == Some(agent) {
        return None;
    }
    cfg.subs.iter().position(|sub| {
        !(sub.panicky && *predicate_panics)
            && sub.filter.is_none_or(|(m, r)| class % m == r)
            && !(sub.keyed.is_some() && *key_panics)
    })
}

fn check_case(case: &Case, o: &Observed) -> Result<(), TestCaseError> {
    let unit_of = |n: u32| {
        let p = &o.published[n as usize];
        Unit {
            seq: n,
            op: p.op,
            at: p.at,
        }
    };
    // A group arrives with its last artifact.
    let group_unit = |group: &[u32]| unit_of(*group.iter().max().unwrap());

    // Runs: attempts grouped by agent and first input, in order.
    let mut runs: BTreeMap<(usize, u32), Vec<&Attempt>> = BTreeMap::new();
    for attempt in &o.attempts {
        runs.entry((attempt.agent, attempt.units[0][0]))
            .or_default()
            .push(attempt);
    }
    let agent_count = case.agents.len();
    let name_of = |agent: usize| {
        if agent == agent_count {
            JOINER.to_owned()
        } else {
            agent_name(agent)
        }
    };
    let retries = |agent: usize| {
        if agent == agent_count {
            case.join.as_ref().unwrap().attempts
        } else {
            case.agents[agent].attempts
        }
    };

    // Every run makes the attempts its faults plan, then succeeds or fails for good.
    let mut expected_failures: HashSet<(String, Vec<ArtifactId>)> = HashSet::new();
    let mut successes = 0;
    for ((agent, _), attempts) in &runs {
        let first = attempts[0];
        let max = retries(*agent);
        for (i, attempt) in attempts.iter().enumerate() {
            prop_assert_eq!(attempt.attempt as usize, i + 1, "attempts in order");
            prop_assert_eq!(&attempt.units, &first.units, "a retry has the same inputs");
            prop_assert_eq!(&attempt.batch, &first.batch, "a retry has the same batch");
        }
        let last = attempts[attempts.len() - 1];
        prop_assert!(
            attempts.len() as u32 <= max,
            "more attempts than the policy allows"
        );
        prop_assert!(
            attempts[..attempts.len() - 1]
                .iter()
                .all(|a| a.outcome != Outcome::Ok),
            "a run was retried after it succeeded"
        );
        if last.outcome == Outcome::Ok {
            successes += 1;
        } else {
            prop_assert_eq!(
                attempts.len() as u32,
                max,
                "a failed run stopped retrying early"
            );
            let ids = first
                .units
                .iter()
                .flatten()
                .map(|n| o.published[*n as usize].id)
                .collect();
            expected_failures.insert((name_of(*agent), ids));
        }
    }

    // Failed runs and WorkflowErrors name exactly the runs that failed, with their ids.
    let mut failed: HashSet<(String, Vec<ArtifactId>)> = HashSet::new();
    for run in &o.failed {
        prop_assert_eq!(run.kind, FailureKind::Failed);
        let agent = (0..=agent_count)
            .find(|a| name_of(*a) == run.agent)
            .unwrap();
        prop_assert_eq!(run.attempts, retries(agent));
        prop_assert!(
            run.error == format!("{INDUCED} error")
                || run.error == format!("engine panicked: {INDUCED} panic"),
            "unexpected error {:?}",
            run.error
        );
        prop_assert!(
            failed.insert((run.agent.clone(), run.input_ids())),
            "failed run twice"
        );
    }
    prop_assert_eq!(&failed, &expected_failures, "failed runs");
    let reported: HashSet<(String, Vec<ArtifactId>)> = o
        .workflow_errors
        .iter()
        .map(|e| (e.agent.clone(), e.input_ids.clone()))
        .collect();
    prop_assert_eq!(
        o.workflow_errors.len(),
        o.failed.len(),
        "one WorkflowError per failed run"
    );
    prop_assert_eq!(&reported, &expected_failures, "WorkflowErrors");

    // The faults decide each attempt.
    for attempt in &o.attempts {
        let probes: Vec<(Fault, u8)> = attempt
            .units
            .iter()
            .flatten()
            .map(|n| fault_of(&case.ops, &o.published, *n))
            .collect();
        let planned = planned_outcome_of(&probes, 1 << attempt.agent, attempt.attempt);
        prop_assert_eq!(attempt.outcome, planned, "outcome of {:?}", attempt);
    }

    // Item agents: every job an agent may see and one of its subscriptions accepts
    // reaches exactly that subscription, once.
    for (agent, cfg) in case.agents.iter().enumerate() {
        let what = agent_name(agent);
        let mut expected: Vec<Vec<u32>> = vec![Vec::new(); cfg.subs.len()];
        for (n, p) in o.published.iter().enumerate() {
            if let Some(sub) = expected_sub(cfg, agent, &p.kind) {
                expected[sub].push(u32::try_from(n).unwrap());
            }
        }
        // First attempts in the order the runs started.
        let firsts: Vec<&Attempt> = o
            .attempts
            .iter()
            .filter(|a| a.agent == agent && a.attempt == 1)
            .collect();
        let mut singles: Vec<u32> = Vec::new();
        let mut batches: Vec<Vec<Flushed>> = vec![Vec::new(); cfg.subs.len()];
        for first in &firsts {
            prop_assert!(
                first.units.iter().all(|u| u.len() == 1),
                "{what}: jobs are not grouped"
            );
            match &first.batch {
                None => singles.push(first.units[0][0]),
                Some(m) => batches[m.subscription_index].push(Flushed {
                    units: first.units.iter().map(|u| unit_of(u[0])).collect(),
                    metrics: m.clone(),
                }),
            }
        }
        let mut expected_singles: Vec<u32> = Vec::new();
        for (index, sub) in cfg.subs.iter().enumerate() {
            let label = format!("{what}.sub{index}");
            match sub.batch {
                None => expected_singles.extend(&expected[index]),
                Some(spec) => {
                    let mut got: Vec<u32> = batches[index]
                        .iter()
                        .flat_map(|b| b.units.iter().map(|u| u.seq))
                        .collect();
                    got.sort_unstable();
                    prop_assert_eq!(&got, &expected[index], "{}: delivered once each", label);
                    // One accumulator per key: each key's batches obey the spec alone.
                    let key_of = |seq: u32| match (&o.published[seq as usize].kind, sub.keyed) {
                        (Kind::Job { class, .. }, Some(k)) => class % k,
                        _ => 0,
                    };
                    let mut per_key: BTreeMap<u8, Vec<Flushed>> = BTreeMap::new();
                    for batch in &batches[index] {
                        let key = key_of(batch.units[0].seq);
                        prop_assert!(
                            batch.units.iter().all(|u| key_of(u.seq) == key),
                            "{label}: a keyed batch mixes keys"
                        );
                        per_key.entry(key).or_default().push(batch.clone());
                    }
                    for (key, batches) in per_key {
                        let label = format!("{label}.key{key}");
                        check_batches(&label, spec, batches, &o.manual, o.shutdown)?;
                    }
                }
            }
        }
        if cfg.concurrency == 1 {
            prop_assert!(
                singles.windows(2).all(|w| w[0] < w[1]),
                "{what}: single runs out of order: {singles:?}"
            );
        }
        singles.sort_unstable();
        expected_singles.sort_unstable();
        prop_assert_eq!(
            &singles,
            &expected_singles,
            "{}: single runs once each",
            what
        );
    }

    // The join: every accepted Left and Right leaves once, in a group or a discard.
    let mut discarded_groups = 0;
    if let Some(join) = &case.join {
        let by_id: HashMap<ArtifactId, u32> = o
            .published
            .iter()
            .enumerate()
            .map(|(n, p)| (p.id, u32::try_from(n).unwrap()))
            .collect();
        let accepted: Vec<u32> = o
            .published
            .iter()
            .enumerate()
            .filter(|(_, p)| match p.kind {
                Kind::Left { key_panics, .. } => !key_panics,
                Kind::Right { .. } => true,
                Kind::Job { .. } => false,
            })
            .map(|(n, _)| u32::try_from(n).unwrap())
            .collect();
        let firsts: Vec<&Attempt> = o
            .attempts
            .iter()
            .filter(|a| a.agent == agent_count && a.attempt == 1)
            .collect();
        let mut left: Vec<u32> = Vec::new();
        let mut batches = Vec::new();
        let mut singles = Vec::new();
        for first in &firsts {
            for group in &first.units {
                prop_assert_eq!(group.len(), 2, "a group is one Left and one Right");
                let (l, r) = (
                    &o.published[group[0] as usize],
                    &o.published[group[1] as usize],
                );
                let (Kind::Left { key: lk, .. }, Kind::Right { key: rk }) = (&l.kind, &r.kind)
                else {
                    return Err(TestCaseError::fail(format!(
                        "group out of slot order: {group:?}"
                    )));
                };
                prop_assert_eq!(lk, rk, "a group shares its key");
                if let Window::Time(ms) = join.window {
                    let span = l.at.max(r.at) - l.at.min(r.at);
                    prop_assert!(span < Duration::from_millis(ms), "group across its window");
                }
                left.extend(group);
            }
            match &first.batch {
                None => singles.push(group_unit(&first.units[0]).seq),
                Some(m) => batches.push(Flushed {
                    units: first.units.iter().map(|g| group_unit(g)).collect(),
                    metrics: m.clone(),
                }),
            }
        }
        for discard in o.discards.iter().filter(|d| d.field("agent") == JOINER) {
            discarded_groups += usize::from(discard.field("reason") == "shutdown");
            if discard.field("reason") == "window"
                && let Window::Time(ms) = join.window
            {
                let waited: u64 = discard.field("waited_ms").parse().unwrap();
                prop_assert!(waited >= ms, "discarded before its window ended");
            }
            for id in discard.field("artifact_ids").split(',') {
                left.push(by_id[&id.parse::<ArtifactId>().unwrap()]);
            }
        }
        left.sort_unstable();
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for n in &left {
            *counts.entry(*n).or_default() += 1;
        }
        prop_assert!(
            counts.values().all(|c| *c == 1),
            "a join artifact left twice"
        );
        prop_assert_eq!(&left, &accepted, "join: every artifact leaves once");
        match join.batch {
            Some(spec) => check_batches(JOINER, spec, batches, &o.manual, o.shutdown)?,
            None => prop_assert!(
                singles.windows(2).all(|w| w[0] < w[1]),
                "join groups out of completion order"
            ),
        }
    }

    // Outputs: one Summary per successful run, each audited exactly once.
    prop_assert_eq!(
        o.summaries.len(),
        successes,
        "one Summary per successful run"
    );
    let mut audited: Vec<ArtifactId> = o.audited.iter().flat_map(|(ids, _)| ids.clone()).collect();
    audited.sort_unstable();
    let mut summaries: Vec<ArtifactId> = o.summaries.iter().map(|a| a.id).collect();
    summaries.sort_unstable();
    prop_assert_eq!(audited, summaries, "every Summary audited once");
    for (ids, m) in &o.audited {
        prop_assert!(ids.len() <= AUDIT_SIZE, "audit batch over its size");
        match m.flush_reason {
            FlushReason::Size => prop_assert_eq!(ids.len(), AUDIT_SIZE),
            FlushReason::Timeout => {
                prop_assert_eq!(m.wait, AUDIT_TIMEOUT, "audit timeout late or early")
            }
            FlushReason::Manual | FlushReason::Shutdown => {
                prop_assert!(ids.len() < AUDIT_SIZE && m.wait <= AUDIT_TIMEOUT);
            }
        }
    }

    // The shutdown report counts what shutdown flushed and discarded.
    let shutdown_flushes: Vec<usize> = o
        .attempts
        .iter()
        .filter(|a| a.attempt == 1)
        .filter_map(|a| {
            a.batch
                .as_ref()
                .filter(|m| m.flush_reason == FlushReason::Shutdown)
                .map(|_| a.units.iter().map(Vec::len).sum())
        })
        .chain(
            o.audited
                .iter()
                .filter(|(_, m)| m.flush_reason == FlushReason::Shutdown)
                .map(|(ids, _)| ids.len()),
        )
        .collect();
    prop_assert_eq!(
        o.report.batches_flushed,
        shutdown_flushes.len(),
        "report: batches"
    );
    prop_assert_eq!(
        o.report.artifacts_flushed,
        shutdown_flushes.iter().sum::<usize>(),
        "report: artifacts"
    );
    prop_assert_eq!(
        o.report.join_groups_discarded,
        discarded_groups,
        "report: join groups"
    );
    Ok(())
}

fn fault_of(ops: &[Op], published: &[Published], n: u32) -> (Fault, u8) {
    match ops[published[n as usize].op] {
        Op::Job { fault, targets, .. }
        | Op::Left { fault, targets, .. }
        | Op::Right { fault, targets, .. } => (fault, targets),
        _ => unreachable!("only publishes make artifacts"),
    }
}

fn planned_outcome_of(faults: &[(Fault, u8)], bit: u8, attempt: u32) -> Outcome {
    struct P(Fault, u8);
    impl Probe for P {
        fn n(&self) -> u32 {
            0
        }
        fn fault(&self) -> Fault {
            self.0
        }
        fn targets(&self) -> u8 {
            self.1
        }
    }
    let probes: Vec<P> = faults.iter().map(|(f, t)| P(*f, *t)).collect();
    planned_outcome(probes.iter().map(|p| p as &dyn Probe), bit, attempt)
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    quiet_induced_panics();
    let _watchdog = Watchdog::arm(case);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    match rt.block_on(run_case(case))? {
        Some(observed) => check_case(case, &observed),
        // Under OnFull::Wait the bounds refused an agent: nothing ran.
        None => Ok(()),
    }
}

// === hangs ===

/// Real time one case may take before the watchdog calls it a hang. A case takes
/// milliseconds; this only turns a livelock into a failure with the case printed.
const HANG: Duration = Duration::from_secs(120);

/// Aborts the test binary, printing the case, when a case runs longer than [`HANG`].
///
/// On the paused clock a runtime that spins (a timer re-armed for a deadline it never
/// clears, say) never lets tokio's time move, so no tokio timeout can fire; real time
/// still moves. One thread watches every case of the binary.
struct Watchdog(u64);

type Running = HashMap<u64, (std::time::Instant, String)>;

fn running() -> &'static Mutex<Running> {
    static RUNNING: std::sync::OnceLock<Mutex<Running>> = std::sync::OnceLock::new();
    RUNNING.get_or_init(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if let Some((_, case)) = running()
                    .lock()
                    .values()
                    .find(|(started, _)| started.elapsed() > HANG)
                {
                    // Not `eprintln!`: libtest captures it in threads tests spawn.
                    let message = format!("a case ran longer than {HANG:?}; hung on:\n{case}\n");
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
                    std::process::abort();
                }
            }
        });
        Mutex::default()
    })
}

impl Watchdog {
    fn arm(case: &Case) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        running()
            .lock()
            .insert(id, (std::time::Instant::now(), format!("{case:#?}")));
        Self(id)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        running().lock().remove(&self.0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_SHORT))]

    /// Short histories, many of them.
    #[test]
    fn every_artifact_is_flushed_once_or_reported_failed(case in case(24)) {
        run(&case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_LONG))]

    /// Longer histories: more batches per subscription, more retries in flight.
    #[test]
    fn long_histories_lose_nothing(case in case(96)) {
        run(&case)?;
    }
}

/// Cases of the short-history property (see `docs/reliability.md`).
pub(crate) const CASES_SHORT: u32 = 8_000;
/// Cases of the long-history property.
pub(crate) const CASES_LONG: u32 = 2_000;
