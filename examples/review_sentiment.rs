//! The guide's "Sentiment Analysis at Scale": 250 customer reviews analysed by an LLM
//! 100 at a time (`BatchSpec::size(100).timeout(5 min)`), so the endpoint is called 3
//! times instead of 250.
//!
//! With `OPENAI_API_KEY` or `OPENAI_BASE_URL` set, the reviews go to that
//! OpenAI-compatible endpoint (model from `FLOCK_MODEL`, default `gpt-4o-mini`).
//! With neither, the example starts a local OpenAI-compatible server on 127.0.0.1 that
//! answers deterministically from each request, and says so: it runs anywhere, in
//! about a second.
//!
//! Run: `cargo run --example review_sentiment`

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use flock::{
    AgentComponent, EngineError,
    llm::{
        LlmEngine,
        mock::{ChatRequest, MockReply},
    },
    prelude::*,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const REVIEWS: usize = 250;

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct CustomerReview {
    review_id: String,
    rating: u8,
    text: String,
}

/// What the LLM answers for each batch; its JSON schema is the request's
/// `response_format`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, FlockType)]
struct SentimentTrendReport {
    /// Reviews in the batch.
    review_count: u32,
    /// Reviews with a positive tone.
    positive: u32,
    /// Reviews with a neutral or mixed tone.
    neutral: u32,
    /// Reviews with a negative tone.
    negative: u32,
    /// Mean star rating, 1 to 5.
    average_rating: f64,
    /// The most frequent complaints, most frequent first (at most 3).
    top_complaints: Vec<String>,
    /// The most frequent praise, most frequent first (at most 3).
    top_praise: Vec<String>,
    /// One sentence on the batch's overall sentiment.
    summary: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    flock_examples::Args::from_env(
        "The guide's \"Sentiment Analysis at Scale\": 250 reviews, 100 per LLM call (a local server unless OPENAI_* is set).",
        &[],
    );
    let builder = LlmEngine::<SentimentTrendReport>::builder()
        .instructions(
            "You analyse customer reviews for a product team. Classify each review's tone \
             as positive, neutral or negative, count them, and name the most frequent \
             complaints and praise in a few words each.",
        )
        .timeout(Duration::from_secs(120));
    // Kept alive until the end of main: dropping it stops the server.
    let (engine, local) = flock_examples::llm_engine(builder, "local-sentiment", analyse).await?;
    println!("endpoint {} · model {}", engine.endpoint(), engine.model());

    let flock = Flock::new();
    let calls = CallLog::default();
    flock
        .agent("sentiment")
        .description("Analyses 100 reviews per LLM call instead of one call per review")
        .consumes::<CustomerReview>(
            Subscribe::new().batch(BatchSpec::size(100).timeout(Duration::from_secs(5 * 60))),
        )
        .publishes::<SentimentTrendReport>()
        .with_engine(engine.clone())
        .with_component(calls.clone())
        .retry(RetryPolicy::exponential(3, Duration::from_secs(2))?)
        .register()?;

    for review in reviews(REVIEWS) {
        flock.publish(review).await?;
    }
    flock.run_until_idle().await; // two batches of 100 flushed by size
    let waiting: usize = flock.active_batches().iter().map(|b| b.items_waiting).sum();
    println!(
        "{waiting} reviews still waiting for their batch (5 min timeout); shutting down flushes them"
    );
    flock.shutdown().await;

    for line in calls.0.lock().expect("call log").iter() {
        println!("{line}");
    }
    let failed = flock.failed_runs();
    for run in &failed {
        println!(
            "FAILED: {} reviews not analysed after {} attempt(s): {}",
            run.inputs.len(),
            run.attempts,
            run.error
        );
    }
    let stats = engine.stats();
    println!(
        "\nLLM calls made: {} for {REVIEWS} reviews (one call per review would be {REVIEWS}); tokens: {} prompt, {} completion",
        stats.requests, stats.prompt_tokens, stats.completion_tokens
    );

    let reports = flock.get_by_type::<SentimentTrendReport>().await?;
    print_trend(&reports);
    anyhow::ensure!(
        failed.is_empty(),
        "{} batch(es) failed; see above",
        failed.len()
    );
    if local.is_some() {
        let analysed: u32 = reports.iter().map(|r| r.review_count).sum();
        anyhow::ensure!(
            analysed as usize == REVIEWS && stats.requests == 3,
            "expected {REVIEWS} reviews in 3 calls, got {analysed} in {}",
            stats.requests
        );
    }
    Ok(())
}

/// Logs each LLM run: the batch, why it flushed, and the attempt.
#[derive(Clone, Default)]
struct CallLog(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl AgentComponent for CallLog {
    async fn after_evaluate(
        &self,
        ctx: &EngineContext,
        _outputs: &mut Outputs,
    ) -> Result<(), EngineError> {
        if let Some(batch) = &ctx.batch {
            self.0.lock().expect("call log").push(format!(
                "batch of {:>3} reviews (flush: {:<8}) → 1 LLM call (attempt {})",
                batch.batch_size, batch.flush_reason, ctx.attempt
            ));
        }
        Ok(())
    }
}

fn print_trend(reports: &[Arc<SentimentTrendReport>]) {
    println!("\nSentiment trend report");
    println!(
        "{:>5} | {:>8} | {:>7} | {:>8} | {:>6} | summary",
        "batch", "positive", "neutral", "negative", "rating"
    );
    for (i, r) in reports.iter().enumerate() {
        println!(
            "{:>5} | {:>8} | {:>7} | {:>8} | {:>6.2} | {}",
            i + 1,
            r.positive,
            r.neutral,
            r.negative,
            r.average_rating,
            r.summary
        );
    }
    let total: u32 = reports.iter().map(|r| r.review_count).sum();
    let share = |n: u32| 100.0 * f64::from(n) / f64::from(total.max(1));
    let positive: u32 = reports.iter().map(|r| r.positive).sum();
    let negative: u32 = reports.iter().map(|r| r.negative).sum();
    let rating = reports
        .iter()
        .map(|r| r.average_rating * f64::from(r.review_count))
        .sum::<f64>()
        / f64::from(total.max(1));
    println!(
        "overall: {total} reviews, {:.0}% positive, {:.0}% negative, average rating {rating:.2}",
        share(positive),
        share(negative)
    );
    let ratings: Vec<f64> = reports.iter().map(|r| r.average_rating).collect();
    let trend = match ratings.as_slice() {
        [] | [_] => "one batch only".to_owned(),
        [first, .., last] => {
            let (low_at, low) = ratings
                .iter()
                .copied()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, *first));
            if low_at > 0 && low_at + 1 < ratings.len() && low + 0.1 < first.min(*last) {
                format!(
                    "dipped from {first:.2} to {low:.2} stars in batch {}, recovering to {last:.2}",
                    low_at + 1
                )
            } else if (last - first).abs() < 0.1 {
                format!("stable around {first:.2} stars")
            } else {
                let direction = if last > first {
                    "improving"
                } else {
                    "declining"
                };
                format!("{direction} from {first:.2} to {last:.2} stars")
            }
        }
    };
    println!("trend: {trend}");
    println!(
        "top complaints: {}",
        top(reports.iter().flat_map(|r| &r.top_complaints))
    );
    println!(
        "top praise: {}",
        top(reports.iter().flat_map(|r| &r.top_praise))
    );
}

