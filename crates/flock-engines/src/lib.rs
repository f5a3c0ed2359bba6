//! Engines of flock-rs: what an agent does with its inputs.
//!
//! An [`Engine`] gets one unit of input per run ([`Engine::evaluate`]) or a whole
//! flushed batch ([`Engine::evaluate_batch`]), and returns [`Outputs`] that the
//! runtime publishes back to the blackboard. Engine authors depend on `flock-core`
//! and this crate alone.
//!
//! - [`batch_fn`], [`batch_fn_async`], [`map_fn`], [`map_fn_async`]: engines from plain
//!   Rust functions, typed on their input.
//! - [`group_fn`], [`group_batch_fn`]: engines for AND gates and joins, from functions
//!   of one group's [`Inputs`], or of a batch of groups.
//! - [`SimpleBatchEngine`]: the reference batch engine of the guide
//!   ([`BatchItem`] in, [`BatchSummary`] out).
//! - [`AgentComponent`]: lifecycle hooks the runtime calls around an agent's runs.
//! - `llm` (feature `llm`): `LlmEngine`, one chat-completion request per flushed
//!   batch to an OpenAI-compatible endpoint, with structured (JSON-schema) output.

// docs.rs (`--cfg docsrs`) marks every feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod component;
mod context;
mod engine;
mod func;
mod group;
mod simple;

#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
pub mod llm;

pub use component::{AgentComponent, RunFailure};
pub use context::{BatchInputs, BatchMetrics, EngineContext, Inputs};
pub use engine::{Engine, EngineError, IntoOutputs, Outputs};
pub use func::{
    BatchFn, BatchFnAsync, MapFn, MapFnAsync, batch_fn, batch_fn_async, map_fn, map_fn_async,
};
pub use group::{GroupBatchFn, GroupFn, group_batch_fn, group_fn};
pub use simple::{BatchItem, BatchSummary, SimpleBatchEngine};
