//! `oob serve`, `oob demo`, `oob breaker`, `oob config check`: the ladder's commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::output::emit;
use super::target::Context;
use super::{Format, Status};
use crate::remedy::executor::{rfc3339, Line};
use crate::remedy::journal::Journal;
use crate::service::demo::{self, DemoOptions};

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
pub struct DemoArgs {
    /// Journal and fault reports go here.
    #[arg(long, default_value = "oob-demo")]
    pub dir: PathBuf,
    /// Longest run in seconds (the demo ends when every scenario has settled).
    #[arg(long, default_value_t = 90)]
    pub deadline: u64,
    /// Healthy nodes besides the four scenario nodes.
    #[arg(long, default_value_t = 4)]
    pub healthy: usize,
}

#[derive(Debug, Args)]
pub struct SimFleetArgs {
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, value_delimiter = ',')]
    pub hang: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    pub fail_disk: Vec<String>,
    #[arg(long, default_value_t = 1000)]
    pub fault_after_ms: u64,
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

fn config(ctx: &Context) -> anyhow::Result<&crate::config::Config> {
    ctx.config
        .as_ref()
        .context("this command needs --config FILE (or OOB_CONFIG)")
}

use super::node::client as kube_client;

fn holder(given: Option<String>) -> String {
    let (name, source) = crate::service::holder::holder(given);
    tracing::debug!(holder = %name, source, "holder identity");
    name
}

fn print_line(format: Format, line: &Line) {
    if matches!(format, Format::Json) {
        return;
    }
    let t = rfc3339(line.at_ms);
    let clock = t.get(11..19).unwrap_or(&t);
    println!("{clock} {} {}", line.node, line.text);
}

pub async fn serve(ctx: &Context, args: ServeArgs) -> anyhow::Result<Status> {
    let config = config(ctx)?.clone();
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

pub async fn demo(ctx: &Context, args: DemoArgs) -> anyhow::Result<Status> {
    let o = DemoOptions {
        dir: args.dir,
        deadline: Duration::from_secs(args.deadline),
        healthy: args.healthy,
    };
    let format = ctx.format;
    if matches!(format, Format::Table) {
        println!(
            "oob demo: {} simulated machines (mock Redfish BMCs, hosts on loopback TCP, fake API server); faults start in 1 s\n",
            4 + o.healthy
        );
    }
    let result = demo::run(&o, move |l| print_line(format, l)).await?;
    let rows: Vec<Vec<String>> = std::iter::once(vec![
        "".into(),
        "SCENARIO".into(),
        "NODE".into(),
        "SOFT".into(),
        "CYCLES".into(),
        "OUTCOME".into(),
    ])
    .chain(result.scenarios.iter().map(|s| {
        vec![
            if s.passed { "PASS" } else { "FAIL" }.into(),
            s.name.clone(),
            s.node.clone(),
            s.soft_reboots.to_string(),
            s.power_cycles.to_string(),
            s.outcome.clone(),
        ]
    }))
    .collect();
    if matches!(format, Format::Table) {
        println!();
    }
    emit(format, &result, &rows)?;
    if matches!(format, Format::Table) {
        println!("\nreports: {}", o.dir.join("reports").display());
    }
    Ok(Status::problems_if(!result.passed()))
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
    // The config holds references (variable names, file paths), never values: printing it
    // shows nothing secret.
    let effective = serde_json::to_value(config)?;
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
        let toml = toml::to_string_pretty(config)?;
        rows.push(vec![format!("\n# effective configuration\n{toml}")]);
    }
    emit(ctx.format, &value, &rows)?;
    Ok(Status::problems_if(!problems.is_empty()))
}

#[derive(Debug, Args)]
pub struct NodeTarget {
    /// Machine (node) name from the config file.
    pub node: String,
}

#[derive(Debug, Args)]
pub struct RebootArgs {
    /// Machine (node) name from the config file.
    pub node: String,
    /// Seconds to wait for the soft reboot to be verified (bootID changed, Ready) before the
    /// hard cycle (default: policy.soft_reboot_timeout_s).
    #[arg(long)]
    pub soft_timeout: Option<u64>,
    /// Seconds to wait for the node after the hard cycle (default: policy.hard_reboot_timeout_s).
    #[arg(long)]
    pub boot_timeout: Option<u64>,
}

/// Cluster access when there is one (the identity check then also has the Node's UUID).
async fn optional_client() -> Option<kube::Client> {
    match kube_client().await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "no cluster access; the identity check uses the inventory only");
            None
        }
    }
}

