//! The remediation ladder as a pure state machine: `Stage::step(verdict, now, policy)` returns
//! the next stage and the remedy to carry out. Time is milliseconds (the service passes wall
//! clock milliseconds since the Unix epoch, so that a persisted stage survives a restart), passed
//! in; the machine only compares differences against the policy, so tests may use any unit.
//! Modelled on bottlerocket-update-operator's `determine_next_node_spec`: every stage has a
//! deadline and a way back to Healthy.

use serde::Serialize;

use crate::verdict::{DownCause, Verdict};

/// Per-stage deadlines (milliseconds) and flap damping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Consecutive non-healthy verdicts before out-of-band confirmation (one lost round is a
    /// flap, not an outage).
    pub suspect_after: u32,
    /// Longest wait for the BMC's answer before giving up on the machine (report).
    pub confirm_timeout: u64,
    /// Wait for Ready after restarting the kubelet or the runtime before a soft reboot.
    pub repair_timeout: u64,
    /// Wait for the node to come back after a soft reboot before a hard one.
    pub soft_reboot_timeout: u64,
    /// Wait after a verified hard power cycle before fencing.
    pub hard_reboot_timeout: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            suspect_after: 3,
            confirm_timeout: 60_000,
            repair_timeout: 120_000,
            soft_reboot_timeout: 300_000,
            hard_reboot_timeout: 600_000,
        }
    }
}

impl From<&crate::config::PolicySettings> for Policy {
    /// The configured deadlines, in the stage machine's unit (milliseconds).
    fn from(p: &crate::config::PolicySettings) -> Self {
        Self {
            suspect_after: p.suspect_after,
            confirm_timeout: p.confirm_timeout_s.saturating_mul(1000),
            repair_timeout: p.repair_timeout_s.saturating_mul(1000),
            soft_reboot_timeout: p.soft_reboot_timeout_s.saturating_mul(1000),
            hard_reboot_timeout: p.hard_reboot_timeout_s.saturating_mul(1000),
        }
    }
}

/// Where a machine is on the ladder. `since` is when the stage was entered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum Stage {
    #[default]
    Healthy,
    /// Probes failed `failures` rounds in a row; not yet acted on.
    Suspect { since: u64, failures: u32 },
    /// Asking the BMC (power state, SEL) before any action: judged only with the BMC's look
    /// ([`Stage::needs_bmc_look`]).
    Confirm { since: u64 },
    /// The kubelet or the runtime was restarted over SSH (the host checks named it).
    Repair { since: u64 },
    /// A soft reboot (SSH `systemctl reboot` or BMC graceful restart) was sent.
    SoftReboot { since: u64 },
    /// A verified hard power cycle (or power-on) was done.
    HardReboot { since: u64 },
    /// Cordoned, powered off (verified), tainted out-of-service, drained.
    Fenced { since: u64 },
    /// Reported to the machine room; hands off until the node is replaced and Ready.
    AwaitReplacement { since: u64 },
    /// Released as repaired: the kubeadm replacement workflow ran (or is resumed after a
    /// restart); Ready ends it.
    Replace { since: u64 },
}

/// What the executor must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Remedy {
    Nothing,
    /// Restart the unit the host checks name (kubelet or runtime) over SSH.
    Repair,
    SoftReboot,
    /// Identity check, then power cycle as verified off → verified on.
    HardReboot,
    /// Identity check, then power on (the machine was found off).
    PowerOn,
    /// Cordon, verified power off, out-of-service taint, PDB-aware drain.
    Fence,
    /// Write the fault report and the Event; mark the node hands-off.
    Report,
    /// Back to health: clear our conditions and taints, uncordon if we cordoned.
    Recovered,
    /// The kubeadm replacement workflow (etcd member, Node, token, join, restore).
    Replace,
}

impl Remedy {
    /// Whether carrying it out takes the machine down, and with it an etcd member that may
    /// still vote: a reboot, a fence (power off), a replacement. A unit restart does not
    /// (etcd runs on under a restarted kubelet or runtime), nor do a report, a recovery or
    /// powering on a machine that is off.
    pub fn takes_down(self) -> bool {
        matches!(
            self,
            Self::SoftReboot | Self::HardReboot | Self::Fence | Self::Replace
        )
    }

