//! One round for one machine: probe (ICMP, or the SSH port where ICMP is not available, and
//! the Node's Ready), look at the BMC when hardware checks are due or the host is suspect,
//! judge (pure), step the stage machine (pure), then hand the step to [`super::act`]. A remedy
//! persisted as pending (decided, maybe sent, before a restart) is resumed as it is, never
//! judged again.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tracing::warn;

use super::{metrics, MachineState, Service};
use crate::clock::{now_ms, rfc3339};
use crate::config::Machine;
use crate::k8s::NodeInfo;
use crate::probe::ping::PingOptions;
use crate::remedy::executor::PAUSE_ANNOTATION;
use crate::remedy::stage::{Remedy, Stage, Step};
use crate::verdict::{judge, Evidence, Policy as VerdictPolicy, Verdict};

/// Whether a probe round found the host not answering (the verdict's own rule).
pub(super) fn dark(e: &Evidence) -> bool {
    crate::verdict::dark(e, &VerdictPolicy::default()) == Some(true)
}

/// The address the host is probed at: the configured `host` when it is an IP address, else
/// the Node's InternalIP, else its ExternalIP.
pub fn host_address(m: &Machine, node: Option<&NodeInfo>) -> Option<IpAddr> {
    if let Some(ip) = m.host.as_deref().and_then(|h| h.parse().ok()) {
        return Some(ip);
    }
    let node = node?;
    ["InternalIP", "ExternalIP"].iter().find_map(|kind| {
        node.addresses
            .iter()
            .filter(|(t, _)| t == kind)
            .find_map(|(_, a)| a.parse().ok())
    })
}

/// A stable ICMP identifier per machine (FNV-1a of its name), so that replies of different
/// machines never look alike.
fn ident(name: &str) -> u16 {
    let h = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    u16::try_from(h & 0xffff).unwrap_or(1)
}

