//! The proptest strategies of the histories: agents, subscriptions, batch specs, the
//! join, admission bounds, faults and operations on the paused clock; agents,
//! publishers' rounds, the controller's waits and calls on the real clock.

use std::ops::RangeInclusive;

use proptest::prelude::*;

use super::model::{
    AgentCfg, Call, Case, Concurrent, JobSpec, JoinCfg, Op, Pause, Publish, Round, Spec, SubCfg,
    Wait, Window,
};
use crate::support::probe::Fault;

/// The durations of generated agents, in ms: on the paused clock they can be long,
/// on the real clock they are short, so that a case takes milliseconds.
#[derive(Debug, Clone)]
struct Times {
    /// Batch timeouts.
    timeout: RangeInclusive<u64>,
    /// Delays between attempts.
    retry: RangeInclusive<u64>,
    /// How long an engine call works, when it does.
    work: RangeInclusive<u64>,
}

/// The durations of the paused-clock histories.
const PAUSED: Times = Times {
    timeout: 10..=200,
    retry: 0..=30,
    work: 1..=40,
};

fn spec(timeout: RangeInclusive<u64>) -> impl Strategy<Value = Spec> {
    prop_oneof![
        (1usize..=4).prop_map(|n| (Some(n), None)),
        timeout.clone().prop_map(|ms| (None, Some(ms))),
        (1usize..=4, timeout).prop_map(|(n, ms)| (Some(n), Some(ms))),
    ]
}

fn sub(timeout: RangeInclusive<u64>) -> impl Strategy<Value = SubCfg> {
    (
        prop::option::weighted(0.5, (2u8..=3).prop_flat_map(|m| (Just(m), 0..m))),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.8, spec(timeout)),
        prop::option::weighted(0.4, 2u8..=3),
    )
        .prop_map(|(filter, panicky, batch, keyed)| SubCfg {
            filter,
            panicky,
            keyed: keyed.filter(|_| batch.is_some()),
            batch,
        })
}

fn agent(times: Times) -> impl Strategy<Value = AgentCfg> {
    (
        prop::collection::vec(sub(times.timeout), 1..=2),
        1u32..=3,
        times.retry,
        prop_oneof![3 => Just(0u64), 1 => times.work],
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
        prop::option::weighted(0.6, spec(PAUSED.timeout)),
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

fn job() -> impl Strategy<Value = JobSpec> {
    (
        0u8..6,
        fault(),
        (prop::bool::weighted(0.1), prop::bool::weighted(0.05)),
        prop::option::weighted(0.1, 0u8..3),
    )
        .prop_map(
            |(class, (fault, targets), (predicate_panics, key_panics), hidden_from)| JobSpec {
                class,
                fault,
                targets,
                predicate_panics,
                key_panics,
                hidden_from,
            },
        )
}

fn op(joins: bool) -> impl Strategy<Value = Op> {
    let job = (job(), prop::bool::weighted(0.2)).prop_map(|(job, json)| Op::Job { job, json });
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

pub(crate) fn case(max_ops: usize) -> impl Strategy<Value = Case> {
    let admission = prop::option::weighted(
        0.25,
        (
            prop::option::weighted(0.7, 1usize..=6),
            prop::option::weighted(0.5, 2usize..=10),
            any::<bool>(),
        ),
    );
    (
        prop::collection::vec(agent(PAUSED), 1..=3),
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

// === the concurrent histories ===

/// The durations of the concurrent histories: short, so a case takes milliseconds.
const REAL: Times = Times {
    timeout: 1..=20,
    retry: 0..=2,
    work: 1..=1,
};

fn wait() -> impl Strategy<Value = Wait> {
    prop_oneof![
        3 => Just(Wait::Ms(0)),
        2 => (1u64..=5).prop_map(Wait::Ms),
        1 => (5u64..=20).prop_map(Wait::Ms),
        2 => Just(Wait::NextDeadline),
    ]
}

fn publish() -> impl Strategy<Value = Publish> {
    (
        job(),
        prop::option::weighted(0.2, 1u64..=8),
        prop_oneof![
            3 => Just(Pause::None),
            2 => Just(Pause::Yield),
            1 => Just(Pause::Sleep(1)),
        ],
    )
        .prop_map(|(job, after_ms, pause)| Publish {
            job,
            after_ms,
            pause,
        })
}

fn round(publishers: usize) -> impl Strategy<Value = Round> {
    let call = prop_oneof![
        Just(Call::Flush),
        Just(Call::CheckTimeouts),
        (0u64..=2).prop_map(Call::Sleep),
    ];
    (
        prop::collection::vec(prop::collection::vec(publish(), 0..=6), publishers),
        prop::collection::vec(call, 0..=3),
        wait(),
    )
        .prop_map(|(publishers, calls, pause)| Round {
            publishers,
            calls,
            pause,
        })
}

pub(crate) fn concurrent() -> impl Strategy<Value = Concurrent> {
    (
        prop::collection::vec(agent(REAL), 1..=3),
        2usize..=4,
        2usize..=4,
    )
        .prop_flat_map(|(agents, workers, publishers)| {
            let tail = prop::collection::vec(prop::collection::vec(publish(), 1..=4), publishers);
            (
                Just(agents),
                Just(workers),
                prop::collection::vec(round(publishers), 1..=2),
                tail,
                (wait(), any::<bool>(), 0u8..=10),
            )
        })
        .prop_map(
            |(agents, workers, rounds, tail, (wait, tick, yields))| Concurrent {
                workers,
                agents,
                rounds,
                tail,
                wait,
                tick,
                yields,
            },
        )
}
