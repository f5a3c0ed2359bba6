//! Bad requests get a 4xx with the library's own message, never a 500: one check
//! per kind of bad input.

use std::time::Duration;

use flock::{Admission, OnFull, prelude::*};
use serde_json::json;

use crate::{Payment, Served, payments_agent};

/// Sends `body` to `path` and checks the status and that the error message
/// contains `message`.
async fn check(served: &Served, method: &str, path: &str, body: &str, status: u16, message: &str) {
    let (got, answer) = match method {
        "GET" => served.get(path).await,
        _ => served.post(path, body).await,
    };
    let error = answer["error"].as_str().unwrap_or_default();
    assert_eq!(got, status, "{method} {path} {body}: {answer}");
    assert!(
        error.contains(message),
        "{method} {path} {body}: expected the message to contain {message:?}, got {error:?}"
    );
}

#[tokio::test]
async fn every_bad_request_gets_a_4xx_with_the_library_message() {
    let flock = Flock::builder().no_trace().build();
    payments_agent(&flock, "payments", 10, None);
    let served = Served::open(flock).await;
    let s = &served;
    let publish = "/api/v1/artifacts";
    check(
        s,
        "POST",
        publish,
        "{not json",
        400,
        "malformed artifact envelope: not valid JSON",
    )
    .await;
    check(
        s,
        "POST",
        publish,
        "[1]",
        400,
        "expected a JSON object, got an array",
    )
    .await;
    check(
        s,
        "POST",
        publish,
        r#"{"payload": {}}"#,
        400,
        "missing \"type\"",
    )
    .await;
    check(
        s,
        "POST",
        publish,
        r#"{"type": "Nope", "payload": {}}"#,
        400,
        "unknown artifact type 'Nope'; registered types: Payment, PaymentReport",
    )
    .await;
    check(
        s,
        "POST",
        publish,
        r#"{"type": "Payment", "payload": {"id": "x", "amount": 1}}"#,
        400,
        "payload does not fit artifact type 'Payment' at field 'id': invalid type: string \"x\", expected i64",
    )
    .await;
    let bad_visibility = json!({"type": "Payment", "payload": {"id": 1, "amount": 1.0},
        "visibility": {"kind": "secret"}});
    check(
        s,
        "POST",
        publish,
        &bad_visibility.to_string(),
        400,
        "invalid \"visibility\"",
    )
    .await;
    let bad_correlation = json!({"type": "Payment", "payload": {"id": 1, "amount": 1.0},
        "correlation_id": "nope"});
    check(
        s,
        "POST",
        publish,
        &bad_correlation.to_string(),
        400,
        "invalid correlation id 'nope'",
    )
    .await;
    check(
        s,
        "GET",
        "/api/v1/artifacts/42",
        "",
        400,
        "invalid artifact id '42'",
    )
    .await;
    let unknown = uuid::Uuid::now_v7();
    check(
        s,
        "GET",
        &format!("/api/v1/artifacts/{unknown}"),
        "",
        404,
        "no artifact",
    )
    .await;
    check(
        s,
        "GET",
        "/api/v1/artifacts?limit=abc",
        "",
        400,
        "invalid query parameter limit='abc'",
    )
    .await;
    check(
        s,
        "GET",
        "/api/v1/artifacts?limit=0",
        "",
        400,
        "must be between 1 and 1000",
    )
    .await;
    check(
        s,
        "GET",
        "/api/v1/artifacts?from=yesterday",
        "",
        400,
        "invalid query parameter from='yesterday'",
    )
    .await;
    check(
        s,
        "GET",
        "/api/v1/correlations/x/status",
        "",
        400,
        "invalid correlation id 'x'",
    )
    .await;
    check(
        s,
        "POST",
        "/api/v1/failed-runs/x/retry",
        "",
        400,
        "invalid failed run id 'x'",
    )
    .await;
    check(
        s,
        "POST",
        &format!("/api/v1/failed-runs/{unknown}/retry"),
        "",
        404,
        "no failed run with id",
    )
    .await;
    check(
        s,
        "POST",
        "/api/v1/agents/nobody/run",
        r#"{"inputs": []}"#,
        404,
        "no agent named 'nobody'; registered agents: payments",
    )
    .await;
    check(
        s,
        "POST",
        "/api/v1/agents/payments/run",
        "{}",
        400,
        "expected {\"inputs\"",
    )
    .await;
    check(
        s,
        "POST",
        "/api/v1/agents/payments/run",
        r#"{"inputs": []}"#,
        400,
        "an agent run needs at least one input",
    )
    .await;
    check(
        s,
        "POST",
        "/api/v1/agents/payments/run",
        r#"{"inputs": [{"type": "PaymentReport", "payload": {"count": 1, "reason": "x"}}]}"#,
        400,
        "agent 'payments' does not consume 'PaymentReport'; it consumes: Payment",
    )
    .await;
    check(
        s,
        "GET",
        "/api/v1/nothing-here",
        "",
        404,
        "no route for /api/v1/nothing-here",
    )
    .await;
    served.stop().await;
}

#[tokio::test]
async fn admission_bounds_answer_429_and_shutdown_503() {
    let admission = Admission::new()
        .max_waiting(1)
        .unwrap()
        .on_full(OnFull::Reject);
    let flock = Flock::builder().no_trace().admission(admission).build();
    flock
        .agent("payments")
        .consumes::<Payment>(
            Subscribe::new().batch(BatchSpec::size(5).timeout(Duration::from_secs(3600))),
        )
        .with_engine(batch_fn(
            |_: &EngineContext, _: Vec<std::sync::Arc<Payment>>| Ok::<_, String>(Outputs::none()),
        ))
        .register()
        .unwrap();
    let served = Served::open(flock.clone()).await;
    let body = crate::payment(1);
    assert_eq!(served.post("/api/v1/artifacts", body.clone()).await.0, 200);
    check(
        &served,
        "POST",
        "/api/v1/artifacts",
        &body,
        429,
        "admission limit reached: 1 items waiting in the flock, limit 1",
    )
    .await;
    flock.shutdown().await;
    check(
        &served,
        "POST",
        "/api/v1/artifacts",
        &body,
        503,
        "the flock has shut down",
    )
    .await;
    served.stop().await;
}
