//! The concurrent histories: the model's agents on a multi-thread runtime (2 to 4
//! workers) with the real clock, where publishers race each other, batch deadlines,
//! `flush_batches`, `check_batch_timeouts`, `run_until_idle` and `shutdown`.
//!
//! A case runs in rounds. In each, every publisher task publishes its jobs (some
//! private to all agents but one, some hidden for a few ms by `After` visibility)
//! while the controller calls `flush_batches` and `check_batch_timeouts`; after a
//! barrier the controller waits a while, so that deadlines come due around its next
//! call, publishes a marker (its `created_at` is an instant on the flock's clock) and
//! calls `run_until_idle`. Then the publishers publish until the flock is closed
//! while the controller calls `shutdown`.
//!
//! Durations are milliseconds and checks never depend on speed: where a check needs
//! to know whether something was due, it compares instants on the flock's own clock
//! (`created_at` of the jobs and markers, batches' deadlines), and what an engine saw
//! before or after a call by the probe log's stamps. [`checks`](super::checks)
//! holds the paused-clock checks; the real-clock ones are in
//! [`concurrent_checks`](super::concurrent_checks).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use flock::{ActiveBatch, ArtifactId, PublishError, PublishOptions, ShutdownReport, prelude::*};
use proptest::{prelude::*, test_runner::TestCaseError};
use serde::{Deserialize, Serialize};

use super::{
    Watchdog,
    concurrent_checks::check,
    model::{AgentCfg, Job, Kind, TYPES, agent_name},
    run::{all_but, register_agent, register_auditor},
    strategies::{Times, agent, fault},
};
use crate::support::probe::{
    Attempt, Audited, Fault, Log, ProbeEngine, Summary, quiet_induced_panics,
};

/// Real time a case may take before it counts as hung; a case takes milliseconds.
const HANG: Duration = Duration::from_secs(60);

/// The durations of the concurrent histories: short, so a case takes milliseconds.
const REAL: Times = Times {
    timeout: 1..=20,
    retry: 0..=3,
    work: 1..=2,
};

/// The agent every job reaches (unless hidden when shutdown began): it tells what
/// was delivered.
pub(crate) const WITNESS: &str = "witness";

// === the case ===

/// One job a publisher publishes.
#[derive(Debug, Clone)]
pub(crate) struct Publish {
    pub(crate) class: u8,
    pub(crate) fault: Fault,
    pub(crate) targets: u8,
    pub(crate) predicate_panics: bool,
    pub(crate) key_panics: bool,
    /// Private to every item agent but this one (modulo the agents).
    pub(crate) hidden_from: Option<u8>,
    /// Hidden from everyone for this many ms (`Visibility::After`).
    pub(crate) after_ms: Option<u64>,
    /// What the publisher does next.
    pub(crate) pause: Pause,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Pause {
    None,
    Yield,
    Sleep(u64),
}

/// A call the controller makes while the publishers publish a round.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    Flush,
    CheckTimeouts,
    Sleep(u64),
}

#[derive(Debug, Clone)]
pub(crate) struct Round {
    /// Each publisher's jobs.
    pub(crate) publishers: Vec<Vec<Publish>>,
    pub(crate) calls: Vec<Call>,
    /// How long the controller waits after the barrier before `run_until_idle`.
    pub(crate) pause_ms: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) workers: usize,
    pub(crate) agents: Vec<AgentCfg>,
    pub(crate) rounds: Vec<Round>,
    /// What each publisher publishes, over and over, until the flock is closed.
    pub(crate) tail: Vec<Vec<Publish>>,
    /// How long the controller lets the last publishes run before `shutdown`.
    pub(crate) shutdown_ms: u64,
}

fn publish(agents: usize) -> impl Strategy<Value = Publish> {
    let agents = u8::try_from(agents).unwrap();
    (
        (0u8..6, fault()),
        (prop::bool::weighted(0.1), prop::bool::weighted(0.05)),
        prop::option::weighted(0.15, 0..agents),
        prop::option::weighted(0.2, 1u64..=8),
        prop_oneof![
            3 => Just(Pause::None),
            2 => Just(Pause::Yield),
            1 => (1u64..=2).prop_map(Pause::Sleep),
        ],
    )
        .prop_map(
            |(
                (class, (fault, targets)),
                (predicate_panics, key_panics),
                hidden_from,
                after_ms,
                pause,
            )| {
                Publish {
                    class,
                    fault,
                    targets,
                    predicate_panics,
                    key_panics,
                    hidden_from,
                    after_ms,
                    pause,
                }
            },
        )
}

fn round(publishers: usize, agents: usize) -> impl Strategy<Value = Round> {
    let call = prop_oneof![
        Just(Call::Flush),
        Just(Call::CheckTimeouts),
        (0u64..=3).prop_map(Call::Sleep),
    ];
    (
        prop::collection::vec(prop::collection::vec(publish(agents), 0..=6), publishers),
        prop::collection::vec(call, 0..=3),
        0u64..=20,
    )
        .prop_map(|(publishers, calls, pause_ms)| Round {
            publishers,
            calls,
            pause_ms,
        })
}

