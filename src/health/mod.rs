//! Hardware health: turns real tool output (smartctl JSON and text, `ethtool -S`, sysfs
//! counters) and BMC log entries into [`Finding`]s with severities. Parsers take untrusted
//! bytes and return errors, never panic (fuzzed). Counters become findings only when they are
//! new or rising against the previous sample (baselines). Fetching the data is not done here.

pub mod host;
pub mod nic;
pub mod sel;
pub mod smart;

use serde::{Deserialize, Serialize};

/// How bad a finding is. Healthy readings make no finding at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warning,
    Critical,
}

impl Level {
    /// `warning` or `critical`, as in timelines and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// One thing found wrong, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Level,
    /// Stable machine-readable code, e.g. `smart_reallocated_sectors`, `nvme_spare_below_threshold`.
    pub code: String,
    /// One line for a person.
    pub detail: String,
    /// The value that triggered it, when there is one.
    pub value: Option<serde_json::Value>,
    /// The failed component (device, DIMM slot, PSU, interface), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// What to do about it, for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(severity: Level, code: &str, detail: impl Into<String>) -> Self {
        Self {
            severity,
            code: code.to_owned(),
            detail: detail.into(),
            value: None,
            component: None,
            fix: None,
        }
    }

    pub fn value(mut self, v: impl Into<serde_json::Value>) -> Self {
        self.value = Some(v.into());
        self
    }

    pub fn component(mut self, c: impl Into<String>) -> Self {
        self.component = Some(c.into());
        self
    }

    pub fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }
}

/// Why tool output could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{what}: not valid JSON: {detail}")]
    Json { what: String, detail: String },
    #[error("{what}: {detail}")]
    Unrecognised { what: String, detail: String },
}

/// Parse an unsigned integer as tools print it in any locale: `1,356`, `3’457`, `5.809`,
/// `1 290`, `1 290` (no-break space). Leading digits only: `45449h+00m…` is 45449, `34 (Min/Max
/// 20/45)` is 34. `None` when there is no leading digit.
pub fn parse_count(text: &str) -> Option<u64> {
    use nom::bytes::complete::take_while1;
    use nom::character::complete::one_of;
    use nom::multi::many0;
    use nom::sequence::pair;
    use nom::Parser;
    let digits = || take_while1::<_, &str, nom::error::Error<&str>>(|c: char| c.is_ascii_digit());
    let group = pair(one_of(",.’' \u{a0}\u{202f}"), digits());
    let (_, (first, rest)) = pair(digits(), many0(group)).parse(text.trim_start()).ok()?;
    // A group after a separator must be exactly three digits, else the separator ended the number.
    let mut out: u64 = first.parse().ok()?;
    if first.len() > 3 {
        return Some(out); // `12345.678`: a decimal point, not a thousands separator
    }
    for (_, g) in rest {
        if g.len() != 3 {
            break;
        }
        out = out.checked_mul(1000)?.checked_add(g.parse().ok()?)?;
    }
    Some(out)
}

/// Where the host's hardware counters turn critical.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub smart: smart::Limits,
    pub nic: nic::Thresholds,
}

#[cfg(test)]
mod tests {
    use super::parse_count;

    #[test]
    fn counts_parse_in_every_locale_seen_in_real_output() {
        for (text, want) in [
            ("0", Some(0)),
            ("1,356", Some(1356)),
            ("3’457", Some(3457)),
            ("5.809", Some(5809)),
            ("1 290", Some(1290)),
            ("1\u{a0}290", Some(1290)),
            ("45449h+00m+00.000s", Some(45449)),
            ("34 (Min/Max 20/45)", Some(34)),
            ("86,115,037 [44.0 TB]", Some(86_115_037)),
            ("12345.678", Some(12345)),
            ("-", None),
            ("", None),
        ] {
            assert_eq!(parse_count(text), want, "{text:?}");
        }
    }
}
