//! The guide's "IoT Sensor Aggregation": sensor readings batched 1,000 at a time (or
//! 10 minutes after the first) into one `StatisticsReport` per batch, with count,
//! mean, min, max and standard deviation of temperature and humidity per device.
//!
//! The simulation: 12 devices report every 3 seconds (240 readings a minute), so a
//! batch of 1,000 fills in about 4 minutes and flushes by size. At minute 20 a
//! network outage leaves 3 devices reachable: the batch then fills slowly and the
//! 10-minute timeout flushes it. The stream ends at minute 36; shutdown flushes the
//! rest. Device `dev-07` runs hot. Time runs 1,000× faster by default (the whole
//! simulation takes about 2 seconds; the timeout, 600 ms).
//!
//! Run: `cargo run --example iot_stats`; `-- --speed N` for another time factor,
//! `-- --seed N` for other readings.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use flock::prelude::*;
use flock_examples::{Args, Opt};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

const DEVICES: usize = 12;
const INTERVAL_S: f64 = 3.0;
const OUTAGE_AT_S: f64 = 20.0 * 60.0;
const END_S: f64 = 36.0 * 60.0;
/// Devices still reachable during the outage.
const REACHABLE: [usize; 3] = [1, 2, 7];

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct SensorReading {
    device_id: String,
    temperature: f64,
    humidity: f64,
    /// Simulated time of the reading, `mm:ss` since the start.
    timestamp: String,
}

