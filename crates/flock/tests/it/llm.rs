//! The LLM engine inside the runtime, against a real HTTP server on 127.0.0.1: one
//! request per flushed batch, and an endpoint failing for good ends in a
//! `WorkflowError` with the inputs kept as a failed run.
//!
//! reqwest needs the real clock, so waits are a few milliseconds and no assertion
//! depends on time.

use std::time::Duration;

use flock::{
    ArtifactId, FailureKind,
    llm::{
        JsonSchema, LlmEngine,
        mock::{MockChatServer, MockReply},
    },
    prelude::*,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Review {
    review_id: u32,
    rating: u8,
}

/// Derived through the facade's re-export, without a direct schemars dependency.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, FlockType)]
#[schemars(crate = "flock::llm::schemars")]
struct Trend {
    reviews: usize,
    positive: usize,
}

fn engine(server: &MockChatServer) -> LlmEngine<Trend> {
    LlmEngine::<Trend>::builder()
        .ignore_env()
        .base_url(server.base_url())
        .model("mock")
        .max_retries(1)
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(5))
        .build()
        .unwrap()
}

async fn publish_reviews(flock: &Flock, n: u32) -> Vec<ArtifactId> {
    let mut ids = Vec::new();
    for review_id in 0..n {
        let rating = u8::try_from(review_id % 5 + 1).unwrap();
        ids.push(flock.publish(Review { review_id, rating }).await.unwrap());
    }
    ids
}

#[tokio::test]
async fn every_flushed_batch_is_one_request() {
    let server = MockChatServer::start(|request| {
        let payloads = request.payloads();
        let positive = payloads
            .iter()
            .filter(|p| p["rating"].as_u64() >= Some(4))
            .count();
        MockReply::json(json!({"reviews": payloads.len(), "positive": positive}))
    })
    .await
    .unwrap();
    let engine = engine(&server);
    let flock = Flock::new();
    flock
        .agent("sentiment")
        .consumes::<Review>(
            Subscribe::new().batch(BatchSpec::size(10).timeout(Duration::from_secs(300))),
        )
        .publishes::<Trend>()
        .with_engine(engine.clone())
        .register()
        .unwrap();
    publish_reviews(&flock, 25).await;
    flock.run_until_idle().await;
    flock.shutdown().await;
    assert_eq!(server.request_count(), 3);
    assert_eq!(engine.stats().completions, 3);
    let sizes: Vec<usize> = flock
        .get_by_type::<Trend>()
        .await
        .unwrap()
        .iter()
        .map(|t| t.reviews)
        .collect();
    assert_eq!(sizes, [10, 10, 5]);
}

#[tokio::test]
async fn an_endpoint_failing_for_good_leaves_a_workflow_error_and_a_failed_run() {
    let server = MockChatServer::start(|_| MockReply::status(500))
        .await
        .unwrap();
    let flock = Flock::new();
    flock
        .agent("sentiment")
        .consumes::<Review>(Subscribe::new().batch(BatchSpec::size(3)))
        .publishes::<Trend>()
        .with_engine(engine(&server))
        .retry(RetryPolicy::fixed(2, Duration::from_millis(5)).unwrap())
        .register()
        .unwrap();
    let ids = publish_reviews(&flock, 3).await;
    flock.run_until_idle().await;

    // 2 attempts of the agent, each 1 request + 1 engine retry.
    assert_eq!(server.request_count(), 4);
    let errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].agent, "sentiment");
    assert_eq!(errors[0].attempts, 2);
    assert_eq!(errors[0].input_ids, ids);
    assert!(
        errors[0]
            .error
            .starts_with("chat completion failed with status 500 after 2 attempt(s)"),
        "{}",
        errors[0].error
    );
    let failed = flock.failed_runs();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].kind, FailureKind::Failed);
    assert_eq!(failed[0].input_ids(), ids);
    let reviews: Vec<u32> = failed[0]
        .inputs
        .iter()
        .filter_map(|a| a.get::<Review>())
        .map(|r| r.review_id)
        .collect();
    assert_eq!(reviews, [0, 1, 2]);
    assert!(flock.get_by_type::<Trend>().await.unwrap().is_empty());
    flock.shutdown().await;
}
