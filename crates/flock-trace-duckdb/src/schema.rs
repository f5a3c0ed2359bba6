//! The `spans` table (Flock's schema) and the conversion of an OpenTelemetry span into one row.
//!
//! The conversion is pure so the exporter can do it before it opens the file,
//! keeping the time it holds the file lock to the insert itself.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::{Array, KeyValue, Value, trace::SpanKind, trace::Status};
use opentelemetry_sdk::{Resource, trace::SpanData};
use serde_json::{Map, Number, Value as Json};

/// Creates the `spans` table and its indexes if missing (same names as Flock's, so
/// a file written by either is usable by both).
pub(crate) const CREATE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spans (
    trace_id VARCHAR NOT NULL,
    span_id VARCHAR PRIMARY KEY,
    parent_id VARCHAR,
    name VARCHAR NOT NULL,
    service VARCHAR,
    operation VARCHAR,
    kind VARCHAR,
    start_time BIGINT NOT NULL,
    end_time BIGINT NOT NULL,
    duration_ms DOUBLE NOT NULL,
    status_code VARCHAR NOT NULL,
    status_description VARCHAR,
    attributes JSON,
    events JSON,
    links JSON,
    resource JSON,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_trace_id ON spans(trace_id);
CREATE INDEX IF NOT EXISTS idx_service ON spans(service);
CREATE INDEX IF NOT EXISTS idx_start_time ON spans(start_time);
CREATE INDEX IF NOT EXISTS idx_name ON spans(name);
CREATE INDEX IF NOT EXISTS idx_created_at ON spans(created_at);
";

/// The columns the exporter fills, in [`SpanRow`] order; `created_at` takes its default.
pub(crate) const COLUMNS: &str = "trace_id, span_id, parent_id, name, service, operation, kind, \
     start_time, end_time, duration_ms, status_code, status_description, \
     attributes, events, links, resource";

/// A staging table without constraints: the appender fills it, then one
/// `INSERT ... ON CONFLICT DO NOTHING` moves the batch into `spans`, so a span
/// exported twice (a retried batch) is kept once instead of failing the batch.
pub(crate) const CREATE_STAGING: &str = "
CREATE OR REPLACE TEMP TABLE spans_staging (
    trace_id VARCHAR, span_id VARCHAR, parent_id VARCHAR, name VARCHAR,
    service VARCHAR, operation VARCHAR, kind VARCHAR,
    start_time BIGINT, end_time BIGINT, duration_ms DOUBLE,
    status_code VARCHAR, status_description VARCHAR,
    attributes VARCHAR, events VARCHAR, links VARCHAR, resource VARCHAR
)";

/// One row of `spans` (without `resource`, which is the same for a whole batch).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpanRow {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) parent_id: Option<String>,
    pub(crate) name: String,
    pub(crate) service: Option<String>,
    pub(crate) operation: Option<String>,
    pub(crate) kind: &'static str,
    pub(crate) start_time: i64,
    pub(crate) end_time: i64,
    pub(crate) duration_ms: f64,
    pub(crate) status_code: &'static str,
    pub(crate) status_description: Option<String>,
    pub(crate) attributes: String,
    pub(crate) events: String,
    pub(crate) links: String,
}

impl SpanRow {
    pub(crate) fn from_span(span: &SpanData) -> Self {
        let name = span.name.to_string();
        let (service, operation) = split_name(&name);
        let start_time = unix_nanos(span.start_time);
        let end_time = unix_nanos(span.end_time);
        let (status_code, status_description) = match &span.status {
            Status::Unset => ("UNSET", None),
            Status::Ok => ("OK", None),
            Status::Error { description } => (
                "ERROR",
                Some(description.to_string()).filter(|d| !d.is_empty()),
            ),
        };
        let parent_id = (span.parent_span_id != opentelemetry::trace::SpanId::INVALID)
            .then(|| span.parent_span_id.to_string());
        let events = span
            .events
            .iter()
            .map(|event| {
                let mut object = Map::new();
                object.insert("name".into(), Json::String(event.name.to_string()));
                object.insert("timestamp".into(), unix_nanos(event.timestamp).into());
                object.insert("attributes".into(), attributes_json(&event.attributes));
                Json::Object(object)
            })
            .collect();
        let links = span
            .links
            .iter()
            .map(|link| {
                let mut object = Map::new();
                let context = &link.span_context;
                object.insert("trace_id".into(), context.trace_id().to_string().into());
                object.insert("span_id".into(), context.span_id().to_string().into());
                object.insert("attributes".into(), attributes_json(&link.attributes));
                Json::Object(object)
            })
            .collect();
        SpanRow {
            trace_id: span.span_context.trace_id().to_string(),
            span_id: span.span_context.span_id().to_string(),
            parent_id,
            service,
            operation,
            kind: kind_name(&span.span_kind),
            start_time,
            end_time,
            // Nanoseconds to milliseconds; a clock step backwards gives 0, not a negative duration.
            duration_ms: end_time.saturating_sub(start_time).max(0) as f64 / 1e6,
            status_code,
            status_description,
            attributes: attributes_json(&span.attributes).to_string(),
            events: Json::Array(events).to_string(),
            links: Json::Array(links).to_string(),
            name,
        }
    }
}

