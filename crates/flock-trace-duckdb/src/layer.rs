//! The `tracing` layer of a pipeline, [`TraceLayer`]: tracing-opentelemetry's layer
//! followed by [`PipelineLayer`], which counts the spans that ended and marks a
//! subscriber as feeding the pipeline.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use opentelemetry_sdk::trace::SdkTracer;
use tracing::{Subscriber, span};
use tracing_subscriber::layer::{Context, Layer, Layered};

/// The layer [`TraceGuard::layer`](crate::TraceGuard::layer) returns, for subscriber
/// `S`: compose it into any subscriber that keeps span data (a
/// [`Registry`](tracing_subscriber::Registry) does).
pub type TraceLayer<S> =
    Layered<PipelineLayer, tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>, S>;

/// The part of a [`TraceLayer`] that belongs to the pipeline: it counts every span
/// that ended (after tracing-opentelemetry handed it to the pipeline), which is
/// what a report compares the written spans with, so that a span that ends too late
/// to be written is still counted. It also lets
/// [`TraceConfig::start`](crate::TraceConfig::start) recognise a subscriber that
/// already feeds the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineLayer {
    id: u64,
    ended: Arc<AtomicU64>,
}

impl PipelineLayer {
    pub(crate) fn new(id: u64, ended: Arc<AtomicU64>) -> Self {
        PipelineLayer { id, ended }
    }

    /// The pipeline this layer feeds.
    pub(crate) fn pipeline_id(&self) -> u64 {
        self.id
    }
}

impl<S: Subscriber> Layer<S> for PipelineLayer {
    fn on_close(&self, _id: span::Id, _ctx: Context<'_, S>) {
        self.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// The pipeline that the current thread's `tracing` subscriber feeds, if any.
pub(crate) fn current_pipeline() -> Option<u64> {
    tracing::dispatcher::get_default(|dispatch| {
        dispatch
            .downcast_ref::<PipelineLayer>()
            .map(PipelineLayer::pipeline_id)
    })
}