/// An executor for a person's command: the config's journal (so the service sees what a
/// person did), the per-node lock, the same interlocks.
async fn person(
    ctx: &Context,
    node: &str,
) -> anyhow::Result<(
    crate::config::Config,
    crate::config::Machine,
    crate::remedy::executor::Executor,
)> {
    let mut config = config(ctx)?.clone();
    let client = optional_client().await;
    if let Some(c) = &client {
        crate::service::add_annotated(&mut config, c).await?;
    }
    let machine = config.machine(node)?.clone();
    config.machines = vec![machine.clone()];
    let holder = format!("oob-cli-{}", holder(None));
    let (feed, _) = broadcast::channel(256);
    let exec = crate::service::executor(&config, client, ctx.dry_run, &holder, feed)?;
    Ok((config, machine, exec))
}

fn stderr_feed(exec: &crate::remedy::executor::Executor) {
    let mut rx = exec.feed.subscribe();
    tokio::spawn(async move {
        while let Ok(line) = rx.recv().await {
            let t = rfc3339(line.at_ms);
            eprintln!(
                "{} {} {}",
                t.get(11..19).unwrap_or(&t),
                line.node,
                line.text
            );
        }
    });
}

pub async fn check(ctx: &Context, args: NodeTarget) -> anyhow::Result<Status> {
    let (config, machine, exec) = person(ctx, &args.node).await?;
    let exec = std::sync::Arc::new(exec);
    let svc = crate::service::Service::new(config, exec.clone())?;
    let (mut evidence, node, _) = svc.probe(&machine).await;
    let mut identity = json!(null);
    let mut identity_line = "BMC not reachable".to_owned();
    match exec.connect(&machine).await {
        Ok(c) => {
            if let Ok(p) = c.bmc.power_state().await {
                evidence.power = Some(p);
                evidence.bmc_reachable = Some(true);
            }
            if let Ok(entries) = c.bmc.sel(crate::timeouts::SEL_MAX_ENTRIES).await {
                evidence.findings =
                    crate::health::sel::findings(&entries, &std::collections::BTreeSet::new());
            }
            if let Ok(id) = c.bmc.identity().await {
                let expected = crate::remedy::guard::Expected {
                    system_uuid: node.as_ref().and_then(|n| n.system_uuid.clone()),
                    serial: machine.serial.clone(),
                };
                let verdict = crate::remedy::guard::same_machine(&id, &expected);
                identity_line = match &verdict {
                    Ok(m) => format!("identity matches ({m})"),
                    Err(why) => format!("IDENTITY MISMATCH: {why}"),
                };
                identity = json!({"bmc": id, "matches": verdict.is_ok(), "detail": identity_line});
            }
            c.bmc.close().await;
        }
        Err(e) => {
            evidence.bmc_reachable = Some(false);
            identity_line = format!("BMC not reachable: {e}");
        }
    }
    let j = crate::verdict::judge(&evidence, &crate::verdict::Policy::default());
    let healthy = matches!(j.verdict, crate::verdict::Verdict::Healthy);
    let mut rows = vec![
        vec![format!("{}: {}", machine.name, j.verdict.name())],
        vec![format!("  evidence: {}", j.reasons.join(", "))],
        vec![format!("  {identity_line}")],
    ];
    rows.extend(
        j.findings
            .iter()
            .map(|f| vec![format!("  [{:?}] {}: {}", f.severity, f.code, f.detail).to_lowercase()]),
    );
    let value = json!({"node": machine.name, "judgement": j, "identity": identity, "location": machine.location});
    emit(ctx.format, &value, &rows)?;
    Ok(Status::problems_if(!healthy))
}

pub async fn plan(ctx: &Context) -> anyhow::Result<Status> {
    let mut config = config(ctx)?.clone();
    let client = optional_client().await;
    if let Some(c) = &client {
        crate::service::add_annotated(&mut config, c).await?;
    }
    let (feed, _) = broadcast::channel(16);
    let exec = crate::service::executor(&config, client, true, "oob-plan", feed)?;
    let svc = crate::service::Service::new(config, std::sync::Arc::new(exec))?;
    let rows = svc.plan().await;
    let acting = rows.iter().any(|r| r.remedy != "nothing");
    let table: Vec<Vec<String>> = std::iter::once(
        ["NODE", "STAGE", "VERDICT", "NEXT", "REMEDY", "EVIDENCE"]
            .map(String::from)
            .to_vec(),
    )
    .chain(rows.iter().map(|r| {
        vec![
            r.node.clone(),
            r.stage.clone(),
            r.verdict.clone(),
            r.next.clone(),
            if r.paused {
                format!("{} (paused)", r.remedy)
            } else {
                r.remedy.clone()
            },
            r.reasons.join(", "),
        ]
    }))
    .collect();
    emit(ctx.format, &json!({"plan": rows}), &table)?;
    Ok(Status::problems_if(acting))
}

