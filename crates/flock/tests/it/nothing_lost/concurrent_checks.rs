//! Checking a concurrent history: every accepted job delivered once to each agent
//! that takes it (or held in a failed run), but for `After` jobs still hidden when
//! shutdown began, which the report counts; batches within their size, of one key,
//! each publisher's order kept, flushed for true reasons; runs, failures and outputs
//! as the probe log shows; nothing seen after `shutdown` returned; and, at every
//! return of `run_until_idle`, nothing taken but not started and nothing due.

use std::collections::HashMap;

use super::{
    concurrent::{Accepted, Idle, Observed, WITNESS},
    model::{Concurrent, agent_name, expected_sub, key_of, probed},
};
use crate::support::{
    probe::Attempt,
    runs::{
        Flushers, Probed, check_audit, check_batch, check_failures, check_one_key,
        check_publisher_order, check_runs, check_shutdown_report, ensure,
    },
};

/// The first attempt of each run, by agent and input.
type Firsts<'a> = HashMap<(usize, u32), &'a Attempt>;

pub(crate) fn check(case: &Concurrent, o: &Observed) -> Result<(), String> {
    ensure!(
        o.left.is_empty(),
        "batches left after shutdown: {:?}",
        o.left
    );
    ensure!(
        o.later.is_empty(),
        "engines called after shutdown returned: {:?}",
        o.later
    );
    let by_n: HashMap<u32, &Accepted> = o.accepted.iter().map(|a| (a.n, a)).collect();
    for attempt in &o.attempts {
        for n in attempt.units.iter().flatten() {
            ensure!(
                by_n.contains_key(n),
                "an engine saw job {n}, never accepted"
            );
        }
    }
    let witness = case.agents.len();
    let mut agents = probed(&case.agents);
    agents.push(Probed {
        name: WITNESS.to_owned(),
        attempts: 1,
    });
    let ran = check_runs(&o.attempts, &agents, |n| by_n[&n].fault)?;
    check_failures(
        &ran,
        &agents,
        |n| by_n[&n].id,
        &o.failed,
        &o.workflow_errors,
    )?;
    let audited = o.audited.lock();
    check_audit(&ran, &agents, &o.summaries, &audited)?;
    check_shutdown_report(&o.report, &o.attempts, &audited)?;

    let mut firsts: Firsts<'_> = HashMap::new();
    for attempt in o.attempts.iter().filter(|a| a.attempt == 1) {
        for n in attempt.units.iter().flatten() {
            let twice = firsts.insert((attempt.agent, *n), attempt).is_some();
            ensure!(
                !twice,
                "{}: job {n} delivered twice",
                agents[attempt.agent].name
            );
        }
    }

    // The witness takes every job: what it did not see was never delivered, which
    // only an `After` job whose visibility had not begun may be.
    let mut undelivered = 0;
    for a in &o.accepted {
        match firsts.get(&(witness, a.n)) {
            Some(attempt) => ensure!(attempt.batch.is_none(), "the witness does not batch"),
            None => {
                ensure!(
                    a.visible_from.is_some_and(|v| v > o.last_tick),
                    "job {} never delivered: {a:?}",
                    a.n
                );
                undelivered += 1;
            }
        }
    }
    ensure!(
        o.report.deferred_undelivered == undelivered,
        "report: {} deferred undelivered, {undelivered} jobs never delivered",
        o.report.deferred_undelivered
    );
    let delivered = |n: u32| firsts.contains_key(&(witness, n));

    let flushers = Flushers {
        first_manual: o.first_manual,
        shutdown: o.shutdown,
    };
    for (agent, cfg) in case.agents.iter().enumerate() {
        let what = agent_name(agent);
        // Expected per subscription; unbatched subscriptions' runs are one pool.
        let mut expected: Vec<Vec<u32>> = vec![Vec::new(); cfg.subs.len()];
        let mut expected_singles = Vec::new();
        for a in o.accepted.iter().filter(|a| delivered(a.n)) {
            if let Some(sub) = expected_sub(cfg, agent, &a.kind) {
                match cfg.subs[sub].batch {
                    Some(_) => expected[sub].push(a.n),
                    None => expected_singles.push(a.n),
                }
            }
        }
        let mut got: Vec<Vec<u32>> = vec![Vec::new(); cfg.subs.len()];
        let mut singles: Vec<u32> = Vec::new();
        let mut runs: Vec<&Attempt> = firsts
            .iter()
            .filter(|((a, _), _)| *a == agent)
            .map(|(_, attempt)| *attempt)
            .collect();
        runs.sort_by_key(|a| a.stamp);
        runs.dedup_by_key(|a| a.stamp);
        for first in runs {
            let Some(m) = &first.batch else {
                singles.extend(first.units.iter().flatten());
                continue;
            };
            let sub = &cfg.subs[m.subscription_index];
            let label = format!("{what}.sub{}", m.subscription_index);
            let (size, timeout) = sub.batch.expect("a batched subscription");
            let timeout = timeout.map(std::time::Duration::from_millis);
            check_batch(&label, (size, timeout), first, flushers)?;
            check_one_key(&label, first, |n| key_of(&by_n[&n].kind, sub.keyed))?;
            check_publisher_order(&label, first, |n| {
                // An `After` job arrives when it becomes visible, not when published.
                by_n[&n]
                    .visible_from
                    .is_none()
                    .then_some((n >> 16, n & 0xffff))
            })?;
            got[m.subscription_index].extend(first.units.iter().flatten());
        }
        for (sub, (mut got, mut expected)) in got.into_iter().zip(expected).enumerate() {
            got.sort_unstable();
            expected.sort_unstable();
            ensure!(
                got == expected,
                "{what}.sub{sub}: delivered {got:?}, expected {expected:?}"
            );
        }
        singles.sort_unstable();
        expected_singles.sort_unstable();
        ensure!(
            singles == expected_singles,
            "{what}: single runs {singles:?}, expected {expected_singles:?}"
        );
    }

    for (round, idle) in o.idles.iter().enumerate() {
        check_idle(case, o, &by_n, &firsts, round, idle)?;
    }
    Ok(())
}

