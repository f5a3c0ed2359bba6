//! Concurrency stress on a multi-thread runtime with the real clock: many publisher
//! tasks, a task calling `flush_batches` and one calling `run_until_idle` meanwhile,
//! engines that sleep, fail, panic or fail once, runs of one agent in parallel; then
//! `shutdown`. Nothing is lost or duplicated, batches keep each publisher's order and
//! their size, flush reasons hold, and nothing deadlocks: the whole scenario runs
//! under a generous timeout that fails the test.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use flock::prelude::*;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::nothing_lost::{INDUCED, quiet_induced_panics};

/// A published item: which publisher, its sequence number there, and a global id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "stress.Load")]
struct Load {
    publisher: u32,
    seq: u32,
    id: u32,
}

/// Join sides, one of each per key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "stress.Ping")]
struct Ping {
    key: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "stress.Pong")]
struct Pong {
    key: u32,
}

/// One per successful run, audited downstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "stress.Done")]
struct Done {
    /// The run: its agent and first input.
    run: String,
}

/// How an id makes engines fail.
fn fault(id: u32, attempt: u32) -> Option<&'static str> {
    if id % 97 == 13 {
        Some("panic")
    } else if id % 53 == 7 || (id % 11 == 3 && attempt == 1) {
        Some("error")
    } else {
        None
    }
}

/// An input as the engine saw it: a load as (publisher, seq, id), a join side as
/// (key, 0 for Ping or 1 for Pong, 0).
type Input = (u32, u32, u32);

#[derive(Debug, Clone)]
struct Attempt {
    agent: &'static str,
    attempt: u32,
    batch: Option<BatchMetrics>,
    units: Vec<Vec<Input>>,
    ok: bool,
    /// Whether `flush_batches` had been called / `shutdown` had begun when the run
    /// started (a manual or shutdown flush happens before its run).
    manual_called: bool,
    shutdown_started: bool,
}

#[derive(Default)]
struct World {
    attempts: Mutex<Vec<Attempt>>,
    manual_calls: AtomicUsize,
    shutdown_started: AtomicBool,
}

struct StressEngine {
    agent: &'static str,
    world: Arc<World>,
}

impl StressEngine {
    async fn run(
        &self,
        ctx: &EngineContext,
        units: Vec<&[Arc<Artifact>]>,
    ) -> Result<Outputs, EngineError> {
        let units: Vec<Vec<Input>> = units
            .iter()
            .map(|u| {
                u.iter()
                    .map(|a| {
                        if let Some(l) = a.get::<Load>() {
                            (l.publisher, l.seq, l.id)
                        } else if let Some(p) = a.get::<Ping>() {
                            (p.key, 0, 0)
                        } else {
                            (a.get::<Pong>().expect("a Pong").key, 1, 0)
                        }
                    })
                    .collect()
            })
            .collect();
        let failure = units
            .iter()
            .flatten()
            .filter(|(_, _, id)| *id > 0)
            .find_map(|(_, _, id)| fault(*id, ctx.attempt));
        let first_id = units[0][0].2;
        let run = format!("{}:{:?}", self.agent, units[0][0]);
        self.world.attempts.lock().push(Attempt {
            agent: self.agent,
            attempt: ctx.attempt,
            batch: ctx.batch.clone(),
            units,
            ok: failure.is_none(),
            manual_called: self.world.manual_calls.load(Ordering::Acquire) > 0,
            shutdown_started: self.world.shutdown_started.load(Ordering::Acquire),
        });
        // Work: 0 to 2 ms.
        tokio::time::sleep(Duration::from_micros(u64::from(first_id % 3) * 700)).await;
        match failure {
            None => Ok(Outputs::one(Done { run })),
            Some("panic") => panic!("{INDUCED} stress panic"),
            Some(_) => Err(EngineError::new(format!("{INDUCED} stress error"))),
        }
    }
}

