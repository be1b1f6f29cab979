//! Everything `oob` does to Kubernetes, behind one small trait ([`NodeOps`]): read a node,
//! cordon, taints, conditions, events, annotations, delete. The real implementation is
//! [`KubeNodeOps`] over `kube::Client`; tests run it against the fake API server in `mocks/`.
//! Deciding *when* to do any of it belongs to `remedy/`.

pub mod cache;
pub mod drain;
pub mod join;
mod kube_ops;
pub mod lease;
pub mod rbac;
pub mod remediation;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::small_map::SmallMap;

pub use kube_ops::KubeNodeOps;

/// A kube client for `oob`: kube's built-in retry of 429/503 is switched off, because it
/// backs off up to 15 times with delays growing toward 1,000 s; every wait here is bounded by
/// the caller (drain retries a PDB-blocked eviction every 5 s until its own deadline).
///
/// Every response is awaited at most [`crate::timeouts::KUBE_READ`] (kube's default is no
/// read timeout), counted from when the request is written.
pub fn client(config: kube::Config) -> Result<kube::Client, NodeOpsError> {
    kube::Client::try_from(bounded(config)).map_err(|e| NodeOpsError::Transport {
        detail: e.to_string(),
    })
}

/// The client settings [`client`] applies: no built-in retry, a read timeout.
fn bounded(mut config: kube::Config) -> kube::Config {
    config.default_retry = false;
    config
        .read_timeout
        .get_or_insert(crate::timeouts::KUBE_READ);
    config.reset_reader_on_write = true;
    config
}

#[cfg(test)]
#[test]
fn the_client_never_waits_unbounded_or_retries_on_its_own() {
    let url = "http://127.0.0.1:1".parse().unwrap();
    let c = bounded(kube::Config::new(url));
    assert_eq!(c.read_timeout, Some(crate::timeouts::KUBE_READ));
    assert!(c.reset_reader_on_write && !c.default_retry);
    assert!(c.connect_timeout.is_some() && c.write_timeout.is_some());
}

/// The taint that lets pods with volumes move off a node verified powered off.
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
/// Written before oob puts the out-of-service taint on: recovery takes away only a taint oob
/// put there (Fence Agents Remediation or a person may have put theirs).
pub const OUT_OF_SERVICE_ANNOTATION: &str = "oob.dev/out-of-service";

#[derive(Debug, thiserror::Error)]
pub enum NodeOpsError {
    #[error("node {node} not found")]
    NotFound { node: String },
    #[error("conflict updating node {node} (changed under us): {message}")]
    Conflict { node: String, message: String },
    #[error("the API server rejected the change to {node}: {message}")]
    Invalid { node: String, message: String },
    #[error("the API server is throttling ({message}); try again later")]
    Throttled { message: String },
    #[error("not allowed to {verb} {node}: {message}")]
    Forbidden {
        verb: String,
        node: String,
        message: String,
    },
    #[error("API server error ({code}) on {node}: {message}")]
    Api {
        node: String,
        code: u16,
        message: String,
    },
    #[error("cannot reach the API server: {detail}")]
    Transport { detail: String },
    /// Another remediator holds the node (its Lease is valid): oob yields.
    #[error("held by {holder} (Lease {lease})")]
    Held { lease: String, holder: String },
}

impl NodeOpsError {
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Self::Conflict { .. } | Self::Throttled { .. } | Self::Transport { .. }
        ) || matches!(self, Self::Api { code, .. } if *code >= 500)
    }

    /// Map a kube error about `node` (the API server's `Status`, or transport trouble).
    pub fn from_kube(node: &str, verb: &str, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => {
                let node = node.to_owned();
                let message = s.message.clone();
                match s.code {
                    404 => Self::NotFound { node },
                    409 => Self::Conflict { node, message },
                    422 => Self::Invalid { node, message },
                    429 => Self::Throttled { message },
                    403 => Self::Forbidden {
                        verb: verb.to_owned(),
                        node,
                        message,
                    },
                    code => Self::Api {
                        node,
                        code,
                        message,
                    },
                }
            }
            other => Self::Transport {
                detail: other.to_string(),
            },
        }
    }
}

/// What the service needs to know about a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub name: String,
    /// The Ready condition's status: `True`, `False`, `Unknown`, or `None` when absent.
    pub ready: Option<String>,
    pub system_uuid: Option<String>,
    pub boot_id: Option<String>,
    pub addresses: Vec<(String, String)>,
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
    /// Compact maps: the node cache holds one NodeInfo per machine of the fleet.
    pub labels: SmallMap<String>,
    pub annotations: SmallMap<String>,
    /// Conditions other than Ready whose status is `True` (MemoryPressure, node-problem-
    /// detector's KernelDeadlock…), as `(type, "reason: message")`; oob's own excluded.
    /// Empty on a healthy node.
    pub problems: Vec<(String, String)>,
}

