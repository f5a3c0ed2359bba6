//! The JSON API without tokens: Python Flock's paths with their meanings, and the
//! batch paths (batches, joins, flushes, manual flush, failed runs and retry).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use flock::prelude::*;
use serde_json::json;

use crate::{Payment, PaymentReport, Served, eventually, payment, payments_agent};

#[tokio::test]
async fn published_artifacts_are_listed_searched_fetched_and_summarised() {
    let flock = Flock::builder().no_trace().build();
    payments_agent(&flock, "payments", 100, None);
    let served = Served::open(flock).await;

    let (status, body) = served.post("/api/v1/artifacts", payment(1)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "accepted");
    let id = body["id"].as_str().unwrap().to_owned();
    let tagged = json!({
        "type": "Payment", "payload": {"id": 2, "amount": 99.5}, "tags": ["vip"],
    });
    assert_eq!(
        served.post("/api/v1/artifacts", tagged.to_string()).await.0,
        200
    );

    let (status, one) = served.get(&format!("/api/v1/artifacts/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (one["type"].as_str(), &one["payload"]["id"]),
        (Some("Payment"), &json!(1))
    );

    let (_, list) = served.get("/api/v1/artifacts?type=Payment").await;
    assert_eq!(list["pagination"]["total"], 2);
    assert_eq!(list["items"][0]["payload"]["id"], 2, "newest first");
    let (_, found) = served.get("/api/v1/artifacts?q=99.5").await;
    assert_eq!(found["pagination"]["total"], 1);
    assert_eq!(found["items"][0]["payload"]["id"], 2);
    let (_, vip) = served.get("/api/v1/artifacts?tag=vip").await;
    assert_eq!(vip["pagination"]["total"], 1);
    let (_, page) = served.get("/api/v1/artifacts?limit=1&offset=1").await;
    assert_eq!(page["items"][0]["payload"]["id"], 1);

    let (_, summary) = served.get("/api/v1/artifacts/summary").await;
    assert_eq!(summary["summary"]["total"], 2);
    assert_eq!(summary["summary"]["by_type"]["Payment"], 2);
    assert_eq!(summary["summary"]["tag_counts"]["vip"], 1);

    let (status, health) = served.get("/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    served.stop().await;
}

#[tokio::test]
async fn batches_fill_flush_and_are_reported_with_size_reason_and_efficiency() {
    let flock = Flock::builder().no_trace().build();
    payments_agent(&flock, "payments", 3, None);
    let served = Served::open(flock.clone()).await;
    for id in 1..=2 {
        served.post("/api/v1/artifacts", payment(id)).await;
    }
    let (_, batches) = served.get("/api/v1/batches").await;
    let batch = &batches["batches"][0];
    assert_eq!(batch["agent"], "payments");
    assert_eq!(batch["items"], 2);
    assert_eq!(batch["target_size"], 3);
    assert_eq!(batch["timeout_ms"], 3_600_000);
    assert!(batch["time_left_ms"].as_u64().unwrap() <= 3_600_000);

    served.post("/api/v1/artifacts", payment(3)).await;
    flock.run_until_idle().await;
    let flushes = eventually("the size flush in the history", || async {
        let (_, body) = served.get("/api/v1/flushes").await;
        (body["flushes"].as_array()?.len() == 1).then_some(body)
    })
    .await;
    let flush = &flushes["flushes"][0];
    assert_eq!(
        (&flush["agent"], &flush["reason"], &flush["size"]),
        (&json!("payments"), &json!("size"), &json!(3))
    );
    assert_eq!(flush["efficiency"], 1.0);
    assert!(flush["wait_ms"].is_u64());
    assert_eq!(served.get("/api/v1/batches").await.1["batches"], json!([]));

    served.post("/api/v1/artifacts", payment(4)).await;
    let (status, flushed) = served.post("/api/v1/flush", "").await;
    assert_eq!((status, &flushed["flushed"]), (200, &json!(1)));
    flock.run_until_idle().await;
    let manual = eventually("the manual flush", || async {
        let (_, body) = served.get("/api/v1/flushes?limit=1").await;
        let newest = body["flushes"][0].clone();
        (newest["reason"] == "manual").then_some(newest)
    })
    .await;
    assert_eq!(manual["size"], 1);
    assert!((manual["efficiency"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let reports = flock.get_by_type::<PaymentReport>().await.unwrap();
    assert_eq!(reports.len(), 2);
    served.stop().await;
}

#[tokio::test]
async fn joins_report_key_present_and_missing_types_and_window_left() {
    use serde::{Deserialize, Serialize};
    #[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
    struct Order {
        order_id: String,
    }
    #[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
    struct Shipment {
        order_id: String,
    }
    let flock = Flock::builder().no_trace().build();
    flock
        .agent("matcher")
        .consumes_all(
            AllOf::new().of::<Order>().of::<Shipment>().join(
                JoinSpec::by(|o: &Order| o.order_id.clone())
                    .by(|s: &Shipment| s.order_id.clone())
                    .within(Duration::from_secs(600)),
            ),
        )
        .with_engine(group_fn(|_: &EngineContext, _: Inputs| {
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap();
    let served = Served::open(flock).await;
    let order = json!({"type": "Order", "payload": {"order_id": "o-1"}});
    served.post("/api/v1/artifacts", order.to_string()).await;
    let (_, joins) = served.get("/api/v1/joins").await;
    let join = &joins["joins"][0];
    assert_eq!(join["agent"], "matcher");
    assert_eq!(join["key"], "o-1");
    assert_eq!(join["present"], json!([{"type": "Order", "count": 1}]));
    assert_eq!(join["missing"], json!([{"type": "Shipment", "count": 1}]));
    assert!(join["window_left_ms"].as_u64().unwrap() <= 600_000);
    served.stop().await;
}

#[tokio::test]
async fn failed_runs_are_listed_with_inputs_and_retried() {
    let flock = Flock::builder().no_trace().build();
    let fail = Arc::new(AtomicBool::new(true));
    let failing = fail.clone();
    flock
        .agent("flaky")
        .consumes::<Payment>(Subscribe::new().batch(BatchSpec::size(2)))
        .publishes::<PaymentReport>()
        .with_engine(batch_fn(
            move |_: &EngineContext, items: Vec<Arc<Payment>>| {
                if failing.load(Ordering::SeqCst) {
                    return Err("processor unavailable".to_owned());
                }
                Ok(PaymentReport {
                    count: items.len(),
                    reason: "retried".into(),
                })
            },
        ))
        .register()
        .unwrap();
    let served = Served::open(flock.clone()).await;
    for id in 1..=2 {
        served.post("/api/v1/artifacts", payment(id)).await;
    }
    flock.run_until_idle().await;
    let (_, failed) = served.get("/api/v1/failed-runs").await;
    let run = &failed["failed_runs"][0];
    assert_eq!(run["agent"], "flaky");
    assert_eq!(run["error"], "processor unavailable");
    assert_eq!(run["flush_reason"], "size");
    assert_eq!(run["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(run["inputs"][0]["payload"]["id"], 1);

    fail.store(false, Ordering::SeqCst);
    let id = run["id"].as_str().unwrap();
    let (status, body) = served
        .post(&format!("/api/v1/failed-runs/{id}/retry"), "")
        .await;
    assert_eq!(status, 200, "{body}");
    flock.run_until_idle().await;
    assert_eq!(
        served.get("/api/v1/failed-runs").await.1["failed_runs"],
        json!([])
    );
    let reports = flock.get_by_type::<PaymentReport>().await.unwrap();
    assert_eq!(reports[0].count, 2);
    let (status, body) = served
        .post(&format!("/api/v1/failed-runs/{id}/retry"), "")
        .await;
    assert_eq!(status, 404, "retried already: {body}");
    served.stop().await;
}

#[tokio::test]
async fn agents_are_listed_and_run_directly() {
    let flock = Flock::builder().no_trace().build();
    payments_agent(&flock, "payments", 25, None);
    let served = Served::open(flock).await;
    let (_, agents) = served.get("/api/v1/agents").await;
    let agent = &agents["agents"][0];
    assert_eq!(agent["name"], "payments");
    assert_eq!(agent["description"], "batches payments");
    assert_eq!(agent["outputs"], json!(["PaymentReport"]));
    let subscription = &agent["subscriptions"][0];
    assert_eq!(subscription["types"], json!(["Payment"]));
    assert_eq!(subscription["mode"], "batch");
    assert_eq!(subscription["batch"]["size"], 25);

    let run = json!({"inputs": [
        {"type": "Payment", "payload": {"id": 1, "amount": 1.0}},
        {"type": "Payment", "payload": {"id": 2, "amount": 2.0}},
    ]});
    let (status, body) = served
        .post("/api/v1/agents/payments/run", run.to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let outputs = body["artifacts"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["type"], "PaymentReport");
    assert_eq!(outputs[0]["payload"]["count"], 2, "one run on both inputs");
    assert_eq!(outputs[0]["produced_by"], "payments");
    // The inputs went to the agent directly, not into its batch.
    assert_eq!(served.get("/api/v1/batches").await.1["batches"], json!([]));

    let correlation = outputs[0]["correlation_id"].as_str().unwrap();
    let (_, status) = served
        .get(&format!("/api/v1/correlations/{correlation}/status"))
        .await;
    assert_eq!(status["state"], "completed");
    assert_eq!(status["artifact_count"], 3);
    assert_eq!(status["has_pending_work"], false);
    served.stop().await;
}

#[tokio::test]
async fn a_correlation_is_active_while_its_artifacts_wait_in_a_batch() {
    let flock = Flock::builder().no_trace().build();
    payments_agent(&flock, "payments", 2, None);
    let served = Served::open(flock).await;
    let correlation = uuid::Uuid::now_v7();
    let body = json!({
        "type": "Payment", "payload": {"id": 1, "amount": 1.0},
        "correlation_id": correlation,
    });
    served.post("/api/v1/artifacts", body.to_string()).await;
    let (_, status) = served
        .get(&format!("/api/v1/correlations/{correlation}/status"))
        .await;
    assert_eq!(status["state"], "active");
    assert_eq!(status["has_pending_work"], true);
    let unknown = uuid::Uuid::now_v7();
    let (_, status) = served
        .get(&format!("/api/v1/correlations/{unknown}/status"))
        .await;
    assert_eq!(status["state"], "not_found");
    served.stop().await;
}

#[tokio::test]
async fn stopping_the_server_flushes_partial_batches_with_reason_shutdown() {
    let flock = Flock::builder().no_trace().build();
    payments_agent(&flock, "payments", 10, None);
    let served = Served::open(flock.clone()).await;
    for id in 1..=3 {
        served.post("/api/v1/artifacts", payment(id)).await;
    }
    let report = served.stop().await;
    assert_eq!((report.batches_flushed, report.artifacts_flushed), (1, 3));
    let reports = flock.get_by_type::<PaymentReport>().await.unwrap();
    assert_eq!(
        (reports[0].count, reports[0].reason.as_str()),
        (3, "shutdown")
    );
}
