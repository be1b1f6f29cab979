//! SEL records (IPMI v2.0 §32) decoded into [`SelEntry`]s, with sensor-type and event names
//! worded as `ipmitool sel elist` words them, and a severity for each event. Pure; fuzzed.

use crate::bmc::{SelEntry, Severity};

/// A decoded SEL record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: u16,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Record type 0x02.
    System {
        timestamp: u32,
        generator: u16,
        sensor_type: u8,
        sensor_number: u8,
        deasserted: bool,
        event_type: u8,
        data: [u8; 3],
    },
    /// Record types 0xC0–0xDF.
    OemTimestamped {
        record_type: u8,
        timestamp: u32,
        manufacturer: u32,
        data: [u8; 6],
    },
    /// Record types 0xE0–0xFF (and unknown types).
    Oem { record_type: u8, data: [u8; 13] },
}

/// Decode the 16-byte record that Get SEL Entry returns after the next-record id.
pub fn decode(raw: &[u8]) -> Option<Record> {
    let r: &[u8; 16] = raw.get(..16)?.try_into().ok()?;
    let id = u16::from_le_bytes([r[0], r[1]]);
    let ts = u32::from_le_bytes([r[3], r[4], r[5], r[6]]);
    let kind = match r[2] {
        0x02 => Kind::System {
            timestamp: ts,
            generator: u16::from_le_bytes([r[7], r[8]]),
            sensor_type: r[10],
            sensor_number: r[11],
            deasserted: r[12] & 0x80 != 0,
            event_type: r[12] & 0x7F,
            data: [r[13], r[14], r[15]],
        },
        t @ 0xC0..=0xDF => Kind::OemTimestamped {
            record_type: t,
            timestamp: ts,
            manufacturer: u32::from_le_bytes([r[7], r[8], r[9], 0]),
            data: [r[10], r[11], r[12], r[13], r[14], r[15]],
        },
        t => {
            let mut data = [0u8; 13];
            data.copy_from_slice(&r[3..16]);
            Kind::Oem {
                record_type: t,
                data,
            }
        }
    };
    Some(Record { id, kind })
}

/// ipmitool's name for a sensor type.
pub fn sensor_type_name(t: u8) -> &'static str {
    const NAMES: [&str; 0x2d] = [
        "Reserved",
        "Temperature",
        "Voltage",
        "Current",
        "Fan",
        "Physical Security",
        "Platform Security",
        "Processor",
        "Power Supply",
        "Power Unit",
        "Cooling Device",
        "Other",
        "Memory",
        "Drive Slot / Bay",
        "POST Memory Resize",
        "System Firmwares",
        "Event Logging Disabled",
        "Watchdog1",
        "System Event",
        "Critical Interrupt",
        "Button",
        "Module / Board",
        "Microcontroller",
        "Add-in Card",
        "Chassis",
        "Chip Set",
        "Other FRU",
        "Cable / Interconnect",
        "Terminator",
        "System Boot Initiated",
        "Boot Error",
        "OS Boot",
        "OS Critical Stop",
        "Slot / Connector",
        "System ACPI Power State",
        "Watchdog2",
        "Platform Alert",
        "Entity Presence",
        "Monitor ASIC",
        "LAN",
        "Management Subsys Health",
        "Battery",
        "Session Audit",
        "Version Change",
        "FRU State",
    ];
    NAMES
        .get(usize::from(t))
        .copied()
        .unwrap_or(if t >= 0xC0 { "OEM" } else { "Unknown" })
}

const THRESHOLD: [&str; 12] = [
    "Lower Non-critical going low",
    "Lower Non-critical going high",
    "Lower Critical going low",
    "Lower Critical going high",
    "Lower Non-recoverable going low",
    "Lower Non-recoverable going high",
    "Upper Non-critical going low",
    "Upper Non-critical going high",
    "Upper Critical going low",
    "Upper Critical going high",
    "Upper Non-recoverable going low",
    "Upper Non-recoverable going high",
];

