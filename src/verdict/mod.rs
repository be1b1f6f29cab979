//! `judge(Evidence, Policy) -> Verdict`: what the evidence about one machine means, with the
//! reasons and findings that explain it. Pure: no I/O, no clock; table-tested.

use serde::Serialize;

use crate::bmc::PowerState;
use crate::health::{Finding, Level};

/// Everything known about one machine at one moment. `None` means "not measured".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// Echo replies received out of sent.
    pub ping: Option<(u16, u16)>,
    pub ssh_reachable: Option<bool>,
    /// Liveness is probed by the SSH port alone (no ICMP: unprivileged, or the demo's
    /// TCP-only fleet): then a closed SSH port is what "dark" means.
    pub ssh_is_liveness: bool,
    /// The Node's Ready condition: `True`, `False`, `Unknown`.
    pub node_ready: Option<String>,
    /// From the BMC, when asked (the Confirm stage); `None` when not asked or unreachable.
    pub power: Option<PowerState>,
    pub bmc_reachable: Option<bool>,
    /// Hardware findings (SMART, NIC, SEL), already baselined.
    pub findings: Vec<Finding>,
    /// The Node's problem conditions (status True), classified by the policy table.
    pub conditions: Vec<NodeCondition>,
    /// The host's own checks over SSH, when they were run (confirming an OS problem while
    /// SSH answers): what a restart would fix, if anything.
    pub host: Option<HostLook>,
    /// A person released the node from hands-off (`oob release`, the Node annotation
    /// `oob.dev/release`): `Some(true)` when they said the machine was repaired.
    pub released: Option<bool>,
}

/// What the host checks said, as the verdict needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostLook {
    /// The unit a restart would fix (none when a full disk, PID exhaustion or a read-only
    /// filesystem is the cause: no restart helps).
    pub repair: Option<crate::health::host::Repair>,
    /// The critical findings no restart fixes (full disk, PIDs, read-only filesystem): the
    /// gatherer keeps them with the machine's findings, so the node is judged faulty, drained
    /// and reported with the finding and its fix.
    pub blocking: Vec<Finding>,
    /// The critical findings, one line each (for the timeline and the report).
    pub critical: Vec<String>,
}

/// What a Node condition counts as when its status is True (`[policy.node_conditions]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConditionClass {
    /// An OS problem a reboot may fix (KernelDeadlock): the node counts as down (os-problem).
    Reboot,
    /// A fault no reboot fixes (ReadonlyFilesystem): like a critical hardware finding, the
    /// node is fenced (drained, not powered off while it answers) and reported.
    Fault,
    /// Worth saying, not acting on (MemoryPressure: the kubelet evicts on its own).
    Warn,
    Ignore,
}

/// A problem condition of the Node, as judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub class: ConditionClass,
    /// `reason: message` as the Node says.
    pub why: String,
}

/// The default table: the kubelet's own pressure conditions and node-problem-detector's
/// default problem daemons' conditions (a type not listed is ignored).
pub const DEFAULT_CONDITIONS: &[(&str, ConditionClass)] = &[
    ("KernelDeadlock", ConditionClass::Reboot),
    ("FrequentKubeletRestart", ConditionClass::Reboot),
    ("FrequentContainerdRestart", ConditionClass::Reboot),
    ("FrequentDockerRestart", ConditionClass::Reboot),
    ("FrequentCrioRestart", ConditionClass::Reboot),
    ("CorruptDockerOverlay2", ConditionClass::Reboot),
    ("ReadonlyFilesystem", ConditionClass::Fault),
    ("MemoryPressure", ConditionClass::Warn),
    ("DiskPressure", ConditionClass::Warn),
    ("PIDPressure", ConditionClass::Warn),
    ("NetworkUnavailable", ConditionClass::Warn),
];

/// Thresholds for the verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Loss at or above which the host counts as dark (100: every echo lost).
    pub dark_loss_pct: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            dark_loss_pct: 100.0,
        }
    }
}

/// Why a machine is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownCause {
    /// Dark, but the BMC says power is on: hung kernel, dead NIC, panic.
    HostHung,
    /// Dark and the BMC says power is off.
    PoweredOff,
    /// Answers ping, but the kubelet does not (Ready False or Unknown): an OS or kubelet
    /// problem. A closed SSH port alone is never this.
    OsProblem,
    /// An OS problem whose cause the host checks found in the kubelet or the runtime (down,
    /// crash looping, OOM-killed): restarting it is the repair.
    UnitDown,
    /// Dark, and the BMC was not asked yet (before out-of-band confirmation).
    Dark,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Healthy,
    /// Alive, with warning findings only: reported, not remediated.
    Degraded,
    /// A critical hardware finding: fence and report, rebooting does not fix hardware.
    Faulty,
    Down {
        cause: DownCause,
    },
    /// The evidence does not allow a verdict (dark host and unreachable BMC, nothing probed).
    Unknown,
}

impl DownCause {
    pub fn name(self) -> &'static str {
        match self {
            Self::HostHung => "host-hung",
            Self::PoweredOff => "powered-off",
            Self::OsProblem => "os-problem",
            Self::UnitDown => "unit-down",
            Self::Dark => "dark",
        }
    }
}

