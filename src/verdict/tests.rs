//! Every verdict, from evidence tables.

use super::*;

fn ev(
    ping: Option<(u16, u16)>,
    ssh: Option<bool>,
    ready: Option<&str>,
    power: Option<PowerState>,
    bmc: Option<bool>,
) -> Evidence {
    Evidence {
        ping,
        ssh_reachable: ssh,
        ssh_is_liveness: false,
        node_ready: ready.map(str::to_owned),
        power,
        bmc_reachable: bmc,
        findings: Vec::new(),
        conditions: Vec::new(),
        host: None,
        released: None,
    }
}

#[test]
fn liveness_and_power_decide_the_verdict() {
    use DownCause::*;
    use PowerState::{Off, On};
    let table = [
        (
            ev(Some((3, 3)), Some(true), Some("True"), None, None),
            Verdict::Healthy,
        ),
        (
            ev(Some((1, 3)), Some(true), Some("True"), None, None),
            Verdict::Healthy,
        ),
        (
            ev(Some((0, 3)), None, None, None, None),
            Verdict::Down { cause: Dark },
        ),
        (
            ev(
                Some((0, 3)),
                Some(false),
                Some("Unknown"),
                Some(On),
                Some(true),
            ),
            Verdict::Down { cause: HostHung },
        ),
        (
            ev(
                Some((0, 3)),
                Some(false),
                Some("Unknown"),
                Some(Off),
                Some(true),
            ),
            Verdict::Down { cause: PoweredOff },
        ),
        (
            ev(Some((0, 3)), Some(false), None, None, Some(false)),
            Verdict::Unknown,
        ),
        // A host that answers ping and is Ready, with no sshd: a warning, never remediated.
        (
            ev(Some((3, 3)), Some(false), Some("True"), None, None),
            Verdict::Degraded,
        ),
        (
            ev(Some((3, 3)), Some(false), None, None, None),
            Verdict::Degraded,
        ),
        (
            ev(Some((3, 3)), Some(false), Some("Unknown"), None, None),
            Verdict::Down { cause: OsProblem },
        ),
        (
            ev(Some((3, 3)), None, Some("False"), None, None),
            Verdict::Down { cause: OsProblem },
        ),
        (
            ev(Some((3, 3)), Some(true), Some("False"), None, None),
            Verdict::Down { cause: OsProblem },
        ),
        // Echoes dropped (a firewall), but SSH answers and the node is Ready: not dark.
        (
            ev(Some((0, 3)), Some(true), Some("True"), Some(On), Some(true)),
            Verdict::Healthy,
        ),
        (ev(None, None, None, None, None), Verdict::Unknown),
        (ev(None, None, Some("True"), None, None), Verdict::Healthy),
    ];
    for (e, want) in table {
        assert_eq!(judge(&e, &Policy::default()).verdict, want, "{e:?}");
    }
}

#[test]
fn findings_degrade_or_fault_a_live_machine() {
    let mut e = ev(Some((3, 3)), Some(true), Some("True"), None, None);
    e.findings.push(Finding::new(
        Level::Warning,
        "smart_crc_errors",
        "4 CRC errors",
    ));
    assert_eq!(judge(&e, &Policy::default()).verdict, Verdict::Degraded);
    e.findings.push(Finding::new(
        Level::Critical,
        "dimm_uncorrectable_ecc",
        "DIMM A1",
    ));
    let j = judge(&e, &Policy::default());
    assert_eq!(j.verdict, Verdict::Faulty);
    assert_eq!(j.findings.len(), 2, "the findings explain the verdict");
    assert!(j.reasons.contains(&"ping 3/3".to_owned()));
}

#[test]
fn a_lower_dark_threshold_counts_partial_loss() {
    let e = ev(Some((1, 3)), None, None, Some(PowerState::On), Some(true));
    assert_eq!(
        judge(
            &e,
            &Policy {
                dark_loss_pct: 60.0
            }
        )
        .verdict,
        Verdict::Down {
            cause: DownCause::HostHung
        }
    );
}

