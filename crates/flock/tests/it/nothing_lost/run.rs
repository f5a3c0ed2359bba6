//! Running one paused-clock history: the flock the case describes, its operations
//! one by one (with the checks that hold at each step: admission refusals, nothing
//! overdue after `run_until_idle`), then `shutdown`; it returns what happened.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use flock::{
    Admission, ArtifactId, OnFull, PublishError, PublishOptions, ShutdownReport, prelude::*,
};
use flock_test_support::{Capture, Record};
use proptest::{prelude::*, test_runner::TestCaseError};
use tokio::time::Instant;

use super::model::{
    AUDIT_SIZE, AUDIT_TIMEOUT, AUDITOR, AgentCfg, Case, JOINER, Job, JoinCfg, Kind, Left, Op,
    Published, Right, TYPES, Window, agent_name, batch_spec, predicate,
};
use crate::support::probe::{Attempt, Audited, INDUCED, Log, ProbeEngine, Summary, auditor};

/// What happened while the case ran.
pub(crate) struct Observed {
    pub(crate) published: Vec<Published>,
    /// (op index, time) of each `flush_batches` call.
    pub(crate) manual: Vec<(usize, Duration)>,
    /// (op index, time) when `shutdown` began.
    pub(crate) shutdown: (usize, Duration),
    pub(crate) report: ShutdownReport,
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) audited: Vec<(Vec<ArtifactId>, BatchMetrics)>,
    pub(crate) failed: Vec<FailedRun>,
    pub(crate) workflow_errors: Vec<Arc<WorkflowError>>,
    pub(crate) summaries: Vec<Arc<Artifact>>,
    pub(crate) discards: Vec<Record>,
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

/// Registers item agent `i` as `cfg` says, with a probe engine logging to `log`.
pub(crate) fn register_agent(
    flock: &Flock,
    i: usize,
    cfg: &AgentCfg,
    log: &Arc<Log>,
) -> Result<flock::AgentHandle, flock::RegistrationError> {
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
    builder
        .publishes::<Summary>()
        .retry(RetryPolicy::fixed(cfg.attempts, Duration::from_millis(cfg.retry_ms)).unwrap())
        .max_concurrency(cfg.concurrency)
        .with_engine(
            ProbeEngine::new(i, agent_name(i), TYPES, log.clone())
                .work(Duration::from_millis(cfg.work_ms)),
        )
        .register()
}

fn register_joiner(
    flock: &Flock,
    index: usize,
    join: &JoinCfg,
    log: &Arc<Log>,
) -> Result<flock::AgentHandle, flock::RegistrationError> {
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
    flock
        .agent(JOINER)
        .consumes_all(gate)
        .publishes::<Summary>()
        .retry(RetryPolicy::fixed(join.attempts, Duration::from_millis(5)).unwrap())
        .with_engine(
            ProbeEngine::new(index, JOINER, TYPES, log.clone())
                .work(Duration::from_millis(join.work_ms)),
        )
        .register()
}

/// Registers the auditor of every [`Summary`]; returns what it will see.
pub(crate) fn register_auditor(flock: &Flock) -> Audited {
    let audited: Audited = Arc::default();
    flock
        .agent(AUDITOR)
        .consumes::<Summary>(
            Subscribe::new().batch(BatchSpec::size(AUDIT_SIZE).timeout(AUDIT_TIMEOUT)),
        )
        .with_engine(auditor(audited.clone()))
        .register()
        .unwrap();
    audited
}

/// Private to every item agent but `hidden_from`. The auditor may see every job,
/// so it may see the outputs derived from them too.
pub(crate) fn all_but(names: &[String], hidden_from: usize) -> Visibility {
    Visibility::private(
        names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != hidden_from)
            .map(|(_, n)| n.as_str())
            .chain([AUDITOR]),
    )
}

pub(crate) async fn run_case(case: &Case) -> Result<Option<Observed>, TestCaseError> {
    // Only the discards are checked: the property keeps its many other spans out.
    let (spans, _capture) = Capture::install_where(|m| m.name() == "join.discard");
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
    let log: Arc<Log> = Arc::default();
    for (i, cfg) in case.agents.iter().enumerate() {
        if !registered(register_agent(&flock, i, cfg, &log), wait)? {
            return Ok(None);
        }
    }
    if let Some(join) = &case.join {
        let joiner = register_joiner(&flock, case.agents.len(), join, &log);
        if !registered(joiner, wait)? {
            return Ok(None);
        }
    }
    let audited = register_auditor(&flock);

    let names: Vec<String> = (0..case.agents.len()).map(agent_name).collect();
    let mut published = Vec::new();
    let mut manual = Vec::new();
    for (index, op) in case.ops.iter().enumerate() {
        let n = u32::try_from(published.len()).unwrap();
        let at = elapsed();
        let (result, kind) = match *op {
            Op::Job { job: spec, json } => {
                let job = spec.job(n);
                let hidden_from = spec.hidden_from(names.len()).filter(|_| !json);
                let result = if json {
                    let text = serde_json::json!({"type": "reliability.Job", "payload": job});
                    flock.publish_json_str(&text.to_string()).await
                } else {
                    let visibility = match hidden_from {
                        None => Visibility::Public,
                        Some(h) => all_but(&names, h),
                    };
                    flock
                        .publish_with(job, PublishOptions::new().visibility(visibility))
                        .await
                };
                (result, spec.kind(hidden_from))
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
        .query(&ArtifactFilter::new().type_name("probe.Summary"))
        .await
        .unwrap();
    let workflow_errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    let discards = spans.spans("join.discard");
    let attempts = log.attempts();
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
