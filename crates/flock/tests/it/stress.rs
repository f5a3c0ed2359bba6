//! Concurrency stress on a multi-thread runtime with the real clock: many publisher
//! tasks, a task calling `flush_batches` and one calling `run_until_idle` meanwhile,
//! probe engines that sleep, fail, panic or fail once, runs of one agent in parallel;
//! then `shutdown`. Nothing is lost or duplicated, batches keep each publisher's
//! order and their size, flush reasons hold, and nothing deadlocks: the whole
//! scenario runs under a generous timeout that fails the test.

use std::{collections::HashMap, sync::Arc, time::Duration};

use flock::{ArtifactId, ShutdownReport, prelude::*};
use serde::{Deserialize, Serialize};

use crate::support::{
    probe::{
        Audited, Decoder, Fault, Log, Probe, ProbeEngine, Summary, auditor, decoder,
        quiet_induced_panics,
    },
    runs::{
        Flushers, Probed, check_audit, check_batch, check_failures, check_one_key,
        check_publisher_order, check_runs, check_shutdown_report,
    },
};

/// A published item: which publisher, its sequence number there, and a global id
/// (its probe number), from which its fault follows.
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

/// How a load's id makes every agent's engine fail.
fn fault(id: u32) -> Fault {
    if id % 97 == 13 {
        Fault::Panic
    } else if id % 53 == 7 {
        Fault::Error
    } else if id % 11 == 3 {
        Fault::Flaky
    } else {
        Fault::None
    }
}

impl Probe for Load {
    fn n(&self) -> u32 {
        self.id
    }

    fn fault(&self) -> Fault {
        fault(self.id)
    }

    fn targets(&self) -> u8 {
        u8::MAX
    }
}

/// Probe numbers of join sides start here: `SIDES + 2 * key` for a Ping, one more
/// for its Pong.
const SIDES: u32 = 1_000_000;

impl Probe for Ping {
    fn n(&self) -> u32 {
        SIDES + 2 * self.key
    }

    fn fault(&self) -> Fault {
        Fault::None
    }

    fn targets(&self) -> u8 {
        0
    }
}

impl Probe for Pong {
    fn n(&self) -> u32 {
        SIDES + 2 * self.key + 1
    }

    fn fault(&self) -> Fault {
        Fault::None
    }

    fn targets(&self) -> u8 {
        0
    }
}

const TYPES: &[Decoder] = &[decoder::<Load>, decoder::<Ping>, decoder::<Pong>];

/// An input, read back from its probe number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Load { publisher: u32, seq: u32 },
    Ping(u32),
    Pong(u32),
}

