//! flock-rs: blackboard-style agent orchestration whose headline feature is
//! [`BatchSpec`]: batching artifacts by size or timeout, whichever comes first.
//!
//! Publish typed artifacts to a blackboard; agents declare what they consume
//! (types, predicates, AND gates and joins, batches) and publish; the orchestrator
//! matches every artifact against every subscription, correlates joins, collects
//! batches, runs the agent's [`Engine`], and publishes its outputs back, where other
//! agents may react.
//!
//! Correlate, then batch (the guide's smart factory), with [`AllOf`] and [`JoinSpec`]:
//! `AllOf::new().of::<TemperatureSensor>().of::<PressureSensor>()
//! .join(JoinSpec::by(|t: &TemperatureSensor| t.device_id.clone())
//! .by(|p: &PressureSensor| p.device_id.clone()).within(Duration::from_secs(30)))
//! .batch(BatchSpec::size(5))` hands the engine 5 correlated pairs at a time
//! ([`group_batch_fn`]); see `examples/factory_qc.rs`.
//!
//! # Quick start
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use flock::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
//! struct Transaction { transaction_id: String, amount: f64 }
//!
//! #[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
//! struct PaymentBatchReport { transaction_count: usize, total_amount: f64, flush_reason: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let flock = Flock::new();
//! flock
//!     .agent("payment_processor")
//!     .description("Batches 25 transactions to save $5.00 per batch")
//!     .consumes::<Transaction>(
//!         // Flush when 25 transactions are collected, OR 30 seconds after the first.
//!         Subscribe::new().batch(BatchSpec::size(25).timeout(Duration::from_secs(30))),
//!     )
//!     .publishes::<PaymentBatchReport>()
//!     .with_engine(batch_fn(|ctx: &EngineContext, txns: Vec<Arc<Transaction>>| {
//!         Ok::<_, String>(PaymentBatchReport {
//!             transaction_count: txns.len(),
//!             total_amount: txns.iter().map(|t| t.amount).sum(),
//!             flush_reason: ctx.flush_reason().map(|r| r.to_string()).unwrap_or_default(),
//!         })
//!     }))
//!     .register()?;
//!
//! for i in 0..30 {
//!     flock.publish(Transaction { transaction_id: format!("t{i}"), amount: 10.0 }).await?;
//! }
//! flock.run_until_idle().await; // the first 25 flushed by size
//! flock.shutdown().await; // the last 5 flush with reason "shutdown": nothing lost
//!
//! let reports = flock.get_by_type::<PaymentBatchReport>().await?;
//! assert_eq!(reports.len(), 2);
//! assert_eq!((reports[0].transaction_count, reports[0].flush_reason.as_str()), (25, "size"));
//! assert_eq!((reports[1].transaction_count, reports[1].flush_reason.as_str()), (5, "shutdown"));
//! # Ok(())
//! # }
//! ```
//!
//! The engine's context carries the batch's figures: `ctx.batch_metrics()?` is a
//! [`BatchMetrics`] (`batch_size`, `flush_reason`, `efficiency`, the configured
//! triggers, the wait), itself an artifact type an engine may publish for a
//! monitoring agent.
//!
//! # Learn more
//!
//! - **The guide**, [`guide::batch_processing`]: Flock's *Batch Processing* page in
//!   Rust: the dual trigger, choosing `size` and `timeout`, the patterns (payments,
//!   LLM analysis, bulk inserts, rate limits, IoT statistics), predicates, joins and
//!   visibility with batches, best practices, performance, and debugging with
//!   [`Flock::active_batches`] and DuckDB traces. Every Rust block in it is a doctest.
//! - **Durability**, `guide::durability` (feature `sqlite`): a flock on the SQLite
//!   store, what survives a crash, what runs again, idempotency keys.
//! - **Examples**, one per pattern, each finishing in seconds:
//!   `cargo xtask example NAME` in the repository (`payment_batching --fast`,
//!   `simple_batch`, `review_sentiment`, `support_tickets`, `bulk_insert`,
//!   `rate_limit`, `iot_stats`, `vip_orders`, `factory_qc`, `tenant_batching`,
//!   `batch_metrics`, `dashboard`); `cargo xtask examples` runs them all.
//! - **Operating a flock**: the `flock-rs-server` crate serves a flock over HTTP
//!   (Python Flock's `/api/v1` paths plus batches, joins, flushes and failed runs),
//!   with live events, an embedded dashboard, Prometheus metrics, bearer tokens
//!   through visibility, and a graceful SIGTERM; `crates/flock-rs-server/guide/operating.md`. The
//!   facade's part is what it reads: [`Flock::events`], [`Flock::active_batches`]
//!   (with each batch's visibility), [`Flock::agents`], [`Flock::runs_in_flight`],
//!   [`Flock::invoke`].
//!
//! # Crates
//!
//! The facade re-exports the workspace's crates as modules ([`core`], [`subscription`],
//! [`batch`], [`visibility`], [`engines`], [`trace`]) and their central types at the
//! root.
//!
//! # Traces
//!
//! With `FLOCK_TRACE_FILE=true` (or [`FlockBuilder::trace`]) every batch flush, agent
//! run, engine call and output publish becomes a span in `.flock/traces.duckdb`:
//!
//! ```sql
//! SELECT name, attributes->'$.batch_size' as size, attributes->'$.flush_reason' as reason, duration_ms
//! FROM spans WHERE name LIKE '%batch%' ORDER BY start_time DESC LIMIT 20
//! ```
//!
//! The file can be read while the program runs (retry briefly when a write holds
//! it: `trace::open_read_only`), and a flock composes with the application's own
//! `tracing` setup: add [`TraceGuard::layer`] to your registry and the flocks of the
//! process join that pipeline. The guide's page on traces, [`guide::traces`], shows
//! both. With the `otlp` feature, the standard `OTEL_EXPORTER_OTLP_*` variables send
//! the same spans to a collector.
//!
//! # Failures, hooks and LLMs
//!
//! - An agent's [`RetryPolicy`] retries a failed run (engine error or panic, failing
//!   component hook, broken output contract); after the last attempt the runtime
//!   publishes a [`WorkflowError`] and keeps the inputs in [`Flock::failed_runs`].
//! - The output contract: [`AgentBuilder::publishes`] is exactly one output per run,
//!   [`AgentBuilder::publishes_many`] any number, [`AgentBuilder::publishes_per_input`]
//!   one per input item.
//! - [`AgentBuilder::max_iterations`] is a circuit breaker against feedback loops;
//!   refused runs are kept as failed runs.
//! - [`AgentBuilder::with_component`] attaches [`AgentComponent`] lifecycle hooks.
//! - `llm::LlmEngine` (feature `llm`) sends each flushed batch to an OpenAI-compatible
//!   endpoint in one request, with structured output.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `duckdb` | yes | traces into a DuckDB file (`FLOCK_TRACE_FILE`, `TraceConfig::new`), with DuckDB compiled from source: the first build takes about 25 minutes |
//! | `duckdb-prebuilt` | | the same, linking a prebuilt `libduckdb` instead: from `DUCKDB_LIB_DIR`, or downloaded while building with `DUCKDB_DOWNLOAD_LIB=1` (development in this repository, `cargo xtask`, uses it) |
//! | `otlp` | | spans to an OTLP/HTTP collector, by code or the standard `OTEL_EXPORTER_OTLP_*` variables; with or without DuckDB |
//! | `llm` | yes | the LLM engine ([`LlmEngine`]) |
//! | `llm-mock` | | also its local OpenAI-compatible test server (`flock::llm::mock`) |
//! | `postgres` | | the PostgreSQL store (`flock::postgres::PostgresStore`): durable, and shared by several processes ([`FlockBuilder::cluster`]) |
//! | `sqlite` | | the durable SQLite store (`flock::sqlite::SqliteStore`) |
//! | `bundled` | | the former name of `duckdb` |
//!
//! With `default-features = false` (and, say, `features = ["llm", "otlp"]`) nothing
//! of DuckDB is built or linked; spans still go to any `tracing` subscriber and, with
//! `otlp`, to a collector.

