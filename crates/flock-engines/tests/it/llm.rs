//! The LLM engine against a real HTTP server on 127.0.0.1: one request per batch with
//! every input and the schema, structured replies, malformed replies, retries with
//! `Retry-After`, errors after the last retry, timeouts, configuration errors.
//!
//! reqwest talks to a real socket, so these tests run on the real clock: timeouts and
//! waits are short, and no assertion depends on how long anything took.

use std::{sync::Arc, time::Duration};

use flock_core::{Artifact, FlockType, Payload};
use flock_engines::{
    BatchInputs, Engine, EngineContext, Inputs,
    llm::{
        LlmConfigError, LlmEngine,
        mock::{ChatRequest, MockChatServer, MockReply},
    },
};
use flock_test_support::Capture;
use parking_lot::Mutex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(crate = "flock_core")]
struct Review {
    review_id: String,
    rating: u8,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, FlockType)]
#[flock(crate = "flock_core")]
struct Trend {
    reviews: u32,
    average_rating: f64,
    summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, FlockType)]
#[flock(crate = "flock_core")]
struct Label {
    review_id: String,
    positive: bool,
}

fn reviews(n: usize) -> Vec<Arc<Artifact>> {
    (0..n)
        .map(|i| {
            let review = Review {
                review_id: format!("r{i}"),
                rating: u8::try_from(i % 5 + 1).unwrap(),
                text: format!("review number {i}"),
            };
            Arc::new(Artifact::new(Payload::new(review), "external"))
        })
        .collect()
}

/// A trend computed from the request, as a model would.
fn trend_of(request: &ChatRequest) -> MockReply {
    let payloads = request.payloads();
    let ratings: Vec<f64> = payloads
        .iter()
        .map(|p| p["rating"].as_f64().unwrap_or(0.0))
        .collect();
    MockReply::json(json!({
        "reviews": payloads.len(),
        "average_rating": ratings.iter().sum::<f64>() / ratings.len().max(1) as f64,
        "summary": "mixed",
    }))
    .usage(120, 30)
}

