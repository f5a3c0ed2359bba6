//! The optional OTLP exporter (feature `otlp`): spans sent to a collector such as
//! Jaeger or Tempo over OTLP/HTTP, configured by code or by the standard
//! `OTEL_EXPORTER_OTLP_*` variables. Works with or without the DuckDB file.

use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};

use crate::TraceError;

const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
const ENDPOINTS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];
const PROTOCOLS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
];

/// An OTLP/HTTP (protobuf) span exporter for `endpoint`, or for the endpoint the
/// environment names (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else `http://localhost:4318/v1/traces`);
/// headers, timeout and compression come from the environment too. A blocking
/// HTTP client suits the batch processor's own thread.
pub(crate) fn exporter(endpoint: Option<&str>) -> Result<SpanExporter, TraceError> {
    let builder = SpanExporter::builder().with_http();
    let builder = match endpoint {
        Some(endpoint) => builder.with_endpoint(endpoint),
        None => builder,
    };
    builder.build().map_err(|source| TraceError::Otlp {
        endpoint: endpoint.unwrap_or("from the environment").to_owned(),
        source,
    })
}

/// Whether the standard variables ask for OTLP export: `OTEL_TRACES_EXPORTER`
/// lists `otlp`, or it is unset and an OTLP endpoint variable is set.
///
/// # Errors
///
/// [`TraceError::InvalidEnv`] when OTLP is asked for with a protocol other than
/// `http/protobuf` (the only one built in).
pub(crate) fn enabled_by(var: &impl Fn(&str) -> Option<String>) -> Result<bool, TraceError> {
    let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    let enabled = match set(TRACES_EXPORTER) {
        Some(list) => list.split(',').any(|name| name.trim() == "otlp"),
        None => ENDPOINTS.iter().any(|name| set(name).is_some()),
    };
    // The signal-specific variable wins over the general one.
    let protocol = PROTOCOLS
        .iter()
        .find_map(|name| set(name).map(|value| (*name, value)));
    if enabled
        && let Some((name, value)) = protocol
        && value.trim() != "http/protobuf"
    {
        return Err(TraceError::InvalidEnv {
            var: name,
            value,
            reason: "flock exports OTLP over http/protobuf only",
        });
    }
    Ok(enabled)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn enabled(vars: &[(&str, &str)]) -> Result<bool, TraceError> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        enabled_by(&|name: &str| vars.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn the_standard_variables_turn_otlp_on() {
        assert!(!enabled(&[]).unwrap());
        assert!(enabled(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]).unwrap());
        assert!(enabled(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")]).unwrap());
        assert!(enabled(&[(TRACES_EXPORTER, "console, otlp")]).unwrap());
        let none = [
            (TRACES_EXPORTER, "none"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ];
        assert!(!enabled(&none).unwrap());
    }

    #[test]
    fn only_http_protobuf_is_accepted() {
        let grpc = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ];
        let err = enabled(&grpc).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid OTEL_EXPORTER_OTLP_PROTOCOL: flock exports OTLP over http/protobuf only, got `grpc`"
        );
        let traces_wins = [
            (TRACES_EXPORTER, "otlp"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ];
        assert!(enabled(&traces_wins).unwrap());
    }
}
