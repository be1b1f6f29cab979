//! Durations written like kubectl's (`15s`, `2m`, `1h30m`, `1.5h`, `500ms`), for every
//! duration flag and configuration value. A bare number keeps the unit the flag or the key
//! names (`timeout_s = 30`, `--interval-ms 200`), so existing files and scripts still work.

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why} (write e.g. 15s, 2m, 1h30m, 500ms, or a bare number)")]
pub struct DurationError {
    text: String,
    why: &'static str,
}

/// The unit of a bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Secs,
}

impl Unit {
    fn nanos(self) -> f64 {
        match self {
            Self::Millis => 1e6,
            Self::Secs => 1e9,
        }
    }
}

/// The longest duration a setting takes: a timeout or an interval beyond it is a typo, and
/// deadlines computed from it (`Instant + d`) must not overflow.
pub const MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parse `text` as a duration; a bare number is in `unit`; at most [`MAX`].
pub fn parse(text: &str, unit: Unit) -> Result<Duration, DurationError> {
    let d = parse_any(text, unit)?;
    if d > MAX {
        return Err(DurationError {
            text: text.to_owned(),
            why: "too large (at most 30 days)",
        });
    }
    Ok(d)
}

fn parse_any(text: &str, unit: Unit) -> Result<Duration, DurationError> {
    let err = |why| DurationError {
        text: text.to_owned(),
        why,
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(err("empty"));
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_nanos((n as f64 * unit.nanos()) as u64));
    }
    let mut rest = t;
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("a number without a unit"))?;
        if num_end == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_end].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err("unknown unit (ns, us, ms, s, m, h)")),
        };
        nanos += value * scale;
        rest = &rest[unit_end..];
    }
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(err("too large"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// A clap value parser: seconds.
pub fn secs(text: &str) -> Result<u64, DurationError> {
    parse(text, Unit::Secs).map(|d| d.as_secs())
}

/// A clap value parser: milliseconds.
pub fn millis(text: &str) -> Result<u64, DurationError> {
    parse(text, Unit::Millis).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Number(u64),
    Text(String),
}

/// `deserialize_with` for a `*_s` key: a number of seconds or a duration.
pub fn de_secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Raw::deserialize(d)? {
        Raw::Number(n) => secs(&n.to_string()).map_err(de::Error::custom),
        Raw::Text(t) => secs(&t).map_err(de::Error::custom),
    }
}

/// `deserialize_with` for a `*_ms` key: a number of milliseconds or a duration.
pub fn de_millis<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Raw::deserialize(d)? {
        Raw::Number(n) => millis(&n.to_string()).map_err(de::Error::custom),
        Raw::Text(t) => millis(&t).map_err(de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_durations_and_bare_numbers() {
        let s = |t: &str| secs(t).unwrap();
        let ms = |t: &str| millis(t).unwrap();
        assert_eq!(s("15s"), 15);
        assert_eq!(s("2m"), 120);
        assert_eq!(s("1h30m"), 5400);
        assert_eq!(s("1.5h"), 5400);
        assert_eq!(s("90"), 90, "a bare number keeps the flag's unit");
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("2s"), 2000);
        assert_eq!(ms("1m30s"), 90_000);
        assert_eq!(ms("250"), 250);
        for bad in ["", "s", "10x", "1h-5m", "abc", "5 m"] {
            assert!(secs(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_values_take_either_form() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "de_secs")]
            a_s: u64,
            #[serde(deserialize_with = "de_millis")]
            b_ms: u64,
        }
        let t: T = toml::from_str("a_s = \"5m\"\nb_ms = 1500\n").unwrap();
        assert_eq!((t.a_s, t.b_ms), (300, 1500));
        let t: T = toml::from_str("a_s = 7\nb_ms = \"1.5s\"\n").unwrap();
        assert_eq!((t.a_s, t.b_ms), (7, 1500));
        assert!(toml::from_str::<T>("a_s = \"soon\"\nb_ms = 1\n").is_err());
    }
}