/// The three most mentioned themes.
fn top<'a>(themes: impl Iterator<Item = &'a String>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for theme in themes {
        *counts.entry(theme.as_str()).or_default() += 1;
    }
    let mut ranked: Vec<_> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked
        .iter()
        .take(3)
        .map(|(t, _)| *t)
        .collect::<Vec<_>>()
        .join(", ")
}

// === the reviews ===

const PRAISE: [&str; 5] = [
    "fast shipping",
    "great battery life",
    "easy setup",
    "solid build quality",
    "helpful support",
];
const COMPLAINTS: [&str; 5] = [
    "late delivery",
    "battery drains quickly",
    "confusing app",
    "flimsy case",
    "slow support replies",
];

/// A deterministic stream of reviews whose mood sours in the middle (a bad firmware
/// release, say) and recovers a little at the end.
fn reviews(n: usize) -> Vec<CustomerReview> {
    let mut rng = StdRng::seed_from_u64(42);
    (0..n)
        .map(|i| {
            let mood = match i * 10 / n {
                0..=3 => 0.75,
                4..=7 => 0.45,
                _ => 0.6,
            };
            let rating: u8 = if rng.random::<f64>() < mood {
                rng.random_range(4..=5)
            } else if rng.random::<f64>() < 0.3 {
                3
            } else {
                rng.random_range(1..=2)
            };
            let praise = PRAISE[rng.random_range(0..PRAISE.len())];
            let complaint = COMPLAINTS[rng.random_range(0..COMPLAINTS.len())];
            let text = match rating {
                5 => format!("Love it: {praise}."),
                4 => format!("Good overall, {praise}, though {complaint}."),
                3 => format!("It's okay. {praise}, but {complaint}."),
                _ => format!("Disappointed: {complaint}."),
            };
            CustomerReview {
                review_id: format!("rev-{i:04}"),
                rating,
                text,
            }
        })
        .collect()
}

// === the local endpoint ===

/// What the local server answers: a report computed from the reviews in the request,
/// the way a model would read them (tone from the rating, themes from the text).
fn analyse(request: &ChatRequest) -> MockReply {
    let reviews = request.payloads();
    let rating = |r: &Value| r["rating"].as_u64().unwrap_or(3);
    let count = |f: &dyn Fn(u64) -> bool| reviews.iter().filter(|r| f(rating(r))).count();
    let mentions = |themes: &[&'static str], wanted: &dyn Fn(u64) -> bool| {
        let mut counts: Vec<(usize, &str)> = themes
            .iter()
            .map(|t| {
                let n = reviews
                    .iter()
                    .filter(|r| {
                        wanted(rating(r)) && r["text"].as_str().is_some_and(|x| x.contains(t))
                    })
                    .count();
                (n, *t)
            })
            .filter(|(n, _)| *n > 0)
            .collect();
        counts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        counts
            .into_iter()
            .take(3)
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
    };
    let positive = count(&|r| r >= 4);
    let negative = count(&|r| r <= 2);
    let average =
        reviews.iter().map(|r| rating(r) as f64).sum::<f64>() / reviews.len().max(1) as f64;
    let mood = if positive > 2 * negative {
        "Customers are mostly happy"
    } else if negative > positive {
        "Customers are mostly unhappy"
    } else {
        "Opinions are split"
    };
    let complaints = mentions(&COMPLAINTS, &|r| r <= 4);
    let praise = mentions(&PRAISE, &|r| r >= 3);
    let summary = format!(
        "{mood}; the main complaint is {}.",
        complaints.first().unwrap_or(&"nothing in particular")
    );
    let prompt_tokens = request.message("user").map_or(0, |m| m.len() / 4) as u64;
    MockReply::json(json!({
        "review_count": reviews.len(),
        "positive": positive,
        "neutral": reviews.len() - positive - negative,
        "negative": negative,
        "average_rating": (average * 100.0).round() / 100.0,
        "top_complaints": complaints,
        "top_praise": praise,
        "summary": summary,
    }))
    .usage(prompt_tokens, 120)
}
