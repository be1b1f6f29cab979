//! [`NodeOps`] over a real `kube::Client`. Each verb is one API call (taints: read, then a
//! patch guarded by resourceVersion, retried on conflict a bounded number of times).

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::{debug, info};

use super::{Condition, NodeEvent, NodeInfo, NodeOps, NodeOpsError, Taint};

/// Attempts for a read-modify-write that loses a resourceVersion race.
const CONFLICT_ATTEMPTS: u32 = 3;

/// The API server refuses an Event whose `note` is longer than this, in bytes.
const NOTE_MAX_BYTES: usize = 1024;
/// … or whose `reportingInstance` is longer than this.
const REPORTING_INSTANCE_MAX_BYTES: usize = 128;
/// The API server keeps this much of a `generateName` (63 minus its 5 random characters).
const GENERATED_BASE_MAX_BYTES: usize = 58;
/// What follows the node's name in the name of its Events.
const EVENT_NAME_SUFFIX: &str = "-oob-";

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// `generateName` of an Event about `node`: `{node}-oob-`, the node's name cut so that the
/// whole prefix survives the server's cut to 58 bytes, and without a trailing '.' or '-' so
/// that the prefix and the generated name are DNS subdomains for any valid node name (a '.'
/// before the random suffix, as in `{node}.oob.`, is refused: a generateName may end only in
/// an alphanumeric or a '-').
pub fn event_name_prefix(node: &str) -> String {
    let room = GENERATED_BASE_MAX_BYTES - EVENT_NAME_SUFFIX.len();
    let head = truncate_bytes(node, room).trim_end_matches(['.', '-']);
    if head.is_empty() {
        return EVENT_NAME_SUFFIX.trim_start_matches('-').to_owned();
    }
    format!("{head}{EVENT_NAME_SUFFIX}")
}

pub struct KubeNodeOps {
    client: kube::Client,
    /// Where the per-node and leader leases live.
    leases: String,
    nodes: Api<Node>,
    events: Api<Event>,
    /// `reportingInstance` of events (the pod or host name).
    instance: String,
    /// Nodes NHC asked oob to remediate (its medik8s lease is then held for oob).
    requested: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl KubeNodeOps {
    /// Events go to `namespace` (Node events conventionally live in `default`).
    pub fn new(client: kube::Client, namespace: &str, instance: &str) -> Self {
        Self {
            leases: namespace.to_owned(),
            nodes: Api::all(client.clone()),
            events: Api::namespaced(client.clone(), namespace),
            instance: instance.to_owned(),
            requested: std::sync::Mutex::default(),
            client,
        }
    }

    /// Leases (per-node locks, leader election) in `namespace` (the service's own).
    #[must_use]
    pub fn with_lease_namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.leases);
        self
    }

    fn lease(&self, name: &str, holder: &str, ttl: std::time::Duration) -> super::lease::LeaseLock {
        super::lease::LeaseLock::new(self.client.clone(), &self.leases, name, holder, ttl)
    }

    async fn node(&self, node: &str) -> Result<Node, NodeOpsError> {
        self.nodes
            .get(node)
            .await
            .map_err(|e| NodeOpsError::from_kube(node, "get", e))
    }

    async fn merge(
        &self,
        node: &str,
        verb: &str,
        patch: serde_json::Value,
    ) -> Result<Node, NodeOpsError> {
        self.nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| NodeOpsError::from_kube(node, verb, e))
    }
}

pub(super) fn info(n: &Node) -> NodeInfo {
    info_keeping(n, |_| true, |_| true)
}

