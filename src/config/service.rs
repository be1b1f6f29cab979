//! `[service]` and `[policy]`: how `oob serve` runs and the ladder's deadlines and limits.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::verdict::{ConditionClass, DEFAULT_CONDITIONS};

/// How the host's liveness is probed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// ICMP echo (needs CAP_NET_RAW or ping_group_range) and the SSH banner.
    #[default]
    Icmp,
    /// The SSH banner only (TCP): for unprivileged runs and the demo's TCP-only fleet.
    SshPort,
}

/// `[service]`: how `oob serve` runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceSettings {
    /// One probe round (ping, SSH banner, Node Ready) per machine this often.
    #[serde(deserialize_with = "crate::duration::de_millis")]
    pub probe_interval_ms: u64,
    /// BMC health and new SEL entries this often (and at once when a machine is suspect).
    #[serde(deserialize_with = "crate::duration::de_millis")]
    pub hardware_interval_ms: u64,
    /// Echo requests per round and how long to wait for each round.
    pub ping_count: u16,
    #[serde(deserialize_with = "crate::duration::de_millis")]
    pub probe_timeout_ms: u64,
    pub liveness: Liveness,
    /// Machines probed at once.
    pub concurrency: usize,
    /// Namespace of the leader and per-node leases, and of Events' reporting instance.
    pub namespace: String,
    /// The journal (SQLite): intents and outcomes of every action, ladder positions.
    pub journal: PathBuf,
    /// Fault reports (text, JSON, Markdown, HTML) are written here.
    pub reports_dir: PathBuf,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub listen: String,
    /// Leader election through a Lease; off for a single instance outside a cluster.
    pub leader_election: bool,
    /// With a cluster: the journal shared through the API (every intent written to the
    /// node's OobRemediation before it is sent; a new leader resumes from there). Needs
    /// the CRD (`deploy/crd-oobremediations.yaml`). Off: the local journal alone.
    pub shared_journal: bool,
    /// Leader election as Kubernetes' own components do it: the lease lasts
    /// `lease_duration_s` (a standby takes over at most that long after the leader stopped
    /// renewing), the leader steps down when it could not renew for `renew_deadline_s`,
    /// and tries every `retry_period_ms`.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub lease_duration_s: u64,
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub renew_deadline_s: u64,
    #[serde(deserialize_with = "crate::duration::de_millis")]
    pub retry_period_ms: u64,
    /// The per-node lock's lease (renewed while a step runs): how long a crashed holder
    /// blocks a node.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub node_lock_s: u64,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            probe_interval_ms: 2000,
            hardware_interval_ms: 60_000,
            ping_count: 3,
            probe_timeout_ms: 1000,
            liveness: Liveness::Icmp,
            concurrency: 64,
            namespace: "oob-system".into(),
            journal: PathBuf::from("/var/lib/oob/journal.sqlite"),
            reports_dir: PathBuf::from("/var/lib/oob/reports"),
            listen: "0.0.0.0:9464".into(),
            leader_election: true,
            shared_journal: true,
            lease_duration_s: 15,
            renew_deadline_s: 10,
            retry_period_ms: 2000,
            node_lock_s: 60,
        }
    }
}

/// `[policy]`: thresholds, a timeout per ladder step, and the storm guard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// Consecutive failed probe rounds before asking the BMC.
    pub suspect_after: u32,
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub confirm_timeout_s: u64,
    /// Wait for Ready after restarting the kubelet or the runtime, before a soft reboot.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub repair_timeout_s: u64,
    /// Wait for the node's bootID to change and Ready after a soft reboot.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub soft_reboot_timeout_s: u64,
    /// Wait for the node after a verified hard power cycle, before fencing.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub hard_reboot_timeout_s: u64,
    /// Longest wait for a power action to be observed.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub power_verify_timeout_s: u64,
    /// Drain after fencing: how long evictions are retried.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub drain_timeout_s: u64,
    /// Storm guard: remediations (soft/hard reboot, fence) in flight at once.
    pub max_concurrent: usize,
    /// Storm guard: no remediation while more than this share of the fleet is unhealthy;
    /// crossing it trips the breaker, which stays open until `oob breaker reset`.
    pub max_unhealthy_percent: u8,
    /// Per node: no new remediation this long after the last one ended.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub cooldown_s: u64,
    /// Per BMC: at least this long between two mutating calls.
    #[serde(deserialize_with = "crate::duration::de_millis")]
    pub bmc_min_interval_ms: u64,
    /// Verdict: the share of lost echoes at or above which a host counts as dark (100: every
    /// echo of a round lost; lower it on lossy management networks with care).
    pub dark_loss_percent: f64,
    /// Hardware (runbook): reallocated sectors above this make a drive critical.
    pub smart_reallocated_max: u64,
    /// Hardware (runbook): NIC errors per second above this are critical.
    pub nic_error_rate_max: f64,
    /// Hardware (runbook): receive loss above this percent of packets is critical.
    pub nic_loss_percent_max: f64,
    /// Hardware: link flaps between two polls at or above this are critical.
    pub nic_flaps_max: u64,
    /// What each Node condition counts as when True (`reboot`, `fault`, `warn`, `ignore`):
    /// entries here override the defaults (`crate::verdict::DEFAULT_CONDITIONS`), a type in
    /// neither is ignored.
    #[serde(deserialize_with = "de_conditions")]
    pub node_conditions: BTreeMap<String, ConditionClass>,
}

