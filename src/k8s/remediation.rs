//! `OobRemediation` (oob.dev/v1alpha1): one per node episode, the journal replicas share in a
//! cluster (step records written before a request is sent, outcomes after, the ladder's
//! position) and the remediation CR of the medik8s Node Healthcheck Operator's External
//! Remediation contract (the node from `remediation.medik8s.io/node-name`, the conditions
//! `Processing`, `Succeeded`, `PermanentNodeDeletionExpected`, stop on
//! `remediation.medik8s.io/nhc-timed-out`, never deleted by oob when NHC made it).
//!
//! Status writes replace the status subresource with the resourceVersion read (optimistic
//! concurrency): on a conflict the object is read again and the change applied again.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::NodeOpsError;

pub const GROUP: &str = "oob.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "OobRemediation";
pub const PLURAL: &str = "oobremediations";
/// Where NHC names the node (the object's name is not the node's when NHC generates it).
pub const NODE_NAME_ANNOTATION: &str = "remediation.medik8s.io/node-name";
/// Set by NHC when it gives up on this remediator: stop between steps.
pub const TIMED_OUT_ANNOTATION: &str = "remediation.medik8s.io/nhc-timed-out";
/// On the OobRemediations oob made for its own episodes (it deletes those once closed).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "oob";

/// Condition types of the NHC contract.
pub const PROCESSING: &str = "Processing";
pub const SUCCEEDED: &str = "Succeeded";
pub const PERMANENT_NODE_DELETION_EXPECTED: &str = "PermanentNodeDeletionExpected";

/// Conflicts a status write retries before giving up.
const CONFLICT_RETRIES: usize = 5;

/// One action as the shared journal keeps it (the local journal's `Entry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub key: String,
    pub action: String,
    pub intent_ms: u64,
    #[serde(default)]
    pub before: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_ms: Option<u64>,
}

/// A message for the machine room (fault report, follow-up) as the shared outbox keeps
/// it: a new leader delivers what the old one had not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedMessage {
    pub id: String,
    pub kind: String,
    pub created_ms: u64,
    /// The message as the local outbox stores it (JSON).
    pub body: String,
    /// The sinks that took it.
    #[serde(default)]
    pub delivered: Vec<String>,
}

/// A `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

/// The status oob writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<String>,
    /// The ladder's position as the local journal stores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// The episode's findings (code, severity, component, detail), for `kubectl describe`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Value>,
    /// The fault report's file (the status page serves it at `/report/FILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<SharedMessage>,
    /// Fields this version does not know (a newer oob's): kept as they are when it rewrites.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl Status {
    /// Add or replace the step with this key (an outcome never goes back to none).
    pub fn put_step(&mut self, step: &Step) {
        match self.steps.iter_mut().find(|s| s.key == step.key) {
            Some(s) => {
                if s.outcome.is_none() || step.outcome.is_some() {
                    *s = step.clone();
                }
            }
            None => self.steps.push(step.clone()),
        }
        self.last_step = Some(match &step.outcome {
            Some(o) => format!("{}: {o}", step.action),
            None => format!("{}: sent", step.action),
        });
    }

    /// Set a condition; its transition time changes only when its status does.
    pub fn set_condition(
        &mut self,
        type_: &str,
        status: &str,
        reason: &str,
        message: &str,
        now: &str,
    ) {
        match self.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now.to_owned();
                }
                status.clone_into(&mut c.status);
                reason.clone_into(&mut c.reason);
                message.clone_into(&mut c.message);
            }
            None => self.conditions.push(Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                last_transition_time: now.to_owned(),
            }),
        }
    }

    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// One OobRemediation as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Remediation {
    pub name: String,
    pub node: String,
    /// Made by someone else (the Node Healthcheck Operator, a person): oob never deletes it.
    pub requested: bool,
    /// NHC has given up on oob for this node: stop.
    pub timed_out: bool,
    pub status: Status,
}

