//! The classic `smartctl -a/-x` text report (ATA in the classic `FLAG … WHEN_FAILED` and brief
//! `FLAGS … FAIL` layouts, NVMe, SCSI/SAS), parsed line by line with nom.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till1, take_while1};
use nom::character::complete::{space0, space1};
use nom::combinator::{map_res, rest};
use nom::{IResult, Parser};

use super::{Attribute, Drive, NvmeHealth, OverallHealth, Protocol, ScsiHealth, WhenFailed};
use crate::health::{parse_count, ParseError};

/// `Key:   value` → value (trimmed), for exactly this key.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let parsed: IResult<&str, &str> = (tag(key), tag(":"), space0, rest)
        .map(|(_, _, _, v): (&str, &str, &str, &str)| v)
        .parse(line);
    parsed.ok().map(|(_, v)| v.trim())
}

fn word(i: &str) -> IResult<&str, &str> {
    take_till1(|c: char| c.is_whitespace()).parse(i)
}

fn small(i: &str) -> IResult<&str, Option<u8>> {
    alt((
        map_res(take_while1(|c: char| c.is_ascii_digit()), |d: &str| {
            d.parse::<u8>().map(Some)
        }),
        tag("---").map(|_| None),
    ))
    .parse(i)
}

/// One row of the ATA attribute table, classic or brief layout.
fn attribute(line: &str) -> Option<Attribute> {
    let mut row = (
        space0,
        map_res(take_while1(|c: char| c.is_ascii_digit()), str::parse::<u8>),
        space1,
        word,
        space1,
        word,
        space1,
        small,
        space1,
        small,
        space1,
        small,
        space1,
        rest,
    );
    let (_, (_, id, _, name, _, flags, _, value, _, _worst, _, thresh, _, tail)) =
        row.parse(line).ok()?;
    let mut cols = tail.split_whitespace();
    let when = if flags.starts_with("0x") {
        // TYPE UPDATED WHEN_FAILED RAW…
        cols.next();
        cols.next();
        cols.next()?
    } else {
        // FAIL RAW…
        cols.next()?
    };
    let raw_text = cols.collect::<Vec<_>>().join(" ");
    let when_failed = match when {
        "FAILING_NOW" | "NOW" => WhenFailed::Now,
        "In_the_past" | "Past" => WhenFailed::Past,
        _ => WhenFailed::Never,
    };
    Some(Attribute {
        id,
        name: name.to_owned(),
        value,
        thresh,
        raw: parse_count(&raw_text),
        when_failed,
    })
}

fn percent_or_count(v: &str) -> Option<u64> {
    parse_count(v.trim_end_matches('%'))
}

/// Parse one text report. Output with no information section (scans, errors) yields no drive.
pub fn parse(name: &str, text: &str) -> Result<Vec<Drive>, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let has = |key: &str| lines.iter().any(|l| l.starts_with(key));
    let is_report =
        has("=== START OF") || has("Device Model:") || has("Model Number:") || has("Product:");
    if !is_report {
        return Ok(Vec::new());
    }
    let protocol = if has("Model Number:") || text.contains("NVMe Log") {
        Protocol::Nvme
    } else if has("SMART Health Status:") || has("Transport protocol:") || has("Product:") {
        Protocol::Scsi
    } else {
        Protocol::Ata
    };
    let mut drive = Drive {
        device: name.to_owned(),
        protocol,
        model: None,
        serial: None,
        overall_health: OverallHealth::Unknown,
        temperature_c: None,
        exit_status: None,
        attributes: Vec::new(),
        nvme: (protocol == Protocol::Nvme).then(NvmeHealth::default),
        scsi: (protocol == Protocol::Scsi).then(ScsiHealth::default),
    };
    let mut in_table = false;
    let mut family = None;
    for line in &lines {
        if line.starts_with("ID# ATTRIBUTE_NAME") {
            in_table = true;
            continue;
        }
        if in_table {
            match attribute(line) {
                Some(a) => {
                    drive.attributes.push(a);
                    continue;
                }
                None if line.trim().is_empty()
                    || line.trim_start().starts_with("||")
                    || line.trim_start().starts_with('|') =>
                {
                    in_table = !line.trim().is_empty();
                    continue;
                }
                None => in_table = false,
            }
        }
        apply_line(&mut drive, line, &mut family);
    }
    drive.model = drive.model.or(family);
    if drive.temperature_c.is_none() {
        drive.temperature_c = drive
            .attributes
            .iter()
            .find(|a| a.id == 194 || a.id == 190)
            .and_then(|a| a.raw)
            .filter(|t| *t > 0 && *t < 150);
    }
    Ok(vec![drive])
}

