//! `oob identity TARGET` and `oob sel TARGET [--clear]`.

use clap::Args;
use serde::Serialize;

use super::output::{cell, emit};
use super::target::{Context, TargetArgs};
use super::Status;
use crate::bmc::{Protocol, SelEntry, Severity};

#[derive(Serialize)]
struct IdentityJson<'a> {
    target: &'a str,
    protocol: Protocol,
    manufacturer: Option<String>,
    model: Option<String>,
    serial: Option<String>,
    uuid: Option<String>,
    bios_version: Option<String>,
    bmc_firmware: Option<String>,
    profile: &'a str,
}

pub async fn identity(ctx: &Context, args: TargetArgs) -> anyhow::Result<Status> {
    let c = args.connect(ctx).await?;
    let id = c.bmc.identity().await;
    c.bmc.close().await;
    let id = id?;
    let rows = vec![
        vec!["TARGET".into(), c.name.clone()],
        vec!["PROTOCOL".into(), id.protocol.to_string()],
        vec!["MANUFACTURER".into(), cell(id.manufacturer.as_deref())],
        vec!["MODEL".into(), cell(id.model.as_deref())],
        vec!["SERIAL".into(), cell(id.serial.as_deref())],
        vec!["UUID".into(), cell(id.uuid.as_deref())],
        vec!["BIOS".into(), cell(id.bios_version.as_deref())],
        vec!["BMC FIRMWARE".into(), cell(id.bmc_firmware.as_deref())],
        vec!["PROFILE".into(), c.profile.id.clone()],
    ];
    let json = IdentityJson {
        target: &c.name,
        protocol: id.protocol,
        manufacturer: id.manufacturer,
        model: id.model,
        serial: id.serial,
        uuid: id.uuid,
        bios_version: id.bios_version,
        bmc_firmware: id.bmc_firmware,
        profile: &c.profile.id,
    };
    emit(ctx.format, &json, &rows)?;
    Ok(Status::Ok)
}

#[derive(Debug, Args)]
pub struct SelArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Clear the log after printing it (so the evidence is never lost).
    #[arg(long)]
    pub clear: bool,
    /// Most entries to read.
    #[arg(long, default_value_t = crate::timeouts::SEL_MAX_ENTRIES)]
    pub max: usize,
}

#[derive(Serialize)]
struct EntryJson<'a> {
    id: &'a str,
    created: Option<&'a str>,
    severity: Severity,
    message: &'a str,
    sensor_type: Option<&'a str>,
}

#[derive(Serialize)]
struct SelJson<'a> {
    target: &'a str,
    entries: Vec<EntryJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cleared: Option<bool>,
}

pub async fn sel(ctx: &Context, args: SelArgs) -> anyhow::Result<Status> {
    let c = args.target.connect(ctx).await?;
    let result = read_and_clear(ctx, &c, &args).await;
    c.bmc.close().await;
    let (entries, cleared) = result?;
    let mut rows = vec![vec![
        "ID".into(),
        "CREATED".into(),
        "SEVERITY".into(),
        "SENSOR".into(),
        "MESSAGE".into(),
    ]];
    rows.extend(entries.iter().map(|e| {
        vec![
            e.id.clone(),
            cell(e.created.as_deref()),
            format!("{:?}", e.severity).to_lowercase(),
            cell(e.sensor_type.as_deref()),
            e.message.clone(),
        ]
    }));
    let json = SelJson {
        target: &c.name,
        entries: entries
            .iter()
            .map(|e| EntryJson {
                id: &e.id,
                created: e.created.as_deref(),
                severity: e.severity,
                message: &e.message,
                sensor_type: e.sensor_type.as_deref(),
            })
            .collect(),
        cleared,
    };
    emit(ctx.format, &json, &rows)?;
    if cleared == Some(false) && ctx.format == super::Format::Table {
        eprintln!("dry run: the log was not cleared");
    }
    let critical = entries.iter().any(|e| e.severity == Severity::Critical);
    Ok(if critical {
        Status::Problems
    } else {
        Status::Ok
    })
}

async fn read_and_clear(
    ctx: &Context,
    c: &super::target::Connected,
    args: &SelArgs,
) -> anyhow::Result<(Vec<SelEntry>, Option<bool>)> {
    let entries = c.bmc.sel(args.max).await?;
    if !args.clear {
        return Ok((entries, None));
    }
    if ctx.dry_run {
        return Ok((entries, Some(false)));
    }
    c.bmc.clear_sel().await?;
    Ok((entries, Some(true)))
}