fn input(n: u32) -> Input {
    match n.checked_sub(SIDES) {
        Some(side) if side % 2 == 0 => Input::Ping(side / 2),
        Some(side) => Input::Pong(side / 2),
        None => Input::Load {
            publisher: (n - 1) / PER_PUBLISHER,
            seq: (n - 1) % PER_PUBLISHER,
        },
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

/// The probe engines' agents after the batched ones, by index.
const SINGLE: usize = BATCHED.len();
const JOINER: usize = SINGLE + 1;
/// The joiner's batches.
const JOIN_SPEC: (usize, Duration) = (4, Duration::from_millis(4));

/// Every probed agent, by index: its name and attempts.
fn probed() -> Vec<Probed> {
    let mut agents: Vec<Probed> = BATCHED
        .iter()
        .map(|b| b.name)
        .chain(["single"])
        .map(|name| Probed {
            name: name.to_owned(),
            attempts: 2,
        })
        .collect();
    agents.push(Probed {
        name: "joiner".to_owned(),
        attempts: 1,
    });
    agents
}

/// Work: 0 to 2 ms, by the run's first input.
fn work(first: u32) -> Duration {
    Duration::from_micros(u64::from(first % 3) * 700)
}

/// Everything a scenario leaves for its checks.
struct Outcome {
    log: Arc<Log>,
    /// Every load's id, by its probe number.
    ids: HashMap<u32, ArtifactId>,
    flushers: Flushers,
    report: ShutdownReport,
    audited: Audited,
}

/// Runs one scenario and checks it; `round` varies the interleaving.
async fn scenario(round: u32) {
    let log: Arc<Log> = Arc::default();
    let flock = Flock::builder().no_trace().build();
    let retry = RetryPolicy::fixed(2, Duration::from_millis(1)).unwrap();
    for (
        index,
        Batched {
            name,
            size,
            timeout_ms,
            keyed,
            concurrency,
        },
    ) in BATCHED.into_iter().enumerate()
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
            .publishes::<Summary>()
            .retry(retry)
            .max_concurrency(concurrency)
            .with_engine(ProbeEngine::new(index, name, TYPES, log.clone()).work_by_first(work))
            .register()
            .unwrap();
    }
    flock
        .agent("single")
        .consumes(Subscribe::<Load>::new().filter(|l| l.id % 3 == 0))
        .publishes::<Summary>()
        .retry(retry)
        .max_concurrency(8)
        .with_engine(ProbeEngine::new(SINGLE, "single", TYPES, log.clone()).work_by_first(work))
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
                .batch(BatchSpec::size(JOIN_SPEC.0).timeout(JOIN_SPEC.1)),
        )
        .publishes::<Summary>()
        .max_concurrency(2)
        .with_engine(ProbeEngine::new(JOINER, "joiner", TYPES, log.clone()).work_by_first(work))
        .register()
        .unwrap();
    let audited: Audited = Arc::default();
    flock
        .agent("auditor")
        .consumes::<Summary>(
            Subscribe::new().batch(BatchSpec::size(10).timeout(Duration::from_millis(5))),
        )
        .max_concurrency(3)
        .with_engine(auditor(audited.clone()))
        .register()
        .unwrap();

    let mut publishers = Vec::new();
    for publisher in 0..PUBLISHERS {
        let flock = flock.clone();
        publishers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for seq in 0..PER_PUBLISHER {
                let id = 1 + publisher * PER_PUBLISHER + seq;
                ids.push((
                    id,
                    flock.publish(Load { publisher, seq, id }).await.unwrap(),
                ));
                // Round 0 publishes in bursts, later rounds trickle (more timeouts).
                let pause_every = [40, 9, 4][round as usize % 3];
                if (id + round).is_multiple_of(pause_every) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else if (id + round).is_multiple_of(5) {
                    tokio::task::yield_now().await;
                }
            }
            ids
        }));
    }
    // Join sides from two tasks, in opposite key orders.
    let mut sides = Vec::new();
    for side in 0..2u32 {
        let flock = flock.clone();
        sides.push(tokio::spawn(async move {
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
        let (flock, log) = (flock.clone(), log.clone());
        tokio::spawn(async move {
            let mut first = None;
            // Stops before the publishers do: what is left flushes at shutdown.
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(3)).await;
                first.get_or_insert(log.stamp());
                flock.flush_batches().await;
            }
            first
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
    let mut ids = HashMap::new();
    for publisher in publishers {
        ids.extend(publisher.await.unwrap());
    }
    for side in sides {
        side.await.unwrap();
    }
    let first_manual = flusher.await.unwrap();
    idler.await.unwrap();
    let shutdown = log.stamp();
    let report = flock.shutdown().await;
    assert!(flock.active_batches().is_empty());
    assert!(flock.pending_joins().is_empty());
    assert_eq!(report.join_groups_discarded, 0, "every Ping meets its Pong");

    let outcome = Outcome {
        log,
        ids,
        flushers: Flushers {
            first_manual,
            shutdown,
        },
        report,
        audited,
    };
    if let Err(error) = check(&flock, &outcome).await {
        panic!("round {round}: {error}");
    }
}

async fn check(flock: &Flock, outcome: &Outcome) -> Result<(), String> {
    let attempts = outcome.log.attempts();
    let agents = probed();
    let ran = check_runs(&attempts, &agents, |n| match input(n) {
        Input::Load { .. } => (fault(n), u8::MAX),
        Input::Ping(_) | Input::Pong(_) => (Fault::None, 0),
    })?;
    let id_of = |n: u32| outcome.ids[&n];
    let errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    check_failures(&ran, &agents, id_of, &flock.failed_runs(), &errors)?;

    // Every agent got every load it matches exactly once, in one first attempt.
    let firsts: Vec<_> = attempts.iter().filter(|a| a.attempt == 1).collect();
    let all_ids: Vec<u32> = (1..=PUBLISHERS * PER_PUBLISHER).collect();
    for (agent, probed) in agents.iter().enumerate().take(JOINER) {
        let mut got: Vec<u32> = firsts
            .iter()
            .filter(|a| a.agent == agent)
            .flat_map(|a| a.units.iter().flatten().copied())
            .collect();
        got.sort_unstable();
        let expected: Vec<u32> = if agent == SINGLE {
            all_ids.iter().copied().filter(|id| id % 3 == 0).collect()
        } else {
            all_ids.clone()
        };
        if got != expected {
            return Err(format!(
                "{} lost or duplicated loads: {} received, {} expected",
                probed.name,
                got.len(),
                expected.len()
            ));
        }
    }
    let mut keys: Vec<u32> = Vec::new();
    for group in firsts
        .iter()
        .filter(|a| a.agent == JOINER)
        .flat_map(|a| a.units.iter())
    {
        match group[..] {
            [ping, pong] => match (input(ping), input(pong)) {
                (Input::Ping(a), Input::Pong(b)) if a == b => keys.push(a),
                other => return Err(format!("a group of other sides or keys: {other:?}")),
            },
            _ => return Err(format!("a group is one Ping and one Pong: {group:?}")),
        }
    }
    keys.sort_unstable();
    if keys != (0..JOIN_KEYS).collect::<Vec<_>>() {
        return Err(format!("joins: keys {keys:?}"));
    }

    // Batches: size, per-publisher order, one key, true flush reasons.
    for first in &firsts {
        let what = &agents[first.agent].name;
        let spec = match first.agent {
            SINGLE => continue,
            JOINER => (Some(JOIN_SPEC.0), Some(JOIN_SPEC.1)),
            agent => (
                BATCHED[agent].size,
                BATCHED[agent].timeout_ms.map(Duration::from_millis),
            ),
        };
        check_batch(what, spec, first, outcome.flushers)?;
        if first.agent != JOINER {
            if BATCHED[first.agent].keyed {
                check_one_key(what, first, |id| id % 4)?;
            }
            check_publisher_order(what, first, |n| match input(n) {
                Input::Load { publisher, seq } => Some((publisher, seq)),
                other => unreachable!("a load agent received {other:?}"),
            })?;
        }
    }

    // One Summary per successful run, each audited once.
    let summaries = flock
        .query(&ArtifactFilter::new().type_name("probe.Summary"))
        .await
        .unwrap();
    let audited = outcome.audited.lock();
    check_shutdown_report(&outcome.report, &attempts, &audited)?;
    check_audit(&ran, &agents, &summaries, &audited)
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