/// Count, mean, min, max and sample standard deviation of one measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Summary {
    count: usize,
    mean: f64,
    min: f64,
    max: f64,
    stddev: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeviceStats {
    device_id: String,
    temperature: Summary,
    humidity: Summary,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct StatisticsReport {
    readings: usize,
    first_reading: String,
    last_reading: String,
    flush_reason: String,
    devices: Vec<DeviceStats>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env(
        "The guide's \"IoT Sensor Aggregation\": statistics per device over 1,000 readings or 10 minutes.",
        &[
            Opt::value(
                "--speed",
                "N",
                "simulated time runs N times faster than real time (default 1000)",
            ),
            Opt::value("--seed", "N", "the random seed (default 5)"),
        ],
    );
    let speed: f64 = args.value("--speed", 1000.0);
    let seed: u64 = args.value("--seed", 5);
    anyhow::ensure!(speed > 0.0, "--speed must be positive, got {speed}");
    let sim = |seconds: f64| Duration::from_secs_f64(seconds / speed);

    let flock = Flock::new();
    flock
        .agent("stats")
        .description("Statistics per device over 1,000 readings, or every 10 minutes")
        .consumes::<SensorReading>(
            Subscribe::new().batch(BatchSpec::size(1000).timeout(sim(10.0 * 60.0))),
        )
        .publishes::<StatisticsReport>()
        .with_engine(batch_fn(statistics))
        .register()?;
    let start = Instant::now();
    flock
        .agent("dashboard")
        .consumes::<StatisticsReport>(Subscribe::new())
        .with_engine(map_fn(move |_: &EngineContext, r: Arc<StatisticsReport>| {
            let hottest = r
                .devices
                .iter()
                .max_by(|a, b| a.temperature.mean.total_cmp(&b.temperature.mean));
            println!(
                "  [{}] StatisticsReport ({:<8} flush): {:>4} readings from {:>2} devices, {}–{}; warmest {}",
                mmss(start.elapsed().as_secs_f64() * speed),
                r.flush_reason,
                r.readings,
                r.devices.len(),
                r.first_reading,
                r.last_reading,
                hottest.map_or_else(String::new, |d| format!(
                    "{} at {:.1} °C mean",
                    d.device_id, d.temperature.mean
                )),
            );
            Ok::<_, String>(Outputs::none())
        }))
        .register()?;

    println!(
        "iot_stats: {DEVICES} devices, one reading each every {INTERVAL_S} s; outage at 20:00 leaves {} reachable; stream ends at 36:00",
        REACHABLE.len()
    );
    println!(
        "stats: BatchSpec(size=1000, timeout=10 min); time runs {speed}x faster (timeout {} ms)\n",
        sim(600.0).as_millis()
    );

    let mut rng = StdRng::seed_from_u64(seed);
    let mut published = 0;
    let mut next_progress = 5.0 * 60.0;
    let mut t = 0.0;
    while t < END_S {
        if t >= next_progress {
            println!("  [{}] {published} readings published", mmss(next_progress));
            next_progress += 5.0 * 60.0;
        }
        tokio::time::sleep_until((start + sim(t)).into()).await;
        for device in 1..=DEVICES {
            if t >= OUTAGE_AT_S && !REACHABLE.contains(&device) {
                continue;
            }
            let hot = if device == 7 { 9.0 } else { 0.0 };
            let drift = (t / 600.0).sin() * 1.5; // the hall warms and cools
            flock
                .publish(SensorReading {
                    device_id: format!("dev-{device:02}"),
                    temperature: 21.0 + hot + drift + rng.random_range(-1.2..1.2),
                    humidity: 45.0 + rng.random_range(-6.0..6.0),
                    timestamp: mmss(t),
                })
                .await?;
            published += 1;
        }
        t += INTERVAL_S;
    }
    flock.run_until_idle().await;
    let waiting: usize = flock.active_batches().iter().map(|b| b.items_waiting).sum();
    println!(
        "  [{}] stream over; {waiting} readings wait in the batch: shutting down",
        mmss(start.elapsed().as_secs_f64() * speed)
    );
    flock.shutdown().await;

    let reports = flock.get_by_type::<StatisticsReport>().await?;
    if let Some(first) = reports.first() {
        println!(
            "\nthe first report, per device ({} readings, {}–{}):",
            first.readings, first.first_reading, first.last_reading
        );
        println!(
            "  {:<7} {:>5} | {:>29} | {:>29}",
            "device", "count", "temperature °C mean/min/max/sd", "humidity % mean/min/max/sd"
        );
        for d in &first.devices {
            let t = &d.temperature;
            let h = &d.humidity;
            println!(
                "  {:<7} {:>5} | {:>6.2} {:>6.2} {:>6.2} {:>6.2}    | {:>6.2} {:>6.2} {:>6.2} {:>6.2}",
                d.device_id,
                t.count,
                t.mean,
                t.min,
                t.max,
                t.stddev,
                h.mean,
                h.min,
                h.max,
                h.stddev
            );
        }
    }
    let analysed: usize = reports.iter().map(|r| r.readings).sum();
    println!(
        "\n{published} readings published, {analysed} in {} reports (one per batch instead of one per reading)",
        reports.len()
    );
    anyhow::ensure!(
        analysed == published,
        "readings lost: {analysed} of {published}"
    );
    Ok(())
}

/// The engine: statistics per device over one batch.
fn statistics(
    ctx: &EngineContext,
    readings: Vec<Arc<SensorReading>>,
) -> Result<StatisticsReport, EngineError> {
    let metrics = ctx.batch_metrics()?;
    let mut per_device: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for r in &readings {
        let (temperature, humidity) = per_device.entry(&r.device_id).or_default();
        temperature.push(r.temperature);
        humidity.push(r.humidity);
    }
    Ok(StatisticsReport {
        readings: metrics.batch_size,
        first_reading: readings
            .first()
            .map(|r| r.timestamp.clone())
            .unwrap_or_default(),
        last_reading: readings
            .last()
            .map(|r| r.timestamp.clone())
            .unwrap_or_default(),
        flush_reason: metrics.flush_reason.to_string(),
        devices: per_device
            .into_iter()
            .map(|(device_id, (temperature, humidity))| DeviceStats {
                device_id: device_id.to_owned(),
                temperature: summarize(&temperature),
                humidity: summarize(&humidity),
            })
            .collect(),
    })
}

fn summarize(values: &[f64]) -> Summary {
    let count = values.len();
    let n = count as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = if count > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Summary {
        count,
        mean,
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        stddev: variance.sqrt(),
    }
}

fn mmss(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{:02}:{:02}", s / 60, s % 60)
}
