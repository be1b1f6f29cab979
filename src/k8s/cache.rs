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
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
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

impl Drop for NodeCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}
