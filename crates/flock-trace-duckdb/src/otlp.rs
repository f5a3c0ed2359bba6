//! The optional OTLP exporter (feature `otlp`): the same spans, also sent to a
//! collector such as Jaeger or Tempo over OTLP/HTTP.

use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};

use crate::TraceError;

/// An OTLP/HTTP (protobuf) span exporter for `endpoint`, using a blocking HTTP
/// client, which suits the batch processor's own thread.
pub(crate) fn exporter(endpoint: &str) -> Result<SpanExporter, TraceError> {
    SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| TraceError::Otlp {
            endpoint: endpoint.to_owned(),
            source,
        })
}
