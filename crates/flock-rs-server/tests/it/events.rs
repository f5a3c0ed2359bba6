//! Live events over Server-Sent Events: what the dashboard draws from.

use futures::StreamExt;
use serde_json::Value;

use flock::prelude::*;

use crate::{Served, payment, payments_agent};

/// An open `GET /api/v1/events` stream, parsed event by event.
pub(crate) struct Stream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Stream {
    pub(crate) async fn open(served: &Served, token: Option<&str>) -> Self {
        let mut request = served.http.get(served.url("/api/v1/events"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (`event:` name, `data:` JSON), skipping keep-alive comments;
    /// `None` when the stream ended.
    pub(crate) async fn try_next(&mut self) -> Option<(String, Value)> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(n) = line.strip_prefix("event:") {
                        name = Some(n.trim().to_owned());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if let Some(name) = name {
                    return Some((name, serde_json::from_str(&data).unwrap()));
                }
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), self.body.next())
                .await
                .expect("an event within 20 s")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }

    pub(crate) async fn next(&mut self) -> (String, Value) {
        self.try_next().await.expect("the stream ended")
    }
}

#[tokio::test]
async fn events_show_batches_filling_and_flushing_then_end_at_shutdown() {
    let flock = Flock::builder().no_trace().build();
    payments_agent(&flock, "payments", 2, None);
    let served = Served::open(flock.clone()).await;
    let mut events = Stream::open(&served, None).await;
    served.post("/api/v1/artifacts", payment(1)).await;
    served.post("/api/v1/artifacts", payment(2)).await;
    let mut seen = Vec::new();
    while seen.len() < 7 {
        seen.push(events.next().await);
    }
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "artifact_published",
            "batch_item_added",
            "artifact_published",
            "batch_item_added",
            "batch_flushed",
            "run_started",
            "artifact_published",
        ]
    );
    let first_added = &seen[1].1;
    assert_eq!(
        (
            first_added["collected"].as_u64(),
            first_added["target"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert!(first_added["time_left_ms"].as_u64().unwrap() <= 3_600_000);
    let flushed = &seen[4].1;
    assert_eq!(
        (flushed["reason"].as_str(), flushed["size"].as_u64()),
        (Some("size"), Some(2))
    );
    let (kind, finished) = events.next().await;
    assert_eq!(
        (kind.as_str(), &finished["agent"]),
        ("run_finished", &serde_json::json!("payments"))
    );

    // The open stream does not hold the graceful shutdown up: it ends.
    let stopping = tokio::spawn(served.stop());
    assert!(
        events.try_next().await.is_none(),
        "the stream ends at shutdown"
    );
    stopping.await.unwrap();
}
