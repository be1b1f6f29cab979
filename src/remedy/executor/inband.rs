//! The executor's in-band steps, over the host's own SSH: the repair (`systemctl restart` of
//! the unit the host checks name), `systemctl reboot` as the soft reboot when SSH answers
//! (both journaled like a power step: after a crash never sent again), and the runbook's host
//! checks for the verdict and before a node is uncordoned.

use super::{Done, Executor, Subject};
use crate::clock::rfc3339;
use crate::health::Level;
use crate::remedy::journal::{Before, Intent};

/// A node whose health check failed is checked again after this long (ms), not every round.
pub(super) const HEALTH_CHECK_EVERY: u64 = 30_000;

/// An in-band action in the journal.
enum Journaled {
    /// Never journaled: it may be sent.
    Not,
    /// Sent, or maybe sent before a crash: never again (the step's end says so).
    Sent(Done),
    /// Tried and failed: the next way (the BMC, the soft reboot).
    Failed,
}

/// How far back a health check reads the kernel's and the kubelet's logs.
const HEALTH_CHECK_SINCE: &str = "-15min";

impl Executor {
    /// The runbook's host checks for the verdict (confirming an OS problem while SSH
    /// answers); `Err` says why they could not be run.
    pub async fn host_look(
        &self,
        m: &crate::config::Machine,
        node: &crate::k8s::NodeInfo,
    ) -> Result<crate::verdict::HostLook, String> {
        let checks = self.host_checks(m, Some(node)).await?;
        Ok(checks.look(self.epoch()))
    }

    /// The runbook's host checks over SSH (`oob check`, the look above).
    pub async fn host_checks(
        &self,
        m: &crate::config::Machine,
        node: Option<&crate::k8s::NodeInfo>,
    ) -> Result<crate::health::host::HostChecks, String> {
        let host = crate::gather::host_address(m, node)
            .filter(|_| m.ssh.is_some())
            .ok_or("no SSH settings or address for the host")?;
        self.hosts
            .checks(m, &host.to_string(), HEALTH_CHECK_SINCE)
            .await
            .map_err(|e| e.to_string())
    }

    /// Now in seconds since the epoch (certificates are judged by it).
    pub fn epoch(&self) -> i64 {
        i64::try_from(self.now_ms() / 1000).unwrap_or(i64::MAX)
    }

    /// The repair rung: restart the unit the host checks name now (the kubelet, or the
    /// runtime first), journaled like a power step: after a crash it is never sent again.
    /// Skipped (the soft reboot follows at once) when the host cannot be asked or names
    /// nothing a restart fixes.
    pub(super) async fn repair(&self, s: &Subject<'_>) -> Done {
        let node = s.machine.name.as_str();
        let key = s.key("repair");
        // Sent before a crash: the unit may be up already, its checks say nothing now;
        // the restart is not sent again and not judged again, Ready tells.
        match self.journaled(node, &key) {
            Journaled::Sent(done) => return done,
            Journaled::Failed => return Done::Skip("the restart failed before".into()),
            Journaled::Not => {}
        }
        let (Some(host), Some(ssh)) = (Self::ssh_host(s), s.machine.ssh.as_ref()) else {
            return Done::Skip("no SSH to the host".into());
        };
        let checks = match self
            .hosts
            .checks(s.machine, &host, HEALTH_CHECK_SINCE)
            .await
        {
            Ok(c) => c,
            Err(e) => return Done::Skip(format!("the host checks could not run: {e}")),
        };
        let Some(repair) = checks.repair() else {
            return Done::Skip("the host checks name nothing a restart fixes".into());
        };
        let unit = repair.unit(&ssh.checks).to_owned();
        if self.dry_run {
            let d = format!("dry run: would run `systemctl restart {unit}` over SSH");
            self.note(node, d.clone());
            return Done::Ok(d);
        }
        let before = Before {
            boot_id: s.node.boot_id.clone(),
            power: None,
        };
        // The lock first, then the intent: a node held by someone else leaves nothing in
        // flight (the step is tried again, not taken for sent).
        let sent = self
            .locked(node, async {
                match self
                    .intent(&key, node, &format!("restart {unit}"), &before)
                    .await
                {
                    Err(done) => return Err(done),
                    Ok(Intent::Seen(_)) => {
                        return Err(match self.journaled(node, &key) {
                            Journaled::Sent(done) => done,
                            Journaled::Failed | Journaled::Not => {
                                Done::Skip("the restart failed before".into())
                            }
                        })
                    }
                    Ok(Intent::New) => {}
                }
                self.note(node, format!("repair: `systemctl restart {unit}` over SSH"));
                Ok(self.hosts.restart(s.machine, &host, &unit).await)
            })
            .await;
        let done = match sent {
            Ok(Ok(Ok(()))) => Done::Ok(format!("{unit} restarted; waiting for Ready")),
            Ok(Ok(Err(e))) => Done::Failed(format!("`systemctl restart {unit}`: {e}")),
            Ok(Err(done)) | Err(done) => return done,
        };
        self.outcome(&key, &done).await;
        done
    }

    /// The host's address when it can be reached over SSH (settings and an address).
    fn ssh_host(s: &Subject<'_>) -> Option<String> {
        s.machine.ssh.as_ref()?;
        crate::gather::host_address(s.machine, Some(s.node)).map(|ip| ip.to_string())
    }

