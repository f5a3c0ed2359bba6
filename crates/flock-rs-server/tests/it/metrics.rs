//! Prometheus `/metrics`: flushes by agent and reason, batch size and wait
//! histograms, items waiting, runs in flight, failed runs, admission rejections.

use flock::{Admission, OnFull, prelude::*};

use crate::{Served, eventually, payment, payments_agent};

#[tokio::test]
async fn metrics_count_flushes_sizes_waits_waiting_items_failures_and_rejections() {
    let admission = Admission::new()
        .max_waiting(100)
        .unwrap()
        .on_full(OnFull::Reject);
    let flock = Flock::builder().no_trace().admission(admission).build();
    payments_agent(&flock, "payments", 2, None);
    flock
        .agent("rejects")
        .consumes::<crate::PaymentReport>(Subscribe::new())
        .with_engine(map_fn(
            |_: &EngineContext, _: std::sync::Arc<crate::PaymentReport>| {
                Err::<Outputs, _>("no".to_owned())
            },
        ))
        .register()
        .unwrap();
    let served = Served::open(flock.clone()).await;
    for id in 1..=3 {
        served.post("/api/v1/artifacts", payment(id)).await;
    }
    flock.run_until_idle().await;
    let text = eventually("the flush and the failure counted", || async {
        let response = served.http.get(served.url("/metrics")).send().await.ok()?;
        let text = response.text().await.ok()?;
        text.contains("flock_runs_failed_total{agent=\"rejects\"} 1")
            .then_some(text)
    })
    .await;
    for line in [
        "flock_batch_flushes_total{agent=\"payments\",reason=\"size\"} 1",
        "flock_batch_size_bucket{agent=\"payments\",le=\"2\"} 1",
        "flock_batch_size_bucket{agent=\"payments\",le=\"1\"} 0",
        "flock_batch_size_count{agent=\"payments\"} 1",
        "flock_batch_wait_seconds_count{agent=\"payments\"} 1",
        "flock_batch_items_waiting{agent=\"payments\"} 1",
        "flock_batches_active 1",
        "flock_runs_in_flight 0",
        "flock_failed_runs 1",
        "flock_admission_rejections_total 0",
        "flock_artifacts_published_total{type=\"Payment\"} 3",
        "flock_runs_finished_total{agent=\"payments\"} 1",
        "# TYPE flock_batch_wait_seconds histogram",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    served.stop().await;
}

#[tokio::test]
async fn admission_rejections_are_counted() {
    let admission = Admission::new()
        .max_waiting(1)
        .unwrap()
        .on_full(OnFull::Reject);
    let flock = Flock::builder().no_trace().admission(admission).build();
    payments_agent(&flock, "payments", 5, None);
    let served = Served::open(flock).await;
    served.post("/api/v1/artifacts", payment(1)).await;
    assert_eq!(served.post("/api/v1/artifacts", payment(2)).await.0, 429);
    let response = served
        .http
        .get(served.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("flock_admission_rejections_total 1"),
        "{text}"
    );
    served.stop().await;
}

/// Spans exported to the DuckDB trace file are counted while the program runs
/// (this test binary's one global subscriber: no other test here traces).
#[tokio::test]
async fn spans_exported_by_the_trace_pipeline_are_counted_live() {
    let dir = std::env::temp_dir().join(format!("flock-server-traces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = flock::TraceConfig::new(dir.join("traces.duckdb"))
        .export_interval(std::time::Duration::from_millis(50));
    let flock = Flock::builder().trace(config).try_build().unwrap();
    payments_agent(&flock, "payments", 2, None);
    let served = Served::open(flock.clone()).await;
    for id in 1..=2 {
        served.post("/api/v1/artifacts", payment(id)).await;
    }
    flock.run_until_idle().await;
    let exported = eventually("spans exported", || async {
        let text = served
            .http
            .get(served.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let line = text
            .lines()
            .find(|l| l.starts_with("flock_trace_spans_exported_total "))?;
        let n: u64 = line.rsplit(' ').next()?.parse().ok()?;
        (n > 0).then_some(text)
    })
    .await;
    assert!(
        exported.contains("flock_trace_spans_failed_total 0"),
        "{exported}"
    );
    let report = served.stop().await;
    assert!(report.traces.is_some_and(|t| t.is_complete()));
    let _ = std::fs::remove_dir_all(&dir);
}