fn default_conditions() -> BTreeMap<String, ConditionClass> {
    DEFAULT_CONDITIONS
        .iter()
        .map(|(t, c)| ((*t).to_owned(), *c))
        .collect()
}

/// The defaults, with the configured entries over them.
fn de_conditions<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ConditionClass>, D::Error> {
    let mut table = default_conditions();
    table.extend(BTreeMap::<String, ConditionClass>::deserialize(d)?);
    Ok(table)
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            suspect_after: 3,
            confirm_timeout_s: 60,
            repair_timeout_s: 120,
            soft_reboot_timeout_s: 300,
            hard_reboot_timeout_s: 600,
            power_verify_timeout_s: 120,
            drain_timeout_s: 300,
            max_concurrent: 2,
            max_unhealthy_percent: 30,
            cooldown_s: 3600,
            bmc_min_interval_ms: 2000,
            dark_loss_percent: 100.0,
            smart_reallocated_max: 5,
            nic_error_rate_max: 10.0,
            nic_loss_percent_max: 5.0,
            nic_flaps_max: 3,
            node_conditions: default_conditions(),
        }
    }
}

impl PolicySettings {
    /// What a Node condition of type `t` counts as when True.
    pub fn condition_class(&self, t: &str) -> ConditionClass {
        self.node_conditions
            .get(t)
            .copied()
            .unwrap_or(ConditionClass::Ignore)
    }

    /// The verdict's thresholds.
    pub fn verdict(&self) -> crate::verdict::Policy {
        crate::verdict::Policy {
            dark_loss_pct: self.dark_loss_percent,
        }
    }

    /// The host's hardware thresholds (SMART, NIC).
    pub fn hardware(&self) -> crate::health::Limits {
        crate::health::Limits {
            smart: crate::health::smart::Limits {
                reallocated_sectors: self.smart_reallocated_max,
            },
            nic: crate::health::nic::Thresholds {
                errors_per_s: self.nic_error_rate_max,
                flaps: self.nic_flaps_max,
                loss_percent: self.nic_loss_percent_max,
            },
        }
    }
}

/// `[replacement]`: the kubeadm replacement workflow (`oob node replace`, and the ladder's
/// last rung when `enabled`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplacementSettings {
    /// The ladder's last rung: a node awaiting replacement that a person released as
    /// repaired (`oob release NODE --repaired`) is replaced by the service itself. Off by
    /// default: then only a person's `oob node replace` does it.
    pub enabled: bool,
    /// How long the bootstrap token minted for the join lives.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub token_ttl_s: u64,
    /// How long the join may take, and then the Node to register and be Ready.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub join_timeout_s: u64,
    /// `etcdctl` and its connection flags as run over SSH on a healthy control-plane node
    /// (kubeadm's certificate paths; e.g. `crictl exec $(crictl ps -q --name etcd) etcdctl …`
    /// where etcdctl is only inside the etcd container).
    pub etcdctl: String,
    /// A provisioning system's hook (program and arguments, run by oob): instead of
    /// `kubeadm reset` and `kubeadm join` over SSH, the join command is handed to it in the
    /// environment (`OOB_JOIN_COMMAND`, `OOB_NODE`, `OOB_CONTROL_PLANE`); exit 0 means it took
    /// it, and oob waits for the Node to register.
    pub hook: Vec<String>,
}

impl Default for ReplacementSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            token_ttl_s: 1800,
            join_timeout_s: 900,
            etcdctl: "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 \
                      --cacert=/etc/kubernetes/pki/etcd/ca.crt \
                      --cert=/etc/kubernetes/pki/etcd/server.crt \
                      --key=/etc/kubernetes/pki/etcd/server.key"
                .into(),
            hook: Vec::new(),
        }
    }
}