    /// `systemctl reboot` over SSH, journaled; `None` when SSH is not the way (no settings,
    /// no address, the port did not answer, or it was tried and failed): the BMC then.
    pub(super) async fn soft_reboot_over_ssh(&self, s: &Subject<'_>) -> Option<Done> {
        let node = s.machine.name.as_str();
        let key = s.key("soft-reboot-ssh");
        // Journaled before (a crash, a second round): never sent again, whatever SSH says
        // now; the BMC is not asked either. Failed before: the BMC's turn.
        match self.journaled(node, &key) {
            Journaled::Sent(done) => return Some(done),
            Journaled::Failed => return None,
            Journaled::Not => {}
        }
        let host = Self::ssh_host(s).filter(|_| s.ssh_up)?;
        if self.dry_run {
            let d = "dry run: would run `systemctl reboot` over SSH".to_owned();
            self.note(node, d.clone());
            return Some(Done::Ok(d));
        }
        let before = Before {
            boot_id: s.node.boot_id.clone(),
            power: None,
        };
        // The lock first, then the intent (see `repair`). `Err(None)`: the BMC's turn.
        let sent = self
            .locked(node, async {
                match self.intent(&key, node, "systemctl-reboot", &before).await {
                    Err(done) => return Err(Some(done)),
                    Ok(Intent::Seen(_)) => {
                        return Err(match self.journaled(node, &key) {
                            Journaled::Sent(done) => Some(done),
                            Journaled::Failed | Journaled::Not => None,
                        })
                    }
                    Ok(Intent::New) => {}
                }
                self.note(node, "soft reboot: `systemctl reboot` over SSH");
                Ok(self.hosts.reboot(s.machine, &host).await)
            })
            .await;
        let done = match sent {
            Ok(Ok(Ok(()))) => Done::Ok("`systemctl reboot` sent over SSH".into()),
            Ok(Ok(Err(e))) => Done::Failed(format!("`systemctl reboot` over SSH: {e}")),
            Ok(Err(seen)) => return seen,
            Err(busy) => return Some(busy),
        };
        self.outcome(&key, &done).await;
        match done {
            Done::Failed(why) => {
                self.note(node, format!("{why}; the BMC's graceful restart instead"));
                None
            }
            done => Some(done),
        }
    }

    /// What the journal holds for an in-band action under `key`.
    fn journaled(&self, node: &str, key: &str) -> Journaled {
        let Ok(Some(e)) = self.journal.entry(key) else {
            return Journaled::Not;
        };
        if e.outcome.as_deref() == Some("failed") {
            return Journaled::Failed;
        }
        let d = format!(
            "{} journaled at {}; not sent again",
            e.action,
            rfc3339(e.intent_ms)
        );
        self.note(node, d.clone());
        Journaled::Sent(Done::Ok(d))
    }

    /// The runbook's host checks before uncordoning: `Err` (the step's end) when they ran
    /// and found the kubelet or the runtime down or a critical problem. A host that cannot
    /// be checked (no SSH settings, SSH refused) is said so and does not block: Ready and
    /// the bootID are then the evidence.
    pub(super) async fn health_check(&self, s: &Subject<'_>) -> Result<(), Done> {
        let node = s.machine.name.as_str();
        let Some(host) = Self::ssh_host(s) else {
            return Ok(());
        };
        if self.dry_run {
            return Ok(());
        }
        let now = self.now_ms();
        let failed_at = self
            .health_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .copied();
        if let Some(at) = failed_at.filter(|at| now.saturating_sub(*at) < HEALTH_CHECK_EVERY) {
            return Err(Done::Busy(format!(
                "health check failed {} s ago; next in {} s",
                now.saturating_sub(at) / 1000,
                (at + HEALTH_CHECK_EVERY).saturating_sub(now) / 1000
            )));
        }
        let checks = match self
            .hosts
            .checks(s.machine, &host, HEALTH_CHECK_SINCE)
            .await
        {
            Ok(c) => c,
            // SSH refused, no settings, no answer: nothing to judge by but Ready and bootID.
            Err(e) => {
                self.note(
                    node,
                    format!("health check: the host cannot be asked ({e}); judged by Ready and the bootID"),
                );
                return Ok(());
            }
        };
        let epoch = self.epoch();
        let mut failed_map = self.health_failed.lock().unwrap_or_else(|p| p.into_inner());
        if checks.healthy(epoch) {
            failed_map.remove(node);
            drop(failed_map);
            self.note(
                node,
                "health check passed: kubelet and runtime running, no critical finding",
            );
            return Ok(());
        }
        failed_map.insert(node.to_owned(), now);
        drop(failed_map);
        let problems: Vec<String> = checks
            .findings(epoch)
            .into_iter()
            .filter(|f| f.severity == Level::Critical)
            .map(|f| f.detail)
            .collect();
        let why = if problems.is_empty() {
            "the kubelet or the runtime is not running".to_owned()
        } else {
            problems.join("; ")
        };
        // The round's timeline line says it ("recovered failed: …").
        Err(Done::Failed(format!(
            "health check before uncordon failed: {why}; not uncordoned, the ladder goes on"
        )))
    }
}
