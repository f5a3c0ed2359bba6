//! The chat-completions wire format: the JSON schema sent as `response_format`, the
//! request's messages, the response, and turning the model's reply into typed values.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use flock_core::{Artifact, FlockType};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::error::{LlmError, excerpt};

/// The key holding the results in one-result-per-input mode.
pub(crate) const RESULTS_KEY: &str = "results";
/// The key holding the result when the output type's schema is not an object (the
/// structured-output format requires an object at the top).
pub(crate) const RESULT_KEY: &str = "result";

/// How the reply maps to outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The reply is one output (the output type's schema is an object).
    One,
    /// The reply is `{"result": output}`.
    Wrapped,
    /// The reply is `{"results": [output, ...]}`, one per input item.
    PerInput,
}

/// The `response_format` of every request, computed once per engine.
#[derive(Debug, Clone)]
pub(crate) struct ResponseFormat {
    pub(crate) value: Value,
    pub(crate) shape: Shape,
    pub(crate) strict: bool,
}

impl ResponseFormat {
    /// Derives the schema of `Out` and wraps it as the request's `response_format`.
    pub(crate) fn new<Out: FlockType + schemars::JsonSchema>(per_input: bool) -> Self {
        let schema = serde_json::to_value(schemars::schema_for!(Out)).unwrap_or(Value::Null);
        Self::from_schema(Out::TYPE_NAME, schema, per_input)
    }

    pub(crate) fn from_schema(type_name: &str, mut schema: Value, per_input: bool) -> Self {
        let mut defs = match &mut schema {
            Value::Object(map) => {
                map.remove("$schema");
                map.remove("$defs")
            }
            _ => None,
        };
        let is_object = schema.get("type") == Some(&Value::String("object".into()));
        let (mut root, shape) = if per_input {
            (
                wrap(RESULTS_KEY, json!({"type": "array", "items": schema})),
                Shape::PerInput,
            )
        } else if is_object {
            (schema, Shape::One)
        } else {
            (wrap(RESULT_KEY, schema), Shape::Wrapped)
        };
        if let (Some(defs), Value::Object(map)) = (defs.take(), &mut root) {
            map.insert("$defs".into(), defs);
        }
        let strict = make_strict(&mut root);
        let value = json!({
            "type": "json_schema",
            "json_schema": {
                "name": schema_name(type_name),
                "schema": root,
                "strict": strict,
            }
        });
        Self {
            value,
            shape,
            strict,
        }
    }
}

fn wrap(key: &str, schema: Value) -> Value {
    json!({
        "type": "object",
        "properties": { key: schema },
        "required": [key],
        "additionalProperties": false,
    })
}

/// The structured-output format's name: `[a-zA-Z0-9_-]{1,64}`.
fn schema_name(type_name: &str) -> String {
    let name: String = type_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "output".into()
    } else {
        name
    }
}

/// Brings a schema into the form strict structured outputs accept: every object
/// lists all its properties as required (optional fields stay nullable) and allows no
/// others; number formats (`uint64`, `double`) that the format does not know are
/// dropped. Returns whether strict mode is possible at all: a free-form map
/// (`additionalProperties` with a schema) is not, and the request then goes without
/// `strict`.
fn make_strict(schema: &mut Value) -> bool {
    let Value::Object(map) = schema else {
        return true;
    };
    let mut strict = true;
    let is_number = matches!(
        map.get("type"),
        Some(Value::String(t)) if t == "integer" || t == "number"
    ) || matches!(
        map.get("type"),
        Some(Value::Array(ts)) if ts.iter().any(|t| t == "integer" || t == "number")
    );
    if is_number {
        map.remove("format");
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        let names: Vec<Value> = properties.keys().cloned().map(Value::String).collect();
        for property in properties.values_mut() {
            strict &= make_strict(property);
        }
        map.insert("required".into(), Value::Array(names));
        match map.get("additionalProperties") {
            Some(Value::Object(_)) => strict = false,
            _ => {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
        }
    } else if matches!(map.get("additionalProperties"), Some(Value::Object(_))) {
        strict = false;
    }
    for key in ["items", "additionalProperties", "not", "if", "then", "else"] {
        if let Some(sub) = map.get_mut(key) {
            strict &= make_strict(sub);
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(subs)) = map.get_mut(key) {
            for sub in subs {
                strict &= make_strict(sub);
            }
        }
    }
    if let Some(Value::Object(defs)) = map.get_mut("$defs") {
        for sub in defs.values_mut() {
            strict &= make_strict(sub);
        }
    }
    strict
}

// === the request ===

/// The user message: every input item as JSON, in order. An item is
/// `{"type": "...", "payload": {...}}`, or `{"group": [...]}` for a join group.
pub(crate) fn inputs_json(items: &[&[Arc<Artifact>]]) -> Result<Value, LlmError> {
    let encode = |a: &Arc<Artifact>| -> Result<Value, LlmError> {
        let payload = a.payload.to_json().map_err(|e| LlmError::Input {
            type_name: a.type_name(),
            reason: e.to_string(),
        })?;
        Ok(json!({"type": a.type_name(), "payload": payload}))
    };
    let items = items
        .iter()
        .map(|item| match item {
            [one] => encode(one),
            group => Ok(json!({
                "group": group.iter().map(encode).collect::<Result<Vec<_>, _>>()?
            })),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "inputs": items }))
}

