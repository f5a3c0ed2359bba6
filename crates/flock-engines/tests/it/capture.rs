//! A tracing layer that keeps span fields and events as text, to check what the LLM
//! engine records without timing anything.

use std::{fmt, sync::Arc};

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

impl Captured {
    /// Installs the layer for the current thread until the guard drops.
    pub(crate) fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::registry().with(CaptureLayer(self.clone()));
        tracing::subscriber::set_default(subscriber)
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

struct CaptureLayer(Captured);

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
        let mut out = self.0.0.lock();
        attrs.record(&mut Visitor {
            name: attrs.metadata().name(),
            out: &mut out,
        });
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut out = self.0.0.lock();
        values.record(&mut Visitor {
            name: span.name(),
            out: &mut out,
        });
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut out = self.0.0.lock();
        event.record(&mut Visitor {
            name: "event",
            out: &mut out,
        });
    }
}
