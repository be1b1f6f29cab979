//! SEL records (IPMI v2.0 §32) decoded into [`SelEntry`]s, with sensor-type and event names
//! worded as `ipmitool sel elist` words them, and a severity for each event. Pure; fuzzed.

use crate::bmc::{SelEntry, Severity};

mod tables;

pub use tables::sensor_type_name;
use tables::{generic, sensor_specific, THRESHOLD};

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

/// Seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: u64) -> String {
    crate::clock::rfc3339(secs.saturating_mul(1000))
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
