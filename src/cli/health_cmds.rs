//! `oob smart|nic|diagnose`: findings from a host over SSH (`NODE`) or from saved tool
//! output (`--file`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use super::output::{cell, emit};
use super::target::Context;
use super::Status;
use crate::health::host::{HostChecks, Paths};
use crate::health::nic::{self, Thresholds};
use crate::health::smart::{self, OverallHealth, Protocol};
use crate::health::Finding;

#[derive(Debug, Args)]
pub struct SmartArgs {
    /// A machine from the config: runs smartctl on it over SSH ([machines.ssh]).
    #[arg(required_unless_present = "files", conflicts_with = "files")]
    pub target: Option<String>,
    /// smartctl output to read (`smartctl -j -x` JSON or `smartctl -x` text); repeatable.
    #[arg(long = "file")]
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

pub async fn smart(ctx: &Context, args: SmartArgs) -> anyhow::Result<Status> {
    let mut drives = match &args.target {
        Some(name) => super::host::smart_over_ssh(ctx, name).await?,
        None => Vec::new(),
    };
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
    Ok(Status::problems_if(problems))
}

#[derive(Debug, Args)]
pub struct NicArgs {
    /// A machine from the config: reads /sys/class/net/*/statistics over SSH.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub target: Option<String>,
    /// `ethtool -S IFACE` output to read.
    #[arg(long)]
    pub file: Option<PathBuf>,
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

fn counter_row(name: &str, c: &nic::Counters) -> Vec<String> {
    let show = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
    vec![
        name.to_owned(),
        show(c.rx_errors),
        show(c.tx_errors),
        show(c.rx_dropped),
        show(c.tx_dropped),
        show(c.rx_crc_errors),
        show(c.rx_fifo_errors),
        show(c.rx_missed_errors),
        show(c.carrier_changes),
    ]
}

pub async fn nic(ctx: &Context, args: NicArgs) -> anyhow::Result<Status> {
    let text = |p: &PathBuf| -> anyhow::Result<String> {
        Ok(String::from_utf8_lossy(&read(p)?).into_owned())
    };
    let mut samples = Vec::new();
    if let Some(name) = &args.target {
        for s in super::host::nic_over_ssh(ctx, name).await? {
            samples.push((s, None));
        }
    }
    if let Some(file) = &args.file {
        let name = args
            .interface
            .clone()
            .unwrap_or_else(|| file.display().to_string());
        let current = nic::parse_ethtool(&name, &text(file)?)?;
        let previous = match &args.previous {
            Some(p) => Some(nic::parse_ethtool(&name, &text(p)?)?),
            None => None,
        };
        samples.push((current, previous));
    }
    let mut rows = vec![[
        "INTERFACE",
        "RX_ERR",
        "TX_ERR",
        "RX_DROP",
        "TX_DROP",
        "CRC",
        "FIFO",
        "MISSED",
        "FLAPS",
    ]
    .map(String::from)
    .to_vec()];
    let mut docs = Vec::new();
    let mut problems = false;
    for (current, previous) in &samples {
        let findings = nic::findings(
            previous.as_ref(),
            current,
            Duration::from_secs(args.interval),
            Thresholds::default(),
        );
        rows.push(counter_row(&current.interface, &current.counters));
        for f in &findings {
            rows.push(vec![
                String::new(),
                format!(
                    "{}: {}",
                    format!("{:?}", f.severity).to_lowercase(),
                    f.detail
                ),
            ]);
        }
        problems |= !findings.is_empty();
        docs.push(serde_json::json!({ "interface": current.interface, "counters": current.counters, "findings": findings }));
    }
    emit(
        ctx.format,
        &serde_json::json!({ "interfaces": docs }),
        &rows,
    )?;
    Ok(Status::problems_if(problems))
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// A machine from the config: runs the checks on it over SSH ([machines.ssh]).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub target: Option<String>,
    /// Saved output of the check script to read instead.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// How far back the kernel and kubelet logs are read (`journalctl --since`).
    #[arg(long, default_value = "-1h")]
    pub since: String,
}

pub async fn diagnose(ctx: &Context, args: DiagnoseArgs) -> anyhow::Result<Status> {
    let (node, checks) = match (&args.target, &args.file) {
        (Some(name), _) => (
            name.clone(),
            super::host::checks_over_ssh(ctx, name, &args.since).await?,
        ),
        (None, Some(file)) => (
            file.display().to_string(),
            HostChecks::parse(&String::from_utf8_lossy(&read(file)?), &Paths::default()),
        ),
        (None, None) => anyhow::bail!("a machine or --file is needed"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let findings = checks.findings(now);
    let repair = checks.repair();
    let healthy = checks.healthy(now);
    let unit = |u: &Option<crate::health::host::UnitState>| {
        u.as_ref()
            .map_or("unknown".to_owned(), |u| format!("{}/{}", u.active, u.sub))
    };
    let mut rows = vec![["SEVERITY", "CHECK", "EVIDENCE", "FIX"]
        .map(String::from)
        .to_vec()];
    rows.push(vec![
        "-".into(),
        "units".into(),
        format!(
            "kubelet {}, runtime {}, CRI {}",
            unit(&checks.kubelet),
            unit(&checks.runtime),
            match checks.cri_answering {
                Some(true) => "answering",
                Some(false) => "NOT answering",
                None => "unknown",
            }
        ),
        match repair {
            Some(r) => format!("{r:?}"),
            None => "-".into(),
        },
    ]);
    for f in &findings {
        rows.push(vec![
            f.severity.name().to_owned(),
            f.code.clone(),
            f.detail.clone(),
            cell(f.fix.as_deref()),
        ]);
    }
    emit(
        ctx.format,
        &serde_json::json!({
            "node": node,
            "checks": checks,
            "findings": findings,
            "repair": repair,
            "healthy": healthy,
        }),
        &rows,
    )?;
    Ok(Status::problems_if(!findings.is_empty() || !healthy))
}