/// The system message: the agent, the task, and how to answer.
pub(crate) fn system_prompt(
    agent: &str,
    instructions: Option<&str>,
    type_name: &str,
    shape: Shape,
    count: usize,
) -> String {
    let task = instructions.unwrap_or("Process the inputs.");
    let answer = match shape {
        Shape::One => format!("one JSON object, a '{type_name}', that matches the response schema"),
        Shape::Wrapped => format!(
            "one JSON object whose '{RESULT_KEY}' is a '{type_name}', as the response schema says"
        ),
        Shape::PerInput => format!(
            "one JSON object whose '{RESULTS_KEY}' array holds exactly {count} '{type_name}' value(s), one per input, in input order, as the response schema says"
        ),
    };
    format!(
        "You are the engine of agent '{agent}' in a flock-rs workflow.\n\
         {task}\n\
         The user message is a JSON object whose 'inputs' array holds {count} input(s), in order; \
         each is {{\"type\": ..., \"payload\": ...}}, or {{\"group\": [...]}} for inputs that belong together.\n\
         Answer with {answer}, and nothing else."
    )
}

// === the response ===

/// A chat completion, as far as the engine reads it.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatCompletion {
    pub(crate) choices: Vec<Choice>,
    #[serde(default)]
    pub(crate) usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Choice {
    pub(crate) message: Message,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub(crate) content: Option<String>,
    #[serde(default)]
    pub(crate) refusal: Option<String>,
}

/// Token counts of one completion.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct Usage {
    #[serde(default)]
    pub(crate) prompt_tokens: u64,
    #[serde(default)]
    pub(crate) completion_tokens: u64,
    #[serde(default)]
    pub(crate) total_tokens: Option<u64>,
}

