//! NIC error counters: `ethtool -S` output and `/sys/class/net/IFACE/statistics`, normalised
//! across drivers (i40e, ice, ixgbe, igb, e1000e, bnxt_en, tg3, virtio_net…) into one set of
//! counters, and findings from two samples (only rising counters count).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{Finding, Level, ParseError};

/// Driver-neutral counters. `None` when the driver has no such counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counters {
    pub rx_errors: Option<u64>,
    pub tx_errors: Option<u64>,
    pub rx_dropped: Option<u64>,
    pub tx_dropped: Option<u64>,
    pub rx_crc_errors: Option<u64>,
    pub rx_fifo_errors: Option<u64>,
    pub rx_missed_errors: Option<u64>,
    pub carrier_changes: Option<u64>,
}

/// One sample of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub interface: String,
    /// Every counter as the driver names it (per-queue ones as `[N]: name`).
    #[serde(skip)]
    pub raw: BTreeMap<String, u64>,
    pub counters: Counters,
}

/// Names each driver uses for a counter, in preference order (whole-port names first).
const NAMES: [(&str, &[&str]); 7] = [
    ("rx_errors", &["rx_errors", "port.rx_errors"]),
    ("tx_errors", &["tx_errors", "port.tx_errors"]),
    (
        "rx_dropped",
        &[
            "rx_dropped",
            "rx_discards",
            "rx_drops",
            "port.rx_dropped",
            "rx_dropped.nic",
        ],
    ),
    (
        "tx_dropped",
        &[
            "tx_dropped",
            "tx_discards",
            "tx_drops",
            "port.tx_dropped_link_down",
        ],
    ),
    (
        "rx_crc_errors",
        &[
            "rx_crc_errors",
            "port.rx_crc_errors",
            "rx_fcs_errors",
            "rx_crc_errors.nic",
            "rx_fcs_err_frames",
        ],
    ),
    (
        "rx_fifo_errors",
        &["rx_fifo_errors", "rx_over_errors", "rx_fifo_full"],
    ),
    ("rx_missed_errors", &["rx_missed_errors", "rx_missed"]),
];

/// Parse `ethtool -S IFACE` output.
pub fn parse_ethtool(interface: &str, text: &str) -> Result<Sample, ParseError> {
    let mut raw = BTreeMap::new();
    let mut unparsed = 0usize;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.ends_with("statistics:") {
            continue;
        }
        match line
            .rsplit_once(':')
            .and_then(|(k, v)| Some((k.trim(), v.trim().parse::<u64>().ok()?)))
        {
            Some((name, value)) if !name.is_empty() => {
                raw.insert(name.to_owned(), value);
            }
            _ => unparsed += 1,
        }
    }
    if raw.is_empty() && unparsed > 0 {
        return Err(ParseError::Unrecognised {
            what: interface.to_owned(),
            detail: format!("no `name: value` counter in {unparsed} lines"),
        });
    }
    Ok(sample(interface, raw))
}

/// Build a sample from `/sys/class/net/IFACE/statistics/*` (file name, content) pairs, plus
/// `carrier_changes` if the caller read it.
pub fn from_sysfs(interface: &str, files: &[(String, String)]) -> Sample {
    let raw = files
        .iter()
        .filter_map(|(name, content)| Some((name.clone(), content.trim().parse().ok()?)))
        .collect();
    sample(interface, raw)
}