/// `batch.flush` gives service `batch` and operation `flush`; a name without a dot
/// is the service alone.
pub(crate) fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    match name.split_once('.') {
        Some((service, operation)) => (non_empty(service), non_empty(operation)),
        None => (non_empty(name), None),
    }
}

/// The resource attributes as one JSON object, e.g. `{"service.name":"flock"}`.
pub(crate) fn resource_json(resource: &Resource) -> String {
    let object: Map<String, Json> = resource
        .iter()
        .map(|(key, value)| (key.to_string(), value_json(value)))
        .collect();
    Json::Object(object).to_string()
}

/// Nanoseconds since the Unix epoch, saturating at the ends of `i64` (year 1677 and 2262).
pub(crate) fn unix_nanos(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "CLIENT",
        SpanKind::Server => "SERVER",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
    }
}

/// Attributes as a JSON object keeping their types, so `attributes->'$.batch_size'`
/// is the number 25 and not the string "25".
fn attributes_json(attributes: &[KeyValue]) -> Json {
    Json::Object(
        attributes
            .iter()
            .map(|kv| (kv.key.to_string(), value_json(&kv.value)))
            .collect(),
    )
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I64(i) => Json::from(*i),
        Value::F64(f) => float_json(*f),
        Value::String(s) => Json::String(s.to_string()),
        Value::Array(Array::Bool(items)) => items.iter().copied().map(Json::Bool).collect(),
        Value::Array(Array::I64(items)) => items.iter().copied().map(Json::from).collect(),
        Value::Array(Array::F64(items)) => items.iter().copied().map(float_json).collect(),
        Value::Array(Array::String(items)) => {
            items.iter().map(|s| Json::String(s.to_string())).collect()
        }
        // `Value` and `Array` are non-exhaustive; keep anything new as its display form.
        other => Json::String(other.to_string()),
    }
}

/// JSON has no NaN or infinity; those keep their Rust spelling as a string rather than
/// turning into `null`.
fn float_json(f: f64) -> Json {
    Number::from_f64(f).map_or_else(|| Json::String(f.to_string()), Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_first_dot() {
        let split = |name| split_name(name);
        assert_eq!(
            split("batch.flush"),
            (Some("batch".into()), Some("flush".into()))
        );
        assert_eq!(
            split("agent.run.evaluate"),
            (Some("agent".into()), Some("run.evaluate".into()))
        );
        assert_eq!(split("publish"), (Some("publish".into()), None));
        assert_eq!(split("batch."), (Some("batch".into()), None));
    }

    #[test]
    fn values_keep_their_json_types() {
        let json = attributes_json(&[
            KeyValue::new("batch_size", 25_i64),
            KeyValue::new("efficiency", 0.5),
            KeyValue::new("flush_reason", "size"),
            KeyValue::new("ok", true),
            KeyValue::new("nan", f64::NAN),
            KeyValue::new("sizes", Value::Array(Array::I64(vec![1, 2]))),
        ]);
        assert_eq!(
            json.to_string(),
            r#"{"batch_size":25,"efficiency":0.5,"flush_reason":"size","nan":"NaN","ok":true,"sizes":[1,2]}"#
        );
    }

    #[test]
    fn times_are_nanoseconds_since_the_epoch() {
        let t = UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(unix_nanos(t), 1_700_000_000_123_456_789);
        let before = UNIX_EPOCH - std::time::Duration::from_nanos(5);
        assert_eq!(unix_nanos(before), -5);
    }
}
