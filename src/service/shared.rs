//! Cluster mode: the ladder's state shared through the OobRemediations, and the Node
//! Healthcheck Operator's requests.
//!
//! - A remedy's pending position is written to the node's OobRemediation before it is
//!   carried out (the executor writes each step's intent there too); the position after it,
//!   best effort. A replica that becomes leader first adopts every open OobRemediation: its
//!   step records go into its local journal (so a step begun by the old leader is resumed
//!   by reading the machine, never sent again) and its position replaces the local one.
//! - An OobRemediation someone else made (NHC, from an OobRemediationTemplate) asks for the
//!   ladder on its node: the round sees it as a reboot-class problem condition. oob writes
//!   the contract's conditions (`Processing`, `Succeeded`; `Succeeded=False` tells NHC to
//!   escalate now), stops when `remediation.medik8s.io/nhc-timed-out` appears, and never
//!   deletes it. oob's own OobRemediation of an episode is deleted once the node is healthy.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::Service;
use crate::clock::rfc3339;
use crate::health::Finding;
use crate::k8s::remediation::{self, Remediation, Status, PROCESSING, SUCCEEDED};
use crate::remedy::journal::{Pending, Position};
use crate::remedy::stage::Stage;

/// What a new leader needs of a position (the SEL and host baselines are taken again).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shared {
    stage: Stage,
    episode: u64,
    #[serde(default)]
    recovered_ms: Option<u64>,
    #[serde(default)]
    findings: Vec<Finding>,
    #[serde(default)]
    boot_before: Option<String>,
    #[serde(default)]
    pending: Option<Pending>,
}

impl Shared {
    fn of(p: &Position) -> Self {
        Self {
            stage: p.stage,
            episode: p.episode,
            recovered_ms: p.recovered_ms,
            findings: p.findings.clone(),
            boot_before: p.boot_before.clone(),
            pending: p.pending,
        }
    }
}

/// A request from someone else (NHC) for a node, as the round needs it.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub name: String,
    pub timed_out: bool,
    pub status: Status,
}

