//! A tracing layer that keeps span fields and events as text, to check what the LLM
//! engine records without timing anything.
//!
//! One global subscriber is installed for the whole test binary: with per-test
//! (thread-local) subscribers, tracing's per-callsite interest cache, shared by
//! parallel tests, can disable a callsite for the test that wants it. Records go to
//! the capture the current thread installed (each `#[tokio::test]` runs its tasks on
//! its own thread).

use std::{
    cell::RefCell,
    fmt,
    sync::{Arc, Once},
};

use parking_lot::Mutex;
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{Layer, layer::Context, prelude::*, registry::LookupSpan};

/// One recorded field: the span's or event's name, the field, its value as text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) field: String,
    pub(crate) value: String,
}

#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<Record>>>);

thread_local! {
    static CURRENT: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Stops capturing on this thread when dropped.
pub(crate) struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

impl Captured {
    /// Captures what the current thread records until the guard drops.
    pub(crate) fn install(&self) -> CaptureGuard {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(CaptureLayer);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        CaptureGuard
    }

    /// The values `field` took in spans or events named `name`, in order.
    pub(crate) fn values(&self, name: &str, field: &str) -> Vec<String> {
        self.0
            .lock()
            .iter()
            .filter(|r| r.name == name && r.field == field)
            .map(|r| r.value.clone())
            .collect()
    }

    /// Every recorded value, for checking that something is absent.
    pub(crate) fn all_text(&self) -> String {
        self.0
            .lock()
            .iter()
            .map(|r| format!("{} {}={}\n", r.name, r.field, r.value))
            .collect()
    }
}

struct CaptureLayer;

/// Runs `f` with the current thread's capture, if any.
fn with_current(f: impl FnOnce(&mut Vec<Record>)) {
    CURRENT.with(|c| {
        if let Some(captured) = c.borrow().as_ref() {
            f(&mut captured.0.lock());
        }
    });
}

struct Visitor<'a> {
    name: &'a str,
    out: &'a mut Vec<Record>,
}

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.out.push(Record {
            name: self.name.to_owned(),
            field: field.name().to_owned(),
            value: format!("{value:?}"),
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.out.push(Record {
            name: self.name.to_owned(),
            field: field.name().to_owned(),
            value: value.to_owned(),
        });
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CaptureLayer {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, _id: &span::Id, _ctx: Context<'_, S>) {
        with_current(|out| {
            attrs.record(&mut Visitor {
                name: attrs.metadata().name(),
                out,
            });
        });
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        with_current(|out| {
            values.record(&mut Visitor {
                name: span.name(),
                out,
            });
        });
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        with_current(|out| {
            event.record(&mut Visitor { name: "event", out });
        });
    }
}
