//! Assembling a service: the executor for a configuration (journal, profiles, the cluster
//! or the offline stand-in, the real BMC connector and clock), the inventory from Node
//! annotations, and the service itself.

use std::sync::Arc;

use tracing::warn;

use super::Service;
use crate::config::Config;
use crate::k8s::KubeNodeOps;
use crate::remedy::executor::{Deps, Executor, Profiled, Settings, SystemClock};

/// Add the Nodes that describe their BMC in annotations (`oob.dev/bmc`, …) to the
/// inventory; the file's machines win on a name clash. Problems are logged and skipped.
pub async fn add_annotated(config: &mut Config, client: &kube::Client) -> anyhow::Result<()> {
    let nodes = crate::k8s::node_annotations(client).await?;
    for problem in config.add_annotated(&nodes) {
        warn!(problem = %problem, "annotated node skipped");
    }
    Ok(())
}

/// The executor for a configuration: journal, governor, profiles, node operations. `client`
/// is `None` for a CLI without cluster access (no drain, no lock, no Node to compare).
pub fn executor(
    config: &Config,
    client: Option<kube::Client>,
    dry_run: bool,
    holder: &str,
    feed: tokio::sync::broadcast::Sender<crate::remedy::executor::Line>,
) -> anyhow::Result<Executor> {
    use anyhow::Context as _;
    let profiles = match &config.profiles_dir {
        Some(dir) => crate::bmc::profile::Profiles::with_overrides(dir)?,
        None => crate::bmc::profile::Profiles::embedded()?,
    };
    let journal = crate::remedy::journal::Journal::open(&config.service.journal)
        .with_context(|| format!("opening the journal (service.journal in {})", config.path))?;
    let nodes: Arc<dyn crate::k8s::NodeOps> = match client {
        Some(c) => Arc::new(
            KubeNodeOps::new(c, "default", holder).with_lease_namespace(&config.service.namespace),
        ),
        None => Arc::new(crate::k8s::Offline),
    };
    let deps = Deps {
        journal: Arc::new(journal),
        nodes,
        bmcs: Arc::new(Profiled(profiles)),
        hosts: Arc::new(crate::gather::host::SshAccess),
        clock: Arc::new(SystemClock),
    };
    let settings = Settings {
        policy: config.policy.clone(),
        holder: holder.to_owned(),
        reports_dir: config.service.reports_dir.clone(),
        sinks: config.report.sink_names(),
        node_lock: std::time::Duration::from_secs(config.service.node_lock_s),
        dry_run,
        feed,
    };
    Ok(Executor::new(deps, settings))
}

/// Build a service from a configuration. `feed` receives every timeline line (the demo
/// prints it).
pub fn build(
    config: Config,
    client: kube::Client,
    dry_run: bool,
    holder: &str,
    feed: tokio::sync::broadcast::Sender<crate::remedy::executor::Line>,
) -> anyhow::Result<Arc<Service>> {
    let mut exec = executor(&config, Some(client.clone()), dry_run, holder, feed)?;
    // The service's journal is shared through the API (a person's command is serialized
    // with it by the per-node lock and journals locally).
    if config.service.shared_journal && !dry_run {
        exec = exec.with_episodes(Arc::new(crate::k8s::remediation::KubeEpisodes::new(
            client.clone(),
            &config.service.namespace,
        )));
    }
    for e in exec.journal().in_flight()? {
        warn!(key = %e.key, node = %e.node, action = %e.action, "journaled action without an outcome (interrupted); it is resumed from the real state, never re-sent");
    }
    Ok(Arc::new(Service::new(
        config,
        Arc::new(exec),
        Some(client),
    )?))
}
