//! `oob identity TARGET` and `oob sel TARGET [--clear]`.

use clap::Args;
use serde::Serialize;

use super::fleet;
use super::output::{cell, emit};
use super::target::{Context, TargetArgs};
use super::Status;
use crate::bmc::{Identity, Protocol, SelEntry, Severity};

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

fn identity_json<'a>(target: &'a str, id: &Identity, profile: &'a str) -> IdentityJson<'a> {
    IdentityJson {
        target,
        protocol: id.protocol,
        manufacturer: id.manufacturer.clone(),
        model: id.model.clone(),
        serial: id.serial.clone(),
        uuid: id.uuid.clone(),
        bios_version: id.bios_version.clone(),
        bmc_firmware: id.bmc_firmware.clone(),
        profile,
    }
}

pub async fn identity(ctx: &Context, args: TargetArgs) -> anyhow::Result<Status> {
    if args.is_fleet() {
        let outcomes = fleet::each(ctx, &args, async |c| {
            Ok((c.bmc.identity().await?, c.profile.id.clone()))
        })
        .await?;
        let header = [
            "TARGET",
            "UUID",
            "SERIAL",
            "MODEL",
            "BMC FIRMWARE",
            "PROFILE",
        ];
        return fleet::print(
            ctx,
            &outcomes,
            header.iter().map(|h| (*h).to_owned()).collect(),
            |name, (id, profile)| serde_json::json!(identity_json(name, id, profile)),
            |name, (id, profile)| {
                vec![vec![
                    name.to_owned(),
                    cell(id.uuid.as_deref()),
                    cell(id.serial.as_deref()),
                    cell(id.model.as_deref()),
                    cell(id.bmc_firmware.as_deref()),
                    profile.clone(),
                ]]
            },
        );
    }
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
    emit(
        ctx.format,
        &identity_json(&c.name, &id, &c.profile.id),
        &rows,
    )?;
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

fn entry_json(e: &SelEntry) -> EntryJson<'_> {
    EntryJson {
        id: &e.id,
        created: e.created.as_deref(),
        severity: e.severity,
        message: &e.message,
        sensor_type: e.sensor_type.as_deref(),
    }
}

fn entry_row(e: &SelEntry) -> Vec<String> {
    vec![
        e.id.clone(),
        cell(e.created.as_deref()),
        format!("{:?}", e.severity).to_lowercase(),
        cell(e.sensor_type.as_deref()),
        e.message.clone(),
    ]
}

pub async fn sel(ctx: &Context, args: SelArgs) -> anyhow::Result<Status> {
    if args.target.is_fleet() {
        if args.clear {
            anyhow::bail!("--clear takes one target at a time");
        }
        let max = args.max;
        let outcomes = fleet::each(ctx, &args.target, async |c| Ok(c.bmc.sel(max).await?)).await?;
        let header = ["TARGET", "ID", "CREATED", "SEVERITY", "SENSOR", "MESSAGE"];
        let status = fleet::print(
            ctx,
            &outcomes,
            header.iter().map(|h| (*h).to_owned()).collect(),
            |name, entries| serde_json::json!({ "target": name, "entries": entries.iter().map(entry_json).collect::<Vec<_>>() }),
            |name, entries| {
                entries
                    .iter()
                    .map(|e| [vec![name.to_owned()], entry_row(e)].concat())
                    .collect()
            },
        )?;
        let critical = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .flatten()
            .any(|e| e.severity == Severity::Critical);
        return Ok(if critical { Status::Problems } else { status });
    }
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
    rows.extend(entries.iter().map(entry_row));
    let json = SelJson {
        target: &c.name,
        entries: entries.iter().map(entry_json).collect(),
        cleared,
    };
    emit(ctx.format, &json, &rows)?;
    if cleared == Some(false) && ctx.format == super::Format::Table {
        eprintln!("dry run: the log was not cleared");
    }
    let critical = entries.iter().any(|e| e.severity == Severity::Critical);
    Ok(Status::problems_if(critical))
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

#[derive(Debug, Args)]
pub struct LedArgs {
    #[arg(value_enum)]
    pub verb: LedVerb,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LedVerb {
    On,
    Off,
    Status,
}

/// `oob led on|off|status TARGET`: an inventory machine's LED is changed only after the
/// identity check (a lit LED on the wrong box sends the technician to the wrong machine) and
/// read back; an ad hoc `--bmc` target is a raw call.
pub async fn led(ctx: &Context, args: LedArgs) -> anyhow::Result<Status> {
    if args.target.is_fleet() {
        anyhow::bail!("led takes one target");
    }
    let on = match args.verb {
        LedVerb::On => Some(true),
        LedVerb::Off => Some(false),
        LedVerb::Status => None,
    };
    if let (Some(on), None, [node]) = (on, &args.target.bmc, args.target.targets.as_slice()) {
        let line = super::person::led(ctx, node, on).await?;
        emit(
            ctx.format,
            &serde_json::json!({"target": node, "locator": line, "on": on}),
            &[vec![format!("{node}: locator LED {line}")]],
        )?;
        return Ok(Status::Ok);
    }
    let c = args.target.connect(ctx).await?;
    let result = async {
        if let Some(on) = on {
            if ctx.dry_run {
                return Ok(format!(
                    "dry run: would be turned {}",
                    if on { "on" } else { "off" }
                ));
            }
            eprintln!("oob: ad hoc --bmc target: a raw BMC call (no identity check is possible)");
            c.bmc.set_locator(on).await?;
        }
        anyhow::Ok(match c.bmc.locator().await? {
            Some(true) => "on".to_owned(),
            Some(false) => "off".to_owned(),
            None => "unknown (this BMC does not report the LED's state)".to_owned(),
        })
    }
    .await;
    c.bmc.close().await;
    let line = result?;
    emit(
        ctx.format,
        &serde_json::json!({"target": c.name, "locator": line}),
        &[vec![format!("{}: locator LED {line}", c.name)]],
    )?;
    Ok(Status::Ok)
}