/// The model's reply text, or why there is none.
pub(crate) fn reply_text(completion: &ChatCompletion) -> Result<&str, LlmError> {
    let Some(choice) = completion.choices.first() else {
        return Err(LlmError::MalformedResponse {
            reason: "it has no choices".into(),
        });
    };
    if let Some(refusal) = choice.message.refusal.as_deref().filter(|r| !r.is_empty()) {
        return Err(LlmError::Refused(refusal.to_owned()));
    }
    if choice.finish_reason.as_deref() == Some("length") {
        return Err(LlmError::Truncated);
    }
    match choice.message.content.as_deref() {
        Some(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(LlmError::MalformedResponse {
            reason: "its first choice has no message content".into(),
        }),
    }
}

/// Parses the reply into outputs: one, or one per input item.
pub(crate) fn parse_reply<Out: FlockType>(
    text: &str,
    shape: Shape,
    inputs: usize,
) -> Result<Vec<Out>, LlmError> {
    let text = strip_code_fence(text);
    let value: Value = serde_json::from_str(text).map_err(|e| LlmError::InvalidJson {
        reason: e.to_string(),
        excerpt: excerpt(text, 120),
    })?;
    match shape {
        Shape::One => Ok(vec![fit::<Out>(value, None)?]),
        Shape::Wrapped => {
            let value = take_key(value, RESULT_KEY)?;
            Ok(vec![fit::<Out>(value, Some(RESULT_KEY))?])
        }
        Shape::PerInput => {
            let Value::Array(items) = take_key(value, RESULTS_KEY)? else {
                return Err(does_not_fit::<Out>(
                    Some(RESULTS_KEY.into()),
                    "expected an array of results".into(),
                ));
            };
            if items.len() != inputs {
                return Err(LlmError::CountMismatch {
                    expected: inputs,
                    got: items.len(),
                });
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| fit::<Out>(item, Some(&format!("{RESULTS_KEY}[{i}]"))))
                .collect()
        }
    }
}

fn take_key(value: Value, key: &str) -> Result<Value, LlmError> {
    match value {
        Value::Object(mut map) => map.remove(key).ok_or_else(|| LlmError::DoesNotFit {
            type_name: "reply",
            field: None,
            reason: format!("missing field `{key}`"),
        }),
        other => Err(LlmError::DoesNotFit {
            type_name: "reply",
            field: None,
            reason: format!("expected a JSON object, got {}", kind(&other)),
        }),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Deserializes `value` into `Out`, naming the field where it does not fit.
fn fit<Out: DeserializeOwned + FlockType>(value: Value, at: Option<&str>) -> Result<Out, LlmError> {
    serde_path_to_error::deserialize::<_, Out>(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = match (at, inner.as_str()) {
            (None, ".") => None,
            (None, inner) => Some(inner.to_owned()),
            (Some(at), ".") => Some(at.to_owned()),
            (Some(at), inner) if inner.starts_with('[') => Some(format!("{at}{inner}")),
            (Some(at), inner) => Some(format!("{at}.{inner}")),
        };
        does_not_fit::<Out>(field, e.into_inner().to_string())
    })
}

fn does_not_fit<Out: FlockType>(field: Option<String>, reason: String) -> LlmError {
    LlmError::DoesNotFit {
        type_name: Out::TYPE_NAME,
        field,
        reason,
    }
}

/// Some models wrap JSON in a Markdown code fence despite the schema.
fn strip_code_fence(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

// === retries ===

/// Above this, a `Retry-After` is not waited for; the engine's own backoff applies.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long the server asked to wait: `retry-after-ms` (OpenAI's), else `Retry-After`
/// in seconds or as an HTTP date.
pub(crate) fn retry_after(
    headers: &reqwest::header::HeaderMap,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The wait before retry number `retry` (1 for the first retry): the server's
/// `Retry-After` when it gave one of at most [`MAX_RETRY_AFTER`], otherwise
/// exponential backoff from `initial`, doubling, capped at `max`.
pub(crate) fn retry_delay(
    retry: u32,
    retry_after: Option<Duration>,
    initial: Duration,
    max: Duration,
) -> Duration {
    if let Some(wait) = retry_after.filter(|w| *w <= MAX_RETRY_AFTER) {
        return wait;
    }
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    initial.saturating_mul(factor).min(max)
}

/// Whether a status is worth retrying: 408, 409, 429 and every 5xx.
pub(crate) fn retryable(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue};
    use serde::Serialize;

    use super::*;

    #[derive(Debug, Serialize, Deserialize, schemars::JsonSchema, flock_core::FlockType)]
    #[flock(crate = "flock_core")]
    struct Report {
        positive: u32,
        note: Option<String>,
        tags: Vec<Tag>,
    }

    #[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
    struct Tag {
        name: String,
        weight: f64,
    }

    #[test]
    fn strict_schema_requires_every_property_and_forbids_others() {
        let format = ResponseFormat::new::<Report>(false);
        assert!(format.strict);
        let schema = &format.value["json_schema"]["schema"];
        assert_eq!(schema["required"], json!(["note", "positive", "tags"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        assert!(schema.get("$schema").is_none());
        assert!(schema["properties"]["positive"].get("format").is_none());
        let tag = &schema["$defs"]["Tag"];
        assert_eq!(tag["required"], json!(["name", "weight"]));
        assert_eq!(tag["additionalProperties"], json!(false));
    }

    #[test]
    fn per_input_wraps_the_schema_in_a_results_array() {
        let format = ResponseFormat::new::<Report>(true);
        let schema = &format.value["json_schema"]["schema"];
        assert_eq!(schema["required"], json!(["results"]));
        assert_eq!(schema["properties"]["results"]["type"], "array");
        assert_eq!(
            schema["properties"]["results"]["items"]["required"],
            json!(["note", "positive", "tags"])
        );
        assert!(schema["$defs"]["Tag"].is_object(), "{schema}");
    }

    #[test]
    fn free_form_maps_turn_strict_mode_off() {
        let schema = json!({"type": "object", "additionalProperties": {"type": "integer"}});
        let format = ResponseFormat::from_schema("Counts", schema, false);
        assert!(!format.strict);
        assert_eq!(format.shape, Shape::One);
    }

    #[test]
    fn non_object_schemas_are_wrapped() {
        let format = ResponseFormat::from_schema("Label", json!({"type": "string"}), false);
        assert_eq!(format.shape, Shape::Wrapped);
        assert_eq!(
            format.value["json_schema"]["schema"]["required"],
            json!(["result"])
        );
    }

    #[test]
    fn a_reply_that_does_not_fit_names_the_field() {
        let text = r#"{"positive": 3, "note": null, "tags": [{"name": "a", "weight": "heavy"}]}"#;
        let err = parse_reply::<Report>(text, Shape::One, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the model's reply does not fit 'Report' at field 'tags[0].weight': invalid type: string \"heavy\", expected f64"
        );
        let err =
            parse_reply::<Report>(r#"{"note": null, "tags": []}"#, Shape::One, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the model's reply does not fit 'Report': missing field `positive`"
        );
        let text = r#"{"results": [{"positive": 1, "note": null, "tags": []}, {"positive": -1, "note": null, "tags": []}]}"#;
        let err = parse_reply::<Report>(text, Shape::PerInput, 2).unwrap_err();
        assert!(
            err.to_string().contains("at field 'results[1].positive'"),
            "{err}"
        );
    }

    #[test]
    fn replies_parse_in_every_shape() {
        let one = parse_reply::<Report>(
            "```json\n{\"positive\": 2, \"note\": \"ok\", \"tags\": []}\n```",
            Shape::One,
            5,
        )
        .unwrap();
        assert_eq!(one[0].positive, 2);
        let many = parse_reply::<Report>(
            r#"{"results": [{"positive": 1, "note": null, "tags": []}, {"positive": 2, "note": null, "tags": []}]}"#,
            Shape::PerInput,
            2,
        )
        .unwrap();
        assert_eq!(many.iter().map(|r| r.positive).collect::<Vec<_>>(), [1, 2]);
        let err = parse_reply::<Report>(r#"{"results": []}"#, Shape::PerInput, 2).unwrap_err();
        assert!(matches!(
            err,
            LlmError::CountMismatch {
                expected: 2,
                got: 0
            }
        ));
        let err = parse_reply::<Report>("Sure! Here you go", Shape::One, 1).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the model's reply is not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn retry_after_reads_milliseconds_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(2)));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Thu, 01 Jan 2026 00:00:05 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(5)));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
        headers.insert("retry-after-ms", HeaderValue::from_static("soon"));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn retry_delay_prefers_the_server_then_doubles_up_to_the_cap() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_millis(350));
        assert_eq!(
            retry_delay(1, None, initial, max),
            Duration::from_millis(100)
        );
        assert_eq!(
            retry_delay(2, None, initial, max),
            Duration::from_millis(200)
        );
        assert_eq!(
            retry_delay(3, None, initial, max),
            Duration::from_millis(350)
        );
        assert_eq!(
            retry_delay(40, None, initial, max),
            Duration::from_millis(350)
        );
        let asked = Some(Duration::from_secs(3));
        assert_eq!(retry_delay(1, asked, initial, max), Duration::from_secs(3));
        let too_long = Some(Duration::from_secs(600));
        assert_eq!(
            retry_delay(1, too_long, initial, max),
            Duration::from_millis(100)
        );
    }
}
