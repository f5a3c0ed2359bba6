//! Running one concurrent history: the model's agents, a witness agent that takes
//! every job and an auditor, on a multi-thread runtime (2 to 4 workers) with the
//! real clock, where publishers race each other, batch deadlines, `flush_batches`,
//! `check_batch_timeouts`, `run_until_idle` and `shutdown`; it returns what happened.
//!
//! A case runs in rounds. In each, every publisher task publishes its jobs (some
//! private to all agents but one, some hidden for a few ms by `After` visibility)
//! while the controller calls `flush_batches` and `check_batch_timeouts`; after a
//! barrier the controller waits a while, so that deadlines come due around its next
//! call, publishes a marker (its `created_at` is an instant on the flock's clock) and
//! calls `run_until_idle`. At the end the controller waits again, releases the
//! publishers, who publish until the flock is closed, and calls `shutdown` among
//! their publishes.
//!
//! Durations are milliseconds and checks never depend on speed: where a check needs
//! to know whether something was due, it compares instants on the flock's own clock
//! (`created_at` of the jobs and markers, batches' deadlines), and what an engine saw
//! before or after a call by the probe log's stamps. The checks are in
//! [`concurrent_checks`](super::concurrent_checks).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use flock::{ActiveBatch, ArtifactId, PublishError, PublishOptions, ShutdownReport, prelude::*};
use proptest::test_runner::TestCaseError;
use serde::{Deserialize, Serialize};

use super::{
    Watchdog,
    concurrent_checks::check,
    model::{Call, Concurrent, Job, Kind, Pause, Publish, TYPES, Wait, agent_name},
    run::{all_but, register_agent, register_auditor},
};
use crate::support::probe::{
    Attempt, Audited, Fault, Log, ProbeEngine, Summary, quiet_induced_panics,
};

/// Real time a case may take before it counts as hung; a case takes milliseconds.
const HANG: Duration = Duration::from_secs(60);

/// The agent every job reaches (unless hidden when shutdown began): it tells what
/// was delivered.
pub(crate) const WITNESS: &str = "witness";

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
    /// The round it was published in; `None` for the last publishes, which race
    /// `shutdown`.
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
    /// The marker published before the last call that released due `After`
    /// artifacts (`run_until_idle`, or `check_batch_timeouts` just before
    /// `shutdown`): an artifact visible by then was delivered.
    pub(crate) last_tick: DateTime<Utc>,
    pub(crate) report: ShutdownReport,
    /// The batches collecting after shutdown returned.
    pub(crate) left: Vec<ActiveBatch>,
    /// The engine calls when shutdown returned, and afterwards.
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) later: Vec<Attempt>,
    pub(crate) audited: Audited,
    pub(crate) failed: Vec<FailedRun>,
    pub(crate) workflow_errors: Vec<Arc<WorkflowError>>,
    pub(crate) summaries: Vec<Arc<Artifact>>,
}

/// The job agents' names, then the witness'.
fn names(case: &Concurrent) -> Vec<String> {
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
    let hidden_from = publish.job.hidden_from(names.len() - 1);
    let rule = hidden_from.map(|h| all_but(names, h));
    let visibility = match publish.after_ms {
        Some(ms) => Visibility::after(Duration::from_millis(ms), rule),
        None => rule.unwrap_or(Visibility::Public),
    };
    let options = PublishOptions::new().visibility(visibility);
    let id = flock.publish_with(publish.job.job(n), options).await?;
    Ok((id, publish.job.kind(hidden_from)))
}

/// A publisher task: its jobs, round by round, then until the flock is closed.
struct Publisher {
    flock: Flock,
    case: Arc<Concurrent>,
    names: Vec<String>,
    p: usize,
    seq: u32,
    sent: Vec<Sent>,
}

/// A job a publisher published, accepted.
struct Sent {
    n: u32,
    id: ArtifactId,
    round: Option<usize>,
    kind: Kind,
    fault: (Fault, u8),
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
        // Until the flock is closed: `shutdown` comes at once.
        'publishing: loop {
            for publish in &case.tail[self.p] {
                if !self.publish(publish, None).await {
                    break 'publishing;
                }
            }
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
                let fault = (publish.job.fault, publish.job.targets);
                self.sent.push(Sent {
                    n,
                    id,
                    round,
                    kind,
                    fault,
                });
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

async fn pause(flock: &Flock, wait: Wait) {
    let wait = match wait {
        Wait::Ms(ms) => Duration::from_millis(ms),
        Wait::NextDeadline => flock
            .active_batches()
            .iter()
            .filter_map(|b| b.time_left)
            .min()
            .unwrap_or_default(),
    };
    tokio::time::sleep(wait).await;
}

async fn stored(flock: &Flock, id: ArtifactId) -> Arc<Artifact> {
    flock.get(id).await.unwrap().expect("stored")
}

/// Publishes a marker: the flock's clock now.
async fn marker(flock: &Flock, n: u32) -> DateTime<Utc> {
    let id = flock.publish(Marker { n }).await.unwrap();
    stored(flock, id).await.created_at
}

async fn run_case(case: Arc<Concurrent>) -> Observed {
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
                sent: Vec::new(),
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
        pause(&flock, round.pause).await;
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
    pause(&flock, case.wait).await;
    let mut last_tick = idles.last().expect("a round at least").called;
    if case.tick {
        last_tick = marker(&flock, u32::MAX).await;
        flock.check_batch_timeouts().await;
    }
    barrier.wait().await;
    for _ in 0..case.yields {
        tokio::task::yield_now().await;
    }
    let shutdown = log.stamp();
    let report = flock.shutdown().await;
    let attempts = log.attempts();
    let mut sent = Vec::new();
    for task in tasks {
        sent.extend(task.await.unwrap().sent);
    }
    let left = flock.active_batches();
    let mut accepted = Vec::new();
    for Sent {
        n,
        id,
        round,
        kind,
        fault,
    } in sent
    {
        let artifact = stored(&flock, id).await;
        accepted.push(Accepted {
            n,
            id,
            round,
            kind,
            fault,
            created_at: artifact.created_at,
            visible_from: artifact
                .visibility()
                .visible_from(artifact.created_at)
                .filter(|_| matches!(artifact.visibility(), Visibility::After { .. })),
        });
    }
    // Anything an engine saw meanwhile ran after shutdown returned.
    let later = log.attempts()[attempts.len()..].to_vec();
    Observed {
        accepted,
        idles,
        first_manual,
        shutdown,
        last_tick,
        report,
        left,
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
pub(crate) fn run(case: &Concurrent) -> Result<(), TestCaseError> {
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
