//! The `spans` table (Flock's schema) and the conversion of OpenTelemetry spans into
//! its rows, built column by column as an Arrow record batch for DuckDB's appender.
//!
//! The table has Flock's columns and no index or key: DuckDB rewrites an index
//! whole at every checkpoint, so indexes made each export cost time that grew with
//! the file (ADR 0007). Span ids are unique by construction (each span is written
//! once, in one transaction), and DuckDB's zone maps keep scans by `start_time`,
//! `name` or `trace_id` fast without them. A file created with Flock's indexes keeps
//! them and still works, more slowly.

use std::sync::Arc;

use duckdb::arrow::{
    array::{ArrayRef, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder},
    datatypes::{Field, Schema},
    record_batch::RecordBatch,
};
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;

use crate::json::{self, unix_nanos};

/// Creates the `spans` table if missing, in the database attached as `catalog`.
pub(crate) fn create_table(catalog: &str) -> String {
    format!("CREATE TABLE IF NOT EXISTS {catalog}.spans {COLUMNS_DDL}")
}

/// A fresh, empty staging table in the writer's in-memory database, of the same
/// columns: rows are converted and checked (JSON) there, before the file is locked.
pub(crate) fn create_staging(table: &str) -> String {
    format!("CREATE OR REPLACE TEMP TABLE {table} {COLUMNS_DDL}")
}

/// The columns of `spans`, Flock's schema.
///
/// The compression of the columns whose content is known is chosen here rather
/// than by DuckDB's analysis at each checkpoint, which tries every method on
/// every column and was a third of the writer's time (ADR 0007): random hex ids
/// compress with FSST only, and names, kinds, codes and the resource repeat
/// (dictionary). `attributes`, `events`, `links` and `status_description` vary
/// with the application and are left to the analysis. Files written before keep
/// their table as it was.
const COLUMNS_DDL: &str = "(
    trace_id VARCHAR NOT NULL USING COMPRESSION fsst,
    span_id VARCHAR NOT NULL USING COMPRESSION fsst,
    parent_id VARCHAR USING COMPRESSION fsst,
    name VARCHAR NOT NULL USING COMPRESSION dictionary,
    service VARCHAR USING COMPRESSION dictionary,
    operation VARCHAR USING COMPRESSION dictionary,
    kind VARCHAR USING COMPRESSION dictionary,
    start_time BIGINT NOT NULL,
    end_time BIGINT NOT NULL,
    duration_ms DOUBLE NOT NULL,
    status_code VARCHAR NOT NULL USING COMPRESSION dictionary,
    status_description VARCHAR,
    attributes JSON,
    events JSON,
    links JSON,
    resource JSON USING COMPRESSION dictionary,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)";

/// The table's columns, in order; the writer fills all of them.
const COLUMNS: [&str; 17] = [
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "service",
    "operation",
    "kind",
    "start_time",
    "end_time",
    "duration_ms",
    "status_code",
    "status_description",
    "attributes",
    "events",
    "links",
    "resource",
    "created_at",
];

/// Rows of `spans` under construction, one Arrow builder per column.
pub(crate) struct Rows {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_id: StringBuilder,
    name: StringBuilder,
    service: StringBuilder,
    operation: StringBuilder,
    kind: StringBuilder,
    start_time: Int64Builder,
    end_time: Int64Builder,
    duration_ms: Float64Builder,
    status_code: StringBuilder,
    status_description: StringBuilder,
    attributes: StringBuilder,
    events: StringBuilder,
    links: StringBuilder,
    resource: StringBuilder,
    created_at: TimestampMicrosecondBuilder,
}

