//! [`DuckDbProcessor`]: the OpenTelemetry span processor that queues finished spans
//! in the bounded buffer and owns the writer thread that empties it.

use std::{
    sync::{Arc, Mutex},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use opentelemetry::Context;
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{Span, SpanData, SpanProcessor},
};

use crate::{
    TraceError,
    buffer::{Buffer, Counts, WriterState},
    json::resource_json,
    lock,
    store::TraceFile,
    writer::{Settings, Writer},
};

/// Queues finished spans for the DuckDB writer thread. Clones share one buffer
/// and one thread: the pipeline keeps a clone to flush, stop and count.
#[derive(Debug, Clone)]
pub(crate) struct DuckDbProcessor {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    buffer: Arc<Buffer<SpanData>>,
    resource: Arc<Mutex<Arc<str>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

// === impl DuckDbProcessor ===

impl DuckDbProcessor {
    /// Starts the writer thread for `file`, with a buffer of `capacity` spans.
    pub(crate) fn start(
        file: TraceFile,
        capacity: usize,
        settings: Settings,
        ttl_cutoff: Option<i64>,
    ) -> Result<Self, TraceError> {
        let path = file.path().to_owned();
        let buffer = Arc::new(Buffer::new(capacity, settings.batch_size));
        let resource: Arc<Mutex<Arc<str>>> = Arc::new(Mutex::new(Arc::from("{}")));
        let writer = Writer::new(buffer.clone(), file, settings, resource.clone(), ttl_cutoff);
        let thread = thread::Builder::new()
            .name("flock-traces".to_owned())
            .spawn(move || writer.run())
            .map_err(|source| TraceError::Thread {
                path: path.clone(),
                source,
            })?;
        Ok(DuckDbProcessor {
            shared: Arc::new(Shared {
                buffer,
                resource,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Writes every span queued so far, waiting at most `timeout`; returns
    /// whether all of them are settled (written or counted as failed).
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        self.shared.buffer.flush(timeout)
    }

    /// Stops the writer: spans ending from now on are counted as late, pending
    /// ones are written (waiting for a locked file until `timeout` has passed), the
    /// file is checkpointed, and the thread is joined. Idempotent.
    pub(crate) fn stop(&self, timeout: Duration) {
        self.shared.buffer.close(Instant::now() + timeout);
        let thread = lock(&self.shared.thread).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            // The writer panicked: nothing will write the pending spans.
            self.shared
                .buffer
                .fail_pending("the trace writer thread panicked".to_owned());
            self.shared.buffer.set_writer(WriterState::Stopped);
        }
    }

    /// The counters so far, the last write error, and the buffer's capacity.
    pub(crate) fn counts(&self) -> (Counts, Option<String>) {
        self.shared.buffer.counts()
    }

    /// The buffer's capacity in spans.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.buffer.capacity()
    }

    /// Spans queued and not written yet (waiting, or being written).
    pub(crate) fn unsettled(&self) -> u64 {
        self.shared.buffer.unsettled()
    }
}

impl SpanProcessor for DuckDbProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.shared.buffer.push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        if self.flush(Duration::from_secs(5)) {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(Duration::from_secs(5)))
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.stop(timeout);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *lock(&self.shared.resource) = Arc::from(resource_json(resource));
    }
}