/// The OobRemediations of oob's namespace: read them all, change one node's.
#[async_trait]
pub trait Episodes: Send + Sync {
    async fn list(&self) -> Result<Vec<Remediation>, NodeOpsError>;
    /// Apply `change` to the status of the OobRemediation of `node`'s episode `tag`: a
    /// requested one for the node when there is one open, else oob's own (`NODE.TAG`,
    /// created when missing). An empty `tag`: the requested one only (NotFound without).
    async fn update(
        &self,
        node: &str,
        tag: &str,
        change: &(dyn for<'s> Fn(&'s mut Status) + Send + Sync),
    ) -> Result<(), NodeOpsError>;
    /// Delete one oob made (never a requested one).
    async fn delete_own(&self, name: &str) -> Result<(), NodeOpsError>;
}

/// The episode tag of an idempotency key `NODE/TAG/STEP` (`e7` for ladder episode 7, the
/// replacement's `rID` as is).
pub fn tag_of(key: &str) -> String {
    let second = key.split('/').nth(1).unwrap_or("0");
    if second.chars().all(|c| c.is_ascii_digit()) {
        format!("e{second}")
    } else {
        second.to_owned()
    }
}

/// An OobRemediation name for oob's own episode: `NODE.TAG` (a DNS subdomain, at most 253).
pub fn own_name(node: &str, tag: &str) -> String {
    let tag: String = tag
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let room = 253usize.saturating_sub(tag.len() + 1);
    let node: String = node.chars().take(room).collect();
    format!("{}.{tag}", node.trim_end_matches(['.', '-']))
}

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// Read an object into a [`Remediation`] (`None`: names no node).
pub fn parse(obj: &DynamicObject) -> Option<Remediation> {
    let name = obj.metadata.name.clone()?;
    let annotations = obj.metadata.annotations.clone().unwrap_or_default();
    let labels = obj.metadata.labels.clone().unwrap_or_default();
    let status: Status = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    // NHC copies its template's spec into the object it makes: a spec.nodeName there came
    // from the template, the same for every node, so NHC's objects name the node by the
    // annotation or their own name only.
    let by_nhc = obj
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "NodeHealthCheck");
    let node = annotations
        .get(NODE_NAME_ANNOTATION)
        .cloned()
        .or_else(|| {
            obj.data
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|_| !by_nhc)
                .map(str::to_owned)
        })
        .or_else(|| status.node.clone().filter(|_| !by_nhc))
        // NHC without multiple-template support names the object after the node.
        .unwrap_or_else(|| name.clone());
    Some(Remediation {
        requested: labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY),
        timed_out: annotations.contains_key(TIMED_OUT_ANNOTATION),
        node,
        name,
        status,
    })
}

/// Which object holds `node`'s episode `tag`: a request someone made for the node (NHC)
/// first (with no tag only that, a timed-out one too: its conditions are still written),
/// else oob's own `NODE.TAG`; `None` when it has to be made (or, with no tag, is not there).
/// The real [`Episodes`] and the tests' fake choose with this.
pub fn choose<'a>(
    objects: impl Iterator<Item = &'a Remediation>,
    node: &str,
    tag: &str,
) -> Option<String> {
    let own = own_name(node, tag);
    objects
        .filter(|r| r.node == node)
        .filter(|r| {
            (r.requested && (!r.timed_out || tag.is_empty())) || (!tag.is_empty() && r.name == own)
        })
        .min_by_key(|r| !r.requested)
        .map(|r| r.name.clone())
}

/// [`Episodes`] over the API.
pub struct KubeEpisodes {
    api: Api<DynamicObject>,
    /// node/tag → the object's name, once known.
    names: Mutex<HashMap<(String, String), String>>,
}