impl Rows {
    /// Room for `capacity` rows before the builders grow.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let strings =
            |bytes_per_row: usize| StringBuilder::with_capacity(capacity, capacity * bytes_per_row);
        Rows {
            trace_id: strings(32),
            span_id: strings(16),
            parent_id: strings(16),
            name: strings(16),
            service: strings(8),
            operation: strings(8),
            kind: strings(8),
            start_time: Int64Builder::with_capacity(capacity),
            end_time: Int64Builder::with_capacity(capacity),
            duration_ms: Float64Builder::with_capacity(capacity),
            status_code: strings(5),
            status_description: strings(0),
            attributes: strings(160),
            events: strings(2),
            links: strings(2),
            resource: strings(32),
            created_at: TimestampMicrosecondBuilder::with_capacity(capacity),
        }
    }

    /// Adds `span` as a row; `resource` is the resource's JSON, `created_at` the
    /// write time in microseconds since the epoch.
    pub(crate) fn push(&mut self, span: &SpanData, resource: &str, created_at: i64) {
        // Writing into an Arrow string builder cannot fail; `append_value("")`
        // ends the value written so far.
        let context = &span.span_context;
        append_hex(&mut self.trace_id, &context.trace_id().to_bytes());
        append_hex(&mut self.span_id, &context.span_id().to_bytes());
        if span.parent_span_id == SpanId::INVALID {
            self.parent_id.append_null();
        } else {
            append_hex(&mut self.parent_id, &span.parent_span_id.to_bytes());
        }
        let name: &str = &span.name;
        self.name.append_value(name);
        let (service, operation) = split_name(name);
        self.service.append_option(service);
        self.operation.append_option(operation);
        self.kind.append_value(kind_name(&span.span_kind));
        let start_time = unix_nanos(span.start_time);
        let end_time = unix_nanos(span.end_time);
        self.start_time.append_value(start_time);
        self.end_time.append_value(end_time);
        // Nanoseconds to milliseconds; a clock step backwards gives 0, not a negative duration.
        self.duration_ms
            .append_value(end_time.saturating_sub(start_time).max(0) as f64 / 1e6);
        match &span.status {
            Status::Unset => {
                self.status_code.append_value("UNSET");
                self.status_description.append_null();
            }
            Status::Ok => {
                self.status_code.append_value("OK");
                self.status_description.append_null();
            }
            Status::Error { description } => {
                self.status_code.append_value("ERROR");
                self.status_description
                    .append_option(Some(description.as_ref()).filter(|d| !d.is_empty()));
            }
        }
        let _ = json::write_attributes(&mut self.attributes, &span.attributes);
        self.attributes.append_value("");
        let _ = json::write_events(&mut self.events, &span.events);
        self.events.append_value("");
        let _ = json::write_links(&mut self.links, &span.links);
        self.links.append_value("");
        self.resource.append_value(resource);
        self.created_at.append_value(created_at);
    }

    /// The rows pushed so far as one record batch; the builders start over empty.
    pub(crate) fn finish(&mut self) -> RecordBatch {
        let columns: [ArrayRef; 17] = [
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_id.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.operation.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start_time.finish()),
            Arc::new(self.end_time.finish()),
            Arc::new(self.duration_ms.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_description.finish()),
            Arc::new(self.attributes.finish()),
            Arc::new(self.events.finish()),
            Arc::new(self.links.finish()),
            Arc::new(self.resource.finish()),
            Arc::new(self.created_at.finish()),
        ];
        let fields: Vec<Field> = COLUMNS
            .iter()
            .zip(&columns)
            .map(|(name, column)| Field::new(*name, column.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into())
            .expect("every column has one value per row")
    }
}

/// `spans` as the writer writes them, in record batches of at most `chunk` rows
/// (at least one); `resource` is the resource's JSON, `created_at` the write time
/// in microseconds since the epoch. Benchmarks hand these to DuckDB's appender
/// alone, to compare the writer with it on the same rows.
pub fn record_batches(
    spans: &[SpanData],
    resource: &str,
    created_at: i64,
    chunk: usize,
) -> Vec<RecordBatch> {
    let chunk = chunk.max(1);
    let mut rows = Rows::with_capacity(chunk);
    spans
        .chunks(chunk)
        .map(|spans| {
            for span in spans {
                rows.push(span, resource, created_at);
            }
            rows.finish()
        })
        .collect()
}

/// Appends `bytes` in lowercase hex (an id: at most 16 bytes), as OpenTelemetry
/// displays ids, without the formatting machinery (a tenth of the conversion's time).
fn append_hex(builder: &mut StringBuilder, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0_u8; 32];
    let n = bytes.len().min(16);
    for (i, byte) in bytes[..n].iter().enumerate() {
        hex[2 * i] = DIGITS[usize::from(byte >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(byte & 0x0f)];
    }
    builder.append_value(std::str::from_utf8(&hex[..2 * n]).expect("hex digits are ASCII"));
}

/// `batch.flush` gives service `batch` and operation `flush`; a name without a dot
/// is the service alone.
pub(crate) fn split_name(name: &str) -> (Option<&str>, Option<&str>) {
    fn non_empty(s: &str) -> Option<&str> {
        (!s.is_empty()).then_some(s)
    }
    match name.split_once('.') {
        Some((service, operation)) => (non_empty(service), non_empty(operation)),
        None => (non_empty(name), None),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowercase_hex_as_opentelemetry_displays_them() {
        let trace_id =
            opentelemetry::trace::TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        let span_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        let mut builder = StringBuilder::new();
        append_hex(&mut builder, &trace_id.to_bytes());
        append_hex(&mut builder, &span_id.to_bytes());
        let column = builder.finish();
        assert_eq!(column.value(0), trace_id.to_string());
        assert_eq!(column.value(1), span_id.to_string());
        assert_eq!(column.value(1), "00f067aa0ba902b7");
    }

    #[test]
    fn names_split_at_the_first_dot() {
        assert_eq!(split_name("batch.flush"), (Some("batch"), Some("flush")));
        assert_eq!(
            split_name("agent.run.evaluate"),
            (Some("agent"), Some("run.evaluate"))
        );
        assert_eq!(split_name("publish"), (Some("publish"), None));
        assert_eq!(split_name("batch."), (Some("batch"), None));
    }

    #[test]
    fn times_are_nanoseconds_since_the_epoch() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(unix_nanos(t), 1_700_000_000_123_456_789);
        let before = std::time::UNIX_EPOCH - std::time::Duration::from_nanos(5);
        assert_eq!(unix_nanos(before), -5);
    }
}