#[test]
fn with_ssh_as_liveness_a_closed_port_is_dark_not_an_os_problem() {
    let mut e = ev(
        None,
        Some(false),
        Some("True"),
        Some(PowerState::On),
        Some(true),
    );
    let p = Policy::default();
    assert_eq!(
        judge(&e, &p).verdict,
        Verdict::Degraded,
        "with ICMP as liveness, a closed SSH port on a Ready node is a warning, not an outage"
    );
    e.ssh_is_liveness = true;
    assert_eq!(
        judge(&e, &p).verdict,
        Verdict::Down {
            cause: DownCause::HostHung
        }
    );
    e.ssh_reachable = Some(true);
    assert_eq!(judge(&e, &p).verdict, Verdict::Healthy);
}

#[test]
fn node_conditions_count_as_their_class_and_only_while_the_host_answers() {
    let with = |class: ConditionClass, ready: &str, ping: (u16, u16)| {
        let mut e = ev(Some(ping), Some(true), Some(ready), None, None);
        e.conditions = vec![NodeCondition {
            type_: "KernelDeadlock".into(),
            class,
            why: "DockerHung: task docker:7 blocked for more than 300 seconds.".into(),
        }];
        judge(&e, &Policy::default())
    };
    // node-problem-detector's KernelDeadlock on a node whose kubelet still says Ready: an
    // OS problem (the reboot path), with the condition in the reasons.
    let j = with(ConditionClass::Reboot, "True", (3, 3));
    assert_eq!(
        j.verdict,
        Verdict::Down {
            cause: DownCause::OsProblem
        }
    );
    assert!(
        j.reasons.contains(&"KernelDeadlock=True".to_owned()),
        "{:?}",
        j.reasons
    );
    // A fault: like a critical hardware finding, with the condition as the evidence.
    let j = with(ConditionClass::Fault, "True", (3, 3));
    assert_eq!(j.verdict, Verdict::Faulty);
    assert_eq!(j.findings[0].code, "node_condition");
    assert_eq!(j.findings[0].severity, Level::Critical);
    assert!(j.findings[0].detail.contains("DockerHung"));
    // A warning: degraded, not remediated.
    let j = with(ConditionClass::Warn, "True", (3, 3));
    assert_eq!(j.verdict, Verdict::Degraded);
    // Ignored: nothing.
    assert_eq!(
        with(ConditionClass::Ignore, "True", (3, 3)).verdict,
        Verdict::Healthy
    );
    // A dark host's conditions are stale: its verdict is about the darkness only.
    let mut e = ev(
        Some((0, 3)),
        Some(false),
        Some("True"),
        Some(PowerState::On),
        Some(true),
    );
    e.conditions = vec![NodeCondition {
        type_: "ReadonlyFilesystem".into(),
        class: ConditionClass::Fault,
        why: String::new(),
    }];
    let j = judge(&e, &Policy::default());
    assert_eq!(
        j.verdict,
        Verdict::Down {
            cause: DownCause::HostHung
        }
    );
    assert!(j.findings.is_empty());
}

#[test]
fn host_checks_naming_a_unit_make_an_os_problem_a_unit_down() {
    use crate::health::host::Repair;
    let mut e = ev(
        Some((3, 3)),
        Some(true),
        Some("False"),
        Some(PowerState::On),
        Some(true),
    );
    assert_eq!(
        judge(&e, &Policy::default()).verdict,
        Verdict::Down {
            cause: DownCause::OsProblem
        }
    );
    e.host = Some(HostLook {
        repair: Some(Repair::RestartKubelet),
        blocking: Vec::new(),
        critical: vec!["kubelet is not running: ActiveState=inactive".into()],
    });
    let j = judge(&e, &Policy::default());
    assert_eq!(
        j.verdict,
        Verdict::Down {
            cause: DownCause::UnitDown
        }
    );
    assert!(
        j.reasons.iter().any(|r| r.contains("restart-kubelet")),
        "{:?}",
        j.reasons
    );
    // A full disk: nothing to restart, still an OS problem (the reboot path), said why.
    e.host = Some(HostLook {
        repair: None,
        blocking: Vec::new(),
        critical: vec!["/var 99% of space used".into()],
    });
    let j = judge(&e, &Policy::default());
    assert_eq!(
        j.verdict,
        Verdict::Down {
            cause: DownCause::OsProblem
        }
    );
    assert!(
        j.reasons.iter().any(|r| r.contains("/var 99%")),
        "{:?}",
        j.reasons
    );
}
