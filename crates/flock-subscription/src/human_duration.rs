//! Durations in configuration files as people write them: `"30s"`, `"5m"`, `"250ms"`,
//! `"1h 30m"` (the `humantime` format), for serde's `with` attribute.
//!
//! The specs' own serde support uses it; a configuration struct of your own can too:
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Settings {
//!     #[serde(with = "flock_subscription::human_duration")]
//!     poll: Duration,
//!     #[serde(default, with = "flock_subscription::human_duration::option")]
//!     grace: Option<Duration>,
//! }
//!
//! let settings: Settings = serde_json::from_str(r#"{"poll": "1m 30s"}"#).unwrap();
//! assert_eq!(settings.poll, Duration::from_secs(90));
//! assert_eq!(settings.grace, None);
//! assert_eq!(serde_json::to_string(&settings).unwrap(), r#"{"poll":"1m 30s","grace":null}"#);
//!
//! let err = serde_json::from_str::<Settings>(r#"{"poll": "90"}"#).unwrap_err();
//! assert!(err.to_string().starts_with(r#"invalid duration "90": time unit needed"#), "{err}");
//! ```

use std::{fmt, time::Duration};

use serde::{Deserializer, Serializer, de};

/// Serializes a duration as a string such as `"1m 30s"`.
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*duration))
}

/// Deserializes a duration from a string such as `"30s"`, `"5m"` or `"250ms"`.
///
/// # Errors
/// For anything but such a string; the message quotes the value.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_str(HumanDuration)
}

/// The same for `Option<Duration>`: `None` serializes as nothing (a `null`), and a
/// missing field is `None` with `#[serde(default, with = "…::option")]`.
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes `Some(duration)` as a string, `None` as `null`.
    ///
    /// # Errors
    /// Whatever the serializer reports.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes `null` as `None` and a string as in [`super::deserialize`].
    ///
    /// # Errors
    /// For anything but `null` or a duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] Duration);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(d)| d))
    }
}

/// Parses a duration string, for visitors that accept more than strings.
pub(crate) fn parse<E: de::Error>(value: &str) -> Result<Duration, E> {
    humantime::parse_duration(value)
        .map_err(|err| E::custom(format_args!("invalid duration \"{value}\": {err}")))
}

/// What a duration string looks like, for "expected …" messages.
pub(crate) const EXPECTED: &str = "a duration such as \"30s\", \"5m\" or \"250ms\"";

struct HumanDuration;

impl de::Visitor<'_> for HumanDuration {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
        parse(value)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        d: Duration,
    }

    #[test]
    fn human_strings_round_trip() {
        for (text, duration) in [
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("250ms", Duration::from_millis(250)),
            ("1h 30m", Duration::from_secs(5400)),
            ("1s 500us", Duration::from_micros(1_000_500)),
            ("0s", Duration::ZERO),
        ] {
            let json = format!(r#"{{"d":"{text}"}}"#);
            let holder: Holder = serde_json::from_str(&json).unwrap();
            assert_eq!(holder.d, duration, "{text}");
            assert_eq!(serde_json::to_string(&holder).unwrap(), json);
        }
        // Other spellings humantime reads are normalised on the way out.
        let holder: Holder = serde_json::from_str(r#"{"d":"90 seconds"}"#).unwrap();
        assert_eq!(serde_json::to_string(&holder).unwrap(), r#"{"d":"1m 30s"}"#);
    }

    #[test]
    fn anything_else_is_an_error_quoting_the_value() {
        for (json, message) in [
            (
                r#"{"d":"30"}"#,
                "invalid duration \"30\": time unit needed, for example 30sec or 30ms",
            ),
            (
                r#"{"d":"-5s"}"#,
                "invalid duration \"-5s\": expected number at 0",
            ),
            (
                r#"{"d":"5 fortnights"}"#,
                "invalid duration \"5 fortnights\": unknown time unit \"fortnights\"",
            ),
            (
                r#"{"d":30}"#,
                "invalid type: integer `30`, expected a duration such as \"30s\", \"5m\" or \"250ms\"",
            ),
        ] {
            let err = serde_json::from_str::<Holder>(json)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(message), "{json}: {err}");
        }
    }
}
