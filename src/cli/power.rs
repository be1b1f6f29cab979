//! `oob power status|on|off|soft|cycle|reset TARGET`.

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::fleet;
use super::output::{self, emit};
use super::target::{Context, TargetArgs};
use super::Status;
use crate::bmc::power::{self, PowerOutcome};
use crate::bmc::{PowerAction, PowerRequest, PowerState};

#[derive(Debug, Args)]
pub struct PowerArgs {
    /// What to do: status, or an action verified by observed state.
    #[arg(value_enum)]
    pub verb: Verb,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Verb {
    Status,
    On,
    Off,
    Soft,
    Cycle,
    Reset,
}

impl Verb {
    fn action(self) -> Option<PowerAction> {
        match self {
            Self::Status => None,
            Self::On => Some(PowerAction::On),
            Self::Off => Some(PowerAction::Off),
            Self::Soft => Some(PowerAction::Soft),
            Self::Cycle => Some(PowerAction::Cycle),
            Self::Reset => Some(PowerAction::Reset),
        }
    }
}

#[derive(Serialize)]
struct StatusJson<'a> {
    target: &'a str,
    power: PowerState,
}

#[derive(Serialize)]
struct ActionJson<'a> {
    target: &'a str,
    power: PowerState,
    action: PowerAction,
    verified: bool,
    elapsed_ms: u64,
}

#[derive(Serialize)]
struct PlanJson<'a> {
    target: &'a str,
    power: PowerState,
    action: PowerAction,
    dry_run: bool,
    would_send: Vec<PowerRequest>,
}

pub async fn run(ctx: &Context, args: PowerArgs) -> anyhow::Result<Status> {
    if args.target.is_fleet() {
        if !matches!(args.verb, Verb::Status) {
            anyhow::bail!("power actions take one target at a time; only status takes several");
        }
        let outcomes =
            fleet::each(ctx, &args.target, async |c| Ok(c.bmc.power_state().await?)).await?;
        return fleet::print(
            ctx,
            &outcomes,
            vec!["TARGET".into(), "POWER".into(), "ERROR".into()],
            |name, state| {
                serde_json::json!(StatusJson {
                    target: name,
                    power: *state
                })
            },
            |name, state| vec![vec![name.to_owned(), state.to_string()]],
        );
    }
    if let (Some(action), None, [node]) = (
        args.verb.action(),
        &args.target.bmc,
        args.target.targets.as_slice(),
    ) {
        // An inventory machine: the guarded path, never a raw BMC call.
        return super::person::power(ctx, node, action).await;
    }
    if args.verb.action().is_some() && args.target.bmc.is_some() {
        eprintln!(
            "oob: ad hoc --bmc target: a raw BMC call (no identity check, per-node lock or journal is possible); name an inventory machine for the guarded path"
        );
    }
    let c = args.target.connect(ctx).await?;
    let result = act(ctx, &c, args.verb).await;
    c.bmc.close().await;
    result
}

async fn act(ctx: &Context, c: &super::target::Connected, verb: Verb) -> anyhow::Result<Status> {
    let Some(action) = verb.action() else {
        let state = c.bmc.power_state().await?;
        let rows = [
            vec!["TARGET".into(), "POWER".into()],
            vec![c.name.clone(), state.to_string()],
        ];
        emit(
            ctx.format,
            &StatusJson {
                target: &c.name,
                power: state,
            },
            &rows,
        )?;
        return Ok(Status::Ok);
    };
    if ctx.dry_run {
        let state = c.bmc.power_state().await?;
        let would_send = power::plan(action, state);
        let sends = would_send
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join(" then ");
        let rows = [
            vec![
                "TARGET".into(),
                "POWER".into(),
                "ACTION".into(),
                "WOULD SEND".into(),
            ],
            vec![
                c.name.clone(),
                state.to_string(),
                action.as_str().into(),
                output::cell(Some(sends.as_str()).filter(|s| !s.is_empty())),
            ],
        ];
        let json = PlanJson {
            target: &c.name,
            power: state,
            action,
            dry_run: true,
            would_send,
        };
        emit(ctx.format, &json, &rows)?;
        return Ok(Status::Ok);
    }
    let outcome: PowerOutcome = power::execute(c.bmc.as_ref(), action, c.timing).await?;
    let rows = [
        vec![
            "TARGET".into(),
            "ACTION".into(),
            "POWER".into(),
            "VERIFIED".into(),
            "ELAPSED".into(),
        ],
        vec![
            c.name.clone(),
            action.as_str().into(),
            outcome.power.to_string(),
            if outcome.already {
                "yes (already)".into()
            } else if outcome.verified {
                "yes".into()
            } else {
                "NO".into()
            },
            format!("{:.1}s", outcome.elapsed_ms as f64 / 1000.0),
        ],
    ];
    let json = ActionJson {
        target: &c.name,
        power: outcome.power,
        action,
        verified: outcome.verified,
        elapsed_ms: outcome.elapsed_ms,
    };
    emit(ctx.format, &json, &rows)?;
    Ok(Status::problems_if(!outcome.verified))
}