#[async_trait]
impl Engine for StressEngine {
    fn name(&self) -> &str {
        "stress"
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

const PUBLISHERS: u32 = 8;
const PER_PUBLISHER: u32 = 250;
const JOIN_KEYS: u32 = 200;
/// Far beyond what the scenario needs (about a second); reaching it means a deadlock.
const DEADLOCK: Duration = Duration::from_secs(120);

/// An agent batching loads.
struct Batched {
    name: &'static str,
    size: Option<usize>,
    timeout_ms: Option<u64>,
    /// Keyed by `id % 4`.
    keyed: bool,
    concurrency: usize,
}

const BATCHED: [Batched; 4] = [
    Batched {
        name: "sized",
        size: Some(7),
        timeout_ms: Some(5),
        keyed: false,
        concurrency: 4,
    },
    Batched {
        name: "keyed",
        size: Some(5),
        timeout_ms: Some(3),
        keyed: true,
        concurrency: 2,
    },
    Batched {
        name: "timed",
        size: None,
        timeout_ms: Some(2),
        keyed: false,
        concurrency: 1,
    },
    Batched {
        name: "big",
        size: Some(64),
        timeout_ms: None,
        keyed: false,
        concurrency: 1,
    },
];

/// Runs one scenario and checks it; `round` varies the interleaving.
async fn scenario(round: u32) {
    let world = Arc::new(World::default());
    let flock = Flock::builder().no_trace().build();
    let retry = RetryPolicy::fixed(2, Duration::from_millis(1)).unwrap();
    for Batched {
        name,
        size,
        timeout_ms,
        keyed,
        concurrency,
    } in BATCHED
    {
        let mut spec = flock::subscription::BatchSpecBuilder::default();
        if let Some(size) = size {
            spec = spec.size(size);
        }
        if let Some(ms) = timeout_ms {
            spec = spec.timeout(Duration::from_millis(ms));
        }
        let mut subscribe = Subscribe::<Load>::new().batch(spec);
        if keyed {
            subscribe = subscribe.keyed_by(|l: &Load| l.id % 4);
        }
        flock
            .agent(name)
            .consumes(subscribe)
            .publishes::<Done>()
            .retry(retry)
            .max_concurrency(concurrency)
            .with_engine(StressEngine {
                agent: name,
                world: world.clone(),
            })
            .register()
            .unwrap();
    }
    flock
        .agent("single")
        .consumes(Subscribe::<Load>::new().filter(|l| l.id % 3 == 0))
        .publishes::<Done>()
        .retry(retry)
        .max_concurrency(8)
        .with_engine(StressEngine {
            agent: "single",
            world: world.clone(),
        })
        .register()
        .unwrap();
    flock
        .agent("joiner")
        .consumes_all(
            AllOf::new()
                .of::<Ping>()
                .of::<Pong>()
                .join(
                    JoinSpec::by(|p: &Ping| p.key)
                        .by(|p: &Pong| p.key)
                        .within(Duration::from_secs(3600)),
                )
                .batch(BatchSpec::size(4).timeout(Duration::from_millis(4))),
        )
        .publishes::<Done>()
        .max_concurrency(2)
        .with_engine(StressEngine {
            agent: "joiner",
            world: world.clone(),
        })
        .register()
        .unwrap();
    let audited: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = audited.clone();
    flock
        .agent("auditor")
        .consumes::<Done>(
            Subscribe::new().batch(BatchSpec::size(10).timeout(Duration::from_millis(5))),
        )
        .max_concurrency(3)
        .with_engine(batch_fn(move |_: &EngineContext, done: Vec<Arc<Done>>| {
            sink.lock().extend(done.iter().map(|d| d.run.clone()));
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap();

    let mut tasks = Vec::new();
    for publisher in 0..PUBLISHERS {
        let flock = flock.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 0..PER_PUBLISHER {
                let id = 1 + publisher * PER_PUBLISHER + seq;
                flock.publish(Load { publisher, seq, id }).await.unwrap();
                // Round 0 publishes in bursts, later rounds trickle (more timeouts).
                let pause_every = [40, 9, 4][round as usize % 3];
                if (id + round).is_multiple_of(pause_every) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else if (id + round).is_multiple_of(5) {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    // Join sides from two tasks, in opposite key orders.
    for side in 0..2u32 {
        let flock = flock.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..JOIN_KEYS {
                let key = if side == 0 { i } else { JOIN_KEYS - 1 - i };
                if side == 0 {
                    flock.publish(Ping { key }).await.unwrap();
                } else {
                    flock.publish(Pong { key }).await.unwrap();
                }
                if i % 25 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    let flusher = {
        let (flock, world) = (flock.clone(), world.clone());
        tokio::spawn(async move {
            // Stops before the publishers do: what is left flushes at shutdown.
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(3)).await;
                world.manual_calls.fetch_add(1, Ordering::AcqRel);
                flock.flush_batches().await;
            }
        })
    };
    let idler = {
        let flock = flock.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                flock.run_until_idle().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    flusher.await.unwrap();
    idler.await.unwrap();
    world.shutdown_started.store(true, Ordering::Release);
    let report = flock.shutdown().await;
    assert!(flock.active_batches().is_empty());
    assert!(flock.pending_joins().is_empty());
    assert_eq!(report.join_groups_discarded, 0, "every Ping meets its Pong");

    check(&flock, &world, &audited, round).await;
}

async fn check(flock: &Flock, world: &World, audited: &Mutex<Vec<String>>, round: u32) {
    let attempts = world.attempts.lock().clone();
    // Runs: attempts grouped by agent and first unit.
    let mut runs: BTreeMap<(&str, Input), Vec<&Attempt>> = BTreeMap::new();
    for attempt in &attempts {
        runs.entry((attempt.agent, attempt.units[0][0]))
            .or_default()
            .push(attempt);
    }
    let mut failed_runs = 0;
    let mut successes = 0;
    for ((agent, _), tries) in &runs {
        let mut numbers: Vec<u32> = tries.iter().map(|a| a.attempt).collect();
        numbers.sort_unstable();
        assert_eq!(
            numbers,
            (1..=numbers.len() as u32).collect::<Vec<_>>(),
            "{agent}: attempts"
        );
        assert!(
            tries.iter().all(|a| a.units == tries[0].units),
            "{agent}: a retry has other inputs"
        );
        let last_ok = tries.iter().any(|a| a.ok);
        if last_ok {
            successes += 1;
        } else {
            failed_runs += 1;
            assert_eq!(
                tries.len(),
                if *agent == "joiner" { 1 } else { 2 },
                "{agent}: retries"
            );
        }
    }
    let failed = flock.failed_runs();
    assert_eq!(failed.len(), failed_runs, "round {round}: failed runs");
    let errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    assert_eq!(
        errors.len(),
        failed_runs,
        "round {round}: one WorkflowError per failed run"
    );
    for run in &failed {
        assert!(run.error.contains(INDUCED), "{}", run.error);
    }

    // Every agent got every load it matches exactly once, in one first attempt.
    let firsts: Vec<&Attempt> = attempts.iter().filter(|a| a.attempt == 1).collect();
    let all_ids: Vec<u32> = (1..=PUBLISHERS * PER_PUBLISHER).collect();
    for agent in ["sized", "keyed", "timed", "big", "single"] {
        let mut got: Vec<u32> = firsts
            .iter()
            .filter(|a| a.agent == agent)
            .flat_map(|a| a.units.iter().flatten().map(|(_, _, id)| *id))
            .collect();
        got.sort_unstable();
        let expected: Vec<u32> = if agent == "single" {
            all_ids.iter().copied().filter(|id| id % 3 == 0).collect()
        } else {
            all_ids.clone()
        };
        assert_eq!(
            got.len(),
            expected.len(),
            "round {round}: {agent} lost or duplicated loads"
        );
        assert_eq!(got, expected, "round {round}: {agent}");
    }
    let mut keys: Vec<(u32, u32)> = firsts
        .iter()
        .filter(|a| a.agent == "joiner")
        .flat_map(|a| a.units.iter())
        .map(|group| {
            assert_eq!(group.len(), 2, "a group is one Ping and one Pong");
            assert_eq!(group[0].0, group[1].0, "a group shares its key");
            (group[0].0, group[1].1)
        })
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        (0..JOIN_KEYS).map(|k| (k, 1)).collect::<Vec<_>>(),
        "round {round}: joins"
    );

    // Batches: size, per-publisher order, one key, true flush reasons.
    let specs: HashMap<&str, (Option<usize>, Option<u64>, bool)> = BATCHED
        .iter()
        .map(|b| (b.name, (b.size, b.timeout_ms, b.keyed)))
        .chain([("joiner", (Some(4), Some(4), false))])
        .collect();
    for first in &firsts {
        let Some(m) = &first.batch else {
            assert_eq!(first.agent, "single");
            continue;
        };
        let (size, timeout, keyed) = specs[first.agent];
        let n = first.units.len();
        let what = first.agent;
        assert_eq!(m.batch_size, n);
        assert!(
            size.is_none_or(|size| n <= size),
            "{what}: batch of {n} over its size"
        );
        if keyed {
            let key = first.units[0][0].2 % 4;
            assert!(
                first.units.iter().all(|u| u[0].2 % 4 == key),
                "{what}: keys mixed"
            );
        }
        if what != "joiner" {
            let mut last_seq: HashMap<u32, u32> = HashMap::new();
            for unit in &first.units {
                let (publisher, seq, _) = unit[0];
                if let Some(previous) = last_seq.insert(publisher, seq) {
                    assert!(previous < seq, "{what}: a publisher's order not kept");
                }
            }
        }
        match m.flush_reason {
            FlushReason::Size => assert_eq!(Some(n), size, "{what}: size flush not full"),
            FlushReason::Timeout => {
                let timeout = Duration::from_millis(timeout.expect("a timeout"));
                assert!(
                    m.wait >= timeout,
                    "{what}: timeout flush after {:?}",
                    m.wait
                );
                assert!(size.is_none_or(|size| n < size));
            }
            FlushReason::Manual => {
                assert!(
                    first.manual_called,
                    "{what}: manual flush without flush_batches"
                );
                assert!(size.is_none_or(|size| n < size));
            }
            FlushReason::Shutdown => {
                assert!(
                    first.shutdown_started,
                    "{what}: shutdown flush before shutdown"
                );
                assert!(size.is_none_or(|size| n < size));
            }
        }
    }

    // One Done per successful run, each audited once.
    let mut done: Vec<String> = flock
        .get_by_type::<Done>()
        .await
        .unwrap()
        .iter()
        .map(|d| d.run.clone())
        .collect();
    done.sort_unstable();
    assert_eq!(
        done.len(),
        successes,
        "round {round}: one Done per successful run"
    );
    let mut audited = audited.lock().clone();
    audited.sort_unstable();
    assert_eq!(audited, done, "round {round}: every Done audited once");
}

#[test]
fn many_publishers_lose_nothing_and_shut_down_without_deadlock() {
    quiet_induced_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for round in 0..3 {
            tokio::time::timeout(DEADLOCK, scenario(round))
                .await
                .unwrap_or_else(|_| {
                    panic!("round {round} deadlocked: not done after {DEADLOCK:?}")
                });
        }
    });
}