impl Verdict {
    /// One short word or two for timelines and metrics (`healthy`, `down (host-hung)`).
    pub fn name(&self) -> String {
        match self {
            Self::Healthy => "healthy".into(),
            Self::Degraded => "degraded".into(),
            Self::Faulty => "faulty".into(),
            Self::Down { cause } => format!("down ({})", cause.name()),
            Self::Unknown => "unknown".into(),
        }
    }
}

/// A verdict with what explains it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub findings: Vec<Finding>,
}

/// Whether the host does not answer: ICMP loss at or above the policy's threshold when
/// echoes were sent, else a closed SSH port when that is the liveness probe; `None` when
/// liveness was not measured. A kernel that completes a TCP handshake on the SSH port is
/// not dark, whatever ICMP says (a firewall may drop echoes): never reboot a host that
/// answers.
pub fn dark(e: &Evidence, p: &Policy) -> Option<bool> {
    let by_ping = e.ping.map(|(received, sent)| {
        let loss = if sent == 0 {
            100.0
        } else {
            100.0 * f64::from(sent.saturating_sub(received)) / f64::from(sent)
        };
        loss >= p.dark_loss_pct
    });
    let by_port = || e.ssh_is_liveness.then_some(e.ssh_reachable.map(|up| !up))?;
    match by_ping.or_else(by_port) {
        Some(true) if e.ssh_reachable == Some(true) => Some(false),
        d => d,
    }
}

/// Judge one machine's evidence.
pub fn judge(e: &Evidence, p: &Policy) -> Judgement {
    let mut reasons = Vec::new();
    let critical = e.findings.iter().any(|f| f.severity == Level::Critical);
    let dark = dark(e, p);
    if let Some((received, sent)) = e.ping {
        reasons.push(format!("ping {received}/{sent}"));
    }
    if let Some(ssh) = e.ssh_reachable {
        reasons.push(format!("ssh {}", if ssh { "up" } else { "down" }));
    }
    if let Some(ready) = &e.node_ready {
        reasons.push(format!("Ready={ready}"));
    }
    // A dark host's conditions are stale (nothing on it updates them): they count only
    // while it answers.
    let answering = dark != Some(true);
    let counted = |class: ConditionClass| {
        e.conditions
            .iter()
            .filter(move |c| answering && c.class == class)
    };
    for c in e
        .conditions
        .iter()
        .filter(|c| answering && c.class != ConditionClass::Ignore)
    {
        reasons.push(format!("{}=True", c.type_));
    }
    let mut findings = e.findings.clone();
    for (class, level) in [
        (ConditionClass::Fault, Level::Critical),
        (ConditionClass::Warn, Level::Warning),
    ] {
        findings.extend(counted(class).map(|c| {
            Finding::new(
                level,
                "node_condition",
                format!("{} on the Node: {}", c.type_, c.why),
            )
            .component(c.type_.clone())
        }));
    }
    let critical = critical || counted(ConditionClass::Fault).next().is_some();
    let os_condition = counted(ConditionClass::Reboot).next().is_some();
    let verdict = match dark {
        Some(true) => match (e.power, e.bmc_reachable) {
            (Some(PowerState::Off), _) => Verdict::Down {
                cause: DownCause::PoweredOff,
            },
            (Some(_), _) => Verdict::Down {
                cause: DownCause::HostHung,
            },
            (None, Some(false)) => {
                reasons.push("BMC unreachable".into());
                Verdict::Unknown
            }
            (None, _) => Verdict::Down {
                cause: DownCause::Dark,
            },
        },
        Some(false) | None => {
            // The host answers; the OS is down when the kubelet says so (Ready False or
            // Unknown). A closed SSH port is a warning, never the verdict: many healthy
            // nodes run no sshd, and liveness here is ICMP (or the Node itself).
            let os_down = e.node_ready.as_deref().is_some_and(|r| r != "True") || os_condition;
            let ssh_warning = e.ssh_reachable == Some(false) && !os_down;
            if ssh_warning {
                reasons.push("ssh closed on a host that answers (a warning, not an outage)".into());
            }
            match (dark, os_down, critical) {
                (None, false, false) if e.ssh_reachable.is_none() && e.node_ready.is_none() => {
                    Verdict::Unknown
                }
                (_, _, true) => Verdict::Faulty,
                (_, true, false) => Verdict::Down {
                    cause: if e.host.as_ref().is_some_and(|h| h.repair.is_some()) {
                        DownCause::UnitDown
                    } else {
                        DownCause::OsProblem
                    },
                },
                (_, false, false) if !findings.is_empty() || ssh_warning => Verdict::Degraded,
                _ => Verdict::Healthy,
            }
        }
    };
    if let Some(power) = e.power {
        reasons.push(format!("power {power}"));
    }
    if let Some(h) = &e.host {
        reasons.extend(h.critical.iter().map(|c| format!("host: {c}")));
        if let Some(r) = h.repair {
            reasons.push(format!("host: {} would fix it", r.name()));
        }
    }
    Judgement {
        verdict,
        reasons,
        findings,
    }
}

#[cfg(test)]
mod tests;
