//! The JSON columns of a span row (`attributes`, `events`, `links`, `resource`),
//! written straight into the column buffers: no JSON tree, no intermediate string.
//!
//! Numbers and booleans keep their JSON types, so `attributes->'$.batch_size'` is
//! the number 25 and not the string "25". When a key occurs twice (an attribute
//! recorded again), the last value wins, as it would in a JSON object built key by
//! key.

use std::fmt::{self, Write};

use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::{
    Resource,
    trace::{SpanEvents, SpanLinks},
};

/// Writes `attributes` as one JSON object.
pub(crate) fn write_attributes(out: &mut impl Write, attributes: &[KeyValue]) -> fmt::Result {
    out.write_char('{')?;
    let mut first = true;
    for (i, kv) in attributes.iter().enumerate() {
        // Later values of the same key replace earlier ones. Spans carry a
        // handful of attributes, so the quadratic scan is cheaper than a set.
        if attributes[i + 1..].iter().any(|later| later.key == kv.key) {
            continue;
        }
        if !first {
            out.write_char(',')?;
        }
        first = false;
        write_string(out, kv.key.as_str())?;
        out.write_char(':')?;
        write_value(out, &kv.value)?;
    }
    out.write_char('}')
}

/// Writes the span's events as a JSON array of `{name, timestamp, attributes}`.
pub(crate) fn write_events(out: &mut impl Write, events: &SpanEvents) -> fmt::Result {
    out.write_char('[')?;
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        out.write_str("{\"name\":")?;
        write_string(out, &event.name)?;
        write!(
            out,
            ",\"timestamp\":{},\"attributes\":",
            unix_nanos(event.timestamp)
        )?;
        write_attributes(out, &event.attributes)?;
        out.write_char('}')?;
    }
    out.write_char(']')
}

/// Writes the span's links as a JSON array of `{trace_id, span_id, attributes}`.
pub(crate) fn write_links(out: &mut impl Write, links: &SpanLinks) -> fmt::Result {
    out.write_char('[')?;
    for (i, link) in links.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        let context = &link.span_context;
        write!(
            out,
            "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",\"attributes\":",
            context.trace_id(),
            context.span_id()
        )?;
        write_attributes(out, &link.attributes)?;
        out.write_char('}')?;
    }
    out.write_char(']')
}

/// The resource attributes as one JSON object, e.g. `{"service.name":"flock"}`,
/// without the SDK's description of itself (`telemetry.sdk.*`): the same on every
/// row of every file, it would be a third of each row's bytes (ADR 0007).
pub fn resource_json(resource: &Resource) -> String {
    let attributes: Vec<KeyValue> = resource
        .iter()
        .filter(|(key, _)| !key.as_str().starts_with("telemetry.sdk."))
        .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
        .collect();
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_attributes(&mut out, &attributes);
    out
}

fn write_value(out: &mut impl Write, value: &Value) -> fmt::Result {
    match value {
        Value::Bool(b) => write!(out, "{b}"),
        Value::I64(i) => write_int(out, *i),
        Value::F64(f) => write_float(out, *f),
        Value::String(s) => write_string(out, s.as_str()),
        Value::Array(Array::Bool(items)) => write_array(out, items, |out, b| write!(out, "{b}")),
        Value::Array(Array::I64(items)) => write_array(out, items, |out, i| write_int(out, *i)),
        Value::Array(Array::F64(items)) => write_array(out, items, |out, f| write_float(out, *f)),
        Value::Array(Array::String(items)) => {
            write_array(out, items, |out, s| write_string(out, s.as_str()))
        }
        // `Value` and `Array` are non-exhaustive; keep anything new as its display form.
        other => write_string(out, &other.to_string()),
    }
}

fn write_array<W: Write, T>(
    out: &mut W,
    items: &[T],
    mut write_item: impl FnMut(&mut W, &T) -> fmt::Result,
) -> fmt::Result {
    out.write_char('[')?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        write_item(out, item)?;
    }
    out.write_char(']')
}

/// An integer in decimal, without the formatting machinery (spans carry many).
fn write_int(out: &mut impl Write, i: i64) -> fmt::Result {
    let mut digits = [0_u8; 20];
    let mut at = digits.len();
    let mut rest = i.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if i < 0 {
        out.write_char('-')?;
    }
    out.write_str(std::str::from_utf8(&digits[at..]).expect("decimal digits are ASCII"))
}

/// A finite float in its shortest round-trip form, always with a fraction or an
/// exponent (`1.0`, `0.5`, `1e-7`), so DuckDB reads it as a DOUBLE. JSON has no NaN
/// or infinity: those keep their Rust spelling as a string rather than becoming
/// `null`.
fn write_float(out: &mut impl Write, f: f64) -> fmt::Result {
    if f.is_finite() {
        write!(out, "{f:?}")
    } else {
        write!(out, "\"{f}\"")
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
pub(crate) fn write_string(out: &mut impl Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut plain = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.write_str(&s[plain..i])?;
        if escaped.is_empty() {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_str(escaped)?;
        }
        plain = i + 1;
    }
    out.write_str(&s[plain..])?;
    out.write_char('"')
}

/// Nanoseconds since the Unix epoch, saturating at the ends of `i64` (year 1677 and 2262).
pub(crate) fn unix_nanos(time: std::time::SystemTime) -> i64 {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(kvs: &[KeyValue]) -> String {
        let mut out = String::new();
        write_attributes(&mut out, kvs).unwrap();
        out
    }

    #[test]
    fn values_keep_their_json_types() {
        let json = attributes(&[
            KeyValue::new("batch_size", 25_i64),
            KeyValue::new("efficiency", 0.5),
            KeyValue::new("ratio", 1.0),
            KeyValue::new("tiny", 1e-7),
            KeyValue::new("flush_reason", "size"),
            KeyValue::new("ok", true),
            KeyValue::new("nan", f64::NAN),
            KeyValue::new("sizes", Value::Array(Array::I64(vec![1, 2]))),
            KeyValue::new("tags", Value::Array(Array::String(vec!["a".into()]))),
        ]);
        assert_eq!(
            json,
            r#"{"batch_size":25,"efficiency":0.5,"ratio":1.0,"tiny":1e-7,"flush_reason":"size","ok":true,"nan":"NaN","sizes":[1,2],"tags":["a"]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["tiny"], serde_json::json!(1e-7));
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for i in [0, 7, -7, 10, 25, 1_000_000, i64::MAX, i64::MIN] {
            let mut out = String::new();
            write_int(&mut out, i).unwrap();
            assert_eq!(out, i.to_string());
        }
    }

    #[test]
    fn strings_are_escaped() {
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} é ✓";
        let json = attributes(&[KeyValue::new("k\"ey", nasty)]);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["k\"ey"], nasty);
    }

    #[test]
    fn the_last_value_of_a_repeated_key_wins() {
        let json = attributes(&[
            KeyValue::new("a", 1_i64),
            KeyValue::new("b", 2_i64),
            KeyValue::new("a", 3_i64),
        ]);
        assert_eq!(json, r#"{"b":2,"a":3}"#);
    }
}
