//! Carrying out one step for one machine: the storm guard (atomically with marking the node
//! as remediating), the pending remedy written with its stage *before* the executor sends
//! anything, the executor, and the outcome folded back by the pure [`Stage::after`].

use tracing::{info, warn};

use super::{MachineState, Service};

use crate::config::Machine;
use crate::health::Level;
use crate::k8s::NodeInfo;
use crate::remedy::executor::{Done, Subject};
use crate::remedy::guard::{admit, Admission, Fleet, StormPolicy, CONTROL_PLANE_LABEL};
use crate::remedy::journal::Pending;
use crate::remedy::stage::{Remedy, Stage, Step};
use crate::report::Cause;
use crate::verdict::{Evidence, Judgement, Verdict};

fn remediating(s: &Stage) -> bool {
    matches!(
        s,
        Stage::Repair { .. }
            | Stage::SoftReboot { .. }
            | Stage::HardReboot { .. }
            | Stage::Fenced { .. }
            | Stage::Replace { .. }
    )
}

/// A report's evidence: the verdict's reasons, then the last probe rounds.
fn evidence_lines(st: &MachineState, j: &Judgement) -> Vec<String> {
    let mut lines = j.reasons.clone();
    lines.extend(st.history.iter().map(|h| format!("probe {h}")));
    lines
}

/// Remedies that change the machine or the cluster (and pass the storm guard).
pub(super) fn mutating(r: Remedy) -> bool {
    matches!(
        r,
        Remedy::Repair
            | Remedy::SoftReboot
            | Remedy::HardReboot
            | Remedy::PowerOn
            | Remedy::Fence
            | Remedy::Replace
    )
}

/// Why a replica that lost the leader lease waits.
const NOT_LEADING: &str = "this replica no longer leads";

/// How long one read of etcd's members and health stands for every control-plane node.
pub(super) const ETCD_FRESH_MS: u64 = 15_000;

impl Service {
    /// Whether the Node `name` carries the control-plane label (the watch cache, else the
    /// cluster; offline: no).
    async fn is_control_plane(&self, name: &str) -> bool {
        let info = match self.node_cache.get().filter(|c| !c.is_empty()) {
            Some(cache) => cache.get(name),
            None => self
                .exec
                .nodes()
                .get(name)
                .await
                .ok()
                .map(std::sync::Arc::new),
        };
        info.is_some_and(|i| i.labels.contains_key(CONTROL_PLANE_LABEL))
    }

    /// Whether `remedy` may take a voting etcd member away (what the quorum rules judge): the
    /// machine answers, so its member may still vote, and the remedy takes it down. A repair
    /// counts when it may restart a runtime whose containers do not outlive it.
    pub(super) fn takes_a_vote(&self, m: &Machine, evidence: &Evidence, remedy: Remedy) -> bool {
        let runtime_keeps = m
            .ssh
            .as_ref()
            .is_none_or(|s| s.checks.runtime_restart_keeps_containers());
        let takes_down = remedy.takes_down() || (remedy == Remedy::Repair && !runtime_keeps);
        !self.dark(evidence) && takes_down
    }

    /// Whether this replica may act: it leads (outside a cluster, always). Asked before a
    /// step is admitted and again right before it is carried out; when not, the step is
    /// counted deferred and left to the leader.
    fn may_act(&self, name: &str, step: &Step) -> bool {
        if self.exec.dry_run()
            || step.remedy == Remedy::Nothing
            || self.leading.load(std::sync::atomic::Ordering::Relaxed)
        {
            return true;
        }
        info!(
            node = name,
            remedy = step.remedy.name(),
            "not leading: the step is left to the leader"
        );
        self.metrics.remedy(step.remedy.name(), "deferred");
        false
    }

    /// The storm guard, atomically with marking the node as remediating.
    async fn admit(
        &self,
        name: &str,
        next: Stage,
        recovered_ms: Option<u64>,
        answering: bool,
    ) -> Admission {
        // etcd is read (over SSH, bounded) before the turn is taken: a slow peer must not
        // hold every other machine's admission.
        let etcd = self.etcd_for(name, answering).await;
        let _turn = self.admission.lock().await;
        let (fleet, storm) = self.fleet_with(name, answering, etcd).await;
        let a = admit(fleet, &storm, self.exec.now_ms(), recovered_ms);
        if let Admission::Go = a {
            if let Some(m) = self.lock().get_mut(name) {
                m.position.stage = next;
            }
        }
        a
    }

