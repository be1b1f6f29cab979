//! The host's hardware over SSH: `smartctl --scan-open -j`, then `smartctl -j -x` per device,
//! and `/sys/class/net/*/statistics` — read-only commands, each under a time limit. Used by
//! `oob smart|nic NODE` and by `oob serve` every `hardware_interval`, where [`Baseline`] turns
//! two polls into findings: a drive's state (FAILED, critical NVMe warning) counts at once,
//! its counters and the NIC error counters only when they rise.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Machine, SshSettings};
use crate::health::host::{self as checks, q, HostChecks};
use crate::health::nic::{self, Sample};
use crate::health::smart::{self, Drive, Snapshot};
use crate::health::{Finding, Limits};
use crate::probe::exec::{self, HostKeyPolicy, SshError, SshTarget};
use crate::small_map::SmallMap;

/// Per-command limit on the host (smartctl -x on a busy disk takes seconds).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// A whole hardware poll (scan, every drive, the NIC counters): a host listing many slow
/// devices must not hold its machine's round and a service slot for hours.
pub const POLL_LIMIT: Duration = Duration::from_secs(300);
/// Drives read per poll; a scan listing more is cut (and says so in the log).
pub const DRIVES_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("machine {machine}: no [machines.ssh] settings")]
    NoSsh { machine: String },
    #[error("machine {machine}: ssh needs exactly one of known_hosts, host_key")]
    HostKeyPolicy { machine: String },
    #[error("machine {machine}: ssh.host_key: {detail}")]
    HostKey { machine: String, detail: String },
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{machine}: {command} printed nothing usable: {detail}")]
    Output {
        machine: String,
        command: String,
        detail: String,
    },
}

impl GatherError {
    /// The command cannot have reached the host: no settings, a host key refused (a
    /// reinstalled machine has a new one), our key refused. A timeout or a dropped session
    /// may have sent it.
    pub fn not_sent(&self) -> bool {
        matches!(
            self,
            Self::NoSsh { .. }
                | Self::HostKeyPolicy { .. }
                | Self::HostKey { .. }
                | Self::Ssh(
                    SshError::UnknownHostKey { .. }
                        | SshError::ChangedHostKey { .. }
                        | SshError::Key { .. }
                        | SshError::Auth { .. }
                )
        )
    }
}

/// The host's own hardware, read over SSH: the seam the service polls through (tests: hosts
/// whose drives fail on cue).
#[async_trait::async_trait]
pub trait HostHardware: Send + Sync {
    async fn smart(&self, m: &Machine, host: &str) -> Result<Vec<Drive>, GatherError>;
    async fn nic(&self, m: &Machine, host: &str) -> Result<Vec<Sample>, GatherError>;
    /// Drives and NICs together (the real reads share one connection).
    async fn poll(
        &self,
        m: &Machine,
        host: &str,
    ) -> Result<(Vec<Drive>, Vec<Sample>), GatherError> {
        let (drives, nics) = tokio::join!(self.smart(m, host), self.nic(m, host));
        Ok((drives?, nics?))
    }
}

/// The real reads: `smartctl` and the sysfs counters over SSH.
pub struct OverSsh;

#[async_trait::async_trait]
impl HostHardware for OverSsh {
    async fn smart(&self, m: &Machine, host: &str) -> Result<Vec<Drive>, GatherError> {
        smart(m, host).await
    }
    async fn nic(&self, m: &Machine, host: &str) -> Result<Vec<Sample>, GatherError> {
        nic(m, host).await
    }
    /// One SSH connection for the whole poll: the smartctl scan, each drive, the NIC
    /// counters, each on a channel of its own.
    async fn poll(
        &self,
        m: &Machine,
        host: &str,
    ) -> Result<(Vec<Drive>, Vec<Sample>), GatherError> {
        let (t, ssh) = ssh_target(m, host)?;
        let poll = async {
            let session = exec::Session::open(&t).await?;
            let drives = smart_in(&session, m, ssh).await;
            let nics = match &drives {
                Ok(_) => nic_in(&session).await,
                Err(_) => Ok(Vec::new()),
            };
            session.close().await;
            Ok((drives?, nics?))
        };
        tokio::time::timeout(POLL_LIMIT, poll).await.map_err(|_| {
            GatherError::Ssh(SshError::Timeout {
                host: t.host.clone(),
                after: POLL_LIMIT,
            })
        })?
    }
}

/// The host's own operating system over SSH: the runbook's checks, and the two in-band
/// actions (restart a unit, reboot). The executor acts through it; tests substitute hosts
/// whose units and boot IDs follow a script.
#[async_trait::async_trait]
pub trait HostAccess: Send + Sync {
    /// The runbook's checks, logs read since `since` (`journalctl --since`).
    async fn checks(&self, m: &Machine, host: &str, since: &str)
        -> Result<HostChecks, GatherError>;
    /// `systemctl restart UNIT`, under the remote time limit.
    async fn restart(&self, m: &Machine, host: &str, unit: &str) -> Result<(), GatherError>;
    /// `systemctl reboot`: `Ok` once sent (the session dropping under us counts as sent).
    async fn reboot(&self, m: &Machine, host: &str) -> Result<(), GatherError>;
    /// Run `command` (the replacement's `kubeadm` and `etcdctl`) under the remote `timeout`
    /// of `limit`; `Ok` with the exit status, whatever it is.
    async fn run(
        &self,
        m: &Machine,
        host: &str,
        command: &str,
        limit: Duration,
    ) -> Result<exec::Output, GatherError>;
}

