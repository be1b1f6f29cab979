//! `oob node cordon|uncordon|drain NODE`: Kubernetes node actions with kubeconfig discovery
//! like kubectl (`KUBECONFIG`, `~/.kube/config`, in-cluster service account).

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::output::emit;
use super::target::Context;
use super::Status;
use crate::k8s::drain::{self, DrainOptions};
use crate::k8s::{KubeNodeOps, NodeOps};

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[arg(value_enum)]
    pub verb: NodeVerb,
    pub node: String,
    /// Drain: seconds to wait for evictions (PDB-blocked ones are retried every 5 s).
    #[arg(long, default_value_t = 300, value_parser = crate::duration::secs)]
    pub timeout: u64,
    /// Drain: also evict pods with emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Replace: the board was replaced; a new system UUID is accepted (and reported).
    #[arg(long)]
    pub new_board: bool,
    /// Replace: abandon the open replacement of this node (it stopped, and the machine was
    /// redone by hand) and start a new one from the first step.
    #[arg(long)]
    pub fresh: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NodeVerb {
    Cordon,
    Uncordon,
    Drain,
    /// The kubeadm replacement workflow for a machine back from repair or reinstall:
    /// record, identity, etcd member (control plane), delete the Node, token, `kubeadm reset`
    /// and `join` over SSH (or the provisioning hook), wait for Ready, restore labels and
    /// taints, health check, uncordon. Journaled and resumable; `--dry-run` prints each step.
    Replace,
}

/// The cluster, found like kubectl finds it (also used by the ladder's commands).
pub(super) async fn client() -> anyhow::Result<kube::Client> {
    let config = tokio::time::timeout(Duration::from_secs(10), kube::Config::infer())
        .await
        .context("reading the kubeconfig took more than 10 s")?
        .context("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    Ok(crate::k8s::client(config)?)
}

pub async fn run(ctx: &Context, args: NodeArgs) -> anyhow::Result<Status> {
    if matches!(args.verb, NodeVerb::Replace) {
        return super::person::replace(ctx, &args.node, args.new_board, args.fresh).await;
    }
    let client = client().await?;
    let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| "oob-cli".into());
    let ops = KubeNodeOps::new(client.clone(), "default", &instance);
    let node = args.node.as_str();
    if ctx.dry_run {
        let info = ops.get(node).await?;
        let verb = format!("{:?}", args.verb).to_lowercase();
        let rows = [vec![format!(
            "dry run: would {verb} {node} (unschedulable now: {})",
            info.unschedulable
        )]];
        emit(
            ctx.format,
            &json!({ "node": node, "dry_run": true, "action": format!("{:?}", args.verb).to_lowercase() }),
            &rows,
        )?;
        return Ok(Status::Ok);
    }
    match args.verb {
        NodeVerb::Cordon | NodeVerb::Uncordon => {
            let cordon = matches!(args.verb, NodeVerb::Cordon);
            ops.set_unschedulable(node, cordon).await?;
            let rows = [vec![format!(
                "{node} {}",
                if cordon { "cordoned" } else { "uncordoned" }
            )]];
            emit(
                ctx.format,
                &json!({ "node": node, "unschedulable": cordon }),
                &rows,
            )?;
            Ok(Status::Ok)
        }
        NodeVerb::Replace => super::person::replace(ctx, node, args.new_board, args.fresh).await,
        NodeVerb::Drain => {
            ops.set_unschedulable(node, true).await?;
            let options = DrainOptions {
                deadline: Duration::from_secs(args.timeout),
                delete_emptydir_data: args.delete_emptydir_data,
                ..DrainOptions::default()
            };
            // Progress on stderr; the report (table or JSON) on stdout.
            let report = drain::drain_with_progress(&client, node, &options, &|p| match p {
                drain::Progress::Started { to_evict } => {
                    eprintln!("drain {node}: evicting {to_evict} pods")
                }
                drain::Progress::Evicted { pod, left } => {
                    eprintln!("drain {node}: evicted {pod}, {left} left")
                }
                drain::Progress::Waiting { pod, why } => {
                    eprintln!("drain {node}: waiting on {pod}: {why}")
                }
            })
            .await?;
            let mut rows = vec![vec!["POD".into(), "RESULT".into()]];
            rows.extend(
                report
                    .evicted
                    .iter()
                    .map(|p| vec![p.clone(), "evicted".into()]),
            );
            rows.extend(
                report
                    .skipped
                    .iter()
                    .map(|(p, w)| vec![p.clone(), format!("skipped: {w}")]),
            );
            rows.extend(
                report
                    .blocked
                    .iter()
                    .map(|(p, w)| vec![p.clone(), format!("BLOCKED: {w}")]),
            );
            let doc = json!({ "node": node, "complete": report.complete(), "report": report });
            emit(ctx.format, &doc, &rows)?;
            Ok(Status::problems_if(!report.complete()))
        }
    }
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Seconds the bootstrap token stays valid.
    #[arg(long, default_value_t = 3600, value_parser = crate::duration::secs)]
    pub ttl: u64,
}

/// `oob join-command`: a fresh bootstrap token and the `kubeadm join` line for a new node.
pub async fn join(ctx: &Context, args: JoinArgs) -> anyhow::Result<Status> {
    let client = client().await?;
    if ctx.dry_run {
        let (endpoint, _) = crate::k8s::join::cluster_info(&client).await?;
        emit(
            ctx.format,
            &json!({ "endpoint": endpoint, "dry_run": true }),
            &[vec![format!(
                "dry run: would create a bootstrap token for {endpoint}"
            )]],
        )?;
        return Ok(Status::Ok);
    }
    let (command, token) =
        crate::k8s::join::join_command(&client, Duration::from_secs(args.ttl)).await?;
    let doc = json!({ "command": command, "token_id": token.id, "expiration": token.expiration });
    emit(ctx.format, &doc, &[vec![command.clone()]])?;
    Ok(Status::Ok)
}
