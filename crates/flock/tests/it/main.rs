//! Behaviour of the orchestrator, with tokio's paused clock wherever time matters.

#![allow(
    clippy::disallowed_methods,
    reason = "tests take base instants, and watchdogs their limits, from the real clock"
)]

mod admission;
mod and_gates;
mod bad_input;
mod batch_metrics;
mod batching;
mod circuit_breaker;
mod config;
mod duplicates;
mod errors;
mod events;
mod fuzz_json;
mod hooks;
mod inspection;
mod invoke;
mod joins;
mod keyed;
#[cfg(feature = "llm-mock")]
mod llm;
mod nothing_lost;
mod output_contract;
mod publishing;
mod races;
#[cfg(feature = "sqlite")]
mod recovery;
mod registration;
mod retention;
mod retries;
mod shutdown;
mod stress;
mod support;
// Every test of it needs a trace sink: the DuckDB file or an OTLP collector.
#[cfg(any(feature = "duckdb-prebuilt", feature = "otlp"))]
mod trace_setup;
#[cfg(feature = "duckdb-prebuilt")]
mod traces;
mod visibility;

use std::sync::Arc;

use flock::prelude::*;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A test artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
pub(crate) struct Item {
    pub(crate) id: i64,
}

/// What a recording engine saw in one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    pub(crate) ids: Vec<i64>,
    pub(crate) reason: Option<FlushReason>,
}

impl Run {
    pub(crate) fn batch(ids: &[i64], reason: FlushReason) -> Self {
        Self {
            ids: ids.to_vec(),
            reason: Some(reason),
        }
    }
}

pub(crate) type Runs = Arc<Mutex<Vec<Run>>>;

/// A batch engine recording every run (ids in order, flush reason).
pub(crate) fn recorder() -> (Runs, impl Engine) {
    let runs: Runs = Arc::default();
    let sink = runs.clone();
    let engine = batch_fn(move |ctx: &EngineContext, items: Vec<Arc<Item>>| {
        sink.lock().push(Run {
            ids: items.iter().map(|i| i.id).collect(),
            reason: ctx.flush_reason(),
        });
        Ok::<_, String>(Outputs::none())
    });
    (runs, engine)
}

pub(crate) async fn publish_ids(flock: &Flock, ids: impl IntoIterator<Item = i64>) {
    for id in ids {
        flock.publish(Item { id }).await.unwrap();
    }
}

/// A size-only spec, built from the prelude (`BatchSpecBuilder` is in it).
pub(crate) fn spec(size: usize) -> BatchSpecBuilder {
    BatchSpec::size(size)
}

// === AND gates and joins ===

macro_rules! signal {
    ($($name:ident),*) => {$(
        /// A test signal for AND gates and joins.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
        pub(crate) struct $name {
            pub(crate) correlation_id: String,
            pub(crate) data: String,
        }

        impl $name {
            pub(crate) fn new(correlation_id: &str, data: &str) -> Self {
                Self { correlation_id: correlation_id.to_owned(), data: data.to_owned() }
            }
        }
    )*};
}

signal!(SignalA, SignalB, SignalC);

/// `A:data`, `B:data`, `C:data`: what a group holds, in delivery order.
pub(crate) fn labels(inputs: &Inputs) -> Vec<String> {
    inputs
        .artifacts()
        .iter()
        .map(|a| {
            if let Some(s) = a.get::<SignalA>() {
                format!("A:{}", s.data)
            } else if let Some(s) = a.get::<SignalB>() {
                format!("B:{}", s.data)
            } else if let Some(s) = a.get::<SignalC>() {
                format!("C:{}", s.data)
            } else {
                format!("{}:?", a.type_name())
            }
        })
        .collect()
}

/// What a group engine saw in one run: its groups (one unless batched) and the
/// flush reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupRun {
    pub(crate) groups: Vec<Vec<String>>,
    pub(crate) reason: Option<FlushReason>,
}

pub(crate) type GroupRuns = Arc<Mutex<Vec<GroupRun>>>;

/// An engine for unbatched gates, recording each group.
pub(crate) fn gate_recorder() -> (GroupRuns, impl Engine) {
    let runs: GroupRuns = Arc::default();
    let sink = runs.clone();
    let engine = group_fn(move |ctx: &EngineContext, inputs: Inputs| {
        sink.lock().push(GroupRun {
            groups: vec![labels(&inputs)],
            reason: ctx.flush_reason(),
        });
        Ok::<_, String>(Outputs::none())
    });
    (runs, engine)
}

/// Registers an agent on `all_of` with a [`gate_recorder`]; returns its runs.
pub(crate) fn gate_agent(flock: &Flock, name: &str, all_of: AllOf) -> GroupRuns {
    register_gate(flock, name, all_of, gate_recorder())
}

/// Registers an agent on `all_of` with a recording engine; returns its runs.
pub(crate) fn register_gate(
    flock: &Flock,
    name: &str,
    all_of: AllOf,
    (runs, engine): (GroupRuns, impl Engine),
) -> GroupRuns {
    flock
        .agent(name)
        .consumes_all(all_of)
        .with_engine(engine)
        .register()
        .unwrap();
    runs
}

/// An engine for batched gates, recording each batch of groups.
pub(crate) fn batch_recorder() -> (GroupRuns, impl Engine) {
    let runs: GroupRuns = Arc::default();
    let sink = runs.clone();
    let engine = group_batch_fn(move |ctx: &EngineContext, groups: Vec<Inputs>| {
        sink.lock().push(GroupRun {
            groups: groups.iter().map(labels).collect(),
            reason: ctx.flush_reason(),
        });
        Ok::<_, String>(Outputs::none())
    });
    (runs, engine)
}

/// Groups of the recorded runs, flattened: one entry per group delivered.
pub(crate) fn groups(runs: &GroupRuns) -> Vec<Vec<String>> {
    runs.lock().iter().flat_map(|r| r.groups.clone()).collect()
}

pub(crate) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs `test` on a thread of its own and fails if it has not finished within
/// `limit` of real time: on tokio's paused clock a runtime that spins never lets
/// time advance, so a hang would otherwise never end. Not a speed assertion: the
/// limit is orders of magnitude above the test's normal time.
pub(crate) fn finishes_within(
    limit: std::time::Duration,
    what: &str,
    test: impl FnOnce() + Send + 'static,
) {
    let (done, finished) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        test();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => worker.join().unwrap(),
        // The test panicked: report its panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still running after {limit:?}: the runtime hangs or spins")
        }
    }
}

/// A current-thread runtime with tokio's clock paused.
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}