/// Sensor-specific offsets (event type 0x6F), by sensor type: (offset, text, severity).
fn sensor_specific(sensor_type: u8, offset: u8) -> Option<(&'static str, Severity)> {
    use Severity::{Critical as C, Ok as O, Warning as W};
    let table: &[(&str, Severity)] = match sensor_type {
        0x05 => &[
            ("General Chassis intrusion", W),
            ("Drive Bay intrusion", W),
            ("I/O Card area intrusion", W),
            ("Processor area intrusion", W),
            ("System unplugged from LAN", W),
            ("Unauthorized dock", W),
            ("FAN area intrusion", W),
        ],
        0x07 => &[
            ("IERR", C),
            ("Thermal Trip", C),
            ("FRB1/BIST failure", C),
            ("FRB2/Hang in POST failure", C),
            ("FRB3/Processor startup/init failure", C),
            ("Configuration Error", C),
            ("SM BIOS Uncorrectable CPU-complex Error", C),
            ("Presence detected", O),
            ("Disabled", W),
            ("Terminator presence detected", O),
            ("Throttled", W),
            ("Uncorrectable machine check exception", C),
            ("Correctable machine check error", W),
        ],
        0x08 => &[
            ("Presence detected", O),
            ("Failure detected", C),
            ("Predictive failure", W),
            ("Power Supply AC lost", C),
            ("AC lost or out-of-range", C),
            ("AC out-of-range, but present", W),
            ("Config Error", W),
        ],
        0x09 => &[
            ("Power off/down", O),
            ("Power cycle", O),
            ("240VA power down", W),
            ("Interlock power down", W),
            ("AC lost", C),
            ("Soft-power control failure", C),
            ("Failure detected", C),
            ("Predictive failure", W),
        ],
        0x0C => &[
            ("Correctable ECC", W),
            ("Uncorrectable ECC", C),
            ("Parity", C),
            ("Memory Scrub Failed", C),
            ("Memory Device Disabled", C),
            ("Correctable ECC logging limit reached", W),
            ("Presence Detected", O),
            ("Configuration Error", W),
            ("Spare", O),
            ("Throttled", W),
            ("Critical Overtemperature", C),
        ],
        0x0D => &[
            ("Drive Present", O),
            ("Drive Fault", C),
            ("Predictive Failure", W),
            ("Hot Spare", O),
            ("Parity Check In Progress", O),
            ("In Critical Array", C),
            ("In Failed Array", C),
            ("Rebuild in Progress", W),
            ("Rebuild Aborted", W),
        ],
        0x0F => &[
            ("System Firmware Error", C),
            ("System Firmware Hang", C),
            ("System Firmware Progress", O),
        ],
        0x10 => &[
            ("Correctable memory error logging disabled", W),
            ("Event logging disabled", W),
            ("Log area reset/cleared", O),
            ("All event logging disabled", W),
            ("Log full", W),
            ("Log almost full", W),
        ],
        0x12 => &[
            ("System Reconfigured", O),
            ("OEM System boot event", O),
            ("Undetermined system hardware failure", C),
            ("Entry added to auxiliary log", O),
            ("PEF Action", O),
            ("Timestamp Clock Sync", O),
        ],
        0x13 => &[
            ("NMI/Diag Interrupt", W),
            ("Bus Timeout", C),
            ("I/O Channel check NMI", C),
            ("Software NMI", W),
            ("PCI PERR", C),
            ("PCI SERR", C),
            ("EISA failsafe timeout", C),
            ("Bus Correctable error", W),
            ("Bus Uncorrectable error", C),
            ("Fatal NMI", C),
            ("Bus Fatal Error", C),
            ("Bus Degraded", W),
        ],
        0x14 => &[
            ("Power Button pressed", O),
            ("Sleep Button pressed", O),
            ("Reset Button pressed", O),
            ("FRU latch open", W),
            ("FRU service request button", O),
        ],
        0x1D => &[
            ("Initiated by power up", O),
            ("Initiated by hard reset", O),
            ("Initiated by warm reset", O),
            ("User requested PXE boot", O),
            ("Automatic boot to diagnostic", O),
        ],
        0x1F => &[
            ("A: boot completed", O),
            ("C: boot completed", O),
            ("PXE boot completed", O),
            ("Diagnostic boot completed", O),
            ("CD-ROM boot completed", O),
            ("ROM boot completed", O),
            ("boot completed - device not specified", O),
        ],
        0x20 => &[
            ("Stop during OS load/init", C),
            ("Run-time stop", C),
            ("OS graceful stop", O),
            ("OS graceful shutdown", O),
            ("PEF initiated soft shutdown", O),
            ("Agent not responding", W),
        ],
        0x22 => &[
            ("S0/G0: working", O),
            (
                "S1: sleeping with system hw & processor context maintained",
                O,
            ),
            ("S2: sleeping, processor context lost", O),
            (
                "S3: sleeping, processor & hw context lost, memory retained",
                O,
            ),
            ("S4: non-volatile sleep/suspend-to-disk", O),
            ("S5/G2: soft-off", O),
            ("S4/S5: soft-off", O),
            ("G3: mechanical off", O),
            ("Sleeping in S1/S2/S3 state", O),
            ("G1: sleeping", O),
            ("S5: entered by override", O),
            ("Legacy ON state", O),
            ("Legacy OFF state", O),
            ("Unknown", O),
        ],
        0x23 => &[
            ("Timer expired", W),
            ("Hard reset", C),
            ("Power down", C),
            ("Power cycle", C),
            ("Reserved", O),
            ("Reserved", O),
            ("Reserved", O),
            ("Reserved", O),
            ("Timer interrupt", W),
        ],
        0x28 => &[
            ("Sensor access degraded or unavailable", W),
            ("Controller access degraded or unavailable", W),
            ("Management controller off-line", C),
            ("Management controller unavailable", C),
            ("Sensor failure", W),
            ("FRU failure", W),
        ],
        0x29 => &[("Low", W), ("Failed", C), ("Presence Detected", O)],
        _ => &[],
    };
    table.get(usize::from(offset)).copied()
}

