//! Why a machine needs a person, as a type: the report's summary, the failed component and
//! the technician's recommended action are composed from it (never recovered from text).

/// The cause of a fault report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A critical hardware finding (SEL, SMART, NIC): rebooting does not fix hardware.
    Hardware {
        component: Option<String>,
        code: String,
        detail: String,
    },
    /// The host's own checks found what no restart fixes (a full disk or inode table, PID
    /// exhaustion, a read-only filesystem): drained, not rebooted.
    Host {
        component: Option<String>,
        code: String,
        detail: String,
        fix: Option<String>,
    },
    /// Did not come back after a soft reboot and a verified hard power cycle; fenced.
    NoRecovery { reasons: String },
    /// The BMC did not confirm the machine's state in time: nothing was done to it.
    Unconfirmed { after_s: u64, reasons: String },
    /// The BMC configured for the node manages another machine: every power action refused.
    IdentityMismatch { detail: String },
}

impl Cause {
    /// One line: why the machine needs a person.
    pub fn summary(&self) -> String {
        match self {
            Self::Hardware {
                component, detail, ..
            } => format!(
                "critical hardware finding on {}: {detail}",
                component.as_deref().unwrap_or("the machine")
            ),
            Self::Host { detail, .. } => format!(
                "the host cannot run workloads and no restart fixes it: {detail}"
            ),
            Self::NoRecovery { reasons } => format!(
                "did not come back after a soft reboot and a verified hard power cycle; fenced ({reasons})"
            ),
            Self::Unconfirmed { after_s, reasons } => format!(
                "the BMC did not confirm the machine's state within {after_s} s ({reasons})"
            ),
            Self::IdentityMismatch { detail } => format!("power action refused: {detail}"),
        }
    }

    /// The failed component, when there is one to name.
    pub fn component(&self) -> Option<String> {
        match self {
            Self::Hardware { component, .. } => component.clone(),
            Self::Host { component, .. } => {
                Some(component.clone().unwrap_or_else(|| "host OS".into()))
            }
            Self::NoRecovery { .. } => Some("host (no answer after reboots)".into()),
            Self::Unconfirmed { .. } => Some("BMC (no answer)".into()),
            Self::IdentityMismatch { .. } => Some("BMC mapping (inventory or cabling)".into()),
        }
    }

    /// What the technician should do. `condition` is the Node condition oob sets.
    pub fn recommended(&self, node: &str, condition: &str) -> String {
        match self {
            Self::Hardware {
                component, code, ..
            } => format!(
                "Replace or reseat {} ({code}); then power on, let the node join, and remove the {condition} condition by uncordoning (oob node uncordon {node}).",
                component.as_deref().unwrap_or("the failed part")
            ),
            Self::Host { code, fix, .. } => format!(
                "{} ({code}); then uncordon {node} (oob node uncordon {node}), which also clears the {condition} condition. No reboot was done: it would not fix this.",
                fix.as_deref().unwrap_or("Fix the host")
            ),
            Self::NoRecovery { .. } => format!(
                "Attach a console (BMC KVM/SOL) to {node}: it did not come back after a soft and a verified hard reboot. Check POST, disks and NICs; replace the machine if it stays down."
            ),
            Self::Unconfirmed { .. } => format!(
                "Check {node}'s BMC (network, credentials, firmware): oob could not confirm the machine's state out of band and did nothing to it. Look at the host's console."
            ),
            Self::IdentityMismatch { .. } => format!(
                "Check the BMC cabling and the inventory: the BMC configured for {node} manages another machine. Fix the mapping before any power action."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_says_why_what_and_what_to_do() {
        let hw = Cause::Hardware {
            component: Some("Drive 3".into()),
            code: "drive_fault".into(),
            detail: "Drive Fault".into(),
        };
        assert_eq!(
            hw.summary(),
            "critical hardware finding on Drive 3: Drive Fault"
        );
        assert!(hw
            .recommended("n1", "OobRemediation")
            .contains("Replace or reseat Drive 3"));
        let id = Cause::IdentityMismatch {
            detail: "identity mismatch: serial A != B".into(),
        };
        assert!(id.summary().starts_with("power action refused"));
        assert!(id
            .recommended("n1", "C")
            .contains("manages another machine"));
        let un = Cause::Unconfirmed {
            after_s: 60,
            reasons: "ping 0/3".into(),
        };
        assert!(un.recommended("n1", "C").contains("did nothing to it"));
        let host = Cause::Host {
            component: Some("/var".into()),
            code: "disk_full".into(),
            detail: "/var 100% of space used".into(),
            fix: Some("free space".into()),
        };
        assert!(host.summary().contains("no restart fixes it"));
        assert_eq!(host.component().as_deref(), Some("/var"));
        let what = host.recommended("n1", "C");
        assert!(what.starts_with("free space (disk_full)"), "{what}");
        assert!(what.contains("No reboot was done"), "{what}");
        assert_ne!(
            un.component(),
            Cause::NoRecovery {
                reasons: String::new()
            }
            .component()
        );
    }
}