fn subject<'a>(
    machine: &'a crate::config::Machine,
    node: &'a crate::k8s::NodeInfo,
    episode: u64,
) -> crate::remedy::executor::Subject<'a> {
    crate::remedy::executor::Subject {
        machine,
        node,
        episode,
        findings: &[],
        evidence: &[],
        verdict: "requested by a person",
    }
}

fn offline_node(name: &str) -> crate::k8s::NodeInfo {
    crate::k8s::NodeInfo {
        name: name.to_owned(),
        ready: None,
        system_uuid: None,
        boot_id: None,
        addresses: Vec::new(),
        unschedulable: false,
        taints: Vec::new(),
        labels: Default::default(),
        annotations: Default::default(),
    }
}

fn done_status(
    ctx: &Context,
    node: &str,
    done: &crate::remedy::executor::Done,
) -> anyhow::Result<Status> {
    use crate::remedy::executor::Done;
    let (outcome, detail) = done.outcome();
    let ok = matches!(done, Done::Ok(_));
    emit(
        ctx.format,
        &json!({"node": node, "outcome": outcome, "detail": detail, "verified": ok}),
        &[vec![format!("{node}: {outcome}: {detail}")]],
    )?;
    if matches!(done, Done::Refused(_) | Done::Busy(_)) {
        anyhow::bail!("{node}: {outcome}: {detail}");
    }
    Ok(Status::problems_if(!ok))
}

/// `oob cycle NODE`: the guarded hard power cycle (lock, identity, journal, verified).
pub async fn cycle(ctx: &Context, args: NodeTarget) -> anyhow::Result<Status> {
    let (_, machine, exec) = person(ctx, &args.node).await?;
    stderr_feed(&exec);
    let node = match exec.nodes.get(&machine.name).await {
        Ok(n) => n,
        Err(_) => offline_node(&machine.name),
    };
    let episode = crate::remedy::executor::now_ms();
    let done = exec.hard_reboot(&subject(&machine, &node, episode)).await;
    done_status(ctx, &machine.name, &done)
}

/// `oob reboot NODE`: soft reboot, verified by bootID and Ready; the guarded hard cycle when
/// the soft one is not verified in time.
pub async fn reboot(ctx: &Context, args: RebootArgs) -> anyhow::Result<Status> {
    use crate::remedy::executor::Done;
    let (config, machine, exec) = person(ctx, &args.node).await?;
    stderr_feed(&exec);
    let node = exec.nodes.get(&machine.name).await.context(
        "oob reboot verifies the reboot by the Node's bootID and needs cluster access (use oob cycle without one)",
    )?;
    let episode = crate::remedy::executor::now_ms();
    let s = subject(&machine, &node, episode);
    let soft = exec.soft_reboot(&s).await;
    let soft_wait = Duration::from_secs(
        args.soft_timeout
            .unwrap_or(config.policy.soft_reboot_timeout_s),
    );
    if matches!(soft, Done::Refused(_) | Done::Busy(_)) || ctx.dry_run {
        return done_status(ctx, &machine.name, &soft);
    }
    if matches!(soft, Done::Ok(_))
        && rebooted(&exec, &machine.name, node.boot_id.as_deref(), soft_wait).await
    {
        exec.note(
            &machine.name,
            "soft reboot verified: bootID changed, Ready=True",
        );
        return done_status(ctx, &machine.name, &Done::Ok("soft reboot verified".into()));
    }
    exec.note(
        &machine.name,
        "soft reboot not verified in time: hard power cycle",
    );
    let hard = exec.hard_reboot(&s).await;
    if !matches!(hard, Done::Ok(_)) {
        return done_status(ctx, &machine.name, &hard);
    }
    let boot_wait = Duration::from_secs(
        args.boot_timeout
            .unwrap_or(config.policy.hard_reboot_timeout_s),
    );
    if rebooted(&exec, &machine.name, node.boot_id.as_deref(), boot_wait).await {
        exec.note(
            &machine.name,
            "reboot verified after the hard cycle: bootID changed, Ready=True",
        );
        return done_status(ctx, &machine.name, &Done::Ok("hard reboot verified".into()));
    }
    done_status(
        ctx,
        &machine.name,
        &Done::Failed("power cycle verified but the node did not come back Ready".into()),
    )
}

/// Wait (bounded) for the Node's bootID to differ from `before` and Ready to be True.
async fn rebooted(
    exec: &crate::remedy::executor::Executor,
    node: &str,
    before: Option<&str>,
    limit: Duration,
) -> bool {
    let until = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < until {
        if let Ok(n) = exec.nodes.get(node).await {
            if n.boot_id.as_deref() != before && n.ready.as_deref() == Some("True") {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}
