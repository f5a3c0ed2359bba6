//! Prometheus metrics (`GET /metrics`), with the official client
//! (`prometheus-client`): one registry per server, no global state. Counters and
//! histograms follow the flock's live events; gauges (items waiting, runs in
//! flight, failed runs) and the counters the flock keeps itself (admission
//! rejections, spans exported) are read from the flock at each scrape.

use std::fmt;

use flock::{Flock, FlockEvent};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::Histogram,
    },
    registry::{Registry, Unit},
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabel {
    agent: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentReason {
    agent: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: String,
}

type Histograms = Family<AgentLabel, Histogram, fn() -> Histogram>;

/// Batch sizes: items, from one to ten thousand.
fn size_histogram() -> Histogram {
    Histogram::new([
        1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
    ])
}

/// Waits from the first item to the flush: a millisecond to ten minutes.
fn wait_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
        300.0, 600.0,
    ])
}

/// The server's registry and the metrics its event recorder updates.
pub(crate) struct Metrics {
    registry: Registry,
    flushes: Family<AgentReason, Counter>,
    batch_size: Histograms,
    batch_wait: Histograms,
    published: Family<TypeLabel, Counter>,
    runs_finished: Family<AgentLabel, Counter>,
    runs_failed: Family<AgentLabel, Counter>,
    joins_completed: Family<AgentLabel, Counter>,
    joins_discarded: Family<AgentReason, Counter>,
    lagged: Counter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new(flock: &Flock) -> Self {
        let mut registry = Registry::default();
        let flushes = Family::<AgentReason, Counter>::default();
        registry.register(
            "flock_batch_flushes",
            "Batch flushes by agent and reason (size, timeout, shutdown, manual)",
            flushes.clone(),
        );
        let batch_size = Histograms::new_with_constructor(size_histogram);
        registry.register(
            "flock_batch_size",
            "Items per flushed batch (artifacts, or join groups)",
            batch_size.clone(),
        );
        let batch_wait = Histograms::new_with_constructor(wait_histogram);
        registry.register_with_unit(
            "flock_batch_wait",
            "Time from a batch's first item to its flush",
            Unit::Seconds,
            batch_wait.clone(),
        );
        let published = Family::<TypeLabel, Counter>::default();
        registry.register(
            "flock_artifacts_published",
            "Artifacts accepted onto the blackboard, by type",
            published.clone(),
        );
        let runs_finished = Family::<AgentLabel, Counter>::default();
        registry.register(
            "flock_runs_finished",
            "Agent runs that finished with their outputs published",
            runs_finished.clone(),
        );
        let runs_failed = Family::<AgentLabel, Counter>::default();
        registry.register(
            "flock_runs_failed",
            "Agent runs that failed for good (or a circuit breaker refused)",
            runs_failed.clone(),
        );
        let joins_completed = Family::<AgentLabel, Counter>::default();
        registry.register(
            "flock_join_groups_completed",
            "Join groups completed",
            joins_completed.clone(),
        );
        let joins_discarded = Family::<AgentReason, Counter>::default();
        registry.register(
            "flock_join_groups_discarded",
            "Incomplete join groups discarded, by reason (window, shutdown)",
            joins_discarded.clone(),
        );
        let lagged = Counter::default();
        registry.register(
            "flock_server_events_lagged",
            "Live events the server's recorder missed because it fell behind (metrics and flush history undercount by this)",
            lagged.clone(),
        );
        registry.register_collector(Box::new(Live(flock.clone())));
        Self {
            registry,
            flushes,
            batch_size,
            batch_wait,
            published,
            runs_finished,
            runs_failed,
            joins_completed,
            joins_discarded,
            lagged,
        }
    }

    /// Counts one live event.
    pub(crate) fn observe(&self, event: &FlockEvent) {
        match event {
            FlockEvent::BatchFlushed {
                agent,
                reason,
                size,
                wait,
                ..
            } => {
                let label = AgentLabel {
                    agent: agent.clone(),
                };
                self.flushes
                    .get_or_create(&AgentReason {
                        agent: agent.clone(),
                        reason: reason.to_string(),
                    })
                    .inc();
                self.batch_size.get_or_create(&label).observe(*size as f64);
                self.batch_wait
                    .get_or_create(&label)
                    .observe(wait.as_secs_f64());
            }
            FlockEvent::ArtifactPublished { type_name, .. } => {
                self.published
                    .get_or_create(&TypeLabel {
                        r#type: (*type_name).to_owned(),
                    })
                    .inc();
            }
            FlockEvent::RunFinished { agent, .. } => {
                self.runs_finished.get_or_create(&agent_label(agent)).inc();
            }
            FlockEvent::RunFailed { agent, .. } => {
                self.runs_failed.get_or_create(&agent_label(agent)).inc();
            }
            FlockEvent::JoinCompleted { agent, .. } => {
                self.joins_completed
                    .get_or_create(&agent_label(agent))
                    .inc();
            }
            FlockEvent::JoinDiscarded { agent, reason, .. } => {
                self.joins_discarded
                    .get_or_create(&AgentReason {
                        agent: agent.clone(),
                        reason: (*reason).to_owned(),
                    })
                    .inc();
            }
            _ => {}
        }
    }

    /// Counts events the recorder missed.
    pub(crate) fn lagged(&self, missed: u64) {
        self.lagged.inc_by(missed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The content type of [`Metrics::render`].
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

fn agent_label(agent: &str) -> AgentLabel {
    AgentLabel {
        agent: agent.to_owned(),
    }
}

/// The figures read from the flock at each scrape.
#[derive(Debug)]
struct Live(Flock);

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let flock = &self.0;
        let batches = flock.active_batches();
        let mut waiting: Vec<(String, i64)> = Vec::new();
        for batch in &batches {
            let items = i64::try_from(batch.items_waiting).unwrap_or(i64::MAX);
            match waiting.iter_mut().find(|(a, _)| *a == batch.agent) {
                Some((_, n)) => *n += items,
                None => waiting.push((batch.agent.clone(), items)),
            }
        }
        let mut family = encoder.encode_descriptor(
            "flock_batch_items_waiting",
            "Items waiting in batches now, by agent",
            None,
            MetricType::Gauge,
        )?;
        for (agent, items) in waiting {
            let label = agent_label(&agent);
            ConstGauge::new(items).encode(family.encode_family(&label)?)?;
        }
        gauge(
            &mut encoder,
            "flock_batches_active",
            "Batches collecting now",
            batches.len(),
        )?;
        let joining: usize = flock.pending_joins().iter().map(|j| j.waiting).sum();
        gauge(
            &mut encoder,
            "flock_join_artifacts_waiting",
            "Artifacts waiting for join partners now",
            joining,
        )?;
        gauge(
            &mut encoder,
            "flock_runs_in_flight",
            "Agent runs scheduled and not finished",
            flock.runs_in_flight(),
        )?;
        gauge(
            &mut encoder,
            "flock_failed_runs",
            "Failed runs held for inspection or retry (dead letters)",
            flock.failed_runs().len(),
        )?;
        counter(
            &mut encoder,
            "flock_admission_rejections",
            "External publishes refused at an admission bound",
            flock.admission_rejections(),
        )?;
        if let Some(stats) = flock.trace_stats() {
            counter(
                &mut encoder,
                "flock_trace_spans_exported",
                "Spans written to the DuckDB trace file",
                stats.exported,
            )?;
            counter(
                &mut encoder,
                "flock_trace_spans_failed",
                "Spans of exports that failed: not in the trace file",
                stats.failed,
            )?;
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: usize,
) -> Result<(), fmt::Error> {
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}