// docs.rs (`--cfg docsrs`) marks every feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admission;
mod agent;
mod builder;
mod clock;
mod cluster;
mod decision;
mod events;
mod failed;
mod flock;
mod inspect;
mod invoke;
mod options;
mod policy;
mod run;
mod runtime;
mod spans;
mod tracing_setup;
mod work;

pub use admission::{Admission, AdmissionCounts, InvalidAdmission, OnFull};
pub use agent::{
    AgentBuilder, AgentHandle, AgentInfo, OutputCount, OutputVisibility, RegistrationError,
};
pub use builder::FlockBuilder;
/// The `chrono` this crate's timestamps and [`TimeDelta`](chrono::TimeDelta) durations
/// come from: `use flock::chrono::TimeDelta;` needs no `chrono` dependency of your own.
pub use chrono;
pub use cluster::{Cluster, InvalidCluster};
pub use events::FlockEvent;
pub use failed::{FailedRun, FailureKind, RetryFailedRunError};
pub use flock::Flock;
pub use flock_batch as batch;
pub use flock_core as core;
pub use flock_core::{
    AgentIdentity, Artifact, ArtifactFilter, ArtifactId, BlackboardStore, BlackboardView,
    FlockType, FlushReason, InMemoryStore, InvalidRetention, Payload, PublishError, Retention,
    StoreError, Visibility, WorkflowError,
};
pub use flock_engines as engines;
pub use flock_engines::{
    AgentComponent, BatchInputs, BatchItem, BatchMetrics, BatchSummary, Engine, EngineContext,
    EngineError, Inputs, IntoOutputs, Outputs, RunFailure, SimpleBatchEngine, batch_fn,
    batch_fn_async, group_batch_fn, group_fn, map_fn, map_fn_async,
};
/// The PostgreSQL store (feature `postgres`): [`PostgresStore`](postgres::PostgresStore)
/// keeps the blackboard durably in PostgreSQL and lets several processes share it
/// as a cluster (leases with fencing, the feed in store order, wake-ups).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use flock_store_postgres as postgres;
/// The durable SQLite store (feature `sqlite`): [`SqliteStore`](sqlite::SqliteStore)
/// keeps every accepted artifact, each agent's consumption and the failed runs in
/// `.flock/blackboard.db`.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use flock_store_sqlite as sqlite;
pub use flock_subscription as subscription;
pub use flock_subscription::{
    AllOf, BatchSpec, BatchSpecBuilder, InvalidBatchSpec, InvalidJoinSpec, JoinKey, JoinSpec,
    JoinWindow, Subscribe,
};
pub use flock_trace_duckdb as trace;
#[cfg(feature = "duckdb-prebuilt")]
#[cfg_attr(docsrs, doc(cfg(any(feature = "duckdb", feature = "duckdb-prebuilt"))))]
pub use flock_trace_duckdb::clear_traces;
pub use flock_trace_duckdb::{ExportReport, ExportStats, TraceConfig, TraceError, TraceGuard};
pub use flock_visibility as visibility;
pub use inspect::{ActiveBatch, PendingJoin};
pub use invoke::InvokeError;
pub use options::{PublishOptions, RecoveryReport, ShutdownReport};
pub use policy::{InvalidRetryPolicy, RetryPolicy};