impl Service {
    /// Probe one machine: (evidence, node, human-readable probe line).
    pub async fn probe(&self, m: &Machine) -> (Evidence, Option<NodeInfo>, String) {
        let node = match self.node_cache.get().filter(|c| !c.is_empty()) {
            Some(cache) => cache.get(&m.name),
            None => self.exec.nodes.get(&m.name).await.ok(),
        };
        let host = host_address(m, node.as_ref());
        let timeout = Duration::from_millis(self.config.service.probe_timeout_ms);
        let pinger = self
            .pinger
            .as_ref()
            .filter(|p| host.is_some_and(|ip| p.serves(ip)));
        let mut e = Evidence {
            node_ready: node.as_ref().and_then(|n| n.ready.clone()),
            ssh_is_liveness: pinger.is_none(),
            ..Evidence::default()
        };
        if let Some(ip) = host {
            // Echoes and the SSH banner at once: a dark host costs one timeout, not three.
            let ping = async {
                let pinger = pinger?;
                let o = PingOptions {
                    count: self.config.service.ping_count,
                    timeout,
                    ..PingOptions::default()
                };
                Some(pinger.ping(ip, ident(&m.name), o).await)
            };
            let port = m.ssh.as_ref().map_or(22, |s| s.port);
            let banner = crate::probe::ssh::banner(SocketAddr::new(ip, port), timeout);
            let (stats, banner) = tokio::join!(ping, banner);
            e.ping = stats.map(|s| (s.received, s.sent));
            e.ssh_reachable = Some(banner.reachable);
        }
        let line = judge(&e, &VerdictPolicy::default()).reasons.join(", ");
        let result = if host.is_none() {
            "no-address"
        } else if dark(&e) {
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
        (e, node, line)
    }

    /// One round for one machine.
    pub async fn round(&self, m: &Machine) {
        let name = m.name.as_str();
        let (mut evidence, node, line) = self.probe(m).await;
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
            self.put(name, &st);
        }
        if paused {
            return;
        }
        st.history
            .push_back(format!("{} {line}", rfc3339(now_ms())));
        while st.history.len() > 10 {
            st.history.pop_front();
        }
        if let Some(p) = st.position.pending {
            // Decided (and maybe sent) before a restart: finish exactly that remedy, under
            // its journal key. Judging again could read a BMC mid-reboot as "powered off"
            // and send a second action in the same episode.
            self.exec.note(
                name,
                format!(
                    "resuming {} decided at {} before a restart; not judged again",
                    p.remedy.name(),
                    rfc3339(p.at_ms)
                ),
            );
            evidence.findings = st.position.findings.clone();
            let j = judge(&evidence, &VerdictPolicy::default());
            let step = Step {
                next: st.position.stage,
                remedy: p.remedy,
            };
            self.act(m, &node, st, step, &j, &evidence, Some(p.from))
                .await;
            return;
        }
        let now = now_ms();
        // Hardware: on the first round, then every hardware interval (a BMC that does not
        // answer is asked again at that pace, not every round).
        if now.saturating_sub(st.last_hardware_ms) >= self.config.service.hardware_interval_ms {
            st.last_hardware_ms = now;
            let mut scratch = Evidence::default();
            if let Some(e) = self
                .look_out_of_band(m, &mut st, &mut scratch, "hardware")
                .await
            {
                warn!(node = name, error = %e, "hardware check failed");
            }
            if m.ssh.as_ref().is_some_and(|s| s.poll_hardware) && !dark(&evidence) {
                if let Some(ip) = host_address(m, Some(&node)) {
                    self.poll_host(m, &mut st, &ip.to_string()).await;
                }
            }
        }
        evidence.findings = st.position.findings.clone();
        let j = judge(&evidence, &VerdictPolicy::default());
        self.count_verdict(&j.verdict);
        let policy = self.config.policy.stages();
        let before = st.position.stage;
        let mut step = before.step(&j.verdict, now, &policy);
        let mut judgement = j;
        // Out of band on entering Confirm, and every round while in it (a Confirm stage
        // judged without the BMC's answer would only ever see "dark").
        let entering = step.remedy == Remedy::ConfirmOutOfBand;
        let confirming = matches!(before, Stage::Confirm { .. })
            && !matches!(judgement.verdict, Verdict::Healthy | Verdict::Degraded);
        if entering || confirming {
            if entering {
                self.enter_confirm(m, &mut st, &mut evidence, &line).await;
            }
            if let Some(e) = self
                .look_out_of_band(m, &mut st, &mut evidence, "confirm")
                .await
            {
                self.exec.note(name, format!("BMC unreachable: {e}"));
            }
            judgement = judge(&evidence, &VerdictPolicy::default());
            if entering {
                self.exec.note(
                    name,
                    format!(
                        "verdict {}: {}",
                        judgement.verdict.name(),
                        judgement.reasons.join(", ")
                    ),
                );
            }
            let confirm = if entering { step.next } else { before };
            st.position.stage = confirm;
            step = confirm.step(&judgement.verdict, now, &policy);
        }
        if matches!(before, Stage::Healthy) && !matches!(step.next, Stage::Healthy) {
            st.position.episode += 1;
        }
        if matches!(step.next, Stage::Suspect { .. }) && !matches!(before, Stage::Suspect { .. }) {
            self.exec.note(name, format!("suspect: {line}"));
        }
        if let (Stage::Suspect { failures, .. }, Stage::Healthy) = (before, step.next) {
            self.exec.note(
                name,
                format!(
                    "suspect cleared: answering again after {failures} failed round(s); no action"
                ),
            );
        }
        self.put(name, &st);
        self.act(m, &node, st, step, &judgement, &evidence, None)
            .await;
    }

    /// Entering Confirm: say why, and tell a flap from an outage with three quick re-probes
    /// spread over a second (a link that flaps in step with the probe interval fails every
    /// round).
    async fn enter_confirm(
        &self,
        m: &Machine,
        st: &mut MachineState,
        evidence: &mut Evidence,
        line: &str,
    ) {
        let name = m.name.as_str();
        let why = if dark(evidence) {
            line.to_owned()
        } else {
            format!("{line}, {} new finding(s)", st.position.findings.len())
        };
        self.exec
            .note(name, format!("suspect: {why}; confirming out of band"));
        for _ in 0..(if dark(evidence) { 3 } else { 0 }) {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let (again, _, again_line) = self.probe(m).await;
            if !dark(&again) {
                self.exec.note(
                    name,
                    format!("answered on a re-probe ({again_line}): a flap, not an outage"),
                );
                evidence.ping = again.ping;
                evidence.ssh_reachable = again.ssh_reachable;
                break;
            }
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
