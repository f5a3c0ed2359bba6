//! Checks of a probe log that the runtime property tests and the stress test share:
//! runs and their retries, failed runs and `WorkflowError`s, outputs audited once,
//! and the rules a batch obeys on the real clock. Each returns what is wrong as
//! text; property tests turn it into a failed case, the stress test into a panic.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    hash::Hash,
    sync::Arc,
    time::Duration,
};

use flock::{ArtifactId, ShutdownReport, prelude::*};

use super::probe::{Attempt, Fault, INDUCED, Outcome, Summary, planned_outcome};

/// Fails with `message` unless `condition` holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

pub(crate) use ensure;

/// The attempts of each run, by agent and first input, in the order they were logged.
pub(crate) fn runs(attempts: &[Attempt]) -> BTreeMap<(usize, u32), Vec<&Attempt>> {
    let mut runs: BTreeMap<(usize, u32), Vec<&Attempt>> = BTreeMap::new();
    for attempt in attempts {
        runs.entry((attempt.agent, attempt.first()))
            .or_default()
            .push(attempt);
    }
    runs
}

/// A probed agent: its name and how many attempts its retry policy allows.
pub(crate) struct Probed {
    pub(crate) name: String,
    pub(crate) attempts: u32,
}

/// What the runs of a log came to.
#[derive(Debug, Default)]
pub(crate) struct Ran {
    /// Agent and first input of each run that succeeded.
    pub(crate) successes: Vec<(usize, u32)>,
    /// Agent and inputs of each run that failed every attempt.
    pub(crate) failed: Vec<(usize, Vec<u32>)>,
}

/// Every run makes the attempts its inputs' faults plan (`faults` gives an input's
/// fault and targets), all with the same inputs and batch, then succeeds, or fails
/// for good after as many attempts as its agent allows.
pub(crate) fn check_runs(
    attempts: &[Attempt],
    agents: &[Probed],
    faults: impl Fn(u32) -> (Fault, u8),
) -> Result<Ran, String> {
    let mut ran = Ran::default();
    for ((agent, first_input), attempts) in runs(attempts) {
        let first = attempts[0];
        let max = agents[agent].attempts;
        for (i, attempt) in attempts.iter().enumerate() {
            ensure!(
                attempt.attempt as usize == i + 1,
                "attempts out of order: {attempts:?}"
            );
            ensure!(
                attempt.units == first.units,
                "a retry has other inputs: {attempts:?}"
            );
            ensure!(
                attempt.batch == first.batch,
                "a retry has another batch: {attempts:?}"
            );
            let planned = planned_outcome(
                attempt.units.iter().flatten().map(|n| faults(*n)),
                1 << attempt.agent,
                attempt.attempt,
            );
            ensure!(
                attempt.outcome == planned,
                "outcome of {attempt:?}, planned {planned:?}"
            );
        }
        let last = attempts[attempts.len() - 1];
        ensure!(
            attempts.len() as u32 <= max,
            "more attempts than the policy allows: {attempts:?}"
        );
        ensure!(
            attempts[..attempts.len() - 1]
                .iter()
                .all(|a| a.outcome != Outcome::Ok),
            "a run was retried after it succeeded: {attempts:?}"
        );
        if last.outcome == Outcome::Ok {
            ran.successes.push((agent, first_input));
        } else {
            ensure!(
                attempts.len() as u32 == max,
                "a failed run stopped retrying early: {attempts:?}"
            );
            ran.failed
                .push((agent, first.units.iter().flatten().copied().collect()));
        }
    }
    Ok(ran)
}

