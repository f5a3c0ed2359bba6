//! Checking a paused-clock history against the model: each delivery, each batch's
//! contents and flush reason at the exact time the model predicts, each run's
//! attempts, the join, the outputs and the shutdown report.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use flock::{ArtifactId, prelude::*};
use proptest::{prelude::*, test_runner::TestCaseError};

use super::{
    model::{
        AUDIT_SIZE, AUDIT_TIMEOUT, Case, JOINER, Kind, Spec, Window, agent_name, expected_sub,
        fault_of, key_of, probed,
    },
    run::Observed,
};
use crate::support::{
    probe::Attempt,
    runs::{Probed, check_audit, check_failures, check_runs, check_shutdown_report},
};

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

/// Checks a history against the model.
pub(crate) fn check_case(case: &Case, o: &Observed) -> Result<(), TestCaseError> {
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

    // Runs: each makes the attempts its inputs' faults plan; the failed runs and
    // WorkflowErrors name exactly the runs that failed for good.
    let agent_count = case.agents.len();
    let mut agents = probed(&case.agents);
    if let Some(join) = &case.join {
        agents.push(Probed {
            name: JOINER.to_owned(),
            attempts: join.attempts,
        });
    }
    let ran = check_runs(&o.attempts, &agents, |n| {
        fault_of(&case.ops, &o.published, n)
    })
    .map_err(TestCaseError::fail)?;
    let id_of = |n: u32| o.published[n as usize].id;
    check_failures(&ran, &agents, id_of, &o.failed, &o.workflow_errors)
        .map_err(TestCaseError::fail)?;

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
                    let key = |seq: u32| key_of(&o.published[seq as usize].kind, sub.keyed);
                    let mut per_key: BTreeMap<u8, Vec<Flushed>> = BTreeMap::new();
                    for batch in &batches[index] {
                        let first_key = key(batch.units[0].seq);
                        prop_assert!(
                            batch.units.iter().all(|u| key(u.seq) == first_key),
                            "{label}: a keyed batch mixes keys"
                        );
                        per_key.entry(first_key).or_default().push(batch.clone());
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
    check_audit(&ran, &agents, &o.summaries, &o.audited).map_err(TestCaseError::fail)?;
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
    check_shutdown_report(&o.report, &o.attempts, &o.audited).map_err(TestCaseError::fail)?;
    prop_assert_eq!(
        o.report.join_groups_discarded,
        discarded_groups,
        "report: join groups"
    );
    Ok(())
}
