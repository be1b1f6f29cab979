//! System event log entries (from the BMC layer, IPMI or Redfish) classified into hardware
//! findings: uncorrectable ECC, PSU failure or AC lost, CPU IERR or thermal trip, drive fault,
//! watchdog reset, fan failure, over-temperature, PCI errors, with the component when the
//! record names one.

use crate::bmc::{SelEntry, Severity};

use super::{Finding, Level};

/// (sensor type prefix or "" for any, message keyword (lowercase), code, level)
const RULES: [(&str, &str, &str, Level); 22] = [
    (
        "Memory",
        "uncorrectable ecc",
        "dimm_uncorrectable_ecc",
        Level::Critical,
    ),
    (
        "Memory",
        "logging limit",
        "dimm_correctable_ecc_limit",
        Level::Warning,
    ),
    (
        "Memory",
        "correctable ecc",
        "dimm_correctable_ecc",
        Level::Warning,
    ),
    (
        "Memory",
        "memory device disabled",
        "dimm_disabled",
        Level::Critical,
    ),
    (
        "Power Supply",
        "failure detected",
        "psu_failure",
        Level::Critical,
    ),
    ("Power Supply", "ac lost", "psu_ac_lost", Level::Critical),
    (
        "Power Supply",
        "predictive failure",
        "psu_predictive_failure",
        Level::Warning,
    ),
    ("Power Unit", "ac lost", "power_ac_lost", Level::Critical),
    ("Processor", "ierr", "cpu_ierr", Level::Critical),
    (
        "Processor",
        "thermal trip",
        "cpu_thermal_trip",
        Level::Critical,
    ),
    (
        "Processor",
        "machine check",
        "cpu_machine_check",
        Level::Critical,
    ),
    ("Drive Slot", "drive fault", "drive_fault", Level::Critical),
    ("Drive Slot", "failed array", "drive_fault", Level::Critical),
    (
        "Drive Slot",
        "predictive failure",
        "drive_predictive_failure",
        Level::Warning,
    ),
    ("Watchdog2", "", "watchdog_reset", Level::Warning),
    ("Fan", "lower critical", "fan_failure", Level::Critical),
    (
        "Fan",
        "lower non-recoverable",
        "fan_failure",
        Level::Critical,
    ),
    (
        "Temperature",
        "upper critical",
        "over_temperature",
        Level::Critical,
    ),
    (
        "Temperature",
        "upper non-recoverable",
        "over_temperature",
        Level::Critical,
    ),
    (
        "Temperature",
        "upper non-critical",
        "high_temperature",
        Level::Warning,
    ),
    ("Critical Interrupt", "", "pci_error", Level::Critical),
    ("", "power supply", "psu_failure", Level::Critical),
];

/// Free-text rules for Redfish log messages (no sensor type), lowercase keywords.
const TEXT_RULES: [(&str, &str, Level); 8] = [
    ("uncorrectable", "dimm_uncorrectable_ecc", Level::Critical),
    ("ierr", "cpu_ierr", Level::Critical),
    ("thermal trip", "cpu_thermal_trip", Level::Critical),
    ("input power loss", "psu_ac_lost", Level::Critical),
    ("has lost input", "psu_ac_lost", Level::Critical),
    ("drive", "drive_fault", Level::Critical),
    ("fan", "fan_failure", Level::Critical),
    ("watchdog", "watchdog_reset", Level::Warning),
];

/// The component a message names: `DIMM A1`, `PSU1`, `slot 10`, `CPU1`, `Fan 3`, `Drive 11`,
/// or the IPMI sensor (`Memory #0x03`).
fn component(entry: &SelEntry) -> Option<String> {
    let words: Vec<&str> = entry.message.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let lower = w.to_ascii_lowercase();
        let next = words
            .get(i + 1)
            .map(|n| n.trim_end_matches([',', '.', ';']));
        for prefix in ["dimm", "psu", "cpu", "slot", "fan", "drive", "bay"] {
            if lower.starts_with(prefix) {
                let rest = &w[prefix.len()..];
                if !rest.is_empty() && rest.chars().any(|c| c.is_ascii_digit()) {
                    return Some(w.trim_end_matches([',', '.', ';']).to_owned());
                }
                if lower == prefix {
                    if let Some(n) = next.filter(|n| n.chars().any(|c| c.is_ascii_digit())) {
                        return Some(format!("{w} {n}"));
                    }
                }
            }
        }
    }
    entry.sensor_type.clone()
}

/// The finding an entry justifies, if any. Deassertions and informational entries give none.
pub fn classify(entry: &SelEntry) -> Option<Finding> {
    let message = entry.message.to_ascii_lowercase();
    if message.ends_with("(deasserted)") {
        return None;
    }
    let sensor = entry.sensor_type.as_deref().unwrap_or("");
    // The catch-all rules (no sensor type) apply only to entries the BMC itself did not mark
    // OK: "Power supply PSU1 presence detected" is an inventory note, not a failure.
    let rule = RULES.iter().find(|(s, k, _, _)| {
        let sensor_ok = if s.is_empty() {
            entry.severity != Severity::Ok
        } else {
            sensor.starts_with(s)
        };
        sensor_ok && !sensor.is_empty() && message.contains(k)
    });
    let (code, level) = match rule {
        Some((_, _, code, level)) => (*code, *level),
        None if entry.severity == Severity::Ok => return None,
        None => match TEXT_RULES.iter().find(|(k, _, _)| message.contains(k)) {
            Some((_, code, level)) => (*code, (*level).min(level_of(entry.severity))),
            None => ("bmc_log_event", level_of(entry.severity)),
        },
    };
    let mut f = Finding::new(
        level,
        code,
        format!("{} (log entry {})", entry.message, entry.id),
    );
    if let Some(c) = component(entry) {
        f = f.component(c);
    }
    Some(f)
}

