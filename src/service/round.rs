//! One round for one machine: probe (ICMP, or the SSH port where ICMP is not available, and
//! the Node's Ready), look at the BMC when hardware checks are due or the host is suspect,
//! judge (pure), step the stage machine (pure), then hand the step to [`super::act`]. A remedy
//! persisted as pending (decided, maybe sent, before a restart) is resumed as it is, never
//! judged again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{warn, Instrument as _};

use super::{metrics, Service};
use crate::config::Machine;
use crate::gather::host_address;
use crate::k8s::NodeInfo;
use crate::probe::ping::PingOptions;
use crate::remedy::decide::{decide, Decision, Policy as DecidePolicy};
use crate::remedy::executor::PAUSE_ANNOTATION;
use crate::remedy::stage::{Remedy, Stage};
use crate::verdict::{judge, ConditionClass, Evidence, NodeCondition};

/// Whether a probe round found the host not answering (the verdict's own rule, default
/// thresholds).
#[cfg(test)]
fn dark(e: &Evidence) -> bool {
    crate::verdict::dark(e, &crate::verdict::Policy::default()) == Some(true)
}

/// How often a healthy machine that answers its echoes has its SSH port probed as well (a
/// closed port on a host that answers is a warning; once a minute keeps a 10,000-machine
/// fleet's connections at 170 a second); a suspect one has it every round.
pub(super) const BANNER_EVERY_MS: u64 = 60_000;

/// Whether a probe asks the SSH port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Banner {
    /// Ask it, next to the echoes.
    Probe,
    /// Ping only; the port's last answer stands while the echoes come back.
    Last(Option<bool>),
}

