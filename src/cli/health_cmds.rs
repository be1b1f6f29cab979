//! `oob smart --file F…` and `oob nic --file F [--previous P --interval S]`: findings from
//! saved tool output. (Collection over SSH from a live host comes with the SSH probe.)

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use super::output::{cell, emit};
use super::target::Context;
use super::Status;
use crate::health::nic::{self, Thresholds};
use crate::health::smart::{self, OverallHealth, Protocol};
use crate::health::Finding;

#[derive(Debug, Args)]
pub struct SmartArgs {
    /// smartctl output to read (`smartctl -j -x` JSON or `smartctl -x` text); repeatable.
    #[arg(long = "file", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Serialize)]
struct DeviceJson<'a> {
    device: &'a str,
    protocol: Protocol,
    model: Option<&'a str>,
    serial: Option<&'a str>,
    overall_health: OverallHealth,
    findings: Vec<Finding>,
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn smart(ctx: &Context, args: SmartArgs) -> anyhow::Result<Status> {
    let mut drives = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        drives.extend(smart::parse(&name, &read(path)?)?);
    }
    let devices: Vec<DeviceJson<'_>> = drives
        .iter()
        .map(|d| DeviceJson {
            device: &d.device,
            protocol: d.protocol,
            model: d.model.as_deref(),
            serial: d.serial.as_deref(),
            overall_health: d.overall_health,
            findings: d.findings(None),
        })
        .collect();
    let mut rows = vec![[
        "DEVICE", "PROTOCOL", "MODEL", "HEALTH", "SEVERITY", "FINDING",
    ]
    .map(String::from)
    .to_vec()];
    for d in &devices {
        let head = [
            d.device.to_owned(),
            format!("{:?}", d.protocol).to_uppercase(),
            cell(d.model),
            format!("{:?}", d.overall_health).to_uppercase(),
        ];
        if d.findings.is_empty() {
            rows.push([head.to_vec(), vec!["-".into(), "no findings".into()]].concat());
        }
        for f in &d.findings {
            rows.push(
                [
                    head.to_vec(),
                    vec![format!("{:?}", f.severity).to_lowercase(), f.detail.clone()],
                ]
                .concat(),
            );
        }
    }
    let problems = devices.iter().any(|d| !d.findings.is_empty());
    emit(
        ctx.format,
        &serde_json::json!({ "devices": devices }),
        &rows,
    )?;
    Ok(if problems {
        Status::Problems
    } else {
        Status::Ok
    })
}

#[derive(Debug, Args)]
pub struct NicArgs {
    /// `ethtool -S IFACE` output to read.
    #[arg(long)]
    pub file: PathBuf,
    /// An earlier `ethtool -S` of the same interface: only counters that rose since count.
    #[arg(long)]
    pub previous: Option<PathBuf>,
    /// Seconds between --previous and --file (for rates).
    #[arg(long, default_value_t = 60)]
    pub interval: u64,
    /// Interface name for the report (default: the file name).
    #[arg(long)]
    pub interface: Option<String>,
}

pub fn nic(ctx: &Context, args: NicArgs) -> anyhow::Result<Status> {
    let name = args
        .interface
        .clone()
        .unwrap_or_else(|| args.file.display().to_string());
    let text = |p: &PathBuf| -> anyhow::Result<String> {
        Ok(String::from_utf8_lossy(&read(p)?).into_owned())
    };
    let current = nic::parse_ethtool(&name, &text(&args.file)?)?;
    let previous = match &args.previous {
        Some(p) => Some(nic::parse_ethtool(&name, &text(p)?)?),
        None => None,
    };
    let findings = nic::findings(
        previous.as_ref(),
        &current,
        Duration::from_secs(args.interval),
        Thresholds::default(),
    );
    let c = &current.counters;
    let show = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
    let mut rows = vec![[
        "INTERFACE",
        "RX_ERR",
        "TX_ERR",
        "RX_DROP",
        "TX_DROP",
        "CRC",
        "FIFO",
        "MISSED",
    ]
    .map(String::from)
    .to_vec()];
    rows.push(vec![
        name.clone(),
        show(c.rx_errors),
        show(c.tx_errors),
        show(c.rx_dropped),
        show(c.tx_dropped),
        show(c.rx_crc_errors),
        show(c.rx_fifo_errors),
        show(c.rx_missed_errors),
    ]);
    for f in &findings {
        rows.push(vec![
            format!("{:?}", f.severity).to_lowercase(),
            f.detail.clone(),
        ]);
    }
    let json = serde_json::json!({ "interfaces": [{ "interface": name, "counters": c, "findings": findings }] });
    emit(ctx.format, &json, &rows)?;
    Ok(if findings.is_empty() {
        Status::Ok
    } else {
        Status::Problems
    })
}