fn level_of(s: Severity) -> Level {
    if s == Severity::Critical {
        Level::Critical
    } else {
        Level::Warning
    }
}

/// The baseline a look leaves for the next: the ids of the entries that are findings. An
/// entry that classifies as none can never count, seen or not, so remembering it would only
/// cost memory (a real BMC's log holds hundreds to thousands of routine entries; 10,000
/// machines remembering them all held hundreds of megabytes).
pub fn baseline(entries: &[SelEntry]) -> std::collections::BTreeSet<String> {
    entries
        .iter()
        .filter(|e| classify(e).is_some())
        .map(|e| e.id.clone())
        .collect()
}

/// Findings for a whole log; entries already seen (by id, from the previous look) are skipped
/// so that only new events count.
pub fn findings(entries: &[SelEntry], seen: &std::collections::BTreeSet<String>) -> Vec<Finding> {
    entries
        .iter()
        .filter(|e| !seen.contains(&e.id))
        .filter_map(classify)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bmc::ipmi::sel as ipmi_sel;

    #[test]
    fn an_ok_presence_note_is_not_a_psu_failure() {
        let entry = |severity, message: &str| SelEntry {
            id: "1".into(),
            created: None,
            severity,
            message: message.into(),
            message_id: None,
            sensor_type: Some("Power Supply".into()),
        };
        assert_eq!(
            classify(&entry(Severity::Ok, "Power supply PSU1 presence detected")),
            None
        );
        let f = classify(&entry(
            Severity::Critical,
            "Power supply PSU2 failure detected",
        ))
        .unwrap();
        assert_eq!(
            (f.code.as_str(), f.severity),
            ("psu_failure", Level::Critical)
        );
    }

    fn record(sensor_type: u8, event_type: u8, data1: u8) -> SelEntry {
        let mut r = [0u8; 16];
        r[0] = 1;
        r[2] = 0x02;
        r[10] = sensor_type;
        r[11] = 3;
        r[12] = event_type;
        r[13] = data1;
        ipmi_sel::decode(&r).unwrap().to_entry()
    }

    #[test]
    fn ipmi_events_map_to_hardware_findings() {
        for (t, e, d, code, level) in [
            (0x0C, 0x6F, 0x01, "dimm_uncorrectable_ecc", Level::Critical),
            (0x0C, 0x6F, 0x00, "dimm_correctable_ecc", Level::Warning),
            (0x08, 0x6F, 0x01, "psu_failure", Level::Critical),
            (0x08, 0x6F, 0x03, "psu_ac_lost", Level::Critical),
            (0x07, 0x6F, 0x00, "cpu_ierr", Level::Critical),
            (0x07, 0x6F, 0x01, "cpu_thermal_trip", Level::Critical),
            (0x0D, 0x6F, 0x01, "drive_fault", Level::Critical),
            (0x23, 0x6F, 0x01, "watchdog_reset", Level::Warning),
            (0x04, 0x01, 0x02, "fan_failure", Level::Critical),
            (0x01, 0x01, 0x09, "over_temperature", Level::Critical),
            (0x13, 0x6F, 0x05, "pci_error", Level::Critical),
        ] {
            let f = classify(&record(t, e, d)).unwrap_or_else(|| panic!("{code}: no finding"));
            assert_eq!((f.code.as_str(), f.severity), (code, level));
            assert!(f.component.is_some());
        }
        assert!(classify(&record(0x0D, 0xEF, 0x01)).is_none(), "deasserted");
        assert!(
            classify(&record(0x09, 0x6F, 0x00)).is_none(),
            "power off is not a fault"
        );
    }

    #[test]
    fn redfish_messages_name_their_component() {
        let e = SelEntry {
            id: "7".into(),
            created: None,
            severity: Severity::Critical,
            message: "Uncorrectable memory error on DIMM A1, rank 0".into(),
            message_id: None,
            sensor_type: None,
        };
        let f = classify(&e).unwrap();
        assert_eq!(f.code, "dimm_uncorrectable_ecc");
        assert_eq!(f.component.as_deref(), Some("DIMM A1"));
        let seen = std::collections::BTreeSet::from(["7".to_owned()]);
        assert!(
            findings(std::slice::from_ref(&e), &seen).is_empty(),
            "already seen"
        );
        // The baseline keeps the finding's id and nothing of the routine entries, which
        // can never count: the same findings come out of the next look.
        let routine = SelEntry {
            id: "8".into(),
            severity: Severity::Ok,
            message: "System Boot Initiated".into(),
            sensor_type: None,
            ..e.clone()
        };
        let log = [e, routine];
        let kept = baseline(&log);
        assert_eq!(kept, seen);
        assert!(findings(&log, &kept).is_empty());
        assert!(findings(&log, &std::collections::BTreeSet::new()).len() == 1);
    }
}
