//! The guide's "Rate Limit Management": an API allows 100 requests per minute, so the
//! `api_client` agent sends its `APIRequest`s 10 per call (`BatchSpec::size(10)`,
//! timeout 6 s) and stays under the limit even when 900 requests arrive in a minute.
//!
//! The API is local and in-process: a sliding-window limiter that answers `429 Too
//! Many Requests` to any call beyond 100 in the last 60 seconds, with 50 ms latency.
//! Time is simulated: by default it runs 60× faster (a simulated minute takes one
//! real second; the 6-second timeout, 100 ms). The traffic: a burst of 900 requests
//! in minute 1, 240 in minute 2, and a trickle of 20 in minute 3 (there the timeout
//! flushes the partial batches). Afterwards, the burst minute is replayed without
//! batching, one call per request, to show what the batch saves.
//!
//! Run: `cargo run --example rate_limit` (about 5 s); `-- --speed 1` for real time
//! (about 4 minutes).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use flock::prelude::*;
use flock_examples::{Args, Opt};
use serde::{Deserialize, Serialize};

/// The API's limit: calls per rolling minute.
const LIMIT: usize = 100;
const MINUTE: f64 = 60.0;
/// Requests arriving in each simulated minute.
const TRAFFIC: [(usize, &str); 3] = [(900, "burst"), (240, "steady"), (20, "trickle")];

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "APIRequest")]
struct ApiRequest {
    request_id: u32,
    endpoint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(name = "APIResponse")]
struct ApiResponse {
    call: usize,
    items: usize,
    status: u16,
    flush_reason: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env(
        "The guide's \"Rate Limit Management\": requests 10 per call under a limit of 100 calls a minute.",
        &[Opt::value(
            "--speed",
            "N",
            "simulated time runs N times faster than real time (default 60; 1 for real time)",
        )],
    );
    let speed: f64 = args.value("--speed", 60.0);
    anyhow::ensure!(speed > 0.0, "--speed must be positive, got {speed}");
    let clock = SimClock::new(speed);
    println!(
        "rate_limit: the API allows {LIMIT} calls per minute; traffic per minute: {}",
        TRAFFIC
            .iter()
            .map(|(n, what)| format!("{n} ({what})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "api_client: BatchSpec(size=10, timeout=6 s); time runs {speed}x faster (a minute takes {:.1} s)\n",
        clock.real(MINUTE).as_secs_f64()
    );

    // --- batched: 10 requests per API call ---
    let api = Arc::new(RateLimitedApi::new(clock.clone()));
    let flock = Flock::new();
    let client = api.clone();
    flock
        .agent("api_client")
        .description("Sends 10 requests per API call: 100 calls/minute cover 1,000 requests")
        .consumes::<ApiRequest>(
            Subscribe::new().batch(BatchSpec::size(10).timeout(clock.real(6.0))),
        )
        .publishes::<ApiResponse>()
        .with_engine(batch_fn_async(
            move |ctx: EngineContext, batch: Vec<Arc<ApiRequest>>| {
                let api = client.clone();
                async move {
                    let call = api.call(batch.len()).await?;
                    Ok::<_, anyhow::Error>(ApiResponse {
                        call,
                        items: batch.len(),
                        status: 200,
                        flush_reason: ctx.batch_metrics()?.flush_reason.to_string(),
                    })
                }
            },
        ))
        .register()?;

    let published = publish_traffic(&flock, &clock, &api, &TRAFFIC).await?;
    flock.run_until_idle().await;
    // Wait out the last partial batch's timeout (the runtime flushes it by itself).
    for batch in flock.active_batches() {
        tokio::time::sleep(batch.time_left.unwrap_or_default()).await;
    }
    flock.run_until_idle().await;
    flock.shutdown().await;

    let responses = flock.get_by_type::<ApiResponse>().await?;
    let delivered: usize = responses.iter().map(|r| r.items).sum();
    let by_timeout = responses
        .iter()
        .filter(|r| r.flush_reason == "timeout")
        .count();
    let stats = api.stats();
    println!("\nAPI calls per minute with batching (limit {LIMIT}):");
    for (minute, calls) in stats.per_minute.iter().enumerate() {
        let requests = TRAFFIC.get(minute).map_or(0, |t| t.0);
        println!(
            "  minute {}: {requests:>3} requests arrive → {calls:>3} API calls  {}",
            minute + 1,
            "#".repeat(calls.div_ceil(5))
        );
    }
    println!(
        "{delivered} of {published} requests delivered in {} calls ({} flushed by size, {by_timeout} by timeout)",
        stats.accepted,
        responses.len() - by_timeout
    );
    println!(
        "busiest 60-second window: {} calls of {LIMIT} allowed; 429 responses: {}",
        stats.busiest_window, stats.rejected
    );
    anyhow::ensure!(
        stats.rejected == 0 && stats.busiest_window <= LIMIT,
        "the batched client hit the rate limit"
    );
    anyhow::ensure!(
        delivered == published,
        "{delivered} of {published} delivered"
    );
    println!("→ the rate limit was never hit.");

    // --- for comparison: the burst minute without batching ---
    println!("\nfor comparison, minute 1 again without batching (one API call per request) ...");
    let clock = SimClock::new(speed); // minute 1 starts now
    let api = Arc::new(RateLimitedApi::new(clock.clone()));
    let flock = Flock::new();
    let client = api.clone();
    flock
        .agent("api_client_unbatched")
        .consumes::<ApiRequest>(Subscribe::new())
        .with_engine(map_fn_async(
            move |_: EngineContext, _r: Arc<ApiRequest>| {
                let api = client.clone();
                async move {
                    api.call(1).await?;
                    Ok::<_, anyhow::Error>(Outputs::none())
                }
            },
        ))
        .register()?;
    publish_traffic(&flock, &clock, &api, &TRAFFIC[..1]).await?;
    flock.run_until_idle().await;
    flock.shutdown().await;
    let stats = api.stats();
    println!(
        "without batching: {} calls accepted, {} rejected with 429 (kept as failed runs: {}); busiest window {} of {LIMIT}",
        stats.accepted,
        stats.rejected,
        flock.failed_runs().len(),
        stats.busiest_window
    );
    Ok(())
}

/// Publishes each minute's requests evenly spread over the minute, with a progress
/// line every 30 simulated seconds; returns how many were published.
async fn publish_traffic(
    flock: &Flock,
    clock: &SimClock,
    api: &RateLimitedApi,
    traffic: &[(usize, &str)],
) -> anyhow::Result<usize> {
    let mut id = 0;
    let mut next_progress = 30.0;
    for (minute, (requests, _)) in traffic.iter().enumerate() {
        let gap = MINUTE / *requests as f64;
        for i in 0..*requests {
            let at = minute as f64 * MINUTE + i as f64 * gap;
            if at >= next_progress {
                println!(
                    "  [{}] {id} requests published, {} API calls so far",
                    mmss(next_progress),
                    api.stats().accepted
                );
                next_progress += 30.0;
            }
            clock.sleep_until(at).await;
            id += 1;
            flock
                .publish(ApiRequest {
                    request_id: id,
                    endpoint: ["/v1/enrich", "/v1/geocode"][id as usize % 2].into(),
                })
                .await?;
        }
    }
    Ok(id as usize)
}

fn mmss(seconds: f64) -> String {
    format!("{}:{:02}", (seconds / 60.0) as u64, seconds as u64 % 60)
}

// === simulated time ===

/// Simulated seconds since the start, `speed` times faster than real time.
#[derive(Clone)]
struct SimClock {
    start: Instant,
    speed: f64,
}

impl SimClock {
    fn new(speed: f64) -> Self {
        Self {
            start: Instant::now(),
            speed,
        }
    }

    /// The real duration of `seconds` simulated seconds.
    fn real(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds / self.speed)
    }

    /// Simulated seconds now.
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.speed
    }