pub(crate) fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(agent(REAL), 1..=3),
        2usize..=4,
        2usize..=4,
    )
        .prop_flat_map(|(agents, workers, publishers)| {
            let n = agents.len();
            let tail = prop::collection::vec(prop::collection::vec(publish(n), 1..=4), publishers);
            (
                Just(agents),
                Just(workers),
                prop::collection::vec(round(publishers, n), 1..=4),
                tail,
                0u64..=8,
            )
        })
        .prop_map(|(agents, workers, rounds, tail, shutdown_ms)| Case {
            workers,
            agents,
            rounds,
            tail,
            shutdown_ms,
        })
}

// === running a case ===

/// A marker the controller publishes: its `created_at` is the flock's clock then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "reliability.Marker")]
struct Marker {
    n: u32,
}

/// A job whose publish returned `Ok`.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) n: u32,
    pub(crate) id: ArtifactId,
    /// The round it was published in; `None` while shutdown came.
    pub(crate) round: Option<usize>,
    pub(crate) kind: Kind,
    pub(crate) fault: (Fault, u8),
    pub(crate) created_at: DateTime<Utc>,
    /// When its `After` visibility begins, on the flock's clock.
    pub(crate) visible_from: Option<DateTime<Utc>>,
}

/// What `run_until_idle` returned to, at the end of a round.
#[derive(Debug, Clone)]
pub(crate) struct Idle {
    /// The marker published just before the call, on the flock's clock.
    pub(crate) called: DateTime<Utc>,
    /// A stamp taken just after it returned.
    pub(crate) returned: u64,
    /// The batches collecting just after it returned.
    pub(crate) active: Vec<ActiveBatch>,
}

/// What happened while the case ran.
pub(crate) struct Observed {
    pub(crate) accepted: Vec<Accepted>,
    pub(crate) idles: Vec<Idle>,
    /// Stamp before the first `flush_batches` call.
    pub(crate) first_manual: Option<u64>,
    /// Stamp before `shutdown`.
    pub(crate) shutdown: u64,
    /// The marker published before the `check_batch_timeouts` call that came last
    /// before `shutdown`.
    pub(crate) last_tick: DateTime<Utc>,
    pub(crate) report: ShutdownReport,
    /// The engine calls when shutdown returned, and afterwards.
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) later: Vec<Attempt>,
    pub(crate) audited: Audited,
    pub(crate) failed: Vec<FailedRun>,
    pub(crate) workflow_errors: Vec<Arc<WorkflowError>>,
    pub(crate) summaries: Vec<Arc<Artifact>>,
}

/// The job agents' names, then the witness'.
pub(crate) fn names(case: &Case) -> Vec<String> {
    (0..case.agents.len())
        .map(agent_name)
        .chain([WITNESS.to_owned()])
        .collect()
}

/// Publishes `publish` as job `n`; its id and what the model knows of it.
async fn publish_job(
    flock: &Flock,
    names: &[String],
    n: u32,
    publish: &Publish,
) -> Result<(ArtifactId, Kind), PublishError> {
    let agents = names.len() - 1;
    let hidden_from = publish.hidden_from.map(|h| usize::from(h) % agents);
    let job = Job {
        n,
        class: publish.class,
        fault: publish.fault,
        targets: publish.targets,
        predicate_panics: publish.predicate_panics,
        key_panics: publish.key_panics,
    };
    let rule = hidden_from.map(|h| all_but(names, h));
    let visibility = match publish.after_ms {
        Some(ms) => Visibility::after(Duration::from_millis(ms), rule),
        None => rule.unwrap_or(Visibility::Public),
    };
    let id = flock
        .publish_with(job, PublishOptions::new().visibility(visibility))
        .await?;
    let kind = Kind::Job {
        class: publish.class,
        predicate_panics: publish.predicate_panics,
        key_panics: publish.key_panics,
        hidden_from,
    };
    Ok((id, kind))
}

/// A publisher task: its jobs, round by round, then until the flock is closed.
struct Publisher {
    flock: Flock,
    case: Arc<Case>,
    names: Vec<String>,
    p: usize,
    seq: u32,
    accepted: Vec<(u32, ArtifactId, Option<usize>, Kind, (Fault, u8))>,
}

