//! The fleet's Nodes from one watch, so that a round reads its Node from memory instead of
//! GETting it: the API server sees a list and a watch for the whole fleet, not a request per
//! machine per round. What is kept is the compact [`NodeInfo`] a round reads, not the Node
//! (a real Node carries kilobytes of images, managed fields and status). The watcher relists
//! on its own after an expired resourceVersion and backs off on errors; until the first list
//! has arrived the cache is not ready and callers read the API instead.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::Api;
use tracing::{debug, warn};

use super::NodeInfo;

/// Shared: a round holds its Node while it probes (thousands at once), without a copy.
type Nodes = Arc<RwLock<HashMap<String, Arc<NodeInfo>>>>;

/// A watch-backed read-only view of every Node. The watch task ends when this is dropped.
pub struct NodeCache {
    nodes: Nodes,
    listed: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn name(n: &Node) -> String {
    n.metadata.name.clone().unwrap_or_default()
}

/// What a round reads of a Node: a real Node carries dozens of labels and annotations (CNI,
/// kubeadm, cloud), of which a round reads oob's own annotations and the node-role labels.
fn kept(n: &Node) -> NodeInfo {
    super::kube_ops::info_keeping(
        n,
        |k| k.starts_with("node-role.kubernetes.io/"),
        |k| k.starts_with("oob.dev/"),
    )
}

impl NodeCache {
    /// Start watching every Node.
    pub fn start(client: kube::Client) -> Self {
        let api: Api<Node> = Api::all(client);
        let nodes: Nodes = Arc::default();
        let (listed_tx, listed) = tokio::sync::watch::channel(false);
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let store = nodes.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            // A (re)list builds a new map and swaps it in whole when it is complete.
            let mut relist: Option<HashMap<String, Arc<NodeInfo>>> = None;
            let write = || store.write().unwrap_or_else(|p| p.into_inner());
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Init) => relist = Some(HashMap::new()),
                    Ok(watcher::Event::InitApply(n)) => {
                        relist
                            .get_or_insert_with(HashMap::new)
                            .insert(name(&n), Arc::new(kept(&n)));
                    }
                    Ok(watcher::Event::InitDone) => {
                        *write() = relist.take().unwrap_or_default();
                        let _ = listed_tx.send(true);
                    }
                    Ok(watcher::Event::Apply(n)) => {
                        debug!(node = ?n.metadata.name, "node watch event");
                        write().insert(name(&n), Arc::new(kept(&n)));
                    }
                    Ok(watcher::Event::Delete(n)) => {
                        write().remove(&name(&n));
                    }
                    Err(e) => warn!(error = %e, "node watch failed; retrying with backoff"),
                }
            }
        });
        Self {
            nodes,
            listed,
            task,
        }
    }

    /// Wait (bounded) for the first complete list; `false` when it did not come in time.
    pub async fn ready(&self, limit: Duration) -> bool {
        let mut listed = self.listed.clone();
        tokio::time::timeout(limit, listed.wait_for(|l| *l))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<NodeInfo>>> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The Node as last seen, once the first list is in; `None` for an unknown name.
    pub fn get(&self, name: &str) -> Option<Arc<NodeInfo>> {
        self.read().get(name).cloned()
    }

    /// How many Nodes the cache holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

impl Drop for NodeCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_cache_keeps_of_a_node_is_what_a_round_reads() {
        let n: Node = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "node-1",
                "annotations": {"oob.dev/paused": "true", "flannel.alpha.coreos.com/backend-data": "{}"},
                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/os": "linux"},
                "managedFields": [{"manager": "kubelet", "operation": "Update"}],
            },
            "spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                    {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung",
                     "message": "task docker:7 blocked for more than 300 seconds."},
                    {"type": "OobRemediation", "status": "True", "reason": "SoftReboot"},
                ],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.5"}],
                "images": [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 320368}],
                "volumesInUse": ["kubernetes.io/csi/x"],
                "nodeInfo": {
                    "systemUUID": "u", "bootID": "b", "machineID": "m", "kernelVersion": "6",
                    "osImage": "o", "containerRuntimeVersion": "c", "kubeletVersion": "v",
                    "kubeProxyVersion": "v", "operatingSystem": "linux", "architecture": "amd64",
                },
            },
        }))
        .unwrap();
        let kept = kept(&n);
        assert_eq!(kept.ready.as_deref(), Some("True"));
        assert_eq!(
            kept.addresses,
            [("InternalIP".to_owned(), "127.0.0.5".to_owned())]
        );
        assert!(kept.unschedulable && kept.taints.len() == 1);
        assert_eq!(kept.annotations.len(), 1);
        assert_eq!(
            kept.annotations.get("oob.dev/paused").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            kept.labels.keys().collect::<Vec<_>>(),
            ["node-role.kubernetes.io/control-plane"]
        );
        assert_eq!(kept.system_uuid.as_deref(), Some("u"));
        // Problem conditions only (status True), oob's own excluded.
        assert_eq!(
            kept.problems,
            [(
                "KernelDeadlock".to_owned(),
                "DockerHung: task docker:7 blocked for more than 300 seconds.".to_owned()
            )]
        );
    }
}