fn apply_line(d: &mut Drive, line: &str, family: &mut Option<String>) {
    let set = |slot: &mut Option<String>, v: &str| {
        if slot.is_none() && !v.is_empty() {
            *slot = Some(v.to_owned());
        }
    };
    if let Some(v) = field(line, "Device Model")
        .or_else(|| field(line, "Model Number"))
        .or_else(|| field(line, "Product"))
    {
        set(&mut d.model, v);
    } else if let Some(v) = field(line, "Model Family") {
        set(family, v);
    } else if let Some(v) = field(line, "Serial Number").or_else(|| field(line, "Serial number")) {
        set(&mut d.serial, v);
    } else if let Some(v) = field(line, "SMART overall-health self-assessment test result") {
        d.overall_health = if v.starts_with("PASSED") {
            OverallHealth::Passed
        } else {
            OverallHealth::Failed
        };
    } else if let Some(v) = field(line, "SMART Health Status") {
        d.overall_health = if v.starts_with("OK") {
            OverallHealth::Passed
        } else {
            OverallHealth::Failed
        };
    } else if let Some(v) =
        field(line, "Current Drive Temperature").or_else(|| field(line, "Temperature"))
    {
        if d.temperature_c.is_none() {
            d.temperature_c = parse_count(v).filter(|t| *t > 0 && *t < 150);
        }
    } else if let Some(n) = d.nvme.as_mut() {
        nvme_line(n, line);
    } else if let Some(s) = d.scsi.as_mut() {
        scsi_line(s, line);
    }
}

fn nvme_line(n: &mut NvmeHealth, line: &str) {
    if let Some(v) = field(line, "Critical Warning") {
        n.critical_warning = u8::from_str_radix(v.trim_start_matches("0x"), 16).unwrap_or(0);
    } else if let Some(v) = field(line, "Available Spare Threshold") {
        n.available_spare_threshold = percent_or_count(v);
    } else if let Some(v) = field(line, "Available Spare") {
        n.available_spare = percent_or_count(v);
    } else if let Some(v) = field(line, "Percentage Used") {
        n.percentage_used = percent_or_count(v);
    } else if let Some(v) = field(line, "Media and Data Integrity Errors") {
        n.media_errors = parse_count(v);
    } else if let Some(v) = field(line, "Error Information Log Entries") {
        n.error_log_entries = parse_count(v);
    } else if let Some(v) = field(line, "Unsafe Shutdowns") {
        n.unsafe_shutdowns = parse_count(v);
    }
}

fn scsi_line(s: &mut ScsiHealth, line: &str) {
    if let Some(v) = field(line, "Elements in grown defect list") {
        s.grown_defects = parse_count(v);
        return;
    }
    for (key, slot) in [
        ("read", &mut s.read_uncorrected),
        ("write", &mut s.write_uncorrected),
        ("verify", &mut s.verify_uncorrected),
    ] {
        if let Some(v) = field(line, key) {
            // Seven columns; the last is "total uncorrected errors".
            let cols: Vec<&str> = v.split_whitespace().collect();
            if cols.len() == 7 {
                *slot = parse_count(cols[6]);
            }
        }
    }
}