impl Publisher {
    async fn run(mut self, barrier: Arc<tokio::sync::Barrier>) -> Self {
        let case = self.case.clone();
        for (r, round) in case.rounds.iter().enumerate() {
            barrier.wait().await;
            for publish in &round.publishers[self.p] {
                self.publish(publish, Some(r)).await;
            }
            barrier.wait().await;
        }
        barrier.wait().await;
        // Until the flock is closed; 1 ms after each pass keeps the count low.
        'publishing: loop {
            for publish in &case.tail[self.p] {
                if !self.publish(publish, None).await {
                    break 'publishing;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self
    }

    /// Publishes the next job; whether it was accepted. Only the last publishes,
    /// which race `shutdown`, may be refused (closed).
    async fn publish(&mut self, publish: &Publish, round: Option<usize>) -> bool {
        // Numbers say who published and in which order.
        let n = (u32::try_from(self.p).unwrap() << 16) | self.seq;
        self.seq += 1;
        let accepted = match publish_job(&self.flock, &self.names, n, publish).await {
            Ok((id, kind)) => {
                let fault = (publish.fault, publish.targets);
                self.accepted.push((n, id, round, kind, fault));
                true
            }
            Err(PublishError::Closed) if round.is_none() => false,
            Err(error) => panic!("publish failed: {error}"),
        };
        match publish.pause {
            Pause::None => {}
            Pause::Yield => tokio::task::yield_now().await,
            Pause::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        accepted
    }
}

async fn stored(flock: &Flock, id: ArtifactId) -> Arc<Artifact> {
    flock.get(id).await.unwrap().expect("stored")
}

/// Publishes a marker: the flock's clock now.
async fn marker(flock: &Flock, n: u32) -> DateTime<Utc> {
    let id = flock.publish(Marker { n }).await.unwrap();
    stored(flock, id).await.created_at
}

async fn run_case(case: Arc<Case>) -> Observed {
    let flock = Flock::builder().no_trace().build();
    let log: Arc<Log> = Arc::default();
    for (i, cfg) in case.agents.iter().enumerate() {
        register_agent(&flock, i, cfg, &log).unwrap();
    }
    let witness = case.agents.len();
    flock
        .agent(WITNESS)
        .consumes(Subscribe::<Job>::new())
        .publishes::<Summary>()
        .max_concurrency(4)
        .with_engine(ProbeEngine::new(witness, WITNESS, TYPES, log.clone()))
        .register()
        .unwrap();
    let audited = register_auditor(&flock);

    let publishers = case.tail.len();
    let barrier = Arc::new(tokio::sync::Barrier::new(publishers + 1));
    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let publisher = Publisher {
                flock: flock.clone(),
                case: case.clone(),
                names: names(&case),
                p,
                seq: 0,
                accepted: Vec::new(),
            };
            tokio::spawn(publisher.run(barrier.clone()))
        })
        .collect();
    let mut first_manual = None;
    let mut idles = Vec::new();
    for (r, round) in case.rounds.iter().enumerate() {
        barrier.wait().await;
        for call in &round.calls {
            match *call {
                Call::Flush => {
                    first_manual.get_or_insert(log.stamp());
                    flock.flush_batches().await;
                }
                Call::CheckTimeouts => {
                    flock.check_batch_timeouts().await;
                }
                Call::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            }
        }
        barrier.wait().await;
        tokio::time::sleep(Duration::from_millis(round.pause_ms)).await;
        let called = marker(&flock, u32::try_from(r).unwrap()).await;
        flock.run_until_idle().await;
        let returned = log.stamp();
        let active = flock.active_batches();
        idles.push(Idle {
            called,
            returned,
            active,
        });
    }
    barrier.wait().await;
    tokio::time::sleep(Duration::from_millis(case.shutdown_ms)).await;
    // Visibility that began before this tick is released by it: after it, shutdown
    // may leave only artifacts whose visibility began later undelivered.
    let last_tick = marker(&flock, u32::MAX).await;
    flock.check_batch_timeouts().await;
    let shutdown = log.stamp();
    let report = flock.shutdown().await;
    let attempts = log.attempts();
    let mut records = Vec::new();
    for task in tasks {
        records.extend(task.await.unwrap().accepted);
    }
    assert!(
        flock.active_batches().is_empty(),
        "batches left after shutdown"
    );
    assert!(
        flock.pending_joins().is_empty(),
        "groups left after shutdown"
    );
    let mut accepted = Vec::new();
    for (n, id, round, kind, fault) in records {
        let artifact = stored(&flock, id).await;
        accepted.push(Accepted {
            n,
            id,
            round,
            kind,
            fault,
            created_at: artifact.created_at,
            visible_from: artifact
                .visibility
                .visible_from(artifact.created_at)
                .filter(|_| matches!(artifact.visibility, Visibility::After { .. })),
        });
    }
    // Anything an engine sees from here ran after shutdown returned.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let later = log.attempts()[attempts.len()..].to_vec();
    Observed {
        accepted,
        idles,
        first_manual,
        shutdown,
        last_tick,
        report,
        attempts,
        later,
        audited,
        failed: flock.failed_runs(),
        workflow_errors: flock.get_by_type::<WorkflowError>().await.unwrap(),
        summaries: flock
            .query(&ArtifactFilter::new().type_name("probe.Summary"))
            .await
            .unwrap(),
    }
}

/// Runs a concurrent case and checks it.
pub(crate) fn run(case: &Case) -> Result<(), TestCaseError> {
    quiet_induced_panics();
    let _watchdog = Watchdog::arm(case);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(case.workers)
        .enable_all()
        .build()
        .unwrap();
    let case = Arc::new(case.clone());
    let observed = rt
        .block_on(async { tokio::time::timeout(HANG, run_case(case.clone())).await })
        .map_err(|_| TestCaseError::fail(format!("the case hangs: not done after {HANG:?}")))?;
    check(&case, &observed).map_err(TestCaseError::fail)
}