/// The failed runs and the `WorkflowError`s name exactly the runs that failed for
/// good, with their inputs' ids (`id_of` maps an input's number to its id), once
/// each; every failed run made its agent's attempts and ended with an induced error.
pub(crate) fn check_failures(
    ran: &Ran,
    agents: &[Probed],
    id_of: impl Fn(u32) -> ArtifactId,
    failed: &[FailedRun],
    workflow_errors: &[Arc<WorkflowError>],
) -> Result<(), String> {
    let expected: HashSet<(String, Vec<ArtifactId>)> = ran
        .failed
        .iter()
        .map(|(agent, inputs)| {
            let ids = inputs.iter().map(|n| id_of(*n)).collect();
            (agents[*agent].name.clone(), ids)
        })
        .collect();
    let mut recorded = HashSet::new();
    for run in failed {
        ensure!(
            run.kind == FailureKind::Failed,
            "failed run of kind {:?}",
            run.kind
        );
        let Some(agent) = agents.iter().find(|a| a.name == run.agent) else {
            return Err(format!("failed run of an unknown agent {:?}", run.agent));
        };
        ensure!(
            run.attempts == agent.attempts,
            "{}: attempts of a failed run",
            run.agent
        );
        ensure!(
            run.error == format!("{INDUCED} error")
                || run.error == format!("engine panicked: {INDUCED} panic"),
            "unexpected error {:?}",
            run.error
        );
        ensure!(
            recorded.insert((run.agent.clone(), run.input_ids())),
            "failed run twice: {run:?}"
        );
    }
    ensure!(
        recorded == expected,
        "failed runs: {recorded:?}, expected {expected:?}"
    );
    ensure!(
        workflow_errors.len() == failed.len(),
        "{} WorkflowErrors for {} failed runs",
        workflow_errors.len(),
        failed.len()
    );
    let reported: HashSet<(String, Vec<ArtifactId>)> = workflow_errors
        .iter()
        .map(|e| (e.agent.clone(), e.input_ids.clone()))
        .collect();
    ensure!(
        reported == expected,
        "WorkflowErrors: {reported:?}, expected {expected:?}"
    );
    Ok(())
}

/// Each successful run published one [`Summary`] (given as artifacts), and the
/// auditor saw each Summary exactly once.
pub(crate) fn check_audit(
    ran: &Ran,
    agents: &[Probed],
    summaries: &[Arc<Artifact>],
    audited: &[(Vec<ArtifactId>, BatchMetrics)],
) -> Result<(), String> {
    let mut published: Vec<(String, u32)> = summaries
        .iter()
        .map(|a| {
            let summary = a.get::<Summary>().expect("a Summary");
            (summary.agent.clone(), summary.first)
        })
        .collect();
    published.sort_unstable();
    let mut expected: Vec<(String, u32)> = ran
        .successes
        .iter()
        .map(|(agent, first)| (agents[*agent].name.clone(), *first))
        .collect();
    expected.sort_unstable();
    ensure!(
        published == expected,
        "one Summary per successful run: {published:?}, expected {expected:?}"
    );
    let mut seen: Vec<ArtifactId> = audited.iter().flat_map(|(ids, _)| ids.clone()).collect();
    seen.sort_unstable();
    let mut ids: Vec<ArtifactId> = summaries.iter().map(|a| a.id).collect();
    ids.sort_unstable();
    ensure!(seen == ids, "every Summary audited once");
    Ok(())
}

/// The shutdown report counts the batches (and their artifacts) flushed with reason
/// `shutdown`: the probed agents' and the auditor's.
pub(crate) fn check_shutdown_report(
    report: &ShutdownReport,
    attempts: &[Attempt],
    audited: &[(Vec<ArtifactId>, BatchMetrics)],
) -> Result<(), String> {
    let flushes: Vec<usize> = attempts
        .iter()
        .filter(|a| a.attempt == 1)
        .filter_map(|a| {
            a.batch
                .as_ref()
                .filter(|m| m.flush_reason == FlushReason::Shutdown)
                .map(|_| a.units.iter().map(Vec::len).sum())
        })
        .chain(
            audited
                .iter()
                .filter(|(_, m)| m.flush_reason == FlushReason::Shutdown)
                .map(|(ids, _)| ids.len()),
        )
        .collect();
    ensure!(
        report.batches_flushed == flushes.len(),
        "report: {} batches flushed, {} seen",
        report.batches_flushed,
        flushes.len()
    );
    let artifacts: usize = flushes.iter().sum();
    ensure!(
        report.artifacts_flushed == artifacts,
        "report: {} artifacts flushed, {artifacts} seen",
        report.artifacts_flushed
    );
    Ok(())
}

