//! SMART: one model for ATA, NVMe and SCSI drives, filled from `smartctl -j` ([`json`]) or the
//! classic text report ([`text`]), and the findings a drive's data justifies. Counters
//! (reallocated, pending, CRC, media errors, grown defects…) count only when new or rising
//! against a previous sample of the same drive.

pub mod json;
pub mod text;

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Finding, Level, ParseError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    #[serde(rename = "ATA")]
    Ata,
    #[serde(rename = "NVMe")]
    Nvme,
    #[serde(rename = "SCSI")]
    Scsi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OverallHealth {
    Passed,
    Failed,
    Unknown,
}

/// ATA WHEN_FAILED column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenFailed {
    Never,
    Now,
    Past,
}

/// One ATA SMART attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribute {
    pub id: u8,
    pub name: String,
    pub value: Option<u8>,
    pub thresh: Option<u8>,
    pub raw: Option<u64>,
    pub when_failed: WhenFailed,
}

/// NVMe SMART/Health Information log (log page 0x02).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NvmeHealth {
    pub critical_warning: u8,
    pub available_spare: Option<u64>,
    pub available_spare_threshold: Option<u64>,
    pub percentage_used: Option<u64>,
    pub media_errors: Option<u64>,
    pub error_log_entries: Option<u64>,
    pub unsafe_shutdowns: Option<u64>,
}

/// SCSI/SAS counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScsiHealth {
    pub grown_defects: Option<u64>,
    pub read_uncorrected: Option<u64>,
    pub write_uncorrected: Option<u64>,
    pub verify_uncorrected: Option<u64>,
}

/// Everything known about one drive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drive {
    pub device: String,
    pub protocol: Protocol,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub overall_health: OverallHealth,
    pub temperature_c: Option<u64>,
    /// smartctl's exit status bitmask, when known (JSON only).
    pub exit_status: Option<u8>,
    pub attributes: Vec<Attribute>,
    pub nvme: Option<NvmeHealth>,
    pub scsi: Option<ScsiHealth>,
}

/// Parse smartctl output, JSON or text, by its first non-blank character.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Vec<Drive>, ParseError> {
    let text = String::from_utf8_lossy(bytes);
    if text.trim_start().starts_with('{') {
        json::parse(name, &text)
    } else {
        text::parse(name, &text)
    }
}

/// The exit status bits smartctl documents (man smartctl, "RETURN VALUES").
pub fn exit_status_meaning(status: u8) -> Vec<&'static str> {
    const BITS: [&str; 8] = [
        "command line did not parse",
        "device open failed",
        "a SMART or ATA command failed, or checksum error",
        "SMART status: DISK FAILING",
        "prefail attributes at or below threshold",
        "attributes at or below threshold in the past",
        "device error log has errors",
        "self-test log has errors",
    ];
    (0..8)
        .filter(|b| status & (1 << b) != 0)
        .map(|b| BITS[b])
        .collect()
}

/// Where a drive's rising counters turn critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Reallocated sectors above which the drive is failing (the runbook's 5).
    pub reallocated_sectors: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            reallocated_sectors: 5,
        }
    }
}

/// Counters whose growth matters, keyed by finding code; the baseline a later sample is
/// compared with.
pub type Snapshot = crate::small_map::SmallMap<u64>;