    /// The remedy's name in timelines and metrics (`hard-reboot`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Nothing => "nothing",
            Self::Repair => "repair",
            Self::SoftReboot => "soft-reboot",
            Self::HardReboot => "hard-reboot",
            Self::PowerOn => "power-on",
            Self::Fence => "fence",
            Self::Report => "report",
            Self::Recovered => "recovered",
            Self::Replace => "replace",
        }
    }
}

/// How the executor's step ended, as far as the ladder is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Carried out (and verified where it can be).
    Done,
    /// Tried and failed.
    Failed,
    /// Not possible on this machine (no soft reboot path).
    Skipped,
    /// Another actor holds the node.
    Busy,
    /// Refused for safety (identity mismatch).
    Refused,
}

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub next: Stage,
    pub remedy: Remedy,
}

fn go(next: Stage, remedy: Remedy) -> Step {
    Step { next, remedy }
}

fn stay(stage: Stage) -> Step {
    go(stage, Remedy::Nothing)
}

impl Stage {
    /// The next stage and remedy for `verdict` at `now`.
    pub fn step(&self, verdict: &Verdict, now: u64, p: &Policy) -> Step {
        use Remedy as R;
        use Stage as S;
        let healthy = matches!(verdict, Verdict::Healthy | Verdict::Degraded);
        let faulty = matches!(verdict, Verdict::Faulty);
        match *self {
            S::Healthy if healthy || matches!(verdict, Verdict::Unknown) => stay(S::Healthy),
            S::Healthy | S::Suspect { .. } if faulty => go(S::Confirm { since: now }, R::Nothing),
            S::Healthy if p.suspect_after <= 1 => go(S::Confirm { since: now }, R::Nothing),
            S::Healthy => stay(S::Suspect {
                since: now,
                failures: 1,
            }),
            S::Suspect { .. } if healthy => stay(S::Healthy),
            S::Suspect { failures, .. } if failures + 1 >= p.suspect_after => {
                go(S::Confirm { since: now }, R::Nothing)
            }
            S::Suspect { since, failures } => stay(S::Suspect {
                since,
                failures: failures + 1,
            }),
            S::Confirm { .. } if healthy => stay(S::Healthy),
            S::Confirm { .. } if faulty => go(S::Fenced { since: now }, R::Fence),
            S::Confirm { .. } => match verdict {
                Verdict::Down {
                    cause: DownCause::PoweredOff,
                } => go(S::HardReboot { since: now }, R::PowerOn),
                Verdict::Down {
                    cause: DownCause::UnitDown,
                } => go(S::Repair { since: now }, R::Repair),
                Verdict::Down {
                    cause: DownCause::HostHung | DownCause::OsProblem,
                } => go(S::SoftReboot { since: now }, R::SoftReboot),
                // Dark but not yet confirmed, or the BMC does not answer: wait, then report.
                _ if now.saturating_sub(self.since()) >= p.confirm_timeout => {
                    go(S::AwaitReplacement { since: now }, R::Report)
                }
                _ => stay(*self),
            },
            S::Repair { .. } | S::SoftReboot { .. } | S::HardReboot { .. } if healthy => {
                go(S::Healthy, R::Recovered)
            }
            S::Repair { .. } | S::SoftReboot { .. } | S::HardReboot { .. } if faulty => {
                go(S::Fenced { since: now }, R::Fence)
            }
            S::Repair { since } if now.saturating_sub(since) >= p.repair_timeout => {
                go(S::SoftReboot { since: now }, R::SoftReboot)
            }
            S::SoftReboot { since } if now.saturating_sub(since) >= p.soft_reboot_timeout => {
                go(S::HardReboot { since: now }, R::HardReboot)
            }
            S::HardReboot { since } if now.saturating_sub(since) >= p.hard_reboot_timeout => {
                go(S::Fenced { since: now }, R::Fence)
            }
            S::Repair { .. } | S::SoftReboot { .. } | S::HardReboot { .. } => stay(*self),
            S::Fenced { .. } => go(S::AwaitReplacement { since: now }, R::Report),
            // Replaced or repaired, joined and Ready: hand back to the scheduler.
            S::AwaitReplacement { .. } if matches!(verdict, Verdict::Healthy) => {
                go(S::Healthy, R::Recovered)
            }
            S::AwaitReplacement { .. } => stay(*self),
            S::Replace { .. } if matches!(verdict, Verdict::Healthy) => {
                go(S::Healthy, R::Recovered)
            }
            // Rejoined but not Ready within the hard-reboot wait: hands off again.
            S::Replace { since } if now.saturating_sub(since) >= p.hard_reboot_timeout => {
                go(S::AwaitReplacement { since: now }, R::Report)
            }
            S::Replace { .. } => stay(*self),
        }
    }