/// When `run_until_idle` returned at the end of `round`, nothing was due and nothing
/// taken was waiting to start: every job accepted by then either had reached each
/// agent that takes it (its run started before the return), or waited in a batch
/// whose deadline was still to come when the call began, or was still hidden by its
/// `After` visibility when the call began.
fn check_idle(
    case: &Concurrent,
    o: &Observed,
    by_n: &HashMap<u32, &Accepted>,
    firsts: &Firsts<'_>,
    round: usize,
    idle: &Idle,
) -> Result<(), String> {
    for batch in &idle.active {
        if let Some(timeout) = batch.spec.max_wait() {
            ensure!(
                batch.created_at + timeout > idle.called,
                "round {round}: run_until_idle returned with a batch due before it was called \
                 ({}): {batch:?}",
                idle.called
            );
        }
    }
    let witness = case.agents.len();
    for a in o
        .accepted
        .iter()
        .filter(|a| a.round.is_some_and(|r| r <= round))
    {
        if a.visible_from.is_some_and(|v| v > idle.called) {
            continue;
        }
        // The subscriptions taking it: the witness's and the item agents'.
        let takers = case
            .agents
            .iter()
            .enumerate()
            .filter_map(|(agent, cfg)| {
                let sub = expected_sub(cfg, agent, &a.kind)?;
                Some((agent, cfg.subs[sub].batch.and_then(|(_, t)| t)))
            })
            .chain([(witness, None)]);
        for (agent, timeout) in takers {
            // A job never delivered is reported by the delivery checks.
            let Some(first) = firsts.get(&(agent, a.n)) else {
                continue;
            };
            if first.stamp < idle.returned {
                continue;
            }
            // Not started when the call returned: legitimate only in a batch that was
            // not due when the call began. When the run was due: on arrival for an
            // unbatched job, at its batch's deadline otherwise (not known for a
            // batch that starts with an `After` job, released by a timer).
            let head = by_n[&first.first()];
            let due_at = match (&first.batch, timeout) {
                (None, _) => Some(a.visible_from.unwrap_or(a.created_at)),
                (Some(_), Some(ms)) if head.visible_from.is_none() => {
                    Some(head.created_at + std::time::Duration::from_millis(ms))
                }
                (Some(_), _) => None,
            };
            if let Some(due_at) = due_at.filter(|at| *at <= idle.called) {
                return Err(format!(
                    "round {round}: run_until_idle returned before the run of job {} for agent \
                     {agent} started, due {} before the call: {first:?}, job {a:?}",
                    a.n,
                    idle.called - due_at
                ));
            }
        }
    }
    Ok(())
}