impl NodeInfo {
    /// A node nothing is known of (no cluster, or its Node gone): no condition, no labels.
    pub fn unknown(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ready: None,
            system_uuid: None,
            boot_id: None,
            addresses: Vec::new(),
            unschedulable: false,
            taints: Vec::new(),
            labels: SmallMap::new(),
            annotations: SmallMap::new(),
            problems: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// A node condition `oob` owns (e.g. `HardwareHealthy`, `OobRemediation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// An events.k8s.io/v1 Event about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    /// `Normal` or `Warning`.
    pub type_: String,
    pub reason: String,
    pub action: String,
    pub note: String,
}

/// Set when `oob` cordoned the node, so that recovery uncordons only what `oob` cordoned
/// (and only while the node is still unschedulable: a mark without the cordon is stale).
pub const CORDONED_ANNOTATION: &str = "oob.dev/cordoned";

/// The seam over Kubernetes, documented as existing for fakes: five to seven verbs.
#[async_trait]
pub trait NodeOps: Send + Sync {
    async fn get(&self, node: &str) -> Result<NodeInfo, NodeOpsError>;
    /// Cordon (`true`) or uncordon. Idempotent.
    async fn set_unschedulable(&self, node: &str, unschedulable: bool) -> Result<(), NodeOpsError>;
    /// Cordon or uncordon as oob: `spec.unschedulable` and oob's mark
    /// ([`CORDONED_ANNOTATION`]) together. The API client does it in one write, so no reader
    /// (or crash) ever sees one without the other; fakes may do two.
    async fn cordon_as_oob(&self, node: &str, on: bool) -> Result<(), NodeOpsError> {
        self.set_unschedulable(node, on).await?;
        self.annotate(node, CORDONED_ANNOTATION, on.then_some("true"))
            .await
    }
    /// Add (`Some`) or remove (`None`) the taint with this key and effect. Idempotent.
    async fn set_taint(
        &self,
        node: &str,
        key: &str,
        effect: &str,
        taint: Option<Taint>,
    ) -> Result<(), NodeOpsError>;
    /// Create or replace the condition of this type (status subresource).
    async fn set_condition(&self, node: &str, condition: Condition) -> Result<(), NodeOpsError>;
    async fn publish(&self, node: &str, event: NodeEvent) -> Result<(), NodeOpsError>;
    /// Set (`Some`) or remove (`None`) an annotation.
    async fn annotate(
        &self,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), NodeOpsError>;
    async fn delete(&self, node: &str) -> Result<(), NodeOpsError>;
    /// Take, renew or take over the expired lease `name` for `holder` (`Ok(true)` when held
    /// afterwards). Without a cluster there is no one to share a lock with: granted.
    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, NodeOpsError>;
    /// Give the lease `name` up if `holder` holds it.
    async fn unlock(&self, name: &str, holder: &str) -> Result<(), NodeOpsError>;
    /// The nodes Node Healthcheck asked oob to remediate (an OobRemediation it made): on
    /// those, NHC holding the node's medik8s lease is NHC holding it for oob.
    fn set_requested(&self, _nodes: std::collections::HashSet<String>) {}
    /// PDB-aware drain by eviction; `Ok(None)` when there is no cluster to drain in.
    async fn drain(
        &self,
        node: &str,
        options: &drain::DrainOptions,
    ) -> Result<Option<drain::DrainReport>, NodeOpsError>;
    /// The `password` of the Secret `namespace/name` (a BMC credential by reference);
    /// `labelled`: only from a Secret labelled [`crate::config::CREDENTIAL_LABEL`].
    async fn secret_password(
        &self,
        reference: &str,
        labelled: bool,
    ) -> Result<crate::secret::Secret, NodeOpsError>;
}

/// [`NodeOps`] without a cluster (a CLI on a laptop with only the BMC): reads say the node is
/// unknown, writes are refused. The identity check then has only the inventory to go by.
pub struct Offline;

#[async_trait]
impl NodeOps for Offline {
    async fn get(&self, node: &str) -> Result<NodeInfo, NodeOpsError> {
        Err(NodeOpsError::Transport {
            detail: format!("no Kubernetes access to read {node}"),
        })
    }
    async fn set_unschedulable(&self, node: &str, _: bool) -> Result<(), NodeOpsError> {
        self.get(node).await.map(|_| ())
    }
    async fn set_taint(
        &self,
        node: &str,
        _: &str,
        _: &str,
        _: Option<Taint>,
    ) -> Result<(), NodeOpsError> {
        self.get(node).await.map(|_| ())
    }
    async fn set_condition(&self, node: &str, _: Condition) -> Result<(), NodeOpsError> {
        self.get(node).await.map(|_| ())
    }
    async fn publish(&self, node: &str, _: NodeEvent) -> Result<(), NodeOpsError> {
        self.get(node).await.map(|_| ())
    }
    async fn annotate(&self, node: &str, _: &str, _: Option<&str>) -> Result<(), NodeOpsError> {
        self.get(node).await.map(|_| ())
    }
    async fn delete(&self, node: &str) -> Result<(), NodeOpsError> {
        self.get(node).await.map(|_| ())
    }
    async fn try_lock(
        &self,
        _: &str,
        _: &str,
        _: std::time::Duration,
    ) -> Result<bool, NodeOpsError> {
        Ok(true)
    }
    async fn unlock(&self, _: &str, _: &str) -> Result<(), NodeOpsError> {
        Ok(())
    }
    async fn drain(
        &self,
        _: &str,
        _: &drain::DrainOptions,
    ) -> Result<Option<drain::DrainReport>, NodeOpsError> {
        Ok(None)
    }
    async fn secret_password(
        &self,
        reference: &str,
        _: bool,
    ) -> Result<crate::secret::Secret, NodeOpsError> {
        Err(NodeOpsError::Transport {
            detail: format!("no Kubernetes access to read the Secret {reference}"),
        })
    }
}

/// Every Node's name and annotations (for the inventory by annotation).
pub async fn node_annotations(
    client: &kube::Client,
) -> Result<Vec<(String, BTreeMap<String, String>)>, NodeOpsError> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let list = nodes
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|e| NodeOpsError::from_kube("(all)", "list", e))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|n| {
            let name = n.metadata.name?;
            Some((name, n.metadata.annotations.unwrap_or_default()))
        })
        .collect())
}

