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
    /// Packets received (the denominator of the loss ratio).
    #[serde(default)]
    pub rx_packets: Option<u64>,
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
const NAMES: [(&str, &[&str]); 8] = [
    (
        "rx_packets",
        &[
            "rx_packets",
            "port.rx_packets",
            "rx_packets.nic",
            "rx_frames",
        ],
    ),
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
        (!per_queue.is_empty()).then(|| per_queue.iter().fold(0u64, |a, b| a.saturating_add(*b)))
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
        rx_packets: get("rx_packets"),
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

/// Where a rising counter turns critical rather than a warning (the runbook's: more than 10
/// errors per second, or more than 5 % of received packets lost, or 3 link flaps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub errors_per_s: f64,
    pub flaps: u64,
    /// Receive drops and misses as a share of the packets received between two samples.
    pub loss_percent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            errors_per_s: 10.0,
            flaps: 3,
            loss_percent: 5.0,
        }
    }
}

/// Receive loss between two samples, in percent of the packets that arrived (received plus
/// dropped or missed); `None` without packet counts or traffic.
fn loss_percent(c: &Counters, p: &Counters) -> Option<(f64, u64)> {
    let delta = |now: Option<u64>, before: Option<u64>| match (now, before) {
        (Some(n), Some(b)) => n.saturating_sub(b),
        _ => 0,
    };
    let received = delta(c.rx_packets, p.rx_packets);
    let lost = delta(c.rx_dropped, p.rx_dropped)
        .saturating_add(delta(c.rx_missed_errors, p.rx_missed_errors));
    let arrived = received.saturating_add(lost);
    (c.rx_packets.is_some() && arrived > 0).then(|| (lost as f64 * 100.0 / arrived as f64, lost))
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
        let level = if previous.is_some() && rate > t.errors_per_s {
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
    if let Some((pct, lost)) = p.and_then(|p| loss_percent(c, p)) {
        if pct > t.loss_percent {
            out.push(
                Finding::new(
                    Level::Critical,
                    "nic_packet_loss",
                    format!(
                        "{pct:.1}% of received packets lost ({lost} dropped or missed), above {}%",
                        t.loss_percent
                    ),
                )
                .value(lost)
                .component(current.interface.clone()),
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_loss_past_the_limit_is_critical_and_below_it_is_not() {
        let at = |packets: u64, dropped: u64| {
            from_sysfs(
                "eth0",
                &[
                    ("rx_packets".into(), packets.to_string()),
                    ("rx_dropped".into(), dropped.to_string()),
                ],
            )
        };
        let t = Thresholds::default();
        let before = at(1_000_000, 100);
        let minute = Duration::from_secs(60);
        // 100 of 10,000 arriving packets lost: 1 %, a warning for the drops only.
        let f = findings(Some(&before), &at(1_009_900, 200), minute, t);
        assert!(f.iter().all(|f| f.code != "nic_packet_loss"), "{f:?}");
        // 1,000 of 10,000: 10 %.
        let f = findings(Some(&before), &at(1_009_000, 1_100), minute, t);
        let loss = f
            .iter()
            .find(|f| f.code == "nic_packet_loss")
            .expect("loss");
        assert_eq!(loss.severity, Level::Critical);
        assert!(loss.detail.starts_with("10.0%"), "{}", loss.detail);
        let lenient = Thresholds {
            loss_percent: 20.0,
            ..t
        };
        let f = findings(Some(&before), &at(1_009_000, 1_100), minute, lenient);
        assert!(f.iter().all(|f| f.code != "nic_packet_loss"), "{f:?}");
    }
}