impl KubeEpisodes {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced_with(client, namespace, &resource()),
            names: Mutex::default(),
        }
    }

    fn remembered(&self, node: &str, tag: &str) -> Option<String> {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(node.to_owned(), tag.to_owned()))
            .cloned()
    }

    fn remember(&self, node: &str, tag: &str, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((node.to_owned(), tag.to_owned()), name.to_owned());
    }

    /// The object for the node's episode: a requested open one, else oob's own.
    async fn find(&self, node: &str, tag: &str) -> Result<DynamicObject, NodeOpsError> {
        if let Some(name) = self.remembered(node, tag) {
            match self.api.get(&name).await {
                Ok(o) => return Ok(o),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(NodeOpsError::from_kube(&name, "get oobremediation", e)),
            }
        }
        let list = self
            .api
            .list(&ListParams::default())
            .await
            .map_err(|e| NodeOpsError::from_kube(node, "list oobremediations", e))?;
        let parsed: Vec<(&DynamicObject, Remediation)> = list
            .items
            .iter()
            .filter_map(|o| parse(o).map(|r| (o, r)))
            .collect();
        let own = own_name(node, tag);
        let pick = choose(parsed.iter().map(|(_, r)| r), node, tag)
            .and_then(|name| parsed.iter().find(|(_, r)| r.name == name))
            .map(|(o, _)| (*o).clone());
        if let Some(o) = pick {
            if let Some(name) = &o.metadata.name {
                self.remember(node, tag, name);
            }
            return Ok(o);
        }
        if tag.is_empty() {
            return Err(NodeOpsError::NotFound {
                node: format!("OobRemediation for {node}"),
            });
        }
        let mut obj = DynamicObject::new(&own, &resource());
        obj.metadata.labels = Some([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())].into());
        obj.data = serde_json::json!({ "spec": { "nodeName": node, "strategy": "Ladder" } });
        let created = match self.api.create(&PostParams::default(), &obj).await {
            Ok(o) => o,
            // Made a moment ago by this replica or another: read it.
            Err(kube::Error::Api(s)) if s.code == 409 => self
                .api
                .get(&own)
                .await
                .map_err(|e| NodeOpsError::from_kube(&own, "get oobremediation", e))?,
            Err(e) => return Err(NodeOpsError::from_kube(&own, "create oobremediation", e)),
        };
        self.remember(node, tag, &own);
        Ok(created)
    }
}

#[async_trait]
impl Episodes for KubeEpisodes {
    async fn list(&self) -> Result<Vec<Remediation>, NodeOpsError> {
        let list = self
            .api
            .list(&ListParams::default())
            .await
            .map_err(|e| NodeOpsError::from_kube("oobremediations", "list", e))?;
        Ok(list.items.iter().filter_map(parse).collect())
    }