/// The `password` of the Secret `namespace/name` (a BMC credential by reference); when
/// `labelled`, the Secret must carry [`crate::config::CREDENTIAL_LABEL`].
pub async fn secret_password(
    client: &kube::Client,
    reference: &str,
    labelled: bool,
) -> Result<crate::secret::Secret, NodeOpsError> {
    let label = labelled.then_some(crate::config::CREDENTIAL_LABEL);
    read_secret(client, reference, "password", label).await
}

/// The value under `key` of the Secret `namespace/name` (a credential by reference).
pub async fn secret_value(
    client: &kube::Client,
    reference: &str,
    key: &str,
) -> Result<crate::secret::Secret, NodeOpsError> {
    read_secret(client, reference, key, None).await
}

async fn read_secret(
    client: &kube::Client,
    reference: &str,
    key: &str,
    label: Option<(&str, &str)>,
) -> Result<crate::secret::Secret, NodeOpsError> {
    let (ns, name) = reference
        .split_once('/')
        .ok_or_else(|| NodeOpsError::Invalid {
            node: reference.to_owned(),
            message: "a Secret reference is namespace/name".into(),
        })?;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    let secret = secrets
        .get(name)
        .await
        .map_err(|e| NodeOpsError::from_kube(reference, "get secret", e))?;
    if let Some((k, v)) = label {
        let has = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .is_some_and(|x| x == v);
        if !has {
            return Err(NodeOpsError::Invalid {
                node: reference.to_owned(),
                message: format!(
                    "the Secret is not labelled {k}={v:?} (a Node annotation may only name such a Secret)"
                ),
            });
        }
    }
    let bytes =
        secret
            .data
            .and_then(|mut d| d.remove(key))
            .ok_or_else(|| NodeOpsError::Invalid {
                node: reference.to_owned(),
                message: format!("the Secret has no `{key}` key"),
            })?;
    let text = String::from_utf8(bytes.0).map_err(|_| NodeOpsError::Invalid {
        node: reference.to_owned(),
        message: format!("the Secret's `{key}` is not UTF-8"),
    })?;
    Ok(crate::secret::Secret::new(text))
}

/// The control-plane nodes (label `node-role.kubernetes.io/control-plane`), in one list
/// call (the label is checked again here: not every server filters by it).
pub async fn control_plane_nodes(client: &kube::Client) -> Result<Vec<NodeInfo>, NodeOpsError> {
    use k8s_openapi::api::core::v1::Node;
    const LABEL: &str = crate::remedy::guard::CONTROL_PLANE_LABEL;
    let api: kube::Api<Node> = kube::Api::all(client.clone());
    let list = api
        .list(&kube::api::ListParams::default().labels(LABEL))
        .await
        .map_err(|e| NodeOpsError::from_kube("nodes", "list", e))?;
    Ok(list
        .items
        .iter()
        .map(kube_ops::info)
        .filter(|n| n.labels.contains_key(LABEL))
        .collect())
}

/// The control-plane nodes other than `except` whose Ready condition is not True: a
/// person's power action on a control-plane node is refused while there is one (etcd
/// quorum).
pub async fn control_plane_not_ready(
    client: &kube::Client,
    except: &str,
) -> Result<Vec<String>, NodeOpsError> {
    Ok(control_plane_nodes(client)
        .await?
        .into_iter()
        .filter(|n| n.name != except && n.ready.as_deref() != Some("True"))
        .map(|n| n.name)
        .collect())
}