/// The real host access: one SSH session per call.
pub struct SshAccess;

/// How long a unit restart may take on the host.
const RESTART_LIMIT: Duration = Duration::from_secs(90);

#[async_trait::async_trait]
impl HostAccess for SshAccess {
    async fn checks(
        &self,
        m: &Machine,
        host: &str,
        since: &str,
    ) -> Result<HostChecks, GatherError> {
        checks(m, host, since).await
    }

    async fn restart(&self, m: &Machine, host: &str, unit: &str) -> Result<(), GatherError> {
        let (t, _) = ssh_target(m, host)?;
        let command = format!("systemctl restart {}", q(unit));
        let out = exec::exec(&t, &command, RESTART_LIMIT).await?;
        match out.exit_status {
            Some(0) => Ok(()),
            status => Err(GatherError::Output {
                machine: m.name.clone(),
                command,
                detail: format!(
                    "exit status {status:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            }),
        }
    }

    async fn reboot(&self, m: &Machine, host: &str) -> Result<(), GatherError> {
        let (t, _) = ssh_target(m, host)?;
        exec::reboot(&t, "systemctl reboot").await?;
        Ok(())
    }

    async fn run(
        &self,
        m: &Machine,
        host: &str,
        command: &str,
        limit: Duration,
    ) -> Result<exec::Output, GatherError> {
        let (t, _) = ssh_target(m, host)?;
        Ok(exec::exec(&t, command, limit).await?)
    }
}

/// The SSH target of a machine at `host` (its address), and its SSH settings.
pub fn ssh_target<'a>(
    m: &'a Machine,
    host: &str,
) -> Result<(SshTarget, &'a SshSettings), GatherError> {
    let ssh = m.ssh.as_ref().ok_or_else(|| GatherError::NoSsh {
        machine: m.name.clone(),
    })?;
    let policy = match (&ssh.known_hosts, &ssh.host_key) {
        (Some(path), None) => HostKeyPolicy::KnownHosts(path.clone()),
        (None, Some(key)) => {
            let b64 = key.split_whitespace().nth(1).unwrap_or(key);
            HostKeyPolicy::Pinned(russh::keys::parse_public_key_base64(b64).map_err(|e| {
                GatherError::HostKey {
                    machine: m.name.clone(),
                    detail: e.to_string(),
                }
            })?)
        }
        _ => {
            return Err(GatherError::HostKeyPolicy {
                machine: m.name.clone(),
            })
        }
    };
    let target = SshTarget {
        host: host.to_owned(),
        port: ssh.port,
        user: ssh.user.clone(),
        key: ssh.key.clone(),
        policy,
        connect_timeout: crate::timeouts::SSH_CONNECT,
    };
    Ok((target, ssh))
}

#[derive(Deserialize)]
struct Scan {
    #[serde(default)]
    devices: Vec<ScanDevice>,
}

#[derive(Deserialize)]
struct ScanDevice {
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Every drive smartctl finds on the host.
pub async fn smart(m: &Machine, host: &str) -> Result<Vec<Drive>, GatherError> {
    let (t, ssh) = ssh_target(m, host)?;
    let session = exec::Session::open(&t).await?;
    let drives = smart_in(&session, m, ssh).await;
    session.close().await;
    drives
}

/// Every drive smartctl finds, over an open session.
async fn smart_in(
    session: &exec::Session,
    m: &Machine,
    ssh: &SshSettings,
) -> Result<Vec<Drive>, GatherError> {
    let output = |command: &str, detail: String| GatherError::Output {
        machine: m.name.clone(),
        command: command.to_owned(),
        detail,
    };
    let scan_cmd = format!("{} --scan-open -j", ssh.smartctl);
    let scan = session.run(&scan_cmd, COMMAND_LIMIT).await?;
    let scan: Scan =
        serde_json::from_slice(&scan.stdout).map_err(|e| output(&scan_cmd, e.to_string()))?;
    let mut drives = Vec::new();
    if scan.devices.len() > DRIVES_MAX {
        tracing::warn!(machine = %m.name, devices = scan.devices.len(), read = DRIVES_MAX, "smartctl lists more devices than a poll reads");
    }
    for dev in scan.devices.into_iter().take(DRIVES_MAX) {
        let kind = dev
            .kind
            .as_deref()
            .map(|k| format!("-d {} ", q(k)))
            .unwrap_or_default();
        let cmd = format!("{} -j -x {kind}{}", ssh.smartctl, q(&dev.name));
        let out = session.run(&cmd, COMMAND_LIMIT).await?;
        let mut found =
            smart::parse(&dev.name, &out.stdout).map_err(|e| output(&cmd, e.to_string()))?;
        for d in &mut found {
            d.device = dev.name.clone();
        }
        drives.extend(found);
    }
    Ok(drives)
}

/// The runbook's host checks (read-only, one round trip): kubelet and runtime, disks and
/// inodes, PIDs, memory, time, OOM kills and the kubelet's journal since `since` (a
/// `journalctl --since` value), read-only mounts, the kubelet's certificate.
pub async fn checks(m: &Machine, host: &str, since: &str) -> Result<HostChecks, GatherError> {
    let (t, ssh) = ssh_target(m, host)?;
    let session = exec::Session::open(&t).await?;
    let script = checks::script(&ssh.checks, since);
    let out = session.run(&script, checks::SCRIPT_LIMIT).await;
    session.close().await;
    Ok(HostChecks::parse(
        &String::from_utf8_lossy(&out?.stdout),
        &ssh.checks,
    ))
}

/// Every interface's sysfs counters on the host.
pub async fn nic(m: &Machine, host: &str) -> Result<Vec<Sample>, GatherError> {
    let (t, _) = ssh_target(m, host)?;
    let session = exec::Session::open(&t).await?;
    let nics = nic_in(&session).await;
    session.close().await;
    nics
}

/// Every interface's sysfs counters, over an open session.
async fn nic_in(session: &exec::Session) -> Result<Vec<Sample>, GatherError> {
    let script = "cd /sys/class/net && for i in *; do echo \"== $i\"; for f in \"$i\"/statistics/*; do \
                  echo \"${f##*/} $(cat \"$f\")\"; done; echo \"carrier_changes $(cat \"$i/carrier_changes\" 2>/dev/null)\"; done";
    let out = session.run(script, COMMAND_LIMIT).await?;
    Ok(parse_sysfs(&String::from_utf8_lossy(&out.stdout)))
}

/// The `== iface` / `name value` listing of the sysfs script.
pub fn parse_sysfs(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    for line in text.lines() {
        if let Some(iface) = line.strip_prefix("== ") {
            if let Some((i, files)) = current.take() {
                samples.push(nic::from_sysfs(&i, &files));
            }
            current = Some((iface.to_owned(), Vec::new()));
        } else if let (Some((_, files)), Some((k, v))) = (current.as_mut(), line.split_once(' ')) {
            files.push((k.to_owned(), v.to_owned()));
        }
    }
    if let Some((i, files)) = current {
        samples.push(nic::from_sysfs(&i, &files));
    }
    samples
}

/// What the last host poll saw, persisted with the ladder position so that a restart does
/// not report old counters as new.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// Per drive (device name): its counters.
    #[serde(default)]
    pub drives: SmallMap<Snapshot>,
    /// Per interface: when it was read (ms since the epoch) and its counters.
    #[serde(default)]
    pub nics: SmallMap<(u64, nic::Counters)>,
}

impl Baseline {
    /// Findings of this poll against the last, and the baseline moved on. On the first poll
    /// of a drive its state counts (a FAILED drive is failed now), its counters only set the
    /// baseline; a NIC's first sample only sets the baseline.
    pub fn update(
        &mut self,
        drives: &[Drive],
        nics: &[Sample],
        now_ms: u64,
        limits: Limits,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        for d in drives {
            let now = d.snapshot();
            let previous = self.drives.get(&d.device).unwrap_or(&now);
            out.extend(d.findings_within(Some(previous), &limits.smart));
            self.drives.insert(&d.device, now);
        }
        for s in nics {
            if let Some((at, counters)) = self.nics.get(&s.interface) {
                let previous = Sample {
                    interface: s.interface.clone(),
                    raw: BTreeMap::new(),
                    counters: counters.clone(),
                };
                let elapsed = Duration::from_millis(now_ms.saturating_sub(*at));
                out.extend(nic::findings(Some(&previous), s, elapsed, limits.nic));
            }
            self.nics.insert(&s.interface, (now_ms, s.counters.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sysfs_listing_becomes_one_sample_per_interface() {
        let s = parse_sysfs(
            "== eth0\nrx_errors 3\ntx_errors 0\ncarrier_changes 2\n== lo\nrx_errors 0\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].interface, "eth0");
        assert_eq!(s[0].counters.rx_errors, Some(3));
        assert_eq!(s[1].counters.rx_errors, Some(0));
    }

    #[test]
    fn only_rising_nic_errors_count_after_the_first_sample() {
        let sample = |rx: u64| parse_sysfs(&format!("== eth0\nrx_errors {rx}\n"));
        let mut b = Baseline::default();
        let t = Limits::default();
        assert!(
            b.update(&[], &sample(500), 0, t).is_empty(),
            "first: baseline only"
        );
        assert!(
            b.update(&[], &sample(500), 60_000, t).is_empty(),
            "unchanged"
        );
        let f = b.update(&[], &sample(2_000), 120_000, t);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].code, "nic_rx_errors");
    }
}
