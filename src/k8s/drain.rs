//! PDB-aware drain by eviction: list the node's pods (`spec.nodeName`), skip DaemonSet-owned,
//! mirror and completed pods, evict the rest with bounded concurrency, retry evictions a
//! PodDisruptionBudget refuses (429) every `retry_interval` until the deadline, wait for the
//! evicted pods to be gone (not on a node whose kubelet stopped reporting, Ready=Unknown, and
//! not out of service: nothing confirms there, the pods stay Terminating, said at once), and
//! report what still blocks. Pods with emptyDir data move only when allowed. Force deletion
//! happens only with proof that the node is verified powered off.

use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, EvictParams, ListParams};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::NodeOpsError;

/// Evidence, from the power executor, that the node's power is verifiably off: the only
/// thing that allows deleting pods that will not evict.
#[derive(Debug, Clone)]
pub struct VerifiedPowerOff {
    pub node: String,
    /// What verified it (e.g. "redfish PowerState Off at 2026-11-22T10:00:00Z").
    pub evidence: String,
}

#[derive(Debug, Clone)]
pub struct DrainOptions {
    pub deadline: Duration,
    pub concurrency: usize,
    /// Evict pods with emptyDir volumes (their data is lost).
    pub delete_emptydir_data: bool,
    /// How often an eviction refused by a PodDisruptionBudget is tried again.
    pub retry_interval: Duration,
    pub force: Option<VerifiedPowerOff>,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(300),
            concurrency: 8,
            delete_emptydir_data: false,
            retry_interval: Duration::from_secs(5),
            force: None,
        }
    }
}

/// What the drain did, pod by pod (`namespace/name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    pub evicted: Vec<String>,
    pub force_deleted: Vec<String>,
    /// Left alone on purpose: (pod, why).
    pub skipped: Vec<(String, String)>,
    /// Still on the node: (pod, why).
    pub blocked: Vec<(String, String)>,
}

impl DrainReport {
    pub fn complete(&self) -> bool {
        self.blocked.is_empty()
    }
}

fn key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or("default"),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

/// Why a pod is not evicted at all, if it is not.
fn skip_reason(p: &Pod) -> Option<&'static str> {
    if p.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet")
    {
        return Some("DaemonSet-managed");
    }
    if p.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
    {
        return Some("mirror (static) pod");
    }
    if matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) {
        return Some("completed");
    }
    None
}

fn uses_emptydir(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()))
}

/// What a running drain reports as it goes (for a person watching).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Pods to evict, after skipping.
    Started {
        to_evict: usize,
    },
    Evicted {
        pod: String,
        left: usize,
    },
    /// An eviction was refused (PodDisruptionBudget) and will be tried again.
    Waiting {
        pod: String,
        why: String,
    },
}

enum Outcome {
    Evicted,
    Blocked(String),
}

/// Why an evicted pod cannot be gone before the deadline: the node's kubelet, which confirms
/// that a pod stopped, stopped reporting (and no out-of-service taint lets the pod GC remove
/// it). `None` when the kubelet answers, the node is out of service, or the Node is gone.
async fn cannot_finish(client: &kube::Client, node: &str) -> Option<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes.get_opt(node).await.ok().flatten()?;
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map_or("Unknown", |c| c.status.as_str());
    let out_of_service = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == super::OUT_OF_SERVICE));
    // Ready=False is a kubelet that reports (a CNI or PLEG problem): it still stops pods.
    // Unknown is one that stopped reporting.
    (ready == "Unknown" && !out_of_service).then(|| {
        "evicted, Terminating: the node's kubelet stopped reporting (Ready=Unknown), so \
         nothing confirms the pod stopped; it goes once the node is verified off and out of \
         service"
            .to_owned()
    })
}

