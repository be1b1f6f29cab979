//! `smartctl -j` documents (json_format_version 1.x, smartctl 6–7.5), decoded leniently with
//! serde: every field optional, unknown fields ignored.

use serde::Deserialize;
use serde_json::Value;

use super::{Attribute, Drive, NvmeHealth, OverallHealth, Protocol, ScsiHealth, WhenFailed};
use crate::health::ParseError;

#[derive(Debug, Default, Deserialize)]
struct Doc {
    #[serde(default)]
    smartctl: Smartctl,
    device: Option<Device>,
    model_name: Option<String>,
    scsi_model_name: Option<String>,
    model_family: Option<String>,
    serial_number: Option<String>,
    smart_status: Option<SmartStatus>,
    temperature: Option<Temperature>,
    ata_smart_attributes: Option<AtaAttributes>,
    nvme_smart_health_information_log: Option<NvmeLog>,
    scsi_grown_defect_list: Option<u64>,
    scsi_error_counter_log: Option<ScsiErrorLog>,
    /// Present in `--scan` output only.
    devices: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
struct Smartctl {
    exit_status: Option<u8>,
}

#[derive(Debug, Deserialize)]
struct Device {
    name: Option<String>,
    protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SmartStatus {
    passed: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Temperature {
    current: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct AtaAttributes {
    #[serde(default)]
    table: Vec<AtaRow>,
}

#[derive(Debug, Deserialize)]
struct AtaRow {
    id: Option<u8>,
    name: Option<String>,
    value: Option<u8>,
    thresh: Option<u8>,
    when_failed: Option<String>,
    raw: Option<Raw>,
}

#[derive(Debug, Deserialize)]
struct Raw {
    value: Option<u64>,
    string: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NvmeLog {
    critical_warning: Option<u8>,
    available_spare: Option<u64>,
    available_spare_threshold: Option<u64>,
    percentage_used: Option<u64>,
    media_errors: Option<u64>,
    num_err_log_entries: Option<u64>,
    unsafe_shutdowns: Option<u64>,
    temperature: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ScsiErrorLog {
    read: Option<ScsiCounter>,
    write: Option<ScsiCounter>,
    verify: Option<ScsiCounter>,
}

#[derive(Debug, Deserialize)]
struct ScsiCounter {
    total_uncorrected_errors: Option<u64>,
}

fn when_failed(s: Option<&str>) -> WhenFailed {
    match s.map(str::to_ascii_lowercase).as_deref() {
        Some("now") | Some("failing_now") => WhenFailed::Now,
        Some("past") | Some("in_the_past") => WhenFailed::Past,
        _ => WhenFailed::Never,
    }
}

/// Parse one document; `--scan` output yields no drive.
pub fn parse(name: &str, text: &str) -> Result<Vec<Drive>, ParseError> {
    let doc: Doc = serde_json::from_str(text).map_err(|e| ParseError::Json {
        what: name.to_owned(),
        detail: e.to_string(),
    })?;
    if doc.devices.is_some() && doc.device.is_none() {
        return Ok(Vec::new());
    }
    let protocol = match doc.device.as_ref().and_then(|d| d.protocol.as_deref()) {
        Some(p) if p.eq_ignore_ascii_case("nvme") => Protocol::Nvme,
        Some(p) if p.eq_ignore_ascii_case("scsi") => Protocol::Scsi,
        _ if doc.nvme_smart_health_information_log.is_some() => Protocol::Nvme,
        _ if doc.scsi_grown_defect_list.is_some() => Protocol::Scsi,
        _ => Protocol::Ata,
    };
    let attributes = doc
        .ata_smart_attributes
        .map(|a| a.table)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            Some(Attribute {
                id: r.id?,
                name: r.name.unwrap_or_default(),
                value: r.value,
                thresh: r.thresh,
                raw: r.raw.as_ref().and_then(|raw| {
                    raw.string
                        .as_deref()
                        .and_then(crate::health::parse_count)
                        .or(raw.value)
                }),
                when_failed: when_failed(r.when_failed.as_deref()),
            })
        })
        .collect::<Vec<_>>();
    let nvme = doc
        .nvme_smart_health_information_log
        .as_ref()
        .map(|n| NvmeHealth {
            critical_warning: n.critical_warning.unwrap_or(0),
            available_spare: n.available_spare,
            available_spare_threshold: n.available_spare_threshold,
            percentage_used: n.percentage_used,
            media_errors: n.media_errors,
            error_log_entries: n.num_err_log_entries,
            unsafe_shutdowns: n.unsafe_shutdowns,
        });
    let scsi =
        (doc.scsi_grown_defect_list.is_some() || doc.scsi_error_counter_log.is_some()).then(|| {
            let log = doc.scsi_error_counter_log.as_ref();
            let unc = |c: Option<&ScsiCounter>| c.and_then(|c| c.total_uncorrected_errors);
            ScsiHealth {
                grown_defects: doc.scsi_grown_defect_list,
                read_uncorrected: unc(log.and_then(|l| l.read.as_ref())),
                write_uncorrected: unc(log.and_then(|l| l.write.as_ref())),
                verify_uncorrected: unc(log.and_then(|l| l.verify.as_ref())),
            }
        });
    let overall_health = match doc.smart_status.and_then(|s| s.passed) {
        Some(true) => OverallHealth::Passed,
        Some(false) => OverallHealth::Failed,
        None => OverallHealth::Unknown,
    };
    let temperature_c = doc
        .temperature
        .and_then(|t| t.current)
        .or_else(|| {
            doc.nvme_smart_health_information_log
                .as_ref()
                .and_then(|n| n.temperature)
        })
        .filter(|t| *t > 0);
    Ok(vec![Drive {
        device: doc
            .device
            .and_then(|d| d.name)
            .unwrap_or_else(|| name.to_owned()),
        protocol,
        model: doc.model_name.or(doc.scsi_model_name).or(doc.model_family),
        serial: doc.serial_number,
        overall_health,
        temperature_c,
        exit_status: doc.smartctl.exit_status,
        attributes,
        nvme,
        scsi,
    }])
}