/// [`info`] with only the labels and annotations whose key passes (copied one by one: a
/// map cut down after a whole copy keeps its allocation).
pub(super) fn info_keeping(
    n: &Node,
    label: fn(&str) -> bool,
    annotation: fn(&str) -> bool,
) -> NodeInfo {
    let kept = |m: &Option<BTreeMap<String, String>>, keep: fn(&str) -> bool| {
        m.iter()
            .flatten()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let status = n.status.as_ref();
    let spec = n.spec.as_ref();
    NodeInfo {
        name: n.metadata.name.clone().unwrap_or_default(),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone()),
        system_uuid: status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.system_uuid.clone()),
        boot_id: status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.boot_id.clone()),
        addresses: status
            .and_then(|s| s.addresses.as_ref())
            .map(|a| {
                a.iter()
                    .map(|a| (a.type_.clone(), a.address.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        taints: spec
            .and_then(|s| s.taints.as_ref())
            .map(|t| {
                t.iter()
                    .map(|t| Taint {
                        key: t.key.clone(),
                        value: t.value.clone(),
                        effect: t.effect.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        labels: kept(&n.metadata.labels, label),
        annotations: kept(&n.metadata.annotations, annotation),
        problems: status
            .and_then(|s| s.conditions.as_ref())
            .map(|c| {
                c.iter()
                    .filter(|c| {
                        c.status == "True"
                            && c.type_ != "Ready"
                            && c.type_ != crate::remedy::executor::CONDITION
                    })
                    .map(|c| {
                        let why = [c.reason.as_deref(), c.message.as_deref()]
                            .into_iter()
                            .flatten()
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                            .join(": ");
                        (c.type_.clone(), why.chars().take(256).collect())
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[async_trait]
impl NodeOps for KubeNodeOps {
    async fn get(&self, node: &str) -> Result<NodeInfo, NodeOpsError> {
        Ok(info(&self.node(node).await?))
    }

    async fn set_unschedulable(&self, node: &str, unschedulable: bool) -> Result<(), NodeOpsError> {
        self.merge(
            node,
            "cordon",
            json!({ "spec": { "unschedulable": unschedulable } }),
        )
        .await?;
        info!(node, unschedulable, "node schedulability set");
        Ok(())
    }

    async fn cordon_as_oob(&self, node: &str, on: bool) -> Result<(), NodeOpsError> {
        self.merge(
            node,
            "cordon",
            json!({
                "metadata": { "annotations": { super::CORDONED_ANNOTATION: on.then_some("true") } },
                "spec": { "unschedulable": on },
            }),
        )
        .await?;
        info!(node, unschedulable = on, "node schedulability set by oob");
        Ok(())
    }

    async fn set_taint(
        &self,
        node: &str,
        key: &str,
        effect: &str,
        taint: Option<Taint>,
    ) -> Result<(), NodeOpsError> {
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let current = self.node(node).await?;
            let mut taints: Vec<serde_json::Value> = current
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|t| !(t.key == key && t.effect == effect))
                .map(|t| serde_json::to_value(t).unwrap_or_default())
                .collect();
            if let Some(t) = &taint {
                let mut v = json!({ "key": t.key, "effect": t.effect });
                // "Only written for NoExecute taints" (the Taint API).
                if t.effect == "NoExecute" {
                    v["timeAdded"] = json!(Time(Timestamp::now()));
                }
                if let Some(value) = &t.value {
                    v["value"] = json!(value);
                }
                taints.push(v);
            }
            // The resourceVersion makes this a compare-and-swap: a concurrent change is a 409.
            let patch = json!({
                "metadata": { "resourceVersion": current.metadata.resource_version },
                "spec": { "taints": taints },
            });
            match self.merge(node, "taint", patch).await {
                Ok(_) => {
                    info!(node, key, effect, added = taint.is_some(), "node taint set");
                    return Ok(());
                }
                Err(NodeOpsError::Conflict { .. }) if attempt < CONFLICT_ATTEMPTS => {
                    debug!(node, attempt, "taint update conflicted, re-reading");
                }
                Err(e) => return Err(e),
            }
        }
        Err(NodeOpsError::Conflict {
            node: node.to_owned(),
            message: "gave up after repeated conflicts".into(),
        })
    }

    async fn set_condition(&self, node: &str, c: Condition) -> Result<(), NodeOpsError> {
        let now = Time(Timestamp::now());
        // lastTransitionTime says when the status last changed: kept while it does not.
        let since = self
            .node(node)
            .await
            .ok()
            .and_then(|n| n.status?.conditions)
            .and_then(|cs| cs.into_iter().find(|x| x.type_ == c.type_))
            .filter(|x| x.status == c.status)
            .and_then(|x| x.last_transition_time)
            .unwrap_or_else(|| now.clone());
        // Strategic merge: NodeStatus.conditions merges by `type`, so only ours changes.
        let patch = json!({ "status": { "conditions": [{
            "type": c.type_, "status": c.status, "reason": c.reason, "message": c.message,
            "lastHeartbeatTime": now, "lastTransitionTime": since,
        }]}});
        self.nodes
            .patch_status(node, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map_err(|e| NodeOpsError::from_kube(node, "patch status of", e))?;
        info!(node, condition = %c.type_, status = %c.status, "node condition set");
        Ok(())
    }

    async fn publish(&self, node: &str, e: NodeEvent) -> Result<(), NodeOpsError> {
        // Without the Node's uid, the node name (what the kubelet puts there): `kubectl
        // describe node` finds events by either.
        let uid = self
            .node(node)
            .await
            .ok()
            .and_then(|n| n.metadata.uid)
            .unwrap_or_else(|| node.to_owned());
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(event_name_prefix(node)),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(Timestamp::now())),
            type_: Some(e.type_),
            reason: Some(e.reason),
            action: Some(e.action),
            note: Some(truncate_bytes(&e.note, NOTE_MAX_BYTES).to_owned()),
            reporting_controller: Some("oob.dev/remediation".into()),
            reporting_instance: Some(
                truncate_bytes(&self.instance, REPORTING_INSTANCE_MAX_BYTES).to_owned(),
            ),
            regarding: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.to_owned()),
                uid: Some(uid),
                ..ObjectReference::default()
            }),
            ..Event::default()
        };
        self.events
            .create(&PostParams::default(), &event)
            .await
            .map_err(|err| NodeOpsError::from_kube(node, "create events about", err))?;
        Ok(())
    }

    async fn annotate(
        &self,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), NodeOpsError> {
        self.merge(
            node,
            "annotate",
            json!({ "metadata": { "annotations": { key: value } } }),
        )
        .await?;
        Ok(())
    }

    async fn delete(&self, node: &str) -> Result<(), NodeOpsError> {
        self.nodes
            .delete(node, &DeleteParams::default())
            .await
            .map_err(|e| NodeOpsError::from_kube(node, "delete", e))?;
        info!(node, "node deleted");
        Ok(())
    }

    /// oob's own lease; for a per-node lock also the node's medik8s lease (where Node
    /// Healthcheck, Self Node Remediation and the other medik8s operators look): held by
    /// another remediator, oob's lease is given back and `Err(Held)` says by whom.
    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, NodeOpsError> {
        let lock = self.lease(name, holder, ttl);
        if !lock.try_acquire().await? {
            return Ok(false);
        }
        let Some(node) = super::lease::node_of_lock(name) else {
            return Ok(true);
        };
        // The owner is the Node as it is; a Node that could not be read (a timeout, a 429)
        // is not a Node that is gone: the lease keeps the owner it has.
        let (uid, gone) = match self.node(node).await {
            Ok(n) => (n.metadata.uid, false),
            Err(NodeOpsError::NotFound { .. }) => (None, true),
            Err(_) => (None, false),
        };
        let for_oob = self
            .requested
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(node);
        match super::lease::medik8s_acquire(&self.client, node, uid.as_deref(), gone, ttl, for_oob)
            .await
        {
            Ok(()) => Ok(true),
            // Another remediator has the node: oob's own lease back, at once.
            Err(e @ NodeOpsError::Held { .. }) => {
                if let Err(release) = lock.release().await {
                    tracing::warn!(lease = name, error = %release, "giving the lock back failed; it expires on its own");
                }
                Err(e)
            }
            // A transient failure (maybe while renewing a lock we hold): ours is kept, the
            // caller stops; it expires on its own if nobody renews it.
            Err(e) => Err(e),
        }
    }

    fn set_requested(&self, nodes: std::collections::HashSet<String>) {
        *self.requested.lock().unwrap_or_else(|p| p.into_inner()) = nodes;
    }

    async fn unlock(&self, name: &str, holder: &str) -> Result<(), NodeOpsError> {
        if let Some(node) = super::lease::node_of_lock(name) {
            super::lease::medik8s_release(&self.client, node).await?;
        }
        self.lease(name, holder, std::time::Duration::from_secs(1))
            .release()
            .await
    }

    async fn drain(
        &self,
        node: &str,
        options: &super::drain::DrainOptions,
    ) -> Result<Option<super::drain::DrainReport>, NodeOpsError> {
        super::drain::drain(&self.client, node, options)
            .await
            .map(Some)
    }

    async fn secret_password(
        &self,
        reference: &str,
        labelled: bool,
    ) -> Result<crate::secret::Secret, NodeOpsError> {
        super::secret_password(&self.client, reference, labelled).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_prefixes_fit_the_generated_name_budget_and_end_in_a_dash() {
        assert_eq!(event_name_prefix("node-1"), "node-1-oob-");
        assert_eq!(event_name_prefix("e2e-2"), "e2e-2-oob-");
        assert_eq!(
            event_name_prefix("n1.rack4.example.com"),
            "n1.rack4.example.com-oob-"
        );
        let long = format!("{}.{}", "a".repeat(52), "b".repeat(200));
        let p = event_name_prefix(&long);
        assert_eq!(
            p,
            format!("{}-oob-", "a".repeat(52)),
            "the cut lands after the dot"
        );
        assert!(p.len() <= GENERATED_BASE_MAX_BYTES);
        assert_eq!(
            event_name_prefix(&"x".repeat(253)).len(),
            GENERATED_BASE_MAX_BYTES
        );
    }

    #[test]
    fn truncation_counts_bytes_and_keeps_characters_whole() {
        assert_eq!(truncate_bytes("abc", 2), "ab");
        assert_eq!(truncate_bytes("é", 1), "");
        let note = "é".repeat(600);
        let cut = truncate_bytes(&note, NOTE_MAX_BYTES);
        assert_eq!(cut.len(), NOTE_MAX_BYTES);
        assert_eq!(
            truncate_bytes(&format!("x{note}"), NOTE_MAX_BYTES).len(),
            1023
        );
    }
}
