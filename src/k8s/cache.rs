//! The fleet's Nodes from one watch (kube's reflector), so that a round reads its Node from
//! memory instead of GETting it: the API server sees a list and a watch for the whole fleet,
//! not a request per machine per round. The watcher relists on its own after an expired
//! resourceVersion and backs off on errors; until the first list has arrived the cache is
//! not ready and callers read the API instead.

use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::Api;
use tracing::{debug, warn};

use super::NodeInfo;

/// A watch-backed read-only view of every Node. The watch task ends when this is dropped.
pub struct NodeCache {
    store: Store<Node>,
    task: tokio::task::JoinHandle<()>,
}

impl NodeCache {
    /// Start watching every Node.
    pub fn start(client: kube::Client) -> Self {
        let api: Api<Node> = Api::all(client);
        let (store, writer) = reflector::store();
        let stream = watcher(api, watcher::Config::default()).modify(slim);
        let stream = reflector::reflector(writer, stream)
            .default_backoff()
            .touched_objects();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(n) => debug!(node = ?n.metadata.name, "node watch event"),
                    Err(e) => warn!(error = %e, "node watch failed; retrying with backoff"),
                }
            }
        });
        Self { store, task }
    }

    /// Wait (bounded) for the first complete list; `false` when it did not come in time.
    pub async fn ready(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.store.wait_until_ready())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The Node as last seen, once the first list is in; `None` for an unknown name.
    pub fn get(&self, name: &str) -> Option<NodeInfo> {
        self.store
            .get(&ObjectRef::new(name))
            .map(|n| super::kube_ops::info(&n))
    }

    /// How many Nodes the cache holds.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

/// Drop what a round never reads and a real Node carries by the kilobyte: the field
/// managers' records, the list of cached container images (up to 50 names and digests), the
/// volumes in use. At 10,000 Nodes that is the difference between megabytes and a gigabyte.
fn slim(n: &mut Node) {
    n.metadata.managed_fields = None;
    if let Some(s) = n.status.as_mut() {
        s.images = None;
        s.volumes_in_use = None;
        s.volumes_attached = None;
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
    fn a_slim_node_keeps_everything_a_round_reads() {
        let mut n: Node = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "node-1",
                "annotations": {"oob.dev/paused": "true"},
                "managedFields": [{"manager": "kubelet", "operation": "Update"}],
            },
            "spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
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
        let before = super::super::kube_ops::info(&n);
        slim(&mut n);
        assert_eq!(super::super::kube_ops::info(&n), before);
        let s = n.status.unwrap();
        assert!(n.metadata.managed_fields.is_none() && s.images.is_none());
        assert!(s.volumes_in_use.is_none());
    }
}