    async fn update(
        &self,
        node: &str,
        tag: &str,
        change: &(dyn for<'s> Fn(&'s mut Status) + Send + Sync),
    ) -> Result<(), NodeOpsError> {
        let mut last = None;
        for _ in 0..CONFLICT_RETRIES {
            let mut obj = self.find(node, tag).await?;
            let name = obj.metadata.name.clone().unwrap_or_default();
            // A status this version cannot read (a hand edit, a newer oob) is never
            // overwritten: it may hold steps that were sent.
            let mut status: Status = match obj.data.get("status").filter(|s| !s.is_null()) {
                None => Status::default(),
                Some(s) => {
                    serde_json::from_value(s.clone()).map_err(|e| NodeOpsError::Invalid {
                        node: node.to_owned(),
                        message: format!(
                        "the status of OobRemediation {name} is not readable ({e}); not overwritten"
                    ),
                    })?
                }
            };
            let before = status.clone();
            change(&mut status);
            if status.node.is_none() {
                status.node = Some(node.to_owned());
            }
            if status == before {
                return Ok(());
            }
            obj.data["status"] =
                serde_json::to_value(&status).map_err(|e| NodeOpsError::Invalid {
                    node: name.clone(),
                    message: e.to_string(),
                })?;
            match self
                .api
                .replace_status(&name, &PostParams::default(), &obj)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let e = NodeOpsError::from_kube(&name, "update oobremediation status", e);
                    if !matches!(e, NodeOpsError::Conflict { .. }) {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(NodeOpsError::Conflict {
            node: node.to_owned(),
            message: "too many conflicts".into(),
        }))
    }

    async fn delete_own(&self, name: &str) -> Result<(), NodeOpsError> {
        match self
            .api
            .delete(name, &kube::api::DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(NodeOpsError::from_kube(name, "delete oobremediation", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_names_follow_the_key() {
        assert_eq!(tag_of("node-1/7/cycle"), "e7");
        assert_eq!(
            tag_of("node-1/r1764300000000/replace-join"),
            "r1764300000000"
        );
        assert_eq!(own_name("node-1", "e7"), "node-1.e7");
        assert!(own_name(&"n".repeat(300), "e7").len() <= 253);
    }

    #[test]
    fn a_step_keeps_its_outcome_and_conditions_keep_their_transition_time() {
        let mut s = Status::default();
        let intent = Step {
            key: "n/1/cycle".into(),
            action: "cycle".into(),
            intent_ms: 5,
            before: Value::Null,
            outcome: None,
            detail: None,
            done_ms: None,
        };
        s.put_step(&intent);
        assert_eq!(s.last_step.as_deref(), Some("cycle: sent"));
        let done = Step {
            outcome: Some("done".into()),
            done_ms: Some(9),
            ..intent.clone()
        };
        s.put_step(&done);
        // A late intent never takes an outcome back.
        s.put_step(&intent);
        assert_eq!(s.steps.len(), 1);
        assert_eq!(s.steps[0].outcome.as_deref(), Some("done"));
        s.set_condition(PROCESSING, "True", "RemediationStarted", "m", "t1");
        s.set_condition(PROCESSING, "True", "RemediationStarted", "m2", "t2");
        assert_eq!(s.condition(PROCESSING).unwrap().last_transition_time, "t1");
        s.set_condition(PROCESSING, "False", "RemediationFinished", "m3", "t3");
        assert_eq!(s.condition(PROCESSING).unwrap().last_transition_time, "t3");
    }

    #[test]
    fn a_request_is_chosen_before_oobs_own_and_an_empty_tag_never_makes_one() {
        let r = |name: &str, requested: bool, timed_out: bool| Remediation {
            name: name.into(),
            node: "node-1".into(),
            requested,
            timed_out,
            status: Status::default(),
        };
        let own = r("node-1.e7", false, false);
        let nhc = r("node-1-x7k2p", true, false);
        let late = r("node-1-old", true, true);
        assert_eq!(
            choose([&own, &nhc].into_iter(), "node-1", "e7").as_deref(),
            Some("node-1-x7k2p")
        );
        assert_eq!(
            choose([&own, &late].into_iter(), "node-1", "e7").as_deref(),
            Some("node-1.e7")
        );
        // With no tag: only a request, a timed-out one too (its conditions are written).
        assert_eq!(
            choose([&own, &late].into_iter(), "node-1", "").as_deref(),
            Some("node-1-old")
        );
        assert_eq!(choose([&own].into_iter(), "node-1", ""), None);
        assert_eq!(choose([&own].into_iter(), "node-2", "e7"), None);
    }

    #[test]
    fn the_node_comes_from_nhcs_annotation_before_the_name() {
        let mut obj = DynamicObject::new("node-2-x7k2p", &resource());
        obj.metadata.annotations =
            Some([(NODE_NAME_ANNOTATION.to_owned(), "node-2".to_owned())].into());
        let r = parse(&obj).unwrap();
        assert_eq!(r.node, "node-2");
        assert!(r.requested && !r.timed_out);
        obj.metadata.annotations = Some(
            [
                (NODE_NAME_ANNOTATION.to_owned(), "node-2".to_owned()),
                (
                    TIMED_OUT_ANNOTATION.to_owned(),
                    "2026-11-28T10:00:00Z".to_owned(),
                ),
            ]
            .into(),
        );
        assert!(parse(&obj).unwrap().timed_out);
        // NHC without multiple templates: the object is named after the node.
        let plain = DynamicObject::new("node-3", &resource());
        assert_eq!(parse(&plain).unwrap().node, "node-3");
        let mut own = DynamicObject::new("node-4.e2", &resource());
        own.metadata.labels = Some([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())].into());
        own.data = serde_json::json!({"spec": {"nodeName": "node-4"}});
        let r = parse(&own).unwrap();
        assert_eq!((r.node.as_str(), r.requested), ("node-4", false));
        // NHC's object with a spec.nodeName copied from a template: the node is its name.
        let mut nhc = DynamicObject::new("node-5", &resource());
        nhc.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "remediation.medik8s.io/v1alpha1".into(),
                kind: "NodeHealthCheck".into(),
                name: "workers".into(),
                uid: "u1".into(),
                ..Default::default()
            },
        ]);
        nhc.data = serde_json::json!({"spec": {"nodeName": "node-1"}});
        assert_eq!(parse(&nhc).unwrap().node, "node-5");
    }
}
