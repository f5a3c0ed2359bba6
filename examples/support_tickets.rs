//! The guide's "Customer Support Ticket Batching": support tickets analysed by an LLM
//! 20 at a time (`BatchSpec::size(20).timeout(10 min)`), one `TrendAnalysis` per
//! batch with the common issues, the sentiment trend and recommended actions.
//!
//! With `OPENAI_API_KEY` or `OPENAI_BASE_URL` set, the tickets go to that
//! OpenAI-compatible endpoint (model from `FLOCK_MODEL`, default `gpt-4o-mini`).
//! With neither, the example starts a local OpenAI-compatible server on 127.0.0.1
//! (the LLM engine's mock server) that answers deterministically from each request,
//! and says so: it runs anywhere, in about a second.
//!
//! The tickets: 70 of them, with a login outage in the middle of the stream
//! (tickets 20 to 49). Three batches of 20 flush by size; the last 10 would wait for the
//! 10-minute timeout, and shutdown flushes them.
//!
//! Run: `cargo run --example support_tickets`

use std::{collections::BTreeMap, time::Duration};

use flock::{
    llm::{
        LlmEngine,
        mock::{ChatRequest, MockReply},
    },
    prelude::*,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const TICKETS: usize = 70;

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct SupportTicket {
    ticket_id: String,
    category: String,
    priority: String,
    description: String,
}

/// What the LLM answers for each batch of tickets; its JSON schema is the request's
/// `response_format`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, FlockType)]
struct TrendAnalysis {
    /// The most common issues in the batch, most frequent first (at most 3), each a
    /// few words.
    common_issues: Vec<String>,
    /// One sentence on how customers feel, and whether it is getting better or worse.
    sentiment_trend: String,
    /// What the support team should do next, most urgent first (at most 3).
    recommended_actions: Vec<String>,
    /// Tickets in the batch.
    ticket_count: u32,
    /// The first and the last ticket id of the batch, as `FIRST..LAST`.
    ticket_range: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    flock_examples::Args::from_env(
        "The guide's \"Customer Support Ticket Batching\": 70 tickets, 20 per LLM trend analysis (a local server unless OPENAI_* is set).",
        &[],
    );
    let builder = LlmEngine::<TrendAnalysis>::builder()
        .instructions(
            "You analyse batches of customer support tickets for a support lead. Name the \
             most common issues, describe the customers' sentiment and its trend, and \
             recommend the most urgent actions.",
        )
        .timeout(Duration::from_secs(120));
    // Kept alive until the end of main: dropping it stops the server.
    let (engine, local) =
        flock_examples::llm_engine(builder, "local-support-analyst", analyse).await?;
    println!(
        "endpoint {} · model {}\n",
        engine.endpoint(),
        engine.model()
    );

    let flock = Flock::new();
    flock
        .agent("trend_analyzer")
        .description("Analyses 20 support tickets per LLM call for trends")
        .consumes::<SupportTicket>(
            Subscribe::new().batch(BatchSpec::size(20).timeout(Duration::from_secs(10 * 60))),
        )
        .publishes::<TrendAnalysis>()
        .with_engine(engine.clone())
        .retry(RetryPolicy::exponential(3, Duration::from_secs(2))?)
        .register()?;

    for ticket in tickets(TICKETS) {
        flock.publish(ticket).await?;
    }
    flock.run_until_idle().await; // three batches of 20 flushed by size
    for batch in flock.active_batches() {
        println!(
            "{} tickets wait for the 10-minute timeout ({:.0} s left); shutdown flushes them now\n",
            batch.items_waiting,
            batch.time_left.unwrap_or_default().as_secs_f64()
        );
    }
    flock.shutdown().await;

    let mut analyses = flock.get_by_type::<TrendAnalysis>().await?;
    // Batches may finish in any order; show them in ticket order.
    analyses.sort_by(|a, b| a.ticket_range.cmp(&b.ticket_range));
    for a in &analyses {
        println!(
            "TrendAnalysis of {} ({} tickets)",
            a.ticket_range, a.ticket_count
        );
        println!("  common issues: {}", a.common_issues.join("; "));
        println!("  sentiment:     {}", a.sentiment_trend);
        println!("  actions:       {}", a.recommended_actions.join("; "));
    }
    for run in flock.failed_runs() {
        println!(
            "FAILED: {} tickets not analysed after {} attempt(s): {}",
            run.inputs.len(),
            run.attempts,
            run.error
        );
    }
    let stats = engine.stats();
    let analysed: u32 = analyses.iter().map(|a| a.ticket_count).sum();
    println!(
        "\n{analysed} of {TICKETS} tickets analysed in {} LLM calls (one call per ticket would be {TICKETS}); tokens: {} prompt, {} completion",
        stats.requests, stats.prompt_tokens, stats.completion_tokens
    );
    anyhow::ensure!(
        flock.failed_runs().is_empty(),
        "some batches failed; see above"
    );
    if local.is_some() {
        anyhow::ensure!(
            analysed as usize == TICKETS && stats.requests == 4,
            "expected {TICKETS} tickets in 4 calls, got {analysed} in {}",
            stats.requests
        );
    }
    Ok(())
}

// === the tickets ===

const ISSUES: [(&str, &str, &str); 5] = [
    (
        "billing",
        "charged twice",
        "I was charged twice for my subscription this month.",
    ),
    (
        "shipping",
        "late delivery",
        "My order is a week late and tracking has not moved.",
    ),
    (
        "login",
        "cannot log in",
        "I cannot log in: the app says my password is wrong after the update.",
    ),
    (
        "bug",
        "export crashes",
        "The app crashes every time I export a report.",
    ),
    (
        "feature",
        "dark mode",
        "Please add a dark mode, my eyes would thank you.",
    ),
];

/// A deterministic stream: a mix of issues, with login failures piling up from the
/// second batch on (an authentication outage) and tempers rising with them.
fn tickets(n: usize) -> Vec<SupportTicket> {
    (0..n)
        .map(|i| {
            let outage = (20..50).contains(&i);
            let issue = if outage && i % 3 != 0 {
                ISSUES[2]
            } else {
                ISSUES[(i * 7 + i / 4) % ISSUES.len()]
            };
            let (category, _, text) = issue;
            let angry = outage && i % 2 == 0;
            let priority = match (category, angry) {
                ("login", true) => "urgent",
                ("login" | "billing", _) => "high",
                ("feature", _) => "low",
                _ => "normal",
            };
            let description = if angry {
                format!("{text} This is unacceptable, I need this fixed today!")
            } else {
                text.to_owned()
            };
            SupportTicket {
                ticket_id: format!("T-{:04}", 1000 + i),
                category: category.into(),
                priority: priority.into(),
                description,
            }
        })
        .collect()
}

// === the local endpoint ===

/// What the local server answers: an analysis computed from the tickets in the
/// request, the way a model would read them (issues from categories and text,
/// sentiment from priority and tone).
fn analyse(request: &ChatRequest) -> MockReply {
    let tickets = request.payloads();
    let field = |t: &Value, name: &str| t[name].as_str().unwrap_or_default().to_owned();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &tickets {
        let category = field(t, "category");
        if let Some((_, issue, _)) = ISSUES.iter().find(|(c, _, _)| *c == category) {
            *counts.entry(issue).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let common_issues: Vec<String> = ranked
        .iter()
        .take(3)
        .map(|(issue, n)| format!("{issue} ({n})"))
        .collect();
    let angry = tickets
        .iter()
        .filter(|t| field(t, "description").contains("unacceptable"))
        .count();
    let urgent = tickets
        .iter()
        .filter(|t| field(t, "priority") == "urgent")
        .count();
    let share = angry as f64 / tickets.len().max(1) as f64;
    let sentiment_trend = if share > 0.3 {
        format!(
            "Frustration is high and rising: {angry} of {} tickets are angry.",
            tickets.len()
        )
    } else if share > 0.0 {
        format!("Mostly calm, with {angry} angry ticket(s) to watch.")
    } else {
        "Calm: customers report problems politely.".to_owned()
    };
    let mut recommended_actions = Vec::new();
    if urgent > 0 {
        recommended_actions.push(format!("escalate {urgent} urgent ticket(s) to on-call"));
    }
    for (issue, n) in ranked.iter().take(2) {
        let action = match *issue {
            "cannot log in" if *n >= 5 => {
                "open an incident for the login failures and post a status update".to_owned()
            }
            "cannot log in" => "check the authentication service".to_owned(),
            "charged twice" => "refund double charges and audit the billing job".to_owned(),
            "late delivery" => "ask the carrier about stalled shipments".to_owned(),
            "export crashes" => "file a bug for the export crash with the crash logs".to_owned(),
            _ => format!("log '{issue}' for the product backlog"),
        };
        recommended_actions.push(action);
    }
    recommended_actions.truncate(3);
    let prompt_tokens = request.message("user").map_or(0, |m| m.len() / 4) as u64;
    MockReply::json(json!({
        "common_issues": common_issues,
        "sentiment_trend": sentiment_trend,
        "recommended_actions": recommended_actions,
        "ticket_count": tickets.len(),
        "ticket_range": format!(
            "{}..{}",
            tickets.first().map(|t| field(t, "ticket_id")).unwrap_or_default(),
            tickets.last().map(|t| field(t, "ticket_id")).unwrap_or_default()
        ),
    }))
    .usage(prompt_tokens, 90)
}