/// Generic discrete events (event types 0x02–0x0C), the common ones.
fn generic(event_type: u8, offset: u8) -> Option<(&'static str, Severity)> {
    use Severity::{Critical as C, Ok as O, Warning as W};
    let table: &[(&str, Severity)] = match event_type {
        0x03 => &[("State Deasserted", O), ("State Asserted", W)],
        0x04 => &[
            ("Predictive Failure Deasserted", O),
            ("Predictive Failure Asserted", W),
        ],
        0x05 => &[("Limit Not Exceeded", O), ("Limit Exceeded", W)],
        0x07 => &[
            ("Transition to OK", O),
            ("Transition to Non-critical from OK", W),
            ("Transition to Critical from less severe", C),
            ("Transition to Non-recoverable from less severe", C),
            ("Transition to Non-critical from more severe", W),
            ("Transition to Critical from Non-recoverable", C),
            ("Transition to Non-recoverable", C),
            ("Monitor", O),
            ("Informational", O),
        ],
        0x08 => &[("Device Absent", W), ("Device Present", O)],
        0x09 => &[("Device Disabled", W), ("Device Enabled", O)],
        0x0B => &[
            ("Fully Redundant", O),
            ("Redundancy Lost", C),
            ("Redundancy Degraded", W),
            ("Non-redundant: Sufficient from Redundant", W),
            ("Non-redundant: Sufficient from Insufficient", W),
            ("Non-redundant: Insufficient Resources", C),
            ("Redundancy Degraded from Fully Redundant", W),
            ("Redundancy Degraded from Non-redundant", W),
        ],
        _ => &[],
    };
    table.get(usize::from(offset)).copied()
}