    /// Where the ladder stands once the executor has reported how the step from `from` to
    /// `self` (carrying `remedy`) ended. Pure, like [`Stage::step`]; the service writes the
    /// stage through these two only.
    ///
    /// - done / failed: the step's stage, its clock started now (a soft reboot's wait counts
    ///   from when the request went out, not from when it was decided; a failed request is
    ///   left to the stage's timeout, which escalates);
    /// - skipped (no soft path on this machine): the soft stage already timed out, so the next
    ///   round escalates at once;
    /// - busy (someone else holds the node): back where it was, to decide again next round;
    /// - refused (identity mismatch): hands off at once, a report follows;
    /// - a recovery that failed (the health check before uncordoning found the kubelet or
    ///   the runtime down): not recovered, the ladder goes on from where it was.
    pub fn after(self, from: Stage, outcome: Outcome, now: u64, p: &Policy) -> Stage {
        match outcome {
            Outcome::Busy => from,
            Outcome::Failed if self == Stage::Healthy => from,
            Outcome::Refused => Stage::AwaitReplacement { since: now },
            // A replacement that stopped (quorum, a failed join): hands off again, the
            // timeline says why; a person releases it once more after looking.
            Outcome::Failed if matches!(self, Stage::Replace { .. }) => {
                Stage::AwaitReplacement { since: now }
            }
            Outcome::Skipped if matches!(self, Stage::SoftReboot { .. }) => Stage::SoftReboot {
                since: now.saturating_sub(p.soft_reboot_timeout),
            },
            // Nothing to restart after all: the soft reboot is next, at once.
            Outcome::Skipped if matches!(self, Stage::Repair { .. }) => Stage::Repair {
                since: now.saturating_sub(p.repair_timeout),
            },
            Outcome::Done | Outcome::Failed | Outcome::Skipped => self.at(now),
        }
    }

    /// The same stage, entered at `now`.
    fn at(self, now: u64) -> Stage {
        match self {
            Self::Healthy => Self::Healthy,
            Self::Suspect { failures, .. } => Self::Suspect {
                since: now,
                failures,
            },
            Self::Confirm { .. } => Self::Confirm { since: now },
            Self::Repair { .. } => Self::Repair { since: now },
            Self::SoftReboot { .. } => Self::SoftReboot { since: now },
            Self::HardReboot { .. } => Self::HardReboot { since: now },
            Self::Fenced { .. } => Self::Fenced { since: now },
            Self::AwaitReplacement { .. } => Self::AwaitReplacement { since: now },
            Self::Replace { .. } => Self::Replace { since: now },
        }
    }

    /// Whether this stage is judged only with the BMC's look (power state, new SEL entries)
    /// in the evidence: the gatherer collects it before the decision.
    pub fn needs_bmc_look(&self) -> bool {
        matches!(self, Self::Confirm { .. })
    }

    /// The stage's name in timelines, metrics and `oob plan` (`soft-reboot`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Suspect { .. } => "suspect",
            Self::Confirm { .. } => "confirm",
            Self::Repair { .. } => "repair",
            Self::SoftReboot { .. } => "soft-reboot",
            Self::HardReboot { .. } => "hard-reboot",
            Self::Fenced { .. } => "fenced",
            Self::AwaitReplacement { .. } => "await-replacement",
            Self::Replace { .. } => "replace",
        }
    }

    /// When the stage was entered (0 for Healthy).
    pub fn since(&self) -> u64 {
        match *self {
            Self::Healthy => 0,
            Self::Suspect { since, .. }
            | Self::Confirm { since }
            | Self::Repair { since }
            | Self::SoftReboot { since }
            | Self::HardReboot { since }
            | Self::Fenced { since }
            | Self::AwaitReplacement { since }
            | Self::Replace { since } => since,
        }
    }
}

#[cfg(test)]
mod tests;
