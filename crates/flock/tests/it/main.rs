//! Behaviour of the orchestrator, with tokio's paused clock wherever time matters.

mod batching;
mod circuit_breaker;
mod duplicates;
mod errors;
mod hooks;
mod inspection;
#[cfg(feature = "llm-mock")]
mod llm;
mod output_contract;
mod publishing;
mod registration;
mod retries;
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

pub(crate) fn spec(size: usize) -> flock::subscription::BatchSpecBuilder {
    BatchSpec::size(size)
}