/// FNV-1a of a machine's name: stable across restarts and replicas.
pub(super) fn name_hash(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A stable ICMP identifier per machine, so that replies of different machines never look
/// alike.
fn ident(name: &str) -> u16 {
    u16::try_from(name_hash(name) & 0xffff).unwrap_or(1)
}

impl Service {
    /// Probe one machine, the SSH port included: (evidence, node, human-readable probe
    /// line).
    pub async fn probe(&self, m: &Machine) -> (Evidence, Option<Arc<NodeInfo>>, String) {
        let count = self.config.service.ping_count;
        let (e, node) = self
            .probe_with(m, Banner::Probe, count, ident(&m.name))
            .await;
        let line = self.probe_line(&e);
        (e, node, line)
    }

    /// The verdict's reasons for a probe's evidence, as one line.
    fn probe_line(&self, e: &Evidence) -> String {
        judge(e, &self.config.policy.verdict()).reasons.join(", ")
    }

    /// Probe one machine with `count` echoes of identifier `id`; `banner` says whether the SSH port is asked
    /// too.
    async fn probe_with(
        &self,
        m: &Machine,
        banner: Banner,
        count: u16,
        id: u16,
    ) -> (Evidence, Option<Arc<NodeInfo>>) {
        let node = match self.node_cache.get().filter(|c| !c.is_empty()) {
            Some(cache) => cache.get(&m.name),
            None => self.exec.nodes().get(&m.name).await.ok().map(Arc::new),
        };
        let host = host_address(m, node.as_deref());
        let timeout = Duration::from_millis(self.config.service.probe_timeout_ms);
        let mut e = Evidence {
            node_ready: node.as_ref().and_then(|n| n.ready.clone()),
            released: node.as_ref().and_then(|n| {
                n.annotations
                    .get(crate::remedy::executor::RELEASE_ANNOTATION)
                    .map(|v| v == "repaired")
            }),
            conditions: node.as_ref().map_or_else(Vec::new, |n| {
                n.problems
                    .iter()
                    .filter_map(|(t, why)| {
                        let class = self.config.policy.condition_class(t);
                        (class != ConditionClass::Ignore).then(|| NodeCondition {
                            type_: t.clone(),
                            class,
                            why: why.clone(),
                        })
                    })
                    .collect()
            }),
            ..Evidence::default()
        };
        if let Some(ip) = host {
            let o = PingOptions {
                count,
                timeout,
                ..PingOptions::default()
            };
            let port = m.ssh.as_ref().map_or(22, |s| s.port);
            let addr = SocketAddr::new(ip, port);
            // Each probe's future is made only when it is awaited: thousands of rounds
            // are probing at any moment.
            match banner {
                Banner::Probe => {
                    // Echoes and the SSH banner at once: a dark host costs one timeout.
                    let (ping, ssh) = tokio::join!(
                        self.liveness.ping(ip, id, o),
                        self.liveness.ssh(addr, timeout)
                    );
                    e.ping = ping;
                    e.ssh_reachable = Some(ssh);
                }
                Banner::Last(last) => {
                    e.ping = self.liveness.ping(ip, id, o).await;
                    e.ssh_reachable = match e.ping {
                        // No ICMP for this address: the SSH port is the probe.
                        None => Some(self.liveness.ssh(addr, timeout).await),
                        // Echoes answered: the port's last word stands (a warning at most).
                        Some(_) if !self.dark(&e) => last,
                        // Dark on echoes alone: the next round asks the port too, before
                        // anything counts beyond a suspicion.
                        Some(_) => None,
                    };
                }
            }
            e.ssh_is_liveness = e.ping.is_none();
        }
        let result = if host.is_none() {
            "no-address"
        } else if self.dark(&e) {
            "down"
        } else {
            "up"
        };
        self.metrics
            .probes
            .get_or_create(&metrics::ResultLabel {
                result: result.into(),
            })
            .inc();
        (e, node)
    }

    /// One round for one machine: a probe, and when the probe or the clock calls for
    /// more, the rest in a slot of its own.
    pub async fn round(&self, m: &Machine) {
        let banner = {
            let s = self.lock();
            let Some(st) = s.get(&m.name) else {
                return;
            };
            let due = self.exec.now_ms().saturating_sub(st.banner_ms) >= BANNER_EVERY_MS;
            if due || !st.answered || st.position.stage != Stage::Healthy {
                Banner::Probe
            } else {
                Banner::Last(st.banner)
            }
        };
        let count = self.config.service.ping_count;
        let probe = self.probe_with(m, banner, count, ident(&m.name)).await;
        // Boxed: a round waiting to start, or probing, holds a small future; the large
        // one (looks, remedies) exists only while it runs. So does its span: the probe
        // logs nothing, and thousands of rounds are probing at any moment.
        let span = tracing::info_span!(
            "round",
            node = %m.name,
            stage = tracing::field::Empty,
            remedy = tracing::field::Empty
        );
        Box::pin(self.round_after(m, banner, probe))
            .instrument(span)
            .await;
    }

    async fn round_after(
        &self,
        m: &Machine,
        banner: Banner,
        (mut evidence, node): (Evidence, Option<Arc<NodeInfo>>),
    ) {
        let name = m.name.as_str();
        // A replacement deletes the Node before the machine joins again: its round goes on
        // without one (a restart resumes the pending replacement, a wait times out).
        let replacing = self.lock().get(name).is_some_and(|s| {
            matches!(s.position.stage, Stage::Replace { .. })
                || s.position
                    .pending
                    .is_some_and(|p| p.remedy == Remedy::Replace)
        });
        let node = node.or_else(|| replacing.then(|| Arc::new(NodeInfo::unknown(name))));
        let Some(node) = node else {
            warn!(node = name, "node not readable; skipping the round");
            return;
        };
        let paused = node
            .annotations
            .get(PAUSE_ANNOTATION)
            .is_some_and(|v| v != "false");
        let mut st = match self.lock().get(name) {
            Some(s) => s.clone(),
            None => return,
        };
        if paused != st.paused {
            self.exec.note(
                name,
                if paused {
                    format!("automation paused ({PAUSE_ANNOTATION})")
                } else {
                    "automation resumed".to_owned()
                },
            );
            st.paused = paused;
            self.put(name, &mut st);
        }
        if paused {
            return;
        }
        // Cluster mode: an OobRemediation someone else made (Node Healthcheck) asks for the
        // ladder; timed out by them, nothing more is done for it.
        if let Some(req) = self.request(name) {
            if req.timed_out {
                self.stop_request(name, &req).await;
                return;
            }
            let open = req
                .status
                .condition(crate::k8s::remediation::SUCCEEDED)
                .is_none_or(|c| c.status == "Unknown");
            // Only to enter the ladder: once a remedy runs, recovery is judged on the
            // machine's own evidence.
            let entering = matches!(
                st.position.stage,
                Stage::Healthy | Stage::Suspect { .. } | Stage::Confirm { .. }
            );
            if open && self.finished(&req.name) {
                // Done here; the API does not say so yet: say it again, start nothing.
                if entering {
                    self.finish_request(name, &req).await;
                }
            } else if open && entering {
                evidence.conditions.push(crate::verdict::NodeCondition {
                    type_: "OobRemediation".into(),
                    class: crate::verdict::ConditionClass::Reboot,
                    why: format!(
                        "requested by OobRemediation {} (Node Healthcheck)",
                        req.name
                    ),
                });
                self.start_request(name, &req).await;
            }
        }
        // Room for exactly `HISTORY`: the oldest goes before the newest comes.
        while st.history.len() >= super::HISTORY {
            st.history.pop_front();
        }
        st.history
            .push_back(super::Probed::of(self.exec.now_ms(), &evidence));
        let now = self.exec.now_ms();
        if banner == Banner::Probe {
            st.banner_ms = now;
            st.banner = evidence.ssh_reachable;
        }
        st.answered = evidence
            .ping
            .is_some_and(|(received, sent)| received >= sent);
        // Everything past the probe takes a slot, and only when there is something to do:
        // a healthy machine's round costs none.
        let mut slot = None;
        // Hardware: on the first round, then every hardware interval (a BMC that does not
        // answer is asked again at that pace, not every round). Not while a remedy decided
        // before a restart is pending: that is finished first, on what it was decided on.
        let due =
            now.saturating_sub(st.last_hardware_ms) >= self.config.service.hardware_interval_ms;
        // A routine check waits for no one: with every slot taken it is left to the next
        // round (the probe goes on every interval), and counted.
        let turn = if due && st.position.pending.is_none() {
            let permit = self.slots.clone().try_acquire_owned().ok();
            if permit.is_none() {
                self.metrics.hardware_deferred.inc();
            }
            permit
        } else {
            None
        };
        if let Some(permit) = turn {
            slot = Some(permit);
            st.last_hardware_ms = now;
            let mut scratch = Evidence::default();
            if let Some(e) = self
                .look_out_of_band(m, &mut st, &mut scratch, "hardware")
                .await
            {
                warn!(node = name, error = %e, "hardware check failed");
            }
            if m.ssh.as_ref().is_some_and(|s| s.poll_hardware) && !self.dark(&evidence) {
                if let Some(ip) = host_address(m, Some(&node)) {
                    self.poll_host(m, &mut st, &ip.to_string()).await;
                }
            }
        }
        let policy = self.decide_policy();
        let mut decision = decide(&st.position, &evidence, now, &policy);
        if let Decision::Gather(needs) = &decision {
            if slot.is_none() {
                slot = self.slot().await;
            }
            if let Some(why) = &needs.note {
                self.exec.note(name, why.clone());
            }
            if needs.reprobe {
                self.reprobe(m, &mut evidence).await;
            }
            if needs.bmc_look {
                if let Some(e) = self
                    .look_out_of_band(m, &mut st, &mut evidence, "confirm")
                    .await
                {
                    self.exec.note(name, format!("BMC unreachable: {e}"));
                }
            }
            if needs.host_look && m.ssh.is_some() {
                match self.exec.host_look(m, &node).await {
                    Ok(look) => {
                        for f in &look.blocking {
                            let known = st
                                .position
                                .findings
                                .iter()
                                .any(|k| k.code == f.code && k.component == f.component);
                            if !known {
                                self.exec.note(
                                    name,
                                    format!("new critical finding: {} ({})", f.code, f.detail),
                                );
                                st.position.findings.push(f.clone());
                            }
                        }
                        evidence.host = Some(look);
                    }
                    Err(e) => self.exec.note(name, format!("host checks not run: {e}")),
                }
            }
            decision = decide(&st.position, &evidence, now, &policy);
        }
        let Decision::Act(plan) = decision else {
            warn!(
                node = name,
                "the gathered evidence did not satisfy the stage; deciding next round"
            );
            return;
        };
        // Every line this round logs from here on (the timeline's too) carries where the
        // machine stands and what it is about to do.
        let span = tracing::Span::current();
        span.record("stage", st.position.stage.name());
        span.record("remedy", plan.step.remedy.name());
        // A resumed step that waits (for the node's lock) said so once, not every round.
        if plan.resumed_from.is_none() || st.waiting.is_none() {
            for line in &plan.notes {
                self.exec.note(name, line.clone());
            }
        }
        if plan.resumed_from.is_none() {
            self.count_verdict(&plan.judgement.verdict);
        }
        if evidence.released.is_some()
            && !matches!(st.position.stage, Stage::AwaitReplacement { .. })
        {
            // A release is for a node awaiting replacement: a stale one would end a later
            // hands-off nobody looked at.
            self.exec.note(
                name,
                "release ignored: the node is not awaiting replacement",
            );
            self.consume_release(name).await;
        }
        st.position.episode = plan.episode;
        st.verdict = Some(plan.judgement.verdict.clone());
        self.put(name, &mut st);
        if slot.is_none() && plan.step.remedy != Remedy::Nothing {
            slot = self.slot().await;
        }
        let _slot = slot;
        self.act(
            m,
            &node,
            st,
            plan.step,
            &plan.judgement,
            &evidence,
            plan.resumed_from,
        )
        .await;
    }

    /// A slot for work beyond the probe; `None` only once the service is closing (the
    /// semaphore is never closed while rounds run).
    async fn slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Whether a probe round found the host not answering (the verdict's own rule).
    pub(super) fn dark(&self, e: &Evidence) -> bool {
        crate::verdict::dark(e, &self.config.policy.verdict()) == Some(true)
    }

    /// The decision's policy, from the configuration.
    pub(super) fn decide_policy(&self) -> DecidePolicy {
        DecidePolicy {
            stages: (&self.config.policy).into(),
            verdict: self.config.policy.verdict(),
            replace: self.config.replacement.enabled,
        }
    }

    /// Entering Confirm dark: tell a flap from an outage with three quick re-probes (one
    /// echo and the SSH port each) started `REPROBE_SPACING` apart and run at once, so that
    /// a dark host costs one probe timeout plus the spread, not three rounds (a link that
    /// flaps in step with the probe interval fails every round).
    async fn reprobe(&self, m: &Machine, evidence: &mut Evidence) {
        let probes = (0..3_u32).map(|i| async move {
            tokio::time::sleep(crate::timeouts::REPROBE_SPACING * i).await;
            // An identifier of their own: replies must not be matched across the three.
            let id = ident(&m.name).wrapping_add(1 + u16::try_from(i).unwrap_or(0));
            self.probe_with(m, Banner::Probe, 1, id).await
        });
        let answers = futures_util::future::join_all(probes).await;
        if let Some((again, _)) = answers.into_iter().find(|(e, _)| !self.dark(e)) {
            let again_line = self.probe_line(&again);
            self.exec.note(
                &m.name,
                format!("answered on a re-probe ({again_line}): a flap, not an outage"),
            );
            evidence.ping = again.ping;
            evidence.ssh_reachable = again.ssh_reachable;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_ssh_port_is_not_dark_when_ping_answers() {
        let e = Evidence {
            ping: Some((1, 1)),
            ssh_reachable: Some(false),
            ..Evidence::default()
        };
        assert!(!dark(&e));
        let e = Evidence {
            ping: Some((0, 3)),
            ssh_reachable: Some(true),
            ..Evidence::default()
        };
        assert!(
            !dark(&e),
            "echoes dropped, but the kernel answers on the SSH port"
        );
        let e = Evidence {
            ping: Some((0, 3)),
            ssh_reachable: Some(false),
            ..Evidence::default()
        };
        assert!(dark(&e));
        let e = Evidence {
            ssh_reachable: Some(false),
            ssh_is_liveness: true,
            ..Evidence::default()
        };
        assert!(dark(&e));
    }

    #[test]
    fn identifiers_differ_for_names_of_the_same_length() {
        assert_ne!(ident("node-1"), ident("node-2"));
    }
}