impl Drive {
    /// The counters a baseline keeps.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::new();
        for (code, ids, _, _) in ATA_COUNTERS {
            if let Some(raw) = self
                .attributes
                .iter()
                .find(|a| ids.contains(&a.id))
                .and_then(|a| a.raw)
            {
                s.insert(code, raw);
            }
        }
        if let Some(n) = &self.nvme {
            for (code, v) in [
                ("nvme_media_errors", n.media_errors),
                ("nvme_error_log_entries", n.error_log_entries),
            ] {
                if let Some(v) = v {
                    s.insert(code, v);
                }
            }
        }
        if let Some(x) = &self.scsi {
            let unc = [
                x.read_uncorrected,
                x.write_uncorrected,
                x.verify_uncorrected,
            ];
            if let Some(v) = x.grown_defects {
                s.insert("scsi_grown_defects", v);
            }
            if unc.iter().any(Option::is_some) {
                s.insert("scsi_uncorrected_errors", unc.iter().flatten().sum());
            }
        }
        s
    }

    /// Findings for this drive. With `previous` (the last snapshot of the same drive), a
    /// counter yields a finding only when it rose; without, when it is non-zero.
    pub fn findings(&self, previous: Option<&Snapshot>) -> Vec<Finding> {
        self.findings_within(previous, &Limits::default())
    }

    /// [`Drive::findings`] with the runbook's limits: reallocated sectors that rose past
    /// `limits.reallocated_sectors` are critical (the drive is going), below it a warning.
    pub fn findings_within(&self, previous: Option<&Snapshot>, limits: &Limits) -> Vec<Finding> {
        let mut out = Vec::new();
        let dev = || self.device.clone();
        if self.overall_health == OverallHealth::Failed {
            out.push(
                Finding::new(
                    Level::Critical,
                    "smart_overall_failed",
                    "SMART overall health self-assessment FAILED",
                )
                .component(dev()),
            );
        }
        if let Some(status) = self.exit_status.filter(|s| s & 0b0000_0110 != 0) {
            out.push(
                Finding::new(
                    Level::Warning,
                    "smartctl_incomplete",
                    format!(
                        "smartctl could not read everything: {}",
                        exit_status_meaning(status & 0b110).join("; ")
                    ),
                )
                .value(status)
                .component(dev()),
            );
        }
        for a in &self.attributes {
            match a.when_failed {
                WhenFailed::Now => out.push(
                    Finding::new(
                        Level::Critical,
                        "smart_attribute_failing_now",
                        format!(
                            "attribute {} {} at or below its threshold now",
                            a.id, a.name
                        ),
                    )
                    .value(a.value.map_or(0, u64::from))
                    .component(dev()),
                ),
                WhenFailed::Past => out.push(
                    Finding::new(
                        Level::Warning,
                        "smart_attribute_failed_in_past",
                        format!(
                            "attribute {} {} was at or below its threshold in the past",
                            a.id, a.name
                        ),
                    )
                    .component(dev()),
                ),
                WhenFailed::Never => {}
            }
        }
        self.counter_findings(previous, limits, &mut out);
        if let Some(n) = &self.nvme {
            for (bit, code, what, level) in NVME_WARNINGS {
                if n.critical_warning & bit != 0 {
                    out.push(
                        Finding::new(
                            level,
                            code,
                            format!("NVMe critical warning {bit:#04x}: {what}"),
                        )
                        .value(n.critical_warning)
                        .component(dev()),
                    );
                }
            }
            if let (Some(spare), Some(thresh)) = (n.available_spare, n.available_spare_threshold) {
                if spare < thresh && n.critical_warning & 0x01 == 0 {
                    out.push(
                        Finding::new(
                            Level::Critical,
                            "nvme_spare_below_threshold",
                            format!("available spare {spare}% below threshold {thresh}%"),
                        )
                        .value(spare)
                        .component(dev()),
                    );
                }
            }
            if let Some(used) = n.percentage_used.filter(|u| *u >= 100) {
                out.push(
                    Finding::new(
                        Level::Warning,
                        "nvme_endurance_exceeded",
                        format!("{used}% of rated endurance used"),
                    )
                    .value(used)
                    .component(dev()),
                );
            }
        }
        if let Some(t) = self.temperature_c.filter(|t| *t >= 60 && *t < 200) {
            let level = if t >= 70 {
                Level::Critical
            } else {
                Level::Warning
            };
            out.push(
                Finding::new(level, "drive_temperature", format!("drive at {t} °C"))
                    .value(t)
                    .component(dev()),
            );
        }
        out
    }

    fn counter_findings(
        &self,
        previous: Option<&Snapshot>,
        limits: &Limits,
        out: &mut Vec<Finding>,
    ) {
        let now = self.snapshot();
        let mut describe: BTreeMap<&str, (Level, &str)> = ATA_COUNTERS
            .iter()
            .map(|(c, _, l, w)| (*c, (*l, *w)))
            .collect();
        describe.insert(
            "nvme_media_errors",
            (Level::Critical, "media and data integrity errors"),
        );
        describe.insert(
            "nvme_error_log_entries",
            (Level::Warning, "error log entries"),
        );
        describe.insert("scsi_grown_defects", (Level::Warning, "grown defects"));
        describe.insert(
            "scsi_uncorrected_errors",
            (Level::Critical, "uncorrected read/write/verify errors"),
        );
        for (code, value) in now.iter() {
            let before = previous.and_then(|p| p.get(code)).copied().unwrap_or(0);
            if *value <= before {
                continue;
            }
            let Some((level, what)) = describe.get(code) else {
                continue;
            };
            let mut detail = match previous.and_then(|p| p.get(code)) {
                Some(b) => format!("{what} rose from {b} to {value}"),
                None => format!("{value} {what}"),
            };
            let mut level = *level;
            if code == "smart_reallocated_sectors" && *value > limits.reallocated_sectors {
                level = Level::Critical;
                detail = format!("{detail}, above {}", limits.reallocated_sectors);
            }
            out.push(
                Finding::new(level, code, detail)
                    .value(*value)
                    .component(self.device.clone()),
            );
        }
    }
}

mod tables;

use tables::ATA_COUNTERS;
pub use tables::NVME_WARNINGS;

#[cfg(test)]
mod tests;