    async fn sleep_until(&self, seconds: f64) {
        tokio::time::sleep_until((self.start + self.real(seconds)).into()).await;
    }
}

// === the rate-limited API ===

/// An API that accepts at most [`LIMIT`] calls in any 60 simulated seconds and
/// answers any other call with 429.
struct RateLimitedApi {
    clock: SimClock,
    state: Mutex<ApiState>,
}

#[derive(Default)]
struct ApiState {
    /// Accepted calls within the last minute (simulated seconds).
    window: VecDeque<f64>,
    /// Every accepted call.
    accepted: Vec<f64>,
    rejected: usize,
}

/// The API's answer to a call over the limit.
#[derive(Debug)]
struct TooManyRequests;

impl std::fmt::Display for TooManyRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "429 Too Many Requests: more than {LIMIT} calls in the last minute"
        )
    }
}

impl std::error::Error for TooManyRequests {}

struct ApiStats {
    accepted: usize,
    rejected: usize,
    per_minute: Vec<usize>,
    busiest_window: usize,
}

impl RateLimitedApi {
    fn new(clock: SimClock) -> Self {
        Self {
            clock,
            state: Mutex::default(),
        }
    }

    /// One API call carrying `items` requests; returns the call's number.
    async fn call(&self, items: usize) -> Result<usize, TooManyRequests> {
        debug_assert!(items > 0);
        let number = {
            let now = self.clock.now();
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            while state.window.front().is_some_and(|t| now - t >= MINUTE) {
                state.window.pop_front();
            }
            if state.window.len() >= LIMIT {
                state.rejected += 1;
                return Err(TooManyRequests);
            }
            state.window.push_back(now);
            state.accepted.push(now);
            state.accepted.len()
        };
        tokio::time::sleep(self.clock.real(0.05)).await; // the API's latency
        Ok(number)
    }

    fn stats(&self) -> ApiStats {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let calls = &state.accepted;
        let mut per_minute = Vec::new();
        for t in calls {
            let minute = (t / MINUTE) as usize;
            if per_minute.len() <= minute {
                per_minute.resize(minute + 1, 0);
            }
            per_minute[minute] += 1;
        }
        // Calls are in time order: a two-pointer sweep finds the busiest minute.
        let mut busiest_window = 0;
        let mut first = 0;
        for (last, t) in calls.iter().enumerate() {
            while t - calls[first] >= MINUTE {
                first += 1;
            }
            busiest_window = busiest_window.max(last + 1 - first);
        }
        ApiStats {
            accepted: calls.len(),
            rejected: state.rejected,
            per_minute,
            busiest_window,
        }
    }
}