impl Service {
    /// Write the position to the node's OobRemediation. `false` when the API did not take
    /// it (a pending remedy is then not carried out). Without a shared journal, `true`.
    pub(super) async fn share_position(&self, name: &str, p: &Position) -> bool {
        let Some(shared) = self.exec.episodes() else {
            return true;
        };
        let value = serde_json::to_value(Shared::of(p)).unwrap_or_default();
        let findings: Vec<serde_json::Value> = p
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "code": f.code, "severity": f.severity.name(),
                    "component": f.component, "detail": f.detail,
                })
            })
            .collect();
        let stage = p.stage.name().to_owned();
        let episode = p.episode;
        match shared
            .update(name, &format!("e{episode}"), &|s: &mut Status| {
                s.position = Some(value.clone());
                s.findings.clone_from(&findings);
                s.stage = Some(stage.clone());
                s.episode = Some(episode);
            })
            .await
        {
            Ok(()) => true,
            Err(e) => {
                warn!(node = name, error = %e, "recording the position in the cluster failed");
                false
            }
        }
    }

    /// After a step: the position shared (best effort), the NHC contract's conditions, and
    /// oob's own OobRemediation deleted once the node is healthy again.
    pub(super) async fn share_after(&self, name: &str, from: Stage, p: &Position) {
        let Some(shared) = self.exec.episodes().cloned() else {
            return;
        };
        let request = self.request(name);
        let now = rfc3339(self.exec.now_ms());
        if matches!(p.stage, Stage::Healthy) && !matches!(from, Stage::Healthy) {
            if let Some(r) = &request {
                self.finish_request(name, r).await;
            }
            // oob's own record of the episode is finished: every step has its outcome.
            let own = remediation::own_name(name, &format!("e{}", p.episode));
            if let Err(e) = shared.delete_own(&own).await {
                warn!(node = name, error = %e, "deleting the finished OobRemediation failed");
            }
            return;
        }
        if !self.share_position(name, p).await {
            return;
        }
        if request.is_some() && matches!(p.stage, Stage::AwaitReplacement { .. }) {
            // Hands are needed: NHC may escalate to its next remediator at once.
            let _ = shared
                .update(name, &format!("e{}", p.episode), &|s: &mut Status| {
                    s.set_condition(
                        PROCESSING,
                        "False",
                        "RemediationFailed",
                        "the machine needs hands (fault report written); escalate",
                        &now,
                    );
                    s.set_condition(
                        SUCCEEDED,
                        "False",
                        "RemediationFailed",
                        "the machine needs hands (fault report written); escalate",
                        &now,
                    );
                })
                .await;
        }
    }

    /// The ladder ended well for a request: `Processing=False, Succeeded=True`. The request is
    /// remembered as finished first, so that a failed write is retried by the next round and
    /// never read as "still open" (which would start another episode on a healthy node).
    pub(super) async fn finish_request(&self, name: &str, r: &Request) {
        let Some(shared) = self.exec.episodes() else {
            return;
        };
        self.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(r.name.clone());
        let now = rfc3339(self.exec.now_ms());
        let said = shared
            .update(name, "", &|s: &mut Status| {
                s.stage = Some("healthy".into());
                s.set_condition(
                    PROCESSING,
                    "False",
                    "RemediationFinished",
                    "the node is Ready and healthy again",
                    &now,
                );
                s.set_condition(
                    SUCCEEDED,
                    "True",
                    "RemediationFinished",
                    "the node is Ready and healthy again",
                    &now,
                );
            })
            .await;
        match said {
            Ok(()) => {
                info!(node = name, remediation = %r.name, "remediation succeeded");
                self.note_request(name, |s| {
                    s.set_condition(SUCCEEDED, "True", "RemediationFinished", "", &now);
                });
            }
            Err(e) => {
                warn!(node = name, error = %e, "writing Succeeded=True failed; retried next round")
            }
        }
    }

    /// Whether oob finished this request (its success may not be written yet).
    pub(super) fn finished(&self, request: &str) -> bool {
        self.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(request)
    }

    /// Change the cached copy of `name`'s request (what was just written to the API).
    fn note_request(&self, name: &str, f: impl FnOnce(&mut Status)) {
        if let Some(r) = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(name)
        {
            f(&mut r.status);
        }
    }

    /// A request for `name` (an OobRemediation someone else made), as last listed.
    pub(super) fn request(&self, name: &str) -> Option<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// List the OobRemediations (each tick, by the leader): the requests per node.
    pub(super) async fn refresh_requests(&self) {
        let Some(shared) = self.exec.episodes() else {
            return;
        };
        match shared.list().await {
            Ok(all) => {
                let map: HashMap<String, Request> = all
                    .into_iter()
                    .filter(|r| r.requested)
                    .map(|r| {
                        (
                            r.node.clone(),
                            Request {
                                name: r.name,
                                timed_out: r.timed_out,
                                status: r.status,
                            },
                        )
                    })
                    .collect();
                self.exec.nodes().set_requested(
                    map.iter()
                        .filter(|(_, r)| !r.timed_out)
                        .map(|(n, _)| n.clone())
                        .collect(),
                );
                // A finished request NHC has deleted is forgotten (NHC may make a new one
                // under the same name, the node's, the next time).
                self.finished
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|n| map.values().any(|r| &r.name == n));
                *self.requests.lock().unwrap_or_else(|p| p.into_inner()) = map;
            }
            Err(e) => warn!(error = %e, "listing the OobRemediations failed"),
        }
    }

    /// Mark a request as being worked on (`Processing=True`, `Succeeded=Unknown`), once.
    pub(super) async fn start_request(&self, name: &str, r: &Request) {
        if r.status
            .condition(PROCESSING)
            .is_some_and(|c| c.status == "True" || c.reason == "RemediationStoppedByNHC")
            || r.status
                .condition(SUCCEEDED)
                .is_some_and(|c| c.status != "Unknown")
        {
            return;
        }
        let Some(shared) = self.exec.episodes() else {
            return;
        };
        let now = rfc3339(self.exec.now_ms());
        if shared
            .update(name, "", &|s: &mut Status| {
                s.set_condition(
                    PROCESSING,
                    "True",
                    "RemediationStarted",
                    "oob's ladder runs on the node",
                    &now,
                );
                s.set_condition(
                    SUCCEEDED,
                    "Unknown",
                    "RemediationStarted",
                    "oob's ladder runs on the node",
                    &now,
                );
            })
            .await
            .is_ok()
        {
            self.note_request(name, |s| {
                s.set_condition(PROCESSING, "True", "RemediationStarted", "", &now);
            });
            self.exec.note(
                name,
                format!("remediation requested by OobRemediation {} (Node Healthcheck): the ladder runs", r.name),
            );
        }
    }

    /// NHC gave up on oob for this node: nothing more is done; said once.
    pub(super) async fn stop_request(&self, name: &str, r: &Request) {
        if r.status
            .condition(PROCESSING)
            .is_some_and(|c| c.reason == "RemediationStoppedByNHC")
        {
            return;
        }
        let Some(shared) = self.exec.episodes() else {
            return;
        };
        let now = rfc3339(self.exec.now_ms());
        let _ = shared
            .update(name, "", &|s: &mut Status| {
                s.set_condition(
                    PROCESSING,
                    "False",
                    "RemediationStoppedByNHC",
                    "Node Healthcheck timed the remediation out; oob stopped",
                    &now,
                );
                s.set_condition(
                    SUCCEEDED,
                    "False",
                    "RemediationStoppedByNHC",
                    "Node Healthcheck timed the remediation out; oob stopped",
                    &now,
                );
            })
            .await;
        self.note_request(name, |s| {
            s.set_condition(PROCESSING, "False", "RemediationStoppedByNHC", "", &now);
        });
        self.exec.note(
            name,
            format!("stopped: Node Healthcheck timed OobRemediation {} out (remediation.medik8s.io/nhc-timed-out); no further step", r.name),
        );
    }

    /// A sink took `message`: said on the episode's OobRemediation, so that a new leader
    /// does not deliver it again (best effort).
    pub(super) async fn share_delivered(&self, message: &str, sink: &str) {
        let Some(shared) = self.exec.episodes() else {
            return;
        };
        let node = message.split('/').next().unwrap_or_default();
        let tag = remediation::tag_of(message);
        let all = self.config.report.sink_names();
        let result = shared
            .update(node, &tag, &|s: &mut Status| {
                if let Some(m) = s.messages.iter_mut().find(|m| m.id == message) {
                    if !m.delivered.iter().any(|d| d == sink) {
                        m.delivered.push(sink.to_owned());
                    }
                }
                // A "still down" everyone has is of no further use (a report is kept: the
                // follow-ups thread on it); the object stays small over a long wait.
                s.messages.retain(|m| {
                    m.kind != "still-down"
                        || !all.iter().all(|a| m.delivered.iter().any(|d| d == a))
                });
            })
            .await;
        if let Err(e) = result {
            warn!(message, sink, error = %e, "recording the delivery in the cluster failed");
        }
    }

    /// A new leader takes over what the old one left in the API: step records into the
    /// local journal, positions that are newer than the local ones.
    /// `false` when the API could not be read: the replica must not act yet (it would not
    /// know what the old leader began).
    pub(super) async fn adopt(&self) -> bool {
        let Some(shared) = self.exec.episodes() else {
            return true;
        };
        let all: Vec<Remediation> = match shared.list().await {
            Ok(all) => all,
            Err(crate::k8s::NodeOpsError::NotFound { .. }) => {
                tracing::error!("the OobRemediation CRD is not installed: no intent can be recorded, so no action is taken; kubectl apply -f deploy/crd-oobremediations.yaml, or set service.shared_journal = false");
                return false;
            }
            Err(e) => {
                warn!(error = %e, "reading the OobRemediations failed; not acting until they are read");
                return false;
            }
        };
        let journal = self.exec.journal();
        let sinks = self.config.report.sink_names();
        let mut steps = 0;
        for r in &all {
            // Messages the old leader had not delivered everywhere: this replica's outbox.
            for m in &r.status.messages {
                if journal.has_message(&m.id).unwrap_or(true) {
                    continue;
                }
                let left: Vec<&str> = sinks
                    .iter()
                    .map(String::as_str)
                    .filter(|s| !m.delivered.iter().any(|d| d == s))
                    .collect();
                let stored = crate::remedy::journal::StoredMessage {
                    id: m.id.clone(),
                    node: r.node.clone(),
                    kind: m.kind.clone(),
                    created_ms: m.created_ms,
                    body: m.body.clone(),
                };
                if let Err(e) = journal.enqueue(&stored, &left) {
                    warn!(node = %r.node, error = %e, "importing a message failed");
                }
            }
            for s in &r.status.steps {
                let before = serde_json::from_value(s.before.clone()).unwrap_or_default();
                match journal.import(
                    &s.key,
                    &r.node,
                    &s.action,
                    s.intent_ms,
                    &before,
                    s.outcome.as_deref().map(|o| {
                        (
                            o,
                            s.detail.as_deref().unwrap_or(""),
                            s.done_ms.unwrap_or(s.intent_ms),
                        )
                    }),
                ) {
                    Ok(true) => steps += 1,
                    Ok(false) => {}
                    Err(e) => warn!(node = %r.node, error = %e, "importing a step failed"),
                }
            }
            let Some(shared_position) = r
                .status
                .position
                .clone()
                .and_then(|v| serde_json::from_value::<Shared>(v).ok())
            else {
                continue;
            };
            let mut state = self.lock();
            let Some(st) = state.get_mut(&r.node) else {
                continue;
            };
            let local = &st.position;
            // An episode in progress in the API is the truth (episode numbers are each
            // replica's own: a higher local one may be an older history); only a local
            // episode of its own in progress and newer than it is kept.
            let active = shared_position.pending.is_some()
                || !matches!(shared_position.stage, Stage::Healthy);
            let local_active = local.pending.is_some() || !matches!(local.stage, Stage::Healthy);
            let newer = active
                && (shared_position.episode >= local.episode || !local_active)
                && !(shared_position.episode == local.episode
                    && local.pending.is_some()
                    && shared_position.pending.is_none());
            if newer {
                st.position.stage = shared_position.stage;
                st.position.episode = shared_position.episode;
                st.position.recovered_ms = shared_position.recovered_ms;
                st.position.findings = shared_position.findings;
                st.position.boot_before = shared_position.boot_before;
                st.position.pending = shared_position.pending;
                st.persisted = None;
                if let Err(e) = journal.save_position(&r.node, &st.position) {
                    warn!(node = %r.node, error = %e, "journal write failed");
                }
                drop(state);
                self.exec.note(
                    &r.node,
                    format!(
                        "taken over from the cluster: stage {}, episode {} (OobRemediation {})",
                        shared_position.stage.name(),
                        shared_position.episode,
                        r.name
                    ),
                );
            }
        }
        info!(
            remediations = all.len(),
            steps, "adopted the shared journal"
        );
        true
    }
}