fn sample(interface: &str, raw: BTreeMap<String, u64>) -> Sample {
    let pick = |names: &[&str]| -> Option<u64> {
        for n in names {
            if let Some(v) = raw.get(*n) {
                return Some(*v);
            }
        }
        // Per-queue only (bnxt_en `[N]: rx_errors`): the sum over queues.
        let per_queue: Vec<u64> = raw
            .iter()
            .filter(|(k, _)| {
                k.starts_with('[')
                    && k.split_once("]: ")
                        .is_some_and(|(_, base)| names.contains(&base))
            })
            .map(|(_, v)| *v)
            .collect();
        (!per_queue.is_empty()).then(|| per_queue.iter().sum())
    };
    let get = |key: &str| {
        NAMES
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, names)| pick(names))
    };
    let counters = Counters {
        rx_errors: get("rx_errors"),
        tx_errors: get("tx_errors"),
        rx_dropped: get("rx_dropped"),
        tx_dropped: get("tx_dropped"),
        rx_crc_errors: get("rx_crc_errors"),
        rx_fifo_errors: get("rx_fifo_errors"),
        rx_missed_errors: get("rx_missed_errors"),
        carrier_changes: raw
            .get("carrier_changes")
            .copied()
            .or_else(|| raw.get("link_down_events").copied()),
    };
    Sample {
        interface: interface.to_owned(),
        raw,
        counters,
    }
}

/// Rates above which a rising counter is critical rather than a warning (per second).
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub errors_per_s: f64,
    pub flaps: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            errors_per_s: 10.0,
            flaps: 3,
        }
    }
}

/// Findings from two samples taken `elapsed` apart. With no previous sample, non-zero error
/// counters are reported as warnings (they are new to us); drops alone are not errors.
pub fn findings(
    previous: Option<&Sample>,
    current: &Sample,
    elapsed: Duration,
    t: Thresholds,
) -> Vec<Finding> {
    let c = &current.counters;
    let p = previous.map(|p| &p.counters);
    let secs = elapsed.as_secs_f64().max(1.0);
    let mut out = Vec::new();
    let checks: [(&str, Option<u64>, Option<u64>, &str); 6] = [
        (
            "nic_rx_errors",
            c.rx_errors,
            p.and_then(|p| p.rx_errors),
            "receive errors",
        ),
        (
            "nic_tx_errors",
            c.tx_errors,
            p.and_then(|p| p.tx_errors),
            "transmit errors",
        ),
        (
            "nic_crc_errors",
            c.rx_crc_errors,
            p.and_then(|p| p.rx_crc_errors),
            "CRC/FCS errors (cable, optic or switch port)",
        ),
        (
            "nic_fifo_errors",
            c.rx_fifo_errors,
            p.and_then(|p| p.rx_fifo_errors),
            "receive FIFO overruns",
        ),
        (
            "nic_missed_errors",
            c.rx_missed_errors,
            p.and_then(|p| p.rx_missed_errors),
            "missed packets (ring full)",
        ),
        (
            "nic_rx_dropped",
            c.rx_dropped,
            p.and_then(|p| p.rx_dropped),
            "receive drops",
        ),
    ];
    for (code, now, before, what) in checks {
        let Some(now) = now else { continue };
        let delta = match (previous, before) {
            (Some(_), Some(b)) => now.saturating_sub(b),
            (Some(_), None) => 0,
            (None, _) if code == "nic_rx_dropped" => 0,
            (None, _) => now,
        };
        if delta == 0 {
            continue;
        }
        let rate = delta as f64 / secs;
        let level = if previous.is_some() && rate >= t.errors_per_s {
            Level::Critical
        } else {
            Level::Warning
        };
        let detail = if previous.is_some() {
            format!("{delta} new {what} ({rate:.1}/s)")
        } else {
            format!("{now} {what} since the counters were reset")
        };
        out.push(
            Finding::new(level, code, detail)
                .value(delta)
                .component(current.interface.clone()),
        );
    }
    if let (Some(now), Some(before)) = (c.carrier_changes, p.and_then(|p| p.carrier_changes)) {
        let flaps = now.saturating_sub(before);
        if flaps > 0 {
            let level = if flaps >= t.flaps {
                Level::Critical
            } else {
                Level::Warning
            };
            out.push(
                Finding::new(
                    level,
                    "nic_link_flaps",
                    format!("link changed state {flaps} times"),
                )
                .value(flaps)
                .component(current.interface.clone()),
            );
        }
    }
    out
}
