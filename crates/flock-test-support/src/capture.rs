//! A tracing layer that keeps spans and events as text, so tests can check what the
//! code under test traced (names, fields, levels) without timing anything.
//!
//! One global subscriber serves the whole test binary: with per-test (thread-local)
//! subscribers, tracing's per-callsite interest cache, shared by tests running in
//! parallel, can disable a callsite for the test that wants it. The layer sends each
//! record to the capture the current thread installed, if any: a `#[tokio::test]`,
//! or a test on tokio's paused clock, runs its tasks on its own thread.
//!
//! ```
//! use flock_test_support::Capture;
//!
//! let (captured, _guard) = Capture::install();
//! let span = tracing::info_span!("job", id = 7, state = tracing::field::Empty);
//! span.record("state", "done");
//! tracing::warn!(retry_in_ms = 10, "slow");
//!
//! assert_eq!(captured.spans("job")[0].field("id"), "7");
//! assert_eq!(captured.values("job", "state"), ["done"]);
//! assert_eq!(captured.event_values("retry_in_ms"), ["10"]);
//! assert_eq!(captured.events(tracing::Level::WARN, "slow").len(), 1);
//! ```

use std::{
    cell::RefCell,
    collections::BTreeMap,
    fmt,
    sync::{Arc, Once},
};

use parking_lot::Mutex;
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{Layer, layer::Context, prelude::*, registry::LookupSpan};

/// What a [`Record`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A span was created, with the fields it had then.
    Span,
    /// Fields recorded on an existing span later (`Span::record`).
    Update,
    /// An event; its message is the field `message`.
    Event,
}

/// One span creation, span update or event, its fields as text.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// What it is.
    pub kind: RecordKind,
    /// The span's name (also for an update); for an event, its callsite's name.
    pub name: &'static str,
    /// The span's or event's level.
    pub level: Level,
    /// The fields given values, each as text (`Debug` for what is not a string).
    pub fields: BTreeMap<&'static str, String>,
}

impl Record {
    /// The value of `name`, or `""` when it has none.
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

/// Which records a capture keeps, by their callsite.
type Keep = fn(&Metadata<'_>) -> bool;

/// The records one test captured, in order. Cheap to clone: clones share them.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<Record>>>);

thread_local! {
    static CURRENT: RefCell<Option<(Capture, Keep)>> = const { RefCell::new(None) };
}

/// Stops capturing on this thread when dropped.
#[must_use = "capturing stops when the guard drops"]
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

impl Capture {
    /// Captures every span and event of the current thread until the guard drops.
    pub fn install() -> (Self, CaptureGuard) {
        Self::install_where(|_| true)
    }

    /// Captures the spans and events of the current thread whose callsite `keep`
    /// accepts, until the guard drops: tests that trace a lot keep only what they
    /// check.
    pub fn install_where(keep: fn(&Metadata<'_>) -> bool) -> (Self, CaptureGuard) {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(CaptureLayer);
            // A test of the binary may have installed another global subscriber first;
            // then nothing reaches the capture, and the assertions on it say so.
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        let capture = Self::default();
        CURRENT.with(|c| *c.borrow_mut() = Some((capture.clone(), keep)));
        (capture, CaptureGuard(()))
    }

    /// Every record, in order.
    pub fn records(&self) -> Vec<Record> {
        self.0.lock().clone()
    }

    /// The spans named `name`, with their fields at creation, in order.
    pub fn spans(&self, name: &str) -> Vec<Record> {
        self.filtered(|r| r.kind == RecordKind::Span && r.name == name)
    }

    /// The events at `level` whose message contains `text`, in order.
    pub fn events(&self, level: Level, text: &str) -> Vec<Record> {
        self.filtered(|r| {
            r.kind == RecordKind::Event && r.level == level && r.field("message").contains(text)
        })
    }

    /// The values `field` took on spans named `name`, at creation and recorded
    /// later, in order.
    pub fn values(&self, name: &str, field: &str) -> Vec<String> {
        self.field_values(field, |r| r.kind != RecordKind::Event && r.name == name)
    }

    /// The values `field` took on events, in order.
    pub fn event_values(&self, field: &str) -> Vec<String> {
        self.field_values(field, |r| r.kind == RecordKind::Event)
    }

    /// Every record as text, one field a line, for checking that something is
    /// absent.
    pub fn all_text(&self) -> String {
        let mut text = String::new();
        for record in self.0.lock().iter() {
            for (field, value) in &record.fields {
                text.push_str(&format!("{} {field}={value}\n", record.name));
            }
        }
        text
    }

    fn filtered(&self, keep: impl Fn(&Record) -> bool) -> Vec<Record> {
        self.0.lock().iter().filter(|r| keep(r)).cloned().collect()
    }

    fn field_values(&self, field: &str, keep: impl Fn(&Record) -> bool) -> Vec<String> {
        self.0
            .lock()
            .iter()
            .filter(|r| keep(r))
            .filter_map(|r| r.fields.get(field).cloned())
            .collect()
    }
}

/// Adds a record to the current thread's capture, if it keeps `metadata`'s.
fn capture(kind: RecordKind, metadata: &'static Metadata<'static>, visit: impl FnOnce(&mut Text)) {
    CURRENT.with(|current| {
        let current = current.borrow();
        let Some((capture, keep)) = current.as_ref() else {
            return;
        };
        if !keep(metadata) {
            return;
        }
        let mut fields = Text(BTreeMap::new());
        visit(&mut fields);
        capture.0.lock().push(Record {
            kind,
            name: metadata.name(),
            level: *metadata.level(),
            fields: fields.0,
        });
    });
}

struct Text(BTreeMap<&'static str, String>);

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

/// Sends every span and event to the current thread's [`Capture`].
struct CaptureLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CaptureLayer {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, _id: &span::Id, _ctx: Context<'_, S>) {
        capture(RecordKind::Span, attrs.metadata(), |text| {
            attrs.record(text)
        });
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        capture(RecordKind::Update, span.metadata(), |text| {
            values.record(text)
        });
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        capture(RecordKind::Event, event.metadata(), |text| {
            event.record(text)
        });
    }
}
