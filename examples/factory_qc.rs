//! The guide's "BatchSpec + JoinSpec": a smart factory correlates each device's
//! temperature and pressure readings by `device_id` within 30 seconds, then batches
//! 5 correlated pairs (or whatever is complete after 45 seconds) into one quality
//! analysis: one `QualityReport` covers 5 devices and 10 readings.
//!
//! The simulation: 7 devices report every 40 seconds for 4 cycles, with a pause for
//! maintenance after the second (so a partial batch flushes by timeout). Readings arrive
//! with jitter, some are dropped, and some pressure readings come too late for their
//! 30-second window. An incomplete pair is never analysed: it is discarded when its
//! window ends (or at shutdown), and every discard is a `join.discard` trace span,
//! which this example prints from a small tracing layer.
//!
//! Run: `cargo run --example factory_qc` (simulated time runs 100× faster: about 2 s),
//! `-- --speed 1` for the guide's real durations (about 3 minutes), `-- --seed N`
//! for another factory floor.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use flock::prelude::*;
use flock_examples::{Args, Opt};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};

const DEVICES: usize = 7;
/// Simulated seconds at which the devices start a reading cycle: every 40 s, with
/// the line paused for maintenance between 80 s and 130 s (so a partial batch
/// flushes by timeout).
const CYCLES: [f64; 4] = [0.0, 40.0, 130.0, 170.0];

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct TemperatureSensor {
    device_id: String,
    celsius: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct PressureSensor {
    device_id: String,
    bar: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct QualityReport {
    devices: Vec<String>,
    readings: usize,
    alerts: Vec<String>,
    mean_celsius: f64,
    mean_bar: f64,
    flush_reason: String,
}

/// One reading to publish at a simulated second.
enum Reading {
    Temperature(TemperatureSensor),
    Pressure(PressureSensor),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env(
        "The guide's \"BatchSpec + JoinSpec\": temperature and pressure joined by device within 30 s, 5 pairs per quality report.",
        &[
            Opt::value(
                "--speed",
                "N",
                "simulated time runs N times faster than real time (default 100; 1 for real durations)",
            ),
            Opt::value("--seed", "N", "the random seed (default 11)"),
        ],
    );
    let speed: f64 = args.value("--speed", 100.0);
    let seed: u64 = args.value("--seed", 11);
    anyhow::ensure!(speed > 0.0, "--speed must be positive, got {speed}");
    let sim = |seconds: f64| Duration::from_secs_f64(seconds / speed);
    let start = Instant::now();

    let discarded = Arc::new(AtomicUsize::new(0));
    tracing_subscriber::registry()
        .with(DiscardPrinter {
            start,
            speed,
            discarded: discarded.clone(),
        })
        .init();

    let flock = Flock::new();
    flock
        .agent("quality_control")
        .description(
            "Correlates temperature + pressure per device, then analyses 5 devices at once",
        )
        .consumes_all(
            AllOf::new()
                .of::<TemperatureSensor>()
                .of::<PressureSensor>()
                .join(
                    JoinSpec::by(|t: &TemperatureSensor| t.device_id.clone())
                        .by(|p: &PressureSensor| p.device_id.clone())
                        .within(sim(30.0)), // correlate first
                )
                .batch(BatchSpec::size(5).timeout(sim(45.0))), // then batch 5 pairs
        )
        .publishes::<QualityReport>()
        .with_engine(group_batch_fn(analyse))
        .register()?;
    let printed = Arc::new(AtomicUsize::new(0));
    let count = printed.clone();
    flock
        .agent("quality_board")
        .description("Prints every quality report")
        .consumes::<QualityReport>(Subscribe::new())
        .with_engine(map_fn(move |_: &EngineContext, r: Arc<QualityReport>| {
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            println!(
                "[{:>6.1} s] QualityReport #{n} ({}): {} device(s), {} readings [{}], mean {:.1} °C / {:.2} bar, alerts: {}",
                sim_seconds(start, speed),
                r.flush_reason,
                r.devices.len(),
                r.readings,
                r.devices.join(" "),
                r.mean_celsius,
                r.mean_bar,
                if r.alerts.is_empty() { "none".to_owned() } else { r.alerts.join(", ") },
            );
            Ok::<_, String>(Outputs::none())
        }))
        .register()?;

    println!(
        "factory_qc simulates {DEVICES} devices reporting temperature + pressure in cycles at {CYCLES:?} s"
    );
    println!(
        "(paused for maintenance 80-130 s), with jitter, dropped readings and late pressure readings."
    );
    println!("JoinSpec: by device_id within 30 s; BatchSpec: 5 pairs or 45 s.");
    println!("Simulated time runs {speed}x faster than real time (seed {seed}).\n");

    let schedule = schedule(seed);
    let published = schedule.len();
    for (at, reading) in schedule {
        let due = start + sim(at);
        tokio::time::sleep_until(due.into()).await;
        match reading {
            Reading::Temperature(t) => flock.publish(t).await?,
            Reading::Pressure(p) => flock.publish(p).await?,
        };
    }
    flock.run_until_idle().await;
    let waiting: usize = flock.active_batches().iter().map(|b| b.items_waiting).sum();
    let partial = flock.pending_joins().len();
    println!(
        "\n[{:>6.1} s] readings over: {waiting} complete pair(s) wait in the batch, {partial} incomplete group(s) in their window; shutting down",
        sim_seconds(start, speed)
    );
    let report = flock.shutdown().await;
    println!(
        "shutdown: {} batch(es) flushed, {} incomplete group(s) discarded",
        report.batches_flushed, report.join_groups_discarded
    );

    let reports = flock.get_by_type::<QualityReport>().await?;
    let analysed: usize = reports.iter().map(|r| r.readings).sum();
    let dropped = discarded.load(Ordering::Relaxed);
    println!(
        "{published} readings published: {analysed} analysed in {} reports, {dropped} discarded in traced partial groups",
        reports.len()
    );
    anyhow::ensure!(
        analysed + dropped == published,
        "readings unaccounted for: {analysed} analysed + {dropped} discarded != {published}"
    );
    Ok(())
}

/// The quality analysis of one batch: each item is one device's correlated pair.
fn analyse(ctx: &EngineContext, pairs: Vec<Inputs>) -> Result<QualityReport, String> {
    let mut devices = Vec::new();
    let mut alerts = Vec::new();
    let (mut celsius, mut bar) = (0.0, 0.0);
    for pair in &pairs {
        let t = pair
            .get::<TemperatureSensor>()
            .ok_or("a pair without temperature")?;
        let p = pair
            .get::<PressureSensor>()
            .ok_or("a pair without pressure")?;
        devices.push(t.device_id.clone());
        if t.celsius > 80.0 {
            alerts.push(format!("{} overheating {:.1} °C", t.device_id, t.celsius));
        }
        if !(1.6..=2.4).contains(&p.bar) {
            alerts.push(format!("{} pressure {:.2} bar", p.device_id, p.bar));
        }
        celsius += t.celsius;
        bar += p.bar;
    }
    let n = pairs.len().max(1) as f64;
    Ok(QualityReport {
        readings: pairs.iter().map(|p| p.artifacts().len()).sum(),
        devices,
        alerts,
        mean_celsius: celsius / n,
        mean_bar: bar / n,
        flush_reason: ctx
            .flush_reason()
            .map(|r| r.to_string())
            .unwrap_or_default(),
    })
}

/// Every reading of the run, at its simulated second, in time order.
fn schedule(seed: u64) -> Vec<(f64, Reading)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut readings = Vec::new();
    for base in CYCLES {
        for device in 1..=DEVICES {
            let device_id = format!("dev-{device:02}");
            let roll: f64 = rng.random();
            let temperature_at = base + rng.random_range(0.0..4.0);
            // Pressure usually follows within 20 s; sometimes it is lost, sometimes late.
            let pressure_at = if roll < 0.08 {
                None
            } else if roll < 0.14 {
                Some(temperature_at + rng.random_range(31.0..38.0))
            } else {
                Some(temperature_at + rng.random_range(0.5..20.0))
            };
            let temperature_lost = (0.14..0.19).contains(&roll);
            if !temperature_lost {
                readings.push((
                    temperature_at,
                    Reading::Temperature(TemperatureSensor {
                        device_id: device_id.clone(),
                        celsius: rng.random_range(62.0..84.0),
                    }),
                ));
            }
            if let Some(at) = pressure_at {
                readings.push((
                    at,
                    Reading::Pressure(PressureSensor {
                        device_id,
                        bar: rng.random_range(1.5..2.45),
                    }),
                ));
            }
        }
    }
    readings.sort_by(|a, b| a.0.total_cmp(&b.0));
    readings
}

fn sim_seconds(start: Instant, speed: f64) -> f64 {
    start.elapsed().as_secs_f64() * speed
}

/// Prints every `join.discard` span as it is recorded: the trace a user would query
/// in DuckDB, here on the console.
struct DiscardPrinter {
    start: Instant,
    speed: f64,
    discarded: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Fields(BTreeMap<&'static str, String>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for DiscardPrinter {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != "join.discard" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let field = |name: &str| fields.0.get(name).cloned().unwrap_or_default();
        let artifacts: usize = field("artifacts").parse().unwrap_or(0);
        self.discarded.fetch_add(artifacts, Ordering::Relaxed);
        let waited_s = field("waited_ms").parse::<f64>().unwrap_or(0.0) / 1000.0 * self.speed;
        println!(
            "[{:>6.1} s] join.discard {}: has {}, missing {} (reason {}, waited {waited_s:.1} s)",
            sim_seconds(self.start, self.speed),
            field("key"),
            field("types_present"),
            field("types_missing"),
            field("reason"),
        );
    }
}