// === batches on the real clock ===

/// Stamps taken before the calls that flush batches by hand.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flushers {
    /// Before the first `flush_batches` call.
    pub(crate) first_manual: Option<u64>,
    /// Before `shutdown`.
    pub(crate) shutdown: u64,
}

/// A batch's first attempt shows its spec, holds no more than its size, and was
/// flushed for a true reason: `size` when full, `timeout` not before the timeout,
/// `manual` only after a `flush_batches` call began, `shutdown` only after shutdown
/// began; the last three only when not full.
pub(crate) fn check_batch(
    what: &str,
    (size, timeout): (Option<usize>, Option<Duration>),
    first: &Attempt,
    flushers: Flushers,
) -> Result<(), String> {
    let Some(m) = &first.batch else {
        return Err(format!("{what}: a run without a batch"));
    };
    let n = first.units.len();
    ensure!(
        m.batch_size == n,
        "{what}: batch_size {} of {n} items",
        m.batch_size
    );
    ensure!(m.configured_size == size, "{what}: configured size {m:?}");
    ensure!(
        m.configured_timeout == timeout,
        "{what}: configured timeout {m:?}"
    );
    ensure!(
        size.is_none_or(|size| n <= size),
        "{what}: batch of {n} over its size"
    );
    let not_full = size.is_none_or(|size| n < size);
    match m.flush_reason {
        FlushReason::Size => ensure!(Some(n) == size, "{what}: size flush not full"),
        FlushReason::Timeout => {
            ensure!(not_full, "{what}: timeout flush of a full batch");
            let timeout = timeout.ok_or_else(|| format!("{what}: timeout flush without one"))?;
            ensure!(
                m.wait >= timeout,
                "{what}: timeout flush after {:?}",
                m.wait
            );
        }
        FlushReason::Manual => {
            ensure!(not_full, "{what}: manual flush of a full batch");
            ensure!(
                flushers.first_manual.is_some_and(|s| s < first.stamp),
                "{what}: manual flush without flush_batches"
            );
        }
        FlushReason::Shutdown => {
            ensure!(not_full, "{what}: shutdown flush of a full batch");
            ensure!(
                flushers.shutdown < first.stamp,
                "{what}: shutdown flush before shutdown"
            );
        }
    }
    Ok(())
}

/// The items of a keyed batch (each given by its first input) all have one key.
pub(crate) fn check_one_key<K: PartialEq + std::fmt::Debug>(
    what: &str,
    first: &Attempt,
    key_of: impl Fn(u32) -> K,
) -> Result<(), String> {
    let keys: Vec<K> = first.units.iter().map(|u| key_of(u[0])).collect();
    ensure!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "{what}: keys mixed: {keys:?}"
    );
    Ok(())
}

/// Inside a batch, the items of each publisher come in the order it published them
/// (`source_of` gives an input's publisher and its position there, or `None` for an
/// input that arrives later than published, as `After` visibility makes it).
pub(crate) fn check_publisher_order<P: Eq + Hash>(
    what: &str,
    first: &Attempt,
    source_of: impl Fn(u32) -> Option<(P, u32)>,
) -> Result<(), String> {
    let mut last: HashMap<P, u32> = HashMap::new();
    for unit in &first.units {
        let Some((publisher, position)) = source_of(unit[0]) else {
            continue;
        };
        if let Some(previous) = last.insert(publisher, position) {
            ensure!(
                previous < position,
                "{what}: a publisher's order not kept: {:?}",
                first.units
            );
        }
    }
    Ok(())
}