/// The LLM engine for OpenAI-compatible chat-completion endpoints (feature `llm`, on
/// by default): [`LlmEngine`] sends each flushed batch in one request
/// and parses structured output into the agent's output type. Derive the output
/// type's schema with [`JsonSchema`](llm::JsonSchema) (re-exported from `schemars`;
/// without a direct `schemars` dependency, add
/// `#[schemars(crate = "flock::llm::schemars")]` to the type).
#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
pub mod llm {
    pub use flock_engines::llm::schemars::{self, JsonSchema};
    pub use flock_engines::llm::*;
}
#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
pub use llm::LlmEngine;

/// Guides, from this crate's `guide/` directory (part of the package, so docs.rs
/// renders them). Every Rust block in them is a doctest of this crate, so the
/// guides compile and run with the API they teach.
// They teach the default features (the LLM engine among them).
// Documentation needs only `llm`; the doctests also the DuckDB file.
#[cfg(all(feature = "llm", any(doc, all(doctest, feature = "duckdb-prebuilt"))))]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
pub mod guide {
    #[doc = include_str!("../guide/batch-processing.md")]
    pub mod batch_processing {}
    #[doc = include_str!("../guide/traces.md")]
    pub mod traces {}

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../guide/durability.md")]
    pub mod durability {}
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    #[doc = include_str!("../guide/cluster.md")]
    pub mod cluster {}
}

/// Everything an application needs: `use flock::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "llm")]
    #[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
    pub use crate::llm::{JsonSchema, LlmEngine};
    pub use crate::{
        AgentComponent, AgentIdentity, AllOf, Artifact, ArtifactFilter, BatchInputs, BatchItem,
        BatchMetrics, BatchSpec, BatchSpecBuilder, BatchSummary, Engine, EngineContext,
        EngineError, FailedRun, FailureKind, Flock, FlockType, FlushReason, Inputs, JoinSpec,
        Outputs, PublishOptions, RetryPolicy, SimpleBatchEngine, Subscribe, Visibility,
        WorkflowError, batch_fn, batch_fn_async, group_batch_fn, group_fn, map_fn, map_fn_async,
    };
}