/// Evict one pod, retrying PDB refusals until `until`; then wait for it to be gone (not when
/// `stuck` says why it cannot go).
async fn evict(
    client: &kube::Client,
    pod: &Pod,
    o: &DrainOptions,
    until: Instant,
    stuck: Option<&str>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Outcome {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    loop {
        match api.evict(&name, &EvictParams::default()).await {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 404 => return Outcome::Evicted,
            Err(kube::Error::Api(s)) if s.code == 429 => {
                if Instant::now() + o.retry_interval > until {
                    return Outcome::Blocked(format!(
                        "eviction refused until the deadline: {}",
                        s.message
                    ));
                }
                progress(Progress::Waiting {
                    pod: key(pod),
                    why: s.message.clone(),
                });
                tokio::time::sleep(o.retry_interval).await;
            }
            Err(e) => {
                return Outcome::Blocked(format!(
                    "eviction failed: {}",
                    NodeOpsError::from_kube(&name, "evict", e)
                ))
            }
        }
    }
    if let Some(why) = stuck {
        return Outcome::Blocked(why.to_owned());
    }
    while Instant::now() < until {
        match api.get_opt(&name).await {
            Ok(None) => return Outcome::Evicted,
            Ok(Some(p)) if p.metadata.uid != pod.metadata.uid => return Outcome::Evicted,
            _ => tokio::time::sleep(Duration::from_millis(500).min(o.retry_interval)).await,
        }
    }
    Outcome::Blocked("evicted but still terminating at the deadline".into())
}

/// Drain `node`. Errors only when the pods cannot be listed; per-pod trouble is in the report.
pub async fn drain(
    client: &kube::Client,
    node: &str,
    o: &DrainOptions,
) -> Result<DrainReport, NodeOpsError> {
    drain_with_progress(client, node, o, &|_| {}).await
}

/// [`drain`], calling `progress` as pods are evicted or wait on a disruption budget.
pub async fn drain_with_progress(
    client: &kube::Client,
    node: &str,
    o: &DrainOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<DrainReport, NodeOpsError> {
    let until = Instant::now() + o.deadline;
    let pods: Api<Pod> = Api::all(client.clone());
    let list = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .map_err(|e| NodeOpsError::from_kube(node, "list pods on", e))?;
    let mut report = DrainReport::default();
    let mut to_evict = Vec::new();
    for pod in list.items {
        match skip_reason(&pod) {
            Some(why) => report.skipped.push((key(&pod), why.into())),
            None if uses_emptydir(&pod) && !o.delete_emptydir_data => {
                report.blocked.push((
                    key(&pod),
                    "has emptyDir data (allow with --delete-emptydir-data)".into(),
                ));
            }
            None => to_evict.push(pod),
        }
    }
    // A node that is down keeps every evicted pod Terminating: said at once rather than
    // waited on until the deadline (the eviction still lets the pods' controllers replace
    // them elsewhere).
    let stuck = match to_evict.is_empty() {
        true => None,
        false => cannot_finish(client, node).await,
    };
    let stuck = stuck.as_deref();
    progress(Progress::Started {
        to_evict: to_evict.len(),
    });
    let left = std::sync::atomic::AtomicUsize::new(to_evict.len());
    let left = &left;
    let outcomes: Vec<(Pod, Outcome)> = futures_util::stream::iter(to_evict)
        .map(|pod| async move {
            let outcome = evict(client, &pod, o, until, stuck, progress).await;
            let remaining = left
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
                .saturating_sub(1);
            if matches!(outcome, Outcome::Evicted) {
                progress(Progress::Evicted {
                    pod: key(&pod),
                    left: remaining,
                });
            }
            (pod, outcome)
        })
        .buffer_unordered(o.concurrency.max(1))
        .collect()
        .await;
    for (pod, outcome) in outcomes {
        match outcome {
            Outcome::Evicted => report.evicted.push(key(&pod)),
            Outcome::Blocked(why) => report.blocked.push((key(&pod), why)),
        }
    }
    if let Some(proof) = o.force.as_ref().filter(|p| p.node == node) {
        let blocked = std::mem::take(&mut report.blocked);
        for (pod, why) in blocked {
            let (ns, name) = pod.split_once('/').unwrap_or(("default", pod.as_str()));
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            match api
                .delete(
                    name,
                    &DeleteParams {
                        grace_period_seconds: Some(0),
                        ..DeleteParams::default()
                    },
                )
                .await
            {
                Ok(_) => {
                    warn!(node, pod = %pod, evidence = %proof.evidence, "pod force-deleted: node verified powered off");
                    report.force_deleted.push(pod);
                }
                Err(e) => report
                    .blocked
                    .push((pod, format!("{why}; force delete failed: {e}"))),
            }
        }
    }
    report.evicted.sort();
    info!(
        node,
        evicted = report.evicted.len(),
        blocked = report.blocked.len(),
        forced = report.force_deleted.len(),
        "drain finished"
    );
    Ok(report)
}