    /// The inventory's control-plane machines other than `name`, with their Nodes: where
    /// etcd is asked (its health, its members) and the replacement gets its certificate key.
    async fn control_plane_peers(&self, name: &str) -> Vec<(Machine, crate::k8s::NodeInfo)> {
        let mut peers = Vec::new();
        for other in self.machines.iter().filter(|o| o.name != name) {
            let node = match self.node_cache.get().filter(|c| !c.is_empty()) {
                Some(cache) => cache.get(&other.name).map(|n| (*n).clone()),
                None => self.exec.nodes().get(&other.name).await.ok(),
            };
            if let Some(n) = node.filter(|n| n.labels.contains_key(CONTROL_PLANE_LABEL)) {
                peers.push(((**other).clone(), n));
            }
        }
        peers
    }

    /// etcd as its members say on the other control-plane machines (over SSH, at most once
    /// per [`ETCD_FRESH_MS`] for the whole fleet: a held node asks every round); `None` when
    /// no control-plane machine has SSH settings (then the Nodes' Ready stands for the
    /// members, as before).
    async fn etcd_view(&self, name: &str) -> Option<crate::remedy::guard::EtcdView> {
        let now = self.exec.now_ms();
        let fresh = self
            .etcd_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|(at, _)| now.saturating_sub(*at) < ETCD_FRESH_MS);
        let seen = match fresh {
            Some((_, seen)) => seen,
            None => {
                let peers = self.control_plane_peers(name).await;
                let seen = self
                    .exec
                    .etcd_members(name, &peers, &self.config.replacement.etcdctl)
                    .await;
                if let Err(e) = &seen {
                    warn!(node = name, error = %e, "etcd could not be asked");
                }
                *self.etcd_seen.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((now, seen.clone()));
                seen
            }
        };
        let machine = self.machines.iter().find(|m| m.name == name);
        let node = self.node_cache.get().and_then(|c| c.get(name));
        crate::remedy::replace::etcd_view(&seen, machine.map(|m| &**m), name, node.as_deref())
    }

    /// etcd's view for an answering control-plane node: a member can be down on a Node that
    /// is Ready. `None` for any other node.
    async fn etcd_for(
        &self,
        name: &str,
        answering: bool,
    ) -> Option<crate::remedy::guard::EtcdView> {
        match answering && self.is_control_plane(name).await {
            true => self.etcd_view(name).await,
            false => None,
        }
    }

    /// What the storm guard judges `name`'s next action by (`oob plan` asks it too).
    pub(super) async fn fleet(&self, name: &str, answering: bool) -> (Fleet, StormPolicy) {
        let etcd = self.etcd_for(name, answering).await;
        self.fleet_with(name, answering, etcd).await
    }

    async fn fleet_with(
        &self,
        name: &str,
        answering: bool,
        etcd: Option<crate::remedy::guard::EtcdView>,
    ) -> (Fleet, StormPolicy) {
        let breaker_open = self.exec.journal().breaker().ok().flatten().is_some();
        let (total, unhealthy, in_flight, others) = {
            let s = self.lock();
            let total = s.len();
            // This machine counts as unhealthy whatever its recorded stage (a machine that
            // goes from Healthy to a reboot in one decision has not recorded another yet).
            let unhealthy = 1 + s
                .iter()
                .filter(|(n, m)| n.as_str() != name && !matches!(m.position.stage, Stage::Healthy))
                .count();
            let in_flight = s
                .iter()
                .filter(|(n, m)| n.as_str() != name && remediating(&m.position.stage))
                .count();
            // The others not Healthy (few), and whether each is being remediated: which are
            // control-plane nodes is asked below.
            let others: Vec<(String, bool)> = s
                .iter()
                .filter(|(n, m)| n.as_str() != name && !matches!(m.position.stage, Stage::Healthy))
                .map(|(n, m)| (n.clone(), remediating(&m.position.stage)))
                .collect();
            (total, unhealthy, in_flight, others)
        };
        let this_control_plane = self.is_control_plane(name).await;
        let (mut control_plane_unhealthy, mut control_plane_remediating) = (0, 0);
        if this_control_plane {
            for (n, busy) in &others {
                if self.is_control_plane(n).await {
                    control_plane_unhealthy += 1;
                    control_plane_remediating += usize::from(*busy);
                }
            }
        }
        let p = &self.config.policy;
        let storm = StormPolicy {
            max_concurrent: p.max_concurrent,
            max_unhealthy_percent: p.max_unhealthy_percent,
            cooldown_ms: p.cooldown_s.saturating_mul(1000),
        };
        let fleet = Fleet {
            total,
            unhealthy,
            in_flight,
            breaker_open,
            control_plane: this_control_plane,
            answering,
            control_plane_unhealthy,
            control_plane_remediating,
            etcd,
        };
        (fleet, storm)
    }

    /// Carry out `step`. `resumed_from` is the stage before a pending remedy found after a
    /// restart: it was admitted then, and is finished now without asking again.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn act(
        &self,
        m: &Machine,
        node: &NodeInfo,
        mut st: MachineState,
        step: Step,
        j: &Judgement,
        evidence: &Evidence,
        resumed_from: Option<Stage>,
    ) {
        let name = m.name.as_str();
        let from = resumed_from.unwrap_or(st.position.stage);
        let real = mutating(step.remedy) && !self.exec.dry_run();
        // What the last round waited for: a yield to another holder is said once.
        let was_waiting = st.waiting.clone();
        if !self.may_act(name, &step) {
            // Leadership was lost while this round gathered: the new leader decides; a
            // replica that no longer leads begins nothing (nor resumes: the leader adopts).
            self.wait(name, st, NOT_LEADING.into());
            return;
        }
        if real && resumed_from.is_none() {
            let answering = self.takes_a_vote(m, evidence, step.remedy);
            match self
                .admit(name, step.next, st.position.recovered_ms, answering)
                .await
            {
                Admission::Go => st.waiting = None,
                Admission::Trip { reason } => {
                    if let Ok(true) = self
                        .exec
                        .journal()
                        .trip_breaker(&reason, self.exec.now_ms())
                    {
                        self.exec.note(name, format!("storm guard: breaker TRIPPED: {reason}; no remediation until `oob breaker reset`"));
                        warn!(node = name, reason = %reason, "breaker tripped");
                    }
                    self.metrics.remedy(step.remedy.name(), "blocked");
                    self.wait(name, st, "breaker open".into());
                    return;
                }
                Admission::Hold { reason } => {
                    // Said on the Node once per reason, as the timeline says it once.
                    if st.waiting.as_deref() != Some(reason.as_str()) {
                        self.exec
                            .event(name, "Warning", "RemediationHeldBack", &reason)
                            .await;
                    }
                    self.metrics.remedy(step.remedy.name(), "deferred");
                    self.wait(name, st, reason);
                    return;
                }
                Admission::Blocked { reason } | Admission::Wait { reason } => {
                    self.metrics.remedy(step.remedy.name(), "deferred");
                    self.wait(name, st, reason);
                    return;
                }
            }
        }
        if real {
            // The intent, with the stage it belongs to, is on disk before any request
            // leaves: a crash from here on resumes this remedy, it never decides another.
            st.position.stage = step.next;
            if resumed_from.is_none() {
                st.position.pending = Some(Pending {
                    remedy: step.remedy,
                    from,
                    at_ms: self.exec.now_ms(),
                });
                if matches!(
                    step.remedy,
                    Remedy::SoftReboot | Remedy::HardReboot | Remedy::PowerOn
                ) {
                    st.position.boot_before = node.boot_id.clone();
                }
            }
            if !self.put(name, &mut st) || !self.share_position(name, &st.position).await {
                self.exec.note(
                    name,
                    format!(
                        "{}: not sent, the journal could not record it first",
                        step.remedy.name()
                    ),
                );
                st.position.stage = from;
                st.position.pending = None;
                self.put(name, &mut st);
                return;
            }
        }
        if !self.may_act(name, &step) {
            // Lost while the guard and the journal were asked: what was recorded (the
            // pending remedy) is the leader's to resume; nothing was sent.
            self.wait(name, st, NOT_LEADING.into());
            return;
        }
        let done = self.carry_out(m, node, &mut st, step, j, evidence).await;
        // Stopped part-way (its lock lost), or a resumed step that could not take the node
        // yet: the position recorded before it (the stage it leads to, the pending remedy)
        // stays, as after a crash, so a later round resumes this very remedy from the journal
        // instead of judging the node afresh and beginning another.
        let keep = match &done {
            Some(Done::Interrupted(d)) => Some(d),
            Some(Done::Busy(d)) if resumed_from.is_some() && st.position.pending.is_some() => {
                Some(d)
            }
            _ => None,
        };
        if let Some(d) = keep {
            self.metrics.remedy(step.remedy.name(), "deferred");
            if was_waiting.as_deref() != Some(d.as_str()) {
                self.exec
                    .note(name, format!("{} deferred: {d}", step.remedy.name()));
            }
            st.waiting = Some(d.clone());
            self.put(name, &mut st);
            return;
        }
        if !matches!(done, Some(Done::Busy(_))) {
            // Carried out (whatever came of it): no longer waiting for anything.
            st.waiting = None;
        }
        // A release acted on (the hands-off ended, or the replacement was tried, whatever
        // came of it; a busy node is tried again): taken away, the LED off.
        if evidence.released.is_some()
            && matches!(from, Stage::AwaitReplacement { .. })
            && !matches!(done, Some(Done::Busy(_)))
        {
            self.consume_release(name).await;
            // The technicians are done with the box: its locator LED off.
            let led = match self.exec.locator(m, node, false).await {
                Ok(state) => format!("locator LED {state}"),
                Err(why) => format!("locator LED not turned off: {why}"),
            };
            self.exec.note(name, led);
        }
        let mut position = st.position.clone();
        position.pending = None;
        position.stage = step.next;
        if let Some(done) = &done {
            let kind = step.remedy.name();
            self.metrics.remedy(kind, done.outcome().0);
            position.stage = step.next.after(
                from,
                done.kind(),
                self.exec.now_ms(),
                &(&self.config.policy).into(),
            );
            match done {
                Done::Ok(d) if mutating(step.remedy) && step.remedy != Remedy::Fence => {
                    self.exec.note(name, format!("{kind}: {d}"))
                }
                Done::Failed(d) => self.exec.note(name, format!("{kind} failed: {d}")),
                Done::Skip(d) => self.exec.note(name, format!("{kind} skipped: {d}")),
                // A health check that failed a moment ago is not run again yet: said once.
                Done::Busy(_) if step.remedy == Remedy::Recovered => {}
                // Another actor holds the node (oob's lock, or a medik8s operator's lease):
                // oob yields, says so once in the timeline and on the Node.
                Done::Busy(d) => {
                    if was_waiting.as_deref() != Some(d.as_str()) {
                        self.exec.note(name, format!("{kind} deferred: {d}"));
                        self.exec
                            .event(name, "Normal", "RemediationYielded", d)
                            .await;
                    }
                    st.waiting = Some(d.clone());
                }
                Done::Refused(d) => {
                    // Never power-cycle the wrong machine: straight to the report, hands off.
                    st.position = position.clone();
                    self.put(name, &mut st);
                    self.refused_report(m, node, &st, d, j).await;
                    return;
                }
                // Kept above, with its position, before anything is folded.
                Done::Ok(_) | Done::Interrupted(_) => {}
            }
        }
        if position.stage.name() != from.name() {
            info!(
                node = name,
                from = from.name(),
                to = position.stage.name(),
                "stage"
            );
        }
        st.position = position;
        self.put(name, &mut st);
        // Cluster mode: what a new leader needs, and what Node Healthcheck reads.
        let changed = st.position.stage.name() != from.name();
        let episodic = |s: &Stage| remediating(s) || matches!(s, Stage::AwaitReplacement { .. });
        if real || self.request(name).is_some() || (changed && episodic(&from)) {
            self.share_after(name, from, &st.position).await;
        }
    }

    /// The executor's part of a step.
    async fn carry_out(
        &self,
        m: &Machine,
        node: &NodeInfo,
        st: &mut MachineState,
        step: Step,
        j: &Judgement,
        evidence: &Evidence,
    ) -> Option<Done> {
        let verdict = j.verdict.name();
        let evidence_lines = evidence_lines(st, j);
        let findings = st.position.findings.clone();
        let cause = self.cause(st, j);
        let subject = Subject {
            machine: m,
            node,
            episode: st.position.episode,
            findings: &findings,
            evidence: &evidence_lines,
            verdict: &verdict,
            alive: matches!(j.verdict, Verdict::Faulty) && evidence.ssh_reachable != Some(false),
            ssh_up: evidence.ssh_reachable == Some(true),
            boot_before: st.position.boot_before.as_deref(),
            cause: Some(&cause),
        };
        if step.remedy == Remedy::Replace {
            return Some(self.replace(m).await);
        }
        let done = self.exec.execute(step.remedy, &subject).await;
        // Recovery is over only when it was carried out (the health check passed).
        if step.remedy == Remedy::Recovered && matches!(done, Some(Done::Ok(_))) {
            st.position.findings.clear();
            st.position.boot_before = None;
            st.position.recovered_ms = Some(self.exec.now_ms());
        }
        done
    }

    /// The replacement rung: the workflow with the inventory's other machines (where a
    /// control-plane node's etcd member is removed) and the cluster's bootstrap tokens.
    async fn replace(&self, m: &Machine) -> Done {
        use crate::remedy::executor::replace::{ReplaceError, ReplaceRequest};
        let Some(rejoin) = self.rejoin.clone() else {
            return Done::Failed("the replacement needs the cluster (no kubeconfig)".into());
        };
        let peers = self.control_plane_peers(&m.name).await;
        let request = ReplaceRequest {
            machine: m,
            peers: &peers,
            new_board: false,
            fresh: false,
            settings: &self.config.replacement,
        };
        match self.exec.replace(&request, rejoin.as_ref()).await {
            Ok(r) => Done::Ok(format!("replaced and rejoined in {} steps", r.steps.len())),
            Err(e @ ReplaceError::Busy { .. }) => Done::Busy(e.to_string()),
            Err(e @ ReplaceError::Identity { .. }) => Done::Refused(e.to_string()),
            Err(e) => Done::Failed(e.to_string()),
        }
    }

    /// Take the release annotation away (best effort: the timeline holds the fact).
    pub(super) async fn consume_release(&self, name: &str) {
        if self.exec.dry_run() {
            return;
        }
        match self
            .exec
            .nodes()
            .annotate(name, crate::remedy::executor::RELEASE_ANNOTATION, None)
            .await
        {
            Ok(()) | Err(crate::k8s::NodeOpsError::NotFound { .. }) => {}
            Err(e) => warn!(node = name, error = %e, "removing the release annotation failed"),
        }
    }

    /// A power action refused by the identity check: the report says why, hands off.
    async fn refused_report(
        &self,
        m: &Machine,
        node: &NodeInfo,
        st: &MachineState,
        why: &str,
        j: &Judgement,
    ) {
        let evidence = evidence_lines(st, j);
        let verdict = j.verdict.name();
        let subject = Subject {
            machine: m,
            node,
            episode: st.position.episode,
            findings: &st.position.findings,
            evidence: &evidence,
            verdict: &verdict,
            alive: false,
            ssh_up: false,
            boot_before: None,
            cause: None,
        };
        let cause = Cause::IdentityMismatch {
            detail: why.to_owned(),
        };
        let (done, _) = self.exec.report(&subject, &cause).await;
        self.metrics.remedy("report", done.outcome().0);
    }

    fn wait(&self, name: &str, mut st: MachineState, reason: String) {
        if st.waiting.as_deref() != Some(reason.as_str()) {
            self.exec
                .note(name, format!("remediation deferred: {reason}"));
            st.waiting = Some(reason);
        }
        self.put(name, &mut st);
    }

    /// Why the machine is reported: its first critical finding, else how the ladder ended.
    fn cause(&self, st: &MachineState, j: &Judgement) -> Cause {
        if let Some(f) = st
            .position
            .findings
            .iter()
            .find(|f| f.severity == Level::Critical)
        {
            if crate::health::host::NO_RESTART_FIXES.contains(&f.code.as_str()) {
                return Cause::Host {
                    component: f.component.clone(),
                    code: f.code.clone(),
                    detail: f.detail.clone(),
                    fix: f.fix.clone(),
                };
            }
            return Cause::Hardware {
                component: f.component.clone(),
                code: f.code.clone(),
                detail: f.detail.clone(),
            };
        }
        let reasons = j.reasons.join(", ");
        match st.position.stage {
            Stage::Confirm { .. } => Cause::Unconfirmed {
                after_s: self.config.policy.confirm_timeout_s,
                reasons,
            },
            _ => Cause::NoRecovery { reasons },
        }
    }
}
