//! `oob serve`, `oob breaker`, `oob config check`: the service's commands.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::output::emit;
use super::target::Context;
use super::{Format, Status};
use crate::clock::rfc3339;
use crate::remedy::journal::Journal;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for /metrics, /healthz, /readyz (default: the config's service.listen).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// This replica's name in leases and events, stable across restarts (default: $POD_NAME,
    /// $HOSTNAME, the kernel hostname, the machine ID).
    #[arg(long, env = "OOB_HOLDER")]
    pub holder: Option<String>,
}

#[derive(Debug, Args)]
pub struct BreakerArgs {
    #[command(subcommand)]
    pub verb: BreakerVerb,
}

#[derive(Debug, Subcommand)]
pub enum BreakerVerb {
    /// Is the storm breaker open, and why.
    Status,
    /// Close the breaker (a person decided the fleet is safe to remediate again).
    Reset,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub verb: ConfigVerb,
}

#[derive(Debug, Subcommand)]
pub enum ConfigVerb {
    /// Validate the file (and that every credential resolves) and print the effective
    /// configuration, defaults filled in, secrets never shown.
    Check,
}

pub(super) fn config(ctx: &Context) -> anyhow::Result<&crate::config::Config> {
    ctx.config
        .as_ref()
        .context("this command needs --config FILE (or OOB_CONFIG)")
}

use super::node::client as kube_client;

pub(super) fn holder(given: Option<String>) -> String {
    let (name, source) = crate::service::holder::holder(given);
    tracing::debug!(holder = %name, source, "holder identity");
    name
}

/// Takes the context: the service owns the inventory from here on (a second copy of
/// 10,000 machines would cost ~15 MB).
pub async fn serve(mut ctx: Context, args: ServeArgs) -> anyhow::Result<Status> {
    let config = ctx
        .config
        .take()
        .context("this command needs --config FILE (or OOB_CONFIG)")?;
    let listen: SocketAddr = match args.listen {
        Some(a) => a,
        None => config
            .service
            .listen
            .parse()
            .with_context(|| format!("service.listen {:?}", config.service.listen))?,
    };
    let client = kube_client().await?;
    let mut config = config;
    crate::service::add_annotated(&mut config, &client).await?;
    let holder = holder(args.holder);
    let (feed, _) = broadcast::channel(1024);
    let svc = crate::service::build(config, client, ctx.dry_run, &holder, feed)?;
    let (stop_tx, stop) = watch::channel(false);
    let (bound, http) = crate::service::serve_http(svc.clone(), listen, stop.clone())
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(listen = %bound, holder = %holder, dry_run = ctx.dry_run, "oob serve started");
    eprintln!("oob serve: listening on {bound} (holder {holder})");
    let runner = tokio::spawn(svc.clone().run(stop));
    shutdown_signal().await;
    eprintln!("oob serve: stopping after the steps in progress");
    let _ = stop_tx.send(true);
    let _ = runner.await;
    let _ = http.await;
    Ok(Status::Ok)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub fn breaker(ctx: &Context, args: BreakerArgs) -> anyhow::Result<Status> {
    let config = config(ctx)?;
    let journal = Journal::open(&config.service.journal)?;
    let (value, line) = match args.verb {
        BreakerVerb::Status => match journal.breaker()? {
            Some(b) => (
                json!({"open": true, "reason": b.reason, "since": rfc3339(b.since_ms)}),
                format!("OPEN since {}: {}", rfc3339(b.since_ms), b.reason),
            ),
            None => (json!({"open": false}), "closed".to_owned()),
        },
        BreakerVerb::Reset => match journal.reset_breaker()? {
            Some(b) => {
                tracing::warn!(reason = %b.reason, "breaker reset by a person");
                (
                    json!({"open": false, "was": b.reason}),
                    format!(
                        "breaker closed (was open since {}: {})",
                        rfc3339(b.since_ms),
                        b.reason
                    ),
                )
            }
            None => (json!({"open": false}), "breaker was not open".to_owned()),
        },
    };
    emit(ctx.format, &value, &[vec![line]])?;
    Ok(Status::Ok)
}

pub fn config_check(ctx: &Context, args: ConfigArgs) -> anyhow::Result<Status> {
    let ConfigVerb::Check = args.verb;
    let config = config(ctx)?;
    let mut problems = Vec::new();
    for m in &config.machines {
        if let Some(p) = &m.profile {
            if let Err(e) = ctx.profiles.get(p) {
                problems.push(format!("machine {}: {e}", m.name));
            }
        }
        // A Secret is read by the service when it is used; files and variables are checked.
        if m.credentials.password_secret.is_none() {
            if let Err(e) = m.credentials.resolve(&m.name) {
                problems.push(e.to_string());
            }
        }
    }
    // The config holds references (variable names, file paths), not values; webhook URLs
    // and header values may be credentials and are cut.
    let shown = config.redacted();
    let effective = serde_json::to_value(&shown)?;
    let value = json!({"path": config.path, "valid": problems.is_empty(), "problems": problems, "effective": effective});
    let mut rows = vec![vec![format!(
        "{}: {} machines, {}",
        config.path,
        config.machines.len(),
        if problems.is_empty() {
            "valid"
        } else {
            "PROBLEMS"
        }
    )]];
    rows.extend(problems.iter().map(|p| vec![format!("  {p}")]));
    if matches!(ctx.format, Format::Table) {
        let toml = toml::to_string_pretty(&shown)?;
        rows.push(vec![format!("\n# effective configuration\n{toml}")]);
    }
    emit(ctx.format, &value, &rows)?;
    Ok(Status::problems_if(!problems.is_empty()))
}
