//! A person's commands on one inventory machine, through the same executor as the service
//! (per-node lock, identity check, journal, verified outcomes): `oob check`, `oob plan`,
//! `oob cycle`, `oob reboot`, and `oob power on|off|soft|cycle|reset NODE`. Only an ad hoc
//! `--bmc URL` target is a raw BMC call (`cli/power.rs`).

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use tokio::sync::broadcast;

use super::ladder::{config, holder};
use super::node::client as kube_client;
use super::output::emit;
use super::target::Context;
use super::Status;
use crate::bmc::PowerAction;
use crate::clock::rfc3339;

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
    #[arg(long, value_parser = crate::duration::secs)]
    pub soft_timeout: Option<u64>,
    /// Seconds to wait for the node after the hard cycle (default: policy.hard_reboot_timeout_s).
    #[arg(long, value_parser = crate::duration::secs)]
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

/// Let the stderr printer catch up with the timeline before the command prints its result
/// and exits (bounded: a second at most).
async fn flush_feed(exec: &crate::remedy::executor::Executor) {
    for _ in 0..100 {
        if exec.feed_pending() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

fn stderr_feed(exec: &crate::remedy::executor::Executor) {
    let mut rx = exec.subscribe();
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
    let verdict_policy = config.policy.verdict();
    let svc = crate::service::Service::new(config, exec.clone(), None)?;
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
    // The host's own checks over SSH when it answers there (what `oob diagnose` shows).
    let mut host = json!(null);
    let mut host_rows = Vec::new();
    if machine.ssh.is_some() && evidence.ssh_reachable == Some(true) {
        match exec.host_checks(&machine, node.as_deref()).await {
            Ok(c) => {
                let findings = c.findings(exec.epoch());
                host_rows.extend(findings.iter().map(|f| {
                    vec![format!(
                        "  [host {}] {}: {} (fix: {})",
                        f.severity.name(),
                        f.code,
                        f.detail,
                        f.fix.as_deref().unwrap_or("-")
                    )]
                }));
                evidence.host = Some(c.look(exec.epoch()));
                host = json!({"checks": c, "findings": findings, "repair": c.repair()});
            }
            Err(e) => host_rows.push(vec![format!("  host checks not run: {e}")]),
        }
    }
    // The same decision as the service's round, from the journaled position (the SEL's
    // entries count as findings here: a person asked to see them).
    let mut position = exec.journal().position(&machine.name)?.unwrap_or_default();
    position
        .findings
        .extend(std::mem::take(&mut evidence.findings));
    let policy = crate::remedy::decide::Policy {
        stages: (&svc.config.policy).into(),
        verdict: verdict_policy,
        replace: svc.config.replacement.enabled,
    };
    let decision = crate::remedy::decide::decide(&position, &evidence, exec.now_ms(), &policy);
    let (j, next) = match decision {
        crate::remedy::decide::Decision::Act(plan) => (plan.judgement, Some(plan.step)),
        crate::remedy::decide::Decision::Gather(_) => {
            let e = crate::verdict::Evidence {
                findings: position.findings.clone(),
                ..evidence.clone()
            };
            (crate::verdict::judge(&e, &verdict_policy), None)
        }
    };
    let healthy = matches!(j.verdict, crate::verdict::Verdict::Healthy);
    let next_line = next.map_or_else(
        || "the service would ask the BMC again first".to_owned(),
        |s| {
            format!(
                "the service would: {} (stage {} → {})",
                s.remedy.name(),
                position.stage.name(),
                s.next.name()
            )
        },
    );
    let mut rows = vec![
        vec![format!("{}: {}", machine.name, j.verdict.name())],
        vec![format!("  evidence: {}", j.reasons.join(", "))],
        vec![format!("  {identity_line}")],
        vec![format!("  {next_line}")],
    ];
    rows.extend(j.findings.iter().map(|f| {
        let level = format!("{:?}", f.severity).to_lowercase();
        vec![format!("  [{level}] {}: {}", f.code, f.detail)]
    }));
    rows.extend(host_rows);
    let value = json!({
        "node": machine.name,
        "judgement": j,
        "host": host,
        "identity": identity,
        "location": machine.location,
        "stage": position.stage.name(),
        "next": next.map(|s| json!({"stage": s.next.name(), "remedy": s.remedy.name()})),
    });
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
    let svc = crate::service::Service::new(config, std::sync::Arc::new(exec), None)?;
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
            match (&r.held, r.paused) {
                (_, true) => format!("{} (paused)", r.remedy),
                (Some(why), false) => format!("{} (held: {why})", r.remedy),
                (None, false) => r.remedy.clone(),
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
        alive: false,
        ssh_up: false,
        boot_before: None,
        cause: None,
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
    if matches!(
        done,
        Done::Refused(_) | Done::Busy(_) | Done::Interrupted(_)
    ) {
        anyhow::bail!("{node}: {outcome}: {detail}");
    }
    Ok(Status::problems_if(!ok))
}

/// etcd quorum, for a person's power action too: a control-plane node is not taken down
/// while another control-plane node is not Ready, nor while etcd (asked over SSH on the other
/// control-plane machines, as the service asks) says its member is needed for the quorum.
/// Refused with the reason, before anything is sent.
async fn quorum_guard(
    ctx: &Context,
    exec: &crate::remedy::executor::Executor,
    node: &crate::k8s::NodeInfo,
) -> anyhow::Result<()> {
    use crate::remedy::guard::CONTROL_PLANE_LABEL;
    if !node.labels.contains_key(CONTROL_PLANE_LABEL) {
        return Ok(());
    }
    let client = kube_client().await?;
    let down = crate::k8s::control_plane_not_ready(&client, &node.name)
        .await
        .context("listing the control-plane nodes (etcd quorum check)")?;
    if !down.is_empty() {
        anyhow::bail!(
            "refused: {} is a control-plane node and {} {} not Ready; taking a second control-plane node down could cost etcd its quorum. Bring {} back first (or replace it: oob node replace)",
            node.name,
            down.join(", "),
            if down.len() == 1 { "is" } else { "are" },
            if down.len() == 1 { "it" } else { "them" }
        );
    }
    // etcd itself: a member can be down on a Node that is Ready.
    let inventory = config(ctx)?;
    let peers: Vec<(crate::config::Machine, crate::k8s::NodeInfo)> =
        crate::k8s::control_plane_nodes(&client)
            .await
            .context("listing the control-plane nodes (etcd quorum check)")?
            .into_iter()
            .filter_map(|n| {
                let m = inventory.machines.iter().find(|m| m.name == n.name)?;
                Some((m.clone(), n))
            })
            .collect();
    let read = exec
        .etcd_members(&node.name, &peers, &inventory.replacement.etcdctl)
        .await;
    let machine = inventory.machines.iter().find(|m| m.name == node.name);
    use crate::remedy::guard::EtcdView;
    match crate::remedy::replace::etcd_view(&read, machine, &node.name, Some(node)) {
        // No control-plane machine with SSH settings: the Nodes stand for the members.
        None => Ok(()),
        Some(EtcdView::Unreadable(e)) => anyhow::bail!(
            "refused: {} is a control-plane node and etcd could not be asked ({e}); check etcd before taking it down",
            node.name
        ),
        Some(EtcdView::Read(q)) => match q.hold() {
            Some(why) => anyhow::bail!(
                "refused: {} is a control-plane node whose etcd member the quorum needs: {why}",
                node.name
            ),
            None => Ok(()),
        },
    }
}

/// `oob cycle NODE`: the guarded hard power cycle (lock, identity, journal, verified).
pub async fn cycle(ctx: &Context, args: NodeTarget) -> anyhow::Result<Status> {
    let (_, machine, exec) = person(ctx, &args.node).await?;
    stderr_feed(&exec);
    let node = match exec.nodes().get(&machine.name).await {
        Ok(n) => n,
        Err(_) => crate::k8s::NodeInfo::unknown(&machine.name),
    };
    quorum_guard(ctx, &exec, &node).await?;
    let episode = crate::clock::now_ms();
    let done = exec.hard_reboot(&subject(&machine, &node, episode)).await;
    flush_feed(&exec).await;
    done_status(ctx, &machine.name, &done)
}

/// `oob reboot NODE`: the ladder for one node, from its soft-reboot rung. The executor sends
/// (lock, identity, journal, verification) and the pure stage machine decides when a wait is
/// over: a soft reboot not verified within the soft timeout becomes a verified hard cycle; a
/// node that does not come back after that is a failure. Recovery counts only with a new
/// bootID: a node that answers on its old boot has not rebooted yet.
pub async fn reboot(ctx: &Context, args: RebootArgs) -> anyhow::Result<Status> {
    let (config, machine, exec) = person(ctx, &args.node).await?;
    stderr_feed(&exec);
    let exec = std::sync::Arc::new(exec);
    let done = reboot_ladder(ctx, &args, config, &machine, &exec).await?;
    flush_feed(&exec).await;
    done_status(ctx, &machine.name, &done)
}

async fn reboot_ladder(
    ctx: &Context,
    args: &RebootArgs,
    mut config: crate::config::Config,
    machine: &crate::config::Machine,
    exec: &std::sync::Arc<crate::remedy::executor::Executor>,
) -> anyhow::Result<crate::remedy::executor::Done> {
    use crate::remedy::executor::{Done, Subject};
    use crate::remedy::stage::{Policy as StagePolicy, Remedy, Stage};
    use crate::verdict::judge;
    let node = exec.nodes().get(&machine.name).await.context(
        "oob reboot verifies the reboot by the Node's bootID and needs cluster access (use oob cycle without one)",
    )?;
    quorum_guard(ctx, exec, &node).await?;
    if let Some(s) = args.soft_timeout {
        config.policy.soft_reboot_timeout_s = s;
    }
    if let Some(s) = args.boot_timeout {
        config.policy.hard_reboot_timeout_s = s;
    }
    let policy = StagePolicy::from(&config.policy);
    let verdict_policy = config.policy.verdict();
    let svc = crate::service::Service::new(config, exec.clone(), None)?;
    let episode = exec.now_ms();
    let boot_before = node.boot_id.clone();
    let (mut from, mut remedy) = (Stage::Healthy, Remedy::SoftReboot);
    let mut next = Stage::SoftReboot {
        since: exec.now_ms(),
    };
    // The soft reboot is `systemctl reboot` over SSH when the host's SSH answers.
    let ssh_up = svc.probe(machine).await.0.ssh_reachable == Some(true);
    loop {
        let now_node = exec
            .nodes()
            .get(&machine.name)
            .await
            .unwrap_or(node.clone());
        let s = Subject {
            boot_before: boot_before.as_deref(),
            ssh_up,
            ..subject(machine, &now_node, episode)
        };
        let Some(done) = exec.execute(remedy, &s).await else {
            anyhow::bail!("{}: nothing to do for {}", machine.name, remedy.name());
        };
        let hard_failed = remedy == Remedy::HardReboot && !matches!(done, Done::Ok(_));
        if matches!(
            done,
            Done::Refused(_) | Done::Busy(_) | Done::Interrupted(_)
        ) || ctx.dry_run
            || hard_failed
        {
            return Ok(done);
        }
        let mut stage = next.after(from, done.kind(), exec.now_ms(), &policy);
        loop {
            tokio::time::sleep(crate::timeouts::REBOOT_POLL).await;
            let (evidence, seen, _) = svc.probe(machine).await;
            let verdict = judge(&evidence, &verdict_policy).verdict;
            let step = stage.step(&verdict, exec.now_ms(), &policy);
            let boot_now = seen.as_ref().and_then(|n| n.boot_id.clone());
            match step.remedy {
                Remedy::Recovered if boot_now.is_some() && boot_now != boot_before => {
                    let what = if remedy == Remedy::SoftReboot {
                        "soft"
                    } else {
                        "hard"
                    };
                    exec.note(
                        &machine.name,
                        format!(
                            "{what} reboot verified: bootID {} → {}, Ready=True",
                            boot_before.as_deref().unwrap_or("?"),
                            boot_now.as_deref().unwrap_or("?")
                        ),
                    );
                    let done = Done::Ok(format!("{what} reboot verified"));
                    return Ok(done);
                }
                // Answering on the old boot: the reboot has not happened yet.
                Remedy::Recovered | Remedy::Nothing => {}
                Remedy::HardReboot => {
                    exec.note(
                        &machine.name,
                        "soft reboot not verified in time: hard power cycle",
                    );
                    (from, remedy, next) = (stage, Remedy::HardReboot, step.next);
                    break;
                }
                _ => {
                    let done = Done::Failed(
                        "power cycle verified but the node did not come back Ready".into(),
                    );
                    return Ok(done);
                }
            }
            if step.remedy == Remedy::Nothing {
                stage = step.next;
            }
        }
    }
}

/// `oob power on|off|soft|cycle|reset NODE` for an inventory machine: through the executor,
/// like the service (lock, identity check, journal, verified). Each command is its own
/// journal episode (its start time), so a repeated command is a new, deliberate action.
pub async fn power(ctx: &Context, node: &str, action: PowerAction) -> anyhow::Result<Status> {
    let (_, machine, exec) = person(ctx, node).await?;
    stderr_feed(&exec);
    let node = match exec.nodes().get(&machine.name).await {
        Ok(n) => n,
        Err(_) => crate::k8s::NodeInfo::unknown(&machine.name),
    };
    if action != PowerAction::On {
        quorum_guard(ctx, &exec, &node).await?;
    }
    let episode = crate::clock::now_ms();
    let done = exec
        .power_action(&subject(&machine, &node, episode), action)
        .await;
    flush_feed(&exec).await;
    done_status(ctx, &machine.name, &done)
}

/// `oob node replace NODE`: the kubeadm replacement workflow, through the same executor
/// (journal, lock, identity check) as the service. Resumable: run it again after any
/// interruption and it goes on from the step it reached.
pub async fn replace(
    ctx: &Context,
    node: &str,
    new_board: bool,
    fresh: bool,
) -> anyhow::Result<Status> {
    let mut config = config(ctx)?.clone();
    let client = kube_client()
        .await
        .context("the replacement works on the cluster: it needs a kubeconfig")?;
    crate::service::add_annotated(&mut config, &client).await?;
    let machine = config.machine(node)?.clone();
    let holder = format!("oob-cli-{}", holder(None));
    let (feed, _) = broadcast::channel(256);
    let exec = crate::service::executor(&config, Some(client.clone()), ctx.dry_run, &holder, feed)?;
    // The inventory's control-plane machines (one list call, whatever the fleet's size):
    // where a control-plane node's etcd member is removed.
    let control_plane = crate::k8s::control_plane_nodes(&client)
        .await
        .context("listing the control-plane nodes")?;
    let peers: Vec<_> = control_plane
        .into_iter()
        .filter(|n| n.name != node)
        .filter_map(|n| Some((config.machine(&n.name).ok()?.clone(), n)))
        .collect();
    stderr_feed(&exec);
    let request = crate::remedy::executor::replace::ReplaceRequest {
        machine: &machine,
        peers: &peers,
        new_board,
        fresh,
        settings: &config.replacement,
    };
    let rejoin = crate::k8s::join::KubeRejoin(client);
    let result = exec.replace(&request, &rejoin).await;
    flush_feed(&exec).await;
    let done = result?;
    let rows: Vec<Vec<String>> =
        std::iter::once(vec!["STEP".into(), "HOW".into(), "DETAIL".into()])
            .chain(
                done.steps
                    .iter()
                    .map(|s| vec![s.step.to_owned(), s.how.to_owned(), s.detail.clone()]),
            )
            .collect();
    emit(
        ctx.format,
        &json!({"dry_run": ctx.dry_run, "replaced": done}),
        &rows,
    )?;
    Ok(Status::Ok)
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Node name.
    pub node: String,
    /// The machine was repaired or reinstalled: with `[replacement] enabled` the service
    /// replaces and rejoins it (`oob node replace` does it by hand).
    #[arg(long)]
    pub repaired: bool,
}

/// `oob release NODE [--repaired]`: a mark on the Node (`oob.dev/release`) that the service
/// acts on when the node is awaiting replacement (and takes away), with an Event.
pub async fn release(ctx: &Context, args: ReleaseArgs) -> anyhow::Result<Status> {
    use crate::k8s::{KubeNodeOps, NodeEvent, NodeOps as _, NodeOpsError};
    use crate::remedy::executor::RELEASE_ANNOTATION;
    let client = kube_client()
        .await
        .context("a release is a mark on the Node: it needs a kubeconfig")?;
    let ops = KubeNodeOps::new(client, "default", &format!("oob-cli-{}", holder(None)));
    let node = args.node.as_str();
    match ops.get(node).await {
        Ok(_) => {}
        Err(NodeOpsError::NotFound { .. }) => anyhow::bail!(
            "Node {node} not found: there is no hands-off to end; a machine without a Node is rejoined with `oob node replace {node}`"
        ),
        Err(e) => return Err(e.into()),
    }
    let value = if args.repaired { "repaired" } else { "done" };
    let line = if args.repaired {
        format!("{node} released as repaired: the service replaces and rejoins it if [replacement] enabled, else its ladder goes on")
    } else {
        format!("{node} released: the service's ladder goes on")
    };
    if ctx.dry_run {
        emit(
            ctx.format,
            &json!({"node": node, "dry_run": true, "release": value}),
            &[vec![format!(
                "dry run: would annotate {RELEASE_ANNOTATION}={value} on {node}"
            )]],
        )?;
        return Ok(Status::Ok);
    }
    ops.annotate(node, RELEASE_ANNOTATION, Some(value)).await?;
    let event = NodeEvent {
        type_: "Normal".into(),
        reason: "Released".into(),
        action: "Release".into(),
        note: line.clone(),
    };
    if let Err(e) = ops.publish(node, event).await {
        tracing::warn!(node, error = %e, "publishing the release event failed");
    }
    // The technicians are done with the box: its locator LED off (an inventory machine,
    // after the identity check; the service says it too when it acts on the release).
    let led = match ctx.config.as_ref().map(|c| c.machine(node).is_ok()) {
        Some(true) => Some(match led(ctx, node, false).await {
            Ok(state) => format!("locator LED {state}"),
            Err(e) => format!("locator LED not turned off: {e:#}"),
        }),
        _ => None,
    };
    let mut rows = vec![vec![line]];
    rows.extend(led.iter().map(|l| vec![l.clone()]));
    emit(
        ctx.format,
        &json!({"node": node, "release": value, "locator": led}),
        &rows,
    )?;
    Ok(Status::Ok)
}

/// The locator LED of an inventory machine, through the executor's identity check.
pub async fn led(ctx: &Context, node: &str, on: bool) -> anyhow::Result<String> {
    let (_, machine, exec) = person(ctx, node).await?;
    let info = match exec.nodes().get(&machine.name).await {
        Ok(n) => n,
        Err(_) => crate::k8s::NodeInfo::unknown(&machine.name),
    };
    exec.locator(&machine, &info, on)
        .await
        .map_err(|why| anyhow::anyhow!("{node}: locator LED not changed: {why}"))
}
