//! Specs from configuration: serde for [`BatchSpec`] and [`JoinWindow`], with
//! durations written as people write them (`"30s"`, `"5m"`, `"250ms"`).
//!
//! Deserializing validates exactly as the constructors do: an invalid spec is a
//! deserialize error carrying the constructor's message, never a panic or a value
//! quietly changed into a valid one. Unknown fields are errors too, so a typo such
//! as `timout` cannot silently drop a trigger.

use std::{fmt, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de, ser::SerializeStruct};

use crate::{BatchSpec, IntoJoinWindow, JoinWindow, human_duration};

// === impl BatchSpec ===

/// The fields of a batch spec as written in configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "BatchSpec")]
struct BatchSpecFields {
    #[serde(default)]
    size: Option<usize>,
    #[serde(default, with = "human_duration::option")]
    timeout: Option<Duration>,
}

/// `{ "size": 25, "timeout": "30s" }`; either field may be left out (not both).
impl Serialize for BatchSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields =
            usize::from(self.max_size().is_some()) + usize::from(self.max_wait().is_some());
        let mut state = serializer.serialize_struct("BatchSpec", fields)?;
        match self.max_size() {
            Some(size) => state.serialize_field("size", &size.get())?,
            None => state.skip_field("size")?,
        }
        match self.max_wait() {
            Some(timeout) => {
                state
                    .serialize_field("timeout", &humantime::format_duration(timeout).to_string())?;
            }
            None => state.skip_field("timeout")?,
        }
        state.end()
    }
}

/// Reads `{ "size": 25, "timeout": "30s" }` and validates it as [`BatchSpec::new`] does.
impl<'de> Deserialize<'de> for BatchSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = BatchSpecFields::deserialize(deserializer)?;
        BatchSpec::new(fields.size, fields.timeout).map_err(de::Error::custom)
    }
}

// === impl JoinWindow ===

/// A duration string (`"30s"`) for [`JoinWindow::Time`], a number (`10`) for
/// [`JoinWindow::Count`].
impl Serialize for JoinWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Time(duration) => human_duration::serialize(duration, serializer),
            Self::Count(count) => serializer.serialize_u64(count.get() as u64),
        }
    }
}

/// Reads `"30s"` as a time window and `10` as a count window, validated as
/// `JoinSpecBuilder::within` does (zero is an error).
impl<'de> Deserialize<'de> for JoinWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JoinWindowVisitor)
    }
}

struct JoinWindowVisitor;

impl de::Visitor<'_> for JoinWindowVisitor {
    type Value = JoinWindow;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a join window: {} or a count of artifacts such as 10",
            human_duration::EXPECTED
        )
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<JoinWindow, E> {
        human_duration::parse::<E>(value)?
            .into_join_window()
            .map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<JoinWindow, E> {
        let count = usize::try_from(value).map_err(|_| {
            E::custom(format_args!(
                "join window of {value} artifacts is too large"
            ))
        })?;
        count.into_join_window().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<JoinWindow, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::custom(format_args!(
                "join window must be at least 1 artifact, got {value}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Config {
        batch: BatchSpec,
        window: JoinWindow,
    }

    fn spec(size: Option<usize>, timeout: Option<Duration>) -> BatchSpec {
        BatchSpec::new(size, timeout).unwrap()
    }

    #[test]
    fn batch_specs_round_trip_through_json_and_toml() {
        for (json, value) in [
            (
                r#"{"size":25,"timeout":"30s"}"#,
                spec(Some(25), Some(Duration::from_secs(30))),
            ),
            (r#"{"size":3}"#, spec(Some(3), None)),
            (
                r#"{"timeout":"250ms"}"#,
                spec(None, Some(Duration::from_millis(250))),
            ),
            (
                r#"{"size":1000,"timeout":"1h"}"#,
                spec(Some(1000), Some(Duration::from_secs(3600))),
            ),
        ] {
            assert_eq!(serde_json::from_str::<BatchSpec>(json).unwrap(), value);
            assert_eq!(serde_json::to_string(&value).unwrap(), json);
            let toml = toml::to_string(&value).unwrap();
            assert_eq!(toml::from_str::<BatchSpec>(&toml).unwrap(), value, "{toml}");
        }
    }

    #[test]
    fn join_windows_round_trip_as_strings_and_counts() {
        let config: Config = toml::from_str(
            r#"
            window = "30s"
            [batch]
            size = 5
            "#,
        )
        .unwrap();
        assert_eq!(config.window, JoinWindow::Time(Duration::from_secs(30)));
        let counted: JoinWindow = serde_json::from_str("10").unwrap();
        assert_eq!(counted, JoinWindow::Count(NonZeroUsize::new(10).unwrap()));
        assert_eq!(serde_json::to_string(&counted).unwrap(), "10");
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), config, "{text}");
    }

    #[test]
    fn invalid_batch_specs_are_deserialize_errors_naming_the_problem() {
        for (json, message) in [
            (r#"{"size":0}"#, "batch size must be at least 1, got 0"),
            (
                r#"{"size":5,"timeout":"0s"}"#,
                "batch timeout must be greater than zero, got 0s",
            ),
            (
                r#"{}"#,
                "a batch spec needs a size, a timeout, or both; got neither",
            ),
            (
                r#"{"size":5,"timeout":"30"}"#,
                "invalid duration \"30\": time unit needed",
            ),
            (
                r#"{"size":5,"timout":"30s"}"#,
                "unknown field `timout`, expected `size` or `timeout`",
            ),
            (
                r#"{"size":-1}"#,
                "invalid value: integer `-1`, expected usize",
            ),
            (
                r#"{"size":5,"timeout":30}"#,
                "invalid type: integer `30`, expected a duration such as \"30s\"",
            ),
        ] {
            let err = serde_json::from_str::<BatchSpec>(json)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(message), "{json}: {err}");
        }
        let err = toml::from_str::<BatchSpec>("size = 0").unwrap_err();
        assert!(
            err.to_string()
                .contains("batch size must be at least 1, got 0"),
            "{err}"
        );
    }

    #[test]
    fn invalid_join_windows_are_deserialize_errors_naming_the_problem() {
        for (json, message) in [
            ("0", "join window must be at least 1 artifact, got 0"),
            ("-3", "join window must be at least 1 artifact, got -3"),
            (r#""0s""#, "join window must be greater than zero, got 0s"),
            (
                r#""soon""#,
                "invalid duration \"soon\": expected number at 0",
            ),
            (
                "1.5",
                "invalid type: floating point `1.5`, expected a join window",
            ),
        ] {
            let err = serde_json::from_str::<JoinWindow>(json)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(message), "{json}: {err}");
        }
    }
}