/// Event text and severity of a system event (the asserted severity; deassertion is `Ok`).
pub fn describe(
    sensor_type: u8,
    event_type: u8,
    data1: u8,
    deasserted: bool,
) -> (String, Severity) {
    let offset = data1 & 0x0F;
    let (text, severity) = match event_type {
        0x01 => match THRESHOLD.get(usize::from(offset)) {
            Some(t) => {
                let sev = match offset {
                    0 | 1 | 6 | 7 => Severity::Warning,
                    _ => Severity::Critical,
                };
                (*t, sev)
            }
            None => ("Unknown threshold event", Severity::Warning),
        },
        0x6F => sensor_specific(sensor_type, offset)
            .unwrap_or(("Unknown sensor-specific event", Severity::Warning)),
        0x02..=0x0C => {
            generic(event_type, offset).unwrap_or(("Unknown discrete event", Severity::Warning))
        }
        _ => ("OEM event", Severity::Warning),
    };
    let severity = if deasserted { Severity::Ok } else { severity };
    (text.to_owned(), severity)
}

/// Timestamps at or below this are seconds since BMC start, not since 1970 (ipmitool prints
/// them as "Pre-Init").
const PRE_INIT: u32 = 0x2000_0000;

fn created(ts: u32) -> Option<String> {
    if ts <= PRE_INIT || ts == 0xFFFF_FFFF {
        return None;
    }
    Some(rfc3339(u64::from(ts)))
}

/// Seconds since the epoch as RFC 3339 UTC (civil-from-days, H. Hinnant).
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Record {
    /// The protocol-neutral entry. `message` is the event text, with " (deasserted)" for a
    /// deassertion; `sensor_type` is ipmitool's sensor-type name, or "OEM record cN".
    pub fn to_entry(&self) -> SelEntry {
        let id = format!("{:x}", self.id);
        match &self.kind {
            Kind::System {
                timestamp,
                sensor_type,
                sensor_number,
                deasserted,
                event_type,
                data,
                ..
            } => {
                let (text, severity) = describe(*sensor_type, *event_type, data[0], *deasserted);
                let message = if *deasserted {
                    format!("{text} (deasserted)")
                } else {
                    text
                };
                SelEntry {
                    id,
                    created: created(*timestamp),
                    severity,
                    message,
                    message_id: Some(format!(
                        "{sensor_type:02x}{:02x}{:02x}",
                        event_type | if *deasserted { 0x80 } else { 0 },
                        data[0] & 0x0F
                    )),
                    sensor_type: Some(format!(
                        "{} #{sensor_number:#04x}",
                        sensor_type_name(*sensor_type)
                    )),
                }
            }
            Kind::OemTimestamped {
                record_type,
                timestamp,
                manufacturer,
                data,
            } => SelEntry {
                id,
                created: created(*timestamp),
                severity: Severity::Ok,
                message: format!("{manufacturer:06x} | {}", hex(data)),
                message_id: None,
                sensor_type: Some(format!("OEM record {record_type:02x}")),
            },
            Kind::Oem { record_type, data } => SelEntry {
                id,
                created: None,
                severity: Severity::Ok,
                message: hex(data),
                message_id: None,
                sensor_type: Some(format!("OEM record {record_type:02x}")),
            },
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_record_decodes_as_ipmitool_shows_it() {
        // shared/peers/sel-corpus/synthetic-ipmi_sim/ipmitool_raw_get_sel_entry_0001.hex
        let raw = [
            0x01, 0x00, 0x02, 0x46, 0x03, 0x00, 0x00, 0x33, 0x00, 0x04, 0x0c, 0x60, 0x6f, 0xa1,
            0x00, 0x02,
        ];
        let e = decode(&raw).unwrap().to_entry();
        assert_eq!(e.id, "1");
        assert_eq!(e.sensor_type.as_deref(), Some("Memory #0x60"));
        assert_eq!(e.message, "Uncorrectable ECC");
        assert_eq!(e.severity, Severity::Critical);
        assert_eq!(e.created, None, "pre-init timestamp");
    }

    #[test]
    fn epoch_seconds_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn short_records_are_rejected() {
        assert!(decode(&[0; 15]).is_none());
    }
}
