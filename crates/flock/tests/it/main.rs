//! Behaviour of the orchestrator, with tokio's paused clock wherever time matters.

mod admission;
mod and_gates;
mod bad_input;
mod batch_metrics;
mod batching;
mod circuit_breaker;
mod duplicates;
mod errors;
mod fuzz_json;
mod hooks;
mod inspection;
mod joins;
mod keyed;
#[cfg(feature = "llm-mock")]
mod llm;
mod nothing_lost;
mod output_contract;
mod publishing;
mod registration;
mod retries;
mod shutdown;
mod stress;
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

pub(crate) fn spec(size: usize) -> flock::subscription::BatchSpecBuilder {
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

/// Spans named `join.*` and `batch.flush`, with their fields as text at creation, and
/// events at `WARN` or above, captured for assertions.
///
/// One global subscriber routes records to the capture the current thread installed
/// (each paused-clock test runs its tasks on its own thread): with per-test
/// (thread-local) subscribers, tracing's per-callsite interest cache, shared by
/// parallel tests, can disable a callsite for the test that wants it.
#[derive(Clone, Default)]
pub(crate) struct JoinSpans(
    Arc<Mutex<Vec<CapturedSpan>>>,
    Arc<Mutex<Vec<CapturedEvent>>>,
);

#[derive(Debug, Clone)]
pub(crate) struct CapturedSpan {
    pub(crate) name: &'static str,
    pub(crate) fields: std::collections::BTreeMap<&'static str, String>,
}

impl CapturedSpan {
    pub(crate) fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

/// An event at `WARN` or above; its message is the field `message`.
#[derive(Debug, Clone)]
pub(crate) struct CapturedEvent {
    pub(crate) level: tracing::Level,
    pub(crate) fields: std::collections::BTreeMap<&'static str, String>,
}

impl CapturedEvent {
    pub(crate) fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

thread_local! {
    static CURRENT_SPANS: std::cell::RefCell<Option<JoinSpans>> =
        const { std::cell::RefCell::new(None) };
}

/// Stops capturing on this thread when dropped.
pub(crate) struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT_SPANS.with(|c| c.borrow_mut().take());
    }
}

impl JoinSpans {
    /// Captures the `join.*` spans of this thread until the guard drops.
    pub(crate) fn install() -> (Self, CaptureGuard) {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            use tracing_subscriber::layer::SubscriberExt;
            let subscriber = tracing_subscriber::registry().with(RouteJoinSpans);
            // Another test may have installed one first; then its own spans still
            // reach it, and this capture stays empty: an assertion says so.
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        let spans = Self::default();
        CURRENT_SPANS.with(|c| *c.borrow_mut() = Some(spans.clone()));
        (spans, CaptureGuard)
    }

    pub(crate) fn named(&self, name: &str) -> Vec<CapturedSpan> {
        self.0
            .lock()
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// Events at `level` whose message contains `text`.
    pub(crate) fn events(&self, level: tracing::Level, text: &str) -> Vec<CapturedEvent> {
        self.1
            .lock()
            .iter()
            .filter(|e| e.level == level && e.field("message").contains(text))
            .cloned()
            .collect()
    }
}

struct FieldText<'a>(&'a mut std::collections::BTreeMap<&'static str, String>);

impl tracing::field::Visit for FieldText<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

/// Sends `join.*` and `batch.flush` spans, and events at `WARN` or above, to the
/// current thread's [`JoinSpans`], if it installed one.
struct RouteJoinSpans;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RouteJoinSpans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let name = attrs.metadata().name();
        if !name.starts_with("join.") && name != "batch.flush" {
            return;
        }
        CURRENT_SPANS.with(|current| {
            if let Some(spans) = current.borrow().as_ref() {
                let mut fields = std::collections::BTreeMap::new();
                attrs.record(&mut FieldText(&mut fields));
                spans.0.lock().push(CapturedSpan { name, fields });
            }
        });
    }

    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        // Levels order by verbosity: everything above WARN is INFO, DEBUG or TRACE.
        let level = *event.metadata().level();
        if level > tracing::Level::WARN {
            return;
        }
        CURRENT_SPANS.with(|current| {
            if let Some(spans) = current.borrow().as_ref() {
                let mut fields = std::collections::BTreeMap::new();
                event.record(&mut FieldText(&mut fields));
                spans.1.lock().push(CapturedEvent { level, fields });
            }
        });
    }
}
