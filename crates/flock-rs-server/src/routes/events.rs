//! Live events: `GET /api/v1/events` streams the flock's events as Server-Sent
//! Events, filtered by the viewer's visibility; and the recorder task that keeps
//! the flush history and the event-driven metrics.

use std::{convert::Infallible, sync::Arc};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use flock::FlockEvent;
use futures::{Stream, StreamExt, stream};
use tokio::sync::{
    broadcast::{self, error::RecvError},
    watch,
};

use crate::{
    auth::Viewer,
    history::{FlushHistory, FlushRecord},
    metrics::Metrics,
    state::AppState,
    view::millis,
};

/// The name of an event (its JSON `type`): `artifact_published`,
/// `batch_item_added`, `batch_flushed`, `run_started`, `run_finished`,
/// `run_failed`, `join_completed`, `join_discarded`.
fn kind(event: &FlockEvent) -> &'static str {
    match event {
        FlockEvent::ArtifactPublished { .. } => "artifact_published",
        FlockEvent::BatchItemAdded { .. } => "batch_item_added",
        FlockEvent::BatchFlushed { .. } => "batch_flushed",
        FlockEvent::RunStarted { .. } => "run_started",
        FlockEvent::RunFinished { .. } => "run_finished",
        FlockEvent::RunFailed { .. } => "run_failed",
        FlockEvent::JoinCompleted { .. } => "join_completed",
        FlockEvent::JoinDiscarded { .. } => "join_discarded",
        _ => "event",
    }
}

/// `GET /api/v1/events`: one SSE event per flock event the viewer may see
/// (`event:` is its kind, `data:` its JSON); `lagged` (`{"missed": n}`) when this
/// stream fell behind and lost events. Ends when the server shuts down.
pub(super) async fn stream(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = state.flock.events();
    let closing = state.closing.clone();
    let flock = state.flock.clone();
    let stream = stream::unfold(
        (events, closing, flock, viewer),
        |(mut events, mut closing, flock, viewer)| async move {
            loop {
                if *closing.borrow() {
                    return None;
                }
                let received = tokio::select! {
                    received = events.recv() => received,
                    _ = closing.changed() => return None,
                };
                let event = match received {
                    Ok(event) => {
                        let now = flock.now();
                        let created = match &event {
                            FlockEvent::ArtifactPublished { created_at, .. } => *created_at,
                            _ => now,
                        };
                        if !viewer.sees(event.visibility(), created, now) {
                            continue;
                        }
                        Event::default().event(kind(&event)).json_data(&event)
                    }
                    Err(RecvError::Lagged(missed)) => Event::default()
                        .event("lagged")
                        .json_data(serde_json::json!({ "missed": missed })),
                    Err(RecvError::Closed) => return None,
                };
                // Serializing a flock event cannot fail; skip it if it ever did.
                if let Ok(event) = event {
                    return Some((Ok(event), (events, closing, flock, viewer)));
                }
            }
        },
    );
    Sse::new(stream.boxed()).keep_alive(KeepAlive::default())
}

/// Keeps the flush history and the event-driven metrics from the flock's live
/// events, until the flock's event channel closes or `closed` turns true.
pub(crate) async fn record(
    mut events: broadcast::Receiver<FlockEvent>,
    history: Arc<FlushHistory>,
    metrics: Arc<Metrics>,
    mut closed: watch::Receiver<bool>,
) {
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            _ = closed.changed() => return,
        };
        match received {
            Ok(event) => {
                metrics.observe(&event);
                if let FlockEvent::BatchFlushed {
                    at,
                    agent,
                    subscription_index,
                    key,
                    reason,
                    size,
                    efficiency,
                    wait,
                    visibility,
                } = event
                {
                    history.record(FlushRecord {
                        seq: 0,
                        at,
                        agent,
                        subscription_index,
                        key,
                        reason,
                        size,
                        efficiency,
                        wait_ms: millis(wait),
                        visibility,
                    });
                }
            }
            Err(RecvError::Lagged(missed)) => metrics.lagged(missed),
            Err(RecvError::Closed) => return,
        }
    }
}
