//! `oob profile list|show ID|check FILE`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::emit;
use super::target::Context;
use super::Status;
use crate::bmc::profile::Profile;

#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub op: ProfileOp,
}

#[derive(Debug, Subcommand)]
pub enum ProfileOp {
    /// Every known profile (embedded, plus the config's profiles_dir).
    List,
    /// One profile, in full.
    Show { id: String },
    /// Validate a profile file.
    Check { file: PathBuf },
}

#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    name: &'a str,
    protocol: String,
}

pub fn run(ctx: &Context, args: ProfileArgs) -> anyhow::Result<Status> {
    match args.op {
        ProfileOp::List => {
            let list: Vec<Row<'_>> = ctx
                .profiles
                .iter()
                .map(|p| Row {
                    id: &p.id,
                    name: &p.name,
                    protocol: p.protocol.to_string(),
                })
                .collect();
            let mut rows = vec![vec!["ID".into(), "PROTOCOL".into(), "NAME".into()]];
            rows.extend(
                list.iter()
                    .map(|r| vec![r.id.into(), r.protocol.clone(), r.name.into()]),
            );
            emit(ctx.format, &serde_json::json!({ "profiles": list }), &rows)?;
        }
        ProfileOp::Show { id } => show(ctx, ctx.profiles.get(&id)?)?,
        ProfileOp::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let profile = Profile::from_toml(&file.display().to_string(), &text)?;
            let rows = [vec![format!(
                "{}: ok (profile {})",
                file.display(),
                profile.id
            )]];
            emit(
                ctx.format,
                &serde_json::json!({ "file": file, "ok": true, "id": profile.id }),
                &rows,
            )?;
        }
    }
    Ok(Status::Ok)
}

fn show(ctx: &Context, profile: &Profile) -> anyhow::Result<()> {
    let text = toml::to_string_pretty(profile)?;
    let rows: Vec<Vec<String>> = text.lines().map(|l| vec![l.to_owned()]).collect();
    emit(ctx.format, profile, &rows)
}