fn engine<Out: FlockType + JsonSchema>(
    server: &MockChatServer,
) -> flock_engines::llm::LlmEngineBuilder<Out> {
    LlmEngine::<Out>::builder()
        .ignore_env()
        .base_url(server.base_url())
        .api_key("sk-test-secret-key")
        .model("mock-model")
        .timeout(Duration::from_secs(5))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

fn ctx() -> EngineContext {
    EngineContext::new("sentiment")
}

#[tokio::test]
async fn a_batch_is_one_request_with_every_input_and_the_schema() {
    let server = MockChatServer::start(trend_of).await.unwrap();
    let engine = engine::<Trend>(&server).build().unwrap();
    let (captured, _guard) = Capture::install();

    let batch = reviews(7);
    let outputs = engine
        .evaluate_batch(&ctx(), BatchInputs::new(batch.clone()))
        .await
        .unwrap();

    assert_eq!(server.request_count(), 1, "one request for the whole batch");
    let request = &server.requests()[0];
    assert_eq!(request.model(), Some("mock-model"));
    assert!(request.has_bearer);
    let sent: Vec<_> = request.inputs();
    assert_eq!(sent.len(), 7);
    for (item, artifact) in sent.iter().zip(&batch) {
        assert_eq!(item["type"], "Review");
        assert_eq!(item["payload"], artifact.payload.to_json().unwrap());
    }
    assert_eq!(request.body["response_format"]["type"], "json_schema");
    assert_eq!(request.body["response_format"], *engine.response_format());
    let schema = request.schema().unwrap();
    assert_eq!(
        schema["required"],
        json!(["average_rating", "reviews", "summary"])
    );
    assert_eq!(schema["additionalProperties"], json!(false));
    assert_eq!(
        request.body["response_format"]["json_schema"]["strict"],
        true
    );
    assert!(
        request
            .message("system")
            .unwrap()
            .contains("agent 'sentiment'"),
        "{:?}",
        request.message("system")
    );

    let trend = outputs.payloads()[0].downcast_ref::<Trend>().unwrap();
    assert_eq!(
        trend,
        &Trend {
            reviews: 7,
            average_rating: (1 + 2 + 3 + 4 + 5 + 1 + 2) as f64 / 7.0,
            summary: "mixed".into()
        }
    );
    assert_eq!(outputs.len(), 1);

    // Token usage on the engine's span, and in the engine's stats.
    assert_eq!(
        captured.values("llm.chat_completion", "llm.prompt_tokens"),
        ["120"]
    );
    assert_eq!(
        captured.values("llm.chat_completion", "llm.completion_tokens"),
        ["30"]
    );
    assert_eq!(
        captured.values("llm.chat_completion", "llm.total_tokens"),
        ["150"]
    );
    assert_eq!(
        captured.values("llm.chat_completion", "llm.attempts"),
        ["1"]
    );
    let stats = engine.stats();
    assert_eq!(
        (
            stats.requests,
            stats.completions,
            stats.prompt_tokens,
            stats.completion_tokens
        ),
        (1, 1, 120, 30)
    );
    // The key never reaches a span, an event or the engine's Debug.
    assert!(!captured.all_text().contains("sk-test-secret-key"));
    assert!(!format!("{engine:?}").contains("sk-test-secret-key"));
}

#[tokio::test]
async fn one_per_input_answers_one_value_per_input_in_order() {
    let server = MockChatServer::start(|request| {
        let labels: Vec<_> = request
            .payloads()
            .iter()
            .map(|p| json!({"review_id": p["review_id"], "positive": p["rating"].as_u64() >= Some(4)}))
            .collect();
        MockReply::json(json!({ "results": labels }))
    })
    .await
    .unwrap();
    let engine = engine::<Label>(&server).one_per_input().build().unwrap();
    let outputs = engine
        .evaluate_batch(&ctx(), BatchInputs::new(reviews(5)))
        .await
        .unwrap();
    let labels: Vec<(String, bool)> = outputs
        .payloads()
        .iter()
        .map(|p| p.downcast_ref::<Label>().unwrap())
        .map(|l| (l.review_id.clone(), l.positive))
        .collect();
    assert_eq!(
        labels,
        [
            ("r0", false),
            ("r1", false),
            ("r2", false),
            ("r3", true),
            ("r4", true)
        ]
        .map(|(id, p)| (id.to_owned(), p))
    );
    let schema = server.requests()[0].schema().unwrap().clone();
    assert_eq!(schema["properties"]["results"]["type"], "array");

    // A single run is a batch of one.
    let outputs = engine
        .evaluate(&ctx(), Inputs::new(reviews(1)))
        .await
        .unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(server.requests()[1].inputs().len(), 1);
}

#[tokio::test]
async fn a_reply_that_does_not_fit_is_a_clear_error() {
    let replies = Arc::new(Mutex::new(vec![
        MockReply::content("I think the reviews are mostly positive!"),
        MockReply::json(json!({"reviews": "seven", "average_rating": 3.0, "summary": "ok"})),
        MockReply::json(json!({"reviews": 7, "summary": "ok"})),
        MockReply::completion(json!({"choices": []})),
        MockReply::completion(
            json!({"choices": [{"message": {"content": null, "refusal": "I cannot help with that"}}]}),
        ),
    ]));
    let queue = replies.clone();
    let server = MockChatServer::start(move |_| queue.lock().remove(0))
        .await
        .unwrap();
    let engine = engine::<Trend>(&server).build().unwrap();
    let mut errors = Vec::new();
    for _ in 0..5 {
        let error = engine
            .evaluate_batch(&ctx(), BatchInputs::new(reviews(2)))
            .await
            .unwrap_err();
        errors.push(error.to_string());
    }
    assert_eq!(
        errors,
        [
            "the model's reply is not valid JSON: expected value at line 1 column 1; the reply starts with 'I think the reviews are mostly positive!'",
            "the model's reply does not fit 'Trend' at field 'reviews': invalid type: string \"seven\", expected u32",
            "the model's reply does not fit 'Trend': missing field `average_rating`",
            "the endpoint's answer is not a chat completion: it has no choices",
            "the model refused: I cannot help with that",
        ]
    );
    assert_eq!(
        server.request_count(),
        5,
        "a reply that does not fit is not retried by the engine"
    );
}

#[tokio::test]
async fn rate_limited_then_success_honours_retry_after() {
    let calls = Arc::new(Mutex::new(0));
    let count = calls.clone();
    let server = MockChatServer::start(move |request| {
        let mut calls = count.lock();
        *calls += 1;
        if *calls == 1 {
            MockReply::status(429).header("retry-after", "1")
        } else {
            trend_of(request)
        }
    })
    .await
    .unwrap();
    let engine = engine::<Trend>(&server).max_retries(3).build().unwrap();
    let (captured, _guard) = Capture::install();
    let outputs = engine
        .evaluate_batch(&ctx(), BatchInputs::new(reviews(3)))
        .await
        .unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(server.request_count(), 2);
    // The engine waited what the server asked (1 s), not its own 10 ms backoff.
    assert_eq!(captured.event_values("retry_after_ms"), ["1000"]);
    assert_eq!(captured.event_values("retry_in_ms"), ["1000"]);
    assert_eq!(
        captured.values("llm.chat_completion", "llm.attempts"),
        ["1", "2"]
    );
    assert_eq!(engine.stats().requests, 2);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_the_attempts() {
    let server = MockChatServer::start(|_| MockReply::status(500))
        .await
        .unwrap();
    let engine = engine::<Trend>(&server).max_retries(2).build().unwrap();
    let error = engine
        .evaluate_batch(&ctx(), BatchInputs::new(reviews(2)))
        .await
        .unwrap_err();
    assert_eq!(server.request_count(), 3);
    assert_eq!(
        error.to_string(),
        r#"chat completion failed with status 500 after 3 attempt(s): {"error":{"message":"mock status 500","type":"mock"}}"#
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = MockChatServer::start(|_| MockReply::status(400))
        .await
        .unwrap();
    let engine = engine::<Trend>(&server).max_retries(5).build().unwrap();
    let error = engine
        .evaluate_batch(&ctx(), BatchInputs::new(reviews(1)))
        .await
        .unwrap_err();
    assert_eq!(server.request_count(), 1);
    assert!(
        error
            .to_string()
            .starts_with("chat completion failed with status 400 after 1 attempt(s)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let server = MockChatServer::start(|request| trend_of(request).after(Duration::from_secs(30)))
        .await
        .unwrap();
    let engine = engine::<Trend>(&server)
        .timeout(Duration::from_millis(200))
        .max_retries(1)
        .build()
        .unwrap();
    let error = engine
        .evaluate_batch(&ctx(), BatchInputs::new(reviews(1)))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "chat completion request to {}/chat/completions timed out after 200ms (2 attempt(s))",
            server.base_url()
        )
    );
    assert_eq!(server.request_count(), 2, "a timeout is retried");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transport_error() {
    // Bind a port, then free it: nothing listens there.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let engine = LlmEngine::<Trend>::builder()
        .ignore_env()
        .base_url(format!("http://{addr}/v1"))
        .model("m")
        .max_retries(1)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .build()
        .unwrap();
    let error = engine
        .evaluate_batch(&ctx(), BatchInputs::new(reviews(1)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "chat completion request to http://{addr}/v1/chat/completions failed after 2 attempt(s)"
        )),
        "{error}"
    );
}

#[test]
fn configuration_errors_say_what_to_do() {
    let build =
        |b: flock_engines::llm::LlmEngineBuilder<Trend>| b.ignore_env().build().unwrap_err();
    let no_model = build(LlmEngine::<Trend>::builder());
    assert_eq!(no_model, LlmConfigError::MissingModel);
    assert_eq!(
        no_model.to_string(),
        "no model configured; call .model(..) on the builder or set FLOCK_MODEL"
    );
    let base = || LlmEngine::<Trend>::builder().model("m");
    assert_eq!(
        build(base().base_url("localhost:8080")).to_string(),
        "invalid base url 'localhost:8080': scheme must be http or https, got 'localhost'"
    );
    assert_eq!(
        build(base().base_url("not a url")).to_string(),
        "invalid base url 'not a url': relative URL without a base"
    );
    assert_eq!(
        build(base().timeout(Duration::ZERO)).to_string(),
        "request timeout must be positive, got 0ns"
    );
    assert_eq!(
        build(base().temperature(3.5)).to_string(),
        "temperature must be between 0 and 2, got 3.5"
    );
    assert_eq!(
        build(base().max_tokens(0)).to_string(),
        "max tokens must be at least 1, got 0"
    );
    let engine = base()
        .ignore_env()
        .base_url("http://127.0.0.1:9/v1/")
        .build()
        .unwrap();
    assert_eq!(engine.endpoint(), "http://127.0.0.1:9/v1/chat/completions");
    assert_eq!(engine.name(), "llm:m");
}
