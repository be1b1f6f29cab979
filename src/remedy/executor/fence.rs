//! The executor's Kubernetes steps: fence (cordon; for a dead machine verified power off and
//! the out-of-service taint; a PDB-aware drain) and recovery (uncordon what oob cordoned,
//! drop its taint, clear its condition), with the condition and Event that mirror them.

use std::time::Duration;

use tracing::warn;

use super::power::PowerStep;
use super::{Done, Executor, Subject, CONDITION, CORDONED_ANNOTATION};
use crate::bmc::PowerAction;
use crate::clock::rfc3339;
use crate::k8s::drain::{DrainOptions, VerifiedPowerOff};
use crate::k8s::{Condition, NodeEvent, Taint, OUT_OF_SERVICE, OUT_OF_SERVICE_ANNOTATION};

impl Executor {
    /// Fence: cordon; for a dead machine verified power off and the out-of-service taint;
    /// then a PDB-aware drain (pods that will not evict are deleted only after the verified
    /// power off). A live machine with failing hardware is cordoned and drained by eviction,
    /// not powered off: its kubelet still moves pods gracefully.
    pub async fn fence(&self, s: &Subject<'_>) -> Done {
        let node = s.machine.name.as_str();
        let alive = s.alive;
        if self.dry_run {
            let d = format!(
                "dry run: would cordon{} and drain {node}",
                if alive {
                    ""
                } else {
                    ", power off, taint out-of-service"
                }
            );
            self.note(node, d.clone());
            return Done::Ok(d);
        }
        if let Err(e) = self.cordon(s).await {
            return Done::Failed(format!("cordon: {e}"));
        }
        let mut force = None;
        if !alive {
            match self
                .power_step(s, "fence-power-off", PowerStep::Action(PowerAction::Off))
                .await
            {
                Done::Ok(d) => {
                    self.note(node, format!("power off verified ({d})"));
                    if let Err(e) = self.taint_out_of_service(s).await {
                        return Done::Failed(format!("out-of-service taint: {e}"));
                    }
                    force = Some(VerifiedPowerOff {
                        node: node.to_owned(),
                        evidence: format!("BMC power off verified at {}", rfc3339(self.now_ms())),
                    });
                }
                other => return other,
            }
        }
        let options = DrainOptions {
            deadline: Duration::from_secs(self.policy.drain_timeout_s),
            force,
            ..DrainOptions::default()
        };
        match self.nodes.drain(node, &options).await {
            Ok(None) => Done::Ok("cordoned (no cluster access for a drain)".into()),
            Ok(Some(r)) if r.complete() => {
                let d = format!(
                    "drained: {} evicted, {} force-deleted, {} skipped",
                    r.evicted.len(),
                    r.force_deleted.len(),
                    r.skipped.len()
                );
                self.note(node, d.clone());
                Done::Ok(d)
            }
            Ok(Some(r)) => {
                let d = format!(
                    "drain incomplete after {} s: {} pods blocked ({})",
                    self.policy.drain_timeout_s,
                    r.blocked.len(),
                    r.blocked
                        .iter()
                        .map(|(p, why)| format!("{p}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                self.note(node, d.clone());
                Done::Failed(d)
            }
            Err(e) => Done::Failed(format!("drain: {e}")),
        }
    }

    /// Cordon, and record that oob did (recovery uncordons only that). A node someone else
    /// cordoned is left as it is and never uncordoned by oob.
    pub(super) async fn cordon(&self, s: &Subject<'_>) -> Result<(), crate::k8s::NodeOpsError> {
        let node = s.machine.name.as_str();
        let marked = s.node.annotations.contains_key(CORDONED_ANNOTATION);
        if marked && s.node.unschedulable {
            return Ok(());
        }
        if s.node.unschedulable {
            self.note(
                node,
                "already cordoned by someone else: left so, and oob will not uncordon it",
            );
            return Ok(());
        }
        // Not cordoned (a mark left without the cordon is stale): cordon, with the mark.
        self.nodes.cordon_as_oob(node, true).await?;
        self.note(node, "cordoned");
        Ok(())
    }

    /// Publish an Event about `node` (best effort: the timeline holds the fact).
    pub async fn event(&self, node: &str, type_: &str, reason: &str, note: &str) {
        let e = NodeEvent {
            type_: type_.into(),
            reason: reason.into(),
            action: "Remediate".into(),
            note: note.chars().take(1024).collect(),
        };
        if self.dry_run {
            return;
        }
        if let Err(e) = self.nodes.publish(node, e).await {
            warn!(node, error = %e, "publishing the event failed");
        }
    }

    /// Set our condition (status, reason, message) and publish an Event (type, reason,
    /// action, note). Best effort: the timeline and the journal already hold the facts.
    pub(super) async fn mark(
        &self,
        node: &str,
        condition: (&str, &str, &str),
        event: (&str, &str, &str, &str),
    ) {
        let (status, reason, message) = condition;
        let c = Condition {
            type_: CONDITION.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.chars().take(512).collect(),
        };
        if let Err(e) = self.nodes.set_condition(node, c).await {
            warn!(node, error = %e, "setting the node condition failed");
        }
        let (type_, reason, action, note) = event;
        let e = NodeEvent {
            type_: type_.into(),
            reason: reason.into(),
            action: action.into(),
            note: note.into(),
        };
        if let Err(e) = self.nodes.publish(node, e).await {
            warn!(node, error = %e, "publishing the event failed");
        }
    }

    /// Back to health: uncordon what we cordoned, drop our taint, clear our condition.
    /// The timeline says how: a reboot verified by a new bootID, or back on its own.
    pub async fn recovered(&self, s: &Subject<'_>) -> Done {
        let node = s.machine.name.as_str();
        if let Err(not_yet) = self.health_check(s).await {
            return not_yet;
        }
        let how = match (s.boot_before, s.node.boot_id.as_deref()) {
            (Some(a), Some(b)) if a != b => {
                format!("recovered: reboot verified (bootID {a} → {b}), Ready=True")
            }
            (Some(_), _) => "recovered: answering and Ready=True, back on its own (bootID unchanged: no reboot took place)".to_owned(),
            (None, _) => "recovered: answering and Ready=True".to_owned(),
        };
        self.note(node, how.clone());
        let how = how.as_str();
        if self.dry_run {
            return Done::Ok("dry run".into());
        }
        if s.node.annotations.contains_key(CORDONED_ANNOTATION) {
            if let Err(e) = self.nodes.cordon_as_oob(node, false).await {
                return Done::Failed(format!("uncordon: {e}"));
            }
            self.note(node, "uncordoned");
        }
        self.untaint_out_of_service(s).await;
        self.mark(
            node,
            ("False", "Recovered", how),
            ("Normal", "Recovered", "Recover", how),
        )
        .await;
        // The machine room hears that the machine it was told about is back.
        self.follow_up(
            node,
            crate::report::message::Kind::Recovered,
            "recovered",
            None,
            &format!("{node} is back: {how}; uncordoned"),
        )
        .await;
        Done::Ok(how.to_owned())
    }
}

impl Executor {
    /// Put the out-of-service taint on, oob's mark first (a taint oob put on is always one it
    /// knows of); one someone else put there is left as it is.
    async fn taint_out_of_service(&self, s: &Subject<'_>) -> Result<(), crate::k8s::NodeOpsError> {
        let node = s.machine.name.as_str();
        if s.node.taints.iter().any(|t| t.key == OUT_OF_SERVICE) {
            if !oob_out_of_service(s.node) {
                self.note(
                    node,
                    format!("already tainted {OUT_OF_SERVICE} by someone else: left so, and oob will not remove it"),
                );
            }
            return Ok(());
        }
        self.nodes
            .annotate(node, OUT_OF_SERVICE_ANNOTATION, Some("true"))
            .await?;
        let taint = Taint {
            key: OUT_OF_SERVICE.into(),
            value: Some("nodeshutdown".into()),
            effect: "NoExecute".into(),
        };
        self.nodes
            .set_taint(node, OUT_OF_SERVICE, "NoExecute", Some(taint))
            .await?;
        self.note(node, format!("tainted {OUT_OF_SERVICE}:NoExecute"));
        Ok(())
    }

    /// Take away the out-of-service taint oob put on, then its mark (best effort: the log
    /// says what failed).
    async fn untaint_out_of_service(&self, s: &Subject<'_>) {
        let node = s.machine.name.as_str();
        if !oob_out_of_service(s.node) {
            return;
        }
        if s.node.taints.iter().any(|t| t.key == OUT_OF_SERVICE) {
            if let Err(e) = self
                .nodes
                .set_taint(node, OUT_OF_SERVICE, "NoExecute", None)
                .await
            {
                warn!(node, error = %e, "removing the out-of-service taint failed");
                return;
            }
            self.note(node, format!("taint {OUT_OF_SERVICE} taken away"));
        }
        if let Err(e) = self
            .nodes
            .annotate(node, OUT_OF_SERVICE_ANNOTATION, None)
            .await
        {
            warn!(node, error = %e, "removing the out-of-service mark failed");
        }
    }
}

/// The out-of-service taint is oob's: marked before it was put on, or (put on by a version
/// before the mark) oob's value on a node oob cordoned.
fn oob_out_of_service(node: &crate::k8s::NodeInfo) -> bool {
    node.annotations.contains_key(OUT_OF_SERVICE_ANNOTATION)
        || (node.annotations.contains_key(CORDONED_ANNOTATION)
            && node
                .taints
                .iter()
                .any(|t| t.key == OUT_OF_SERVICE && t.value.as_deref() == Some("nodeshutdown")))
}
