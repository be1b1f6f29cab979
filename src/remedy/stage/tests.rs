//! Every transition of the ladder, as a table, plus whole walks.

use super::*;
use crate::verdict::DownCause;

/// The table is written in seconds; the machine does not care about the unit.
const UNITS_AS_SECONDS: Policy = Policy {
    suspect_after: 3,
    confirm_timeout: 60,
    repair_timeout: 120,
    soft_reboot_timeout: 300,
    hard_reboot_timeout: 600,
};

const HEALTHY: Verdict = Verdict::Healthy;
const DEGRADED: Verdict = Verdict::Degraded;
const FAULTY: Verdict = Verdict::Faulty;
const UNKNOWN: Verdict = Verdict::Unknown;
const DARK: Verdict = Verdict::Down {
    cause: DownCause::Dark,
};
const HUNG: Verdict = Verdict::Down {
    cause: DownCause::HostHung,
};
const OFF: Verdict = Verdict::Down {
    cause: DownCause::PoweredOff,
};
const OS: Verdict = Verdict::Down {
    cause: DownCause::OsProblem,
};
const UNIT: Verdict = Verdict::Down {
    cause: DownCause::UnitDown,
};

#[test]
fn every_transition() {
    use Remedy as R;
    use Stage as S;
    let p = UNITS_AS_SECONDS;
    let table: Vec<(Stage, Verdict, u64, Stage, Remedy)> = vec![
        // Healthy
        (S::Healthy, HEALTHY, 10, S::Healthy, R::Nothing),
        (S::Healthy, DEGRADED, 10, S::Healthy, R::Nothing),
        (S::Healthy, UNKNOWN, 10, S::Healthy, R::Nothing),
        (
            S::Healthy,
            DARK,
            10,
            S::Suspect {
                since: 10,
                failures: 1,
            },
            R::Nothing,
        ),
        (
            S::Healthy,
            OS,
            10,
            S::Suspect {
                since: 10,
                failures: 1,
            },
            R::Nothing,
        ),
        (S::Healthy, FAULTY, 10, S::Confirm { since: 10 }, R::Nothing),
        // Suspect: flap damping
        (
            S::Suspect {
                since: 10,
                failures: 1,
            },
            HEALTHY,
            20,
            S::Healthy,
            R::Nothing,
        ),
        (
            S::Suspect {
                since: 10,
                failures: 1,
            },
            DARK,
            20,
            S::Suspect {
                since: 10,
                failures: 2,
            },
            R::Nothing,
        ),
        (
            S::Suspect {
                since: 10,
                failures: 2,
            },
            DARK,
            30,
            S::Confirm { since: 30 },
            R::Nothing,
        ),
        (
            S::Suspect {
                since: 10,
                failures: 1,
            },
            FAULTY,
            20,
            S::Confirm { since: 20 },
            R::Nothing,
        ),
        // Confirm: what the BMC says decides
        (
            S::Confirm { since: 30 },
            HEALTHY,
            35,
            S::Healthy,
            R::Nothing,
        ),
        (
            S::Confirm { since: 30 },
            HUNG,
            35,
            S::SoftReboot { since: 35 },
            R::SoftReboot,
        ),
        (
            S::Confirm { since: 30 },
            OS,
            35,
            S::SoftReboot { since: 35 },
            R::SoftReboot,
        ),
        (
            S::Confirm { since: 30 },
            OFF,
            35,
            S::HardReboot { since: 35 },
            R::PowerOn,
        ),
        (
            S::Confirm { since: 30 },
            FAULTY,
            35,
            S::Fenced { since: 35 },
            R::Fence,
        ),
        (
            S::Confirm { since: 30 },
            UNKNOWN,
            35,
            S::Confirm { since: 30 },
            R::Nothing,
        ),
        (
            S::Confirm { since: 30 },
            UNKNOWN,
            90,
            S::AwaitReplacement { since: 90 },
            R::Report,
        ),
        (
            S::Confirm { since: 30 },
            DARK,
            90,
            S::AwaitReplacement { since: 90 },
            R::Report,
        ),
        // Soft reboot
        (
            S::SoftReboot { since: 35 },
            HEALTHY,
            100,
            S::Healthy,
            R::Recovered,
        ),
        (
            S::SoftReboot { since: 35 },
            HUNG,
            100,
            S::SoftReboot { since: 35 },
            R::Nothing,
        ),
        (
            S::SoftReboot { since: 35 },
            HUNG,
            335,
            S::HardReboot { since: 335 },
            R::HardReboot,
        ),
        (
            S::SoftReboot { since: 35 },
            FAULTY,
            100,
            S::Fenced { since: 100 },
            R::Fence,
        ),
        // Hard reboot
        (
            S::HardReboot { since: 335 },
            HEALTHY,
            400,
            S::Healthy,
            R::Recovered,
        ),
        (
            S::HardReboot { since: 335 },
            DARK,
            400,
            S::HardReboot { since: 335 },
            R::Nothing,
        ),
        (
            S::HardReboot { since: 335 },
            DARK,
            935,
            S::Fenced { since: 935 },
            R::Fence,
        ),
        (
            S::HardReboot { since: 335 },
            FAULTY,
            400,
            S::Fenced { since: 400 },
            R::Fence,
        ),
        // Fenced → report; await replacement until Ready again
        (
            S::Fenced { since: 935 },
            DARK,
            940,
            S::AwaitReplacement { since: 940 },
            R::Report,
        ),
        (
            S::Fenced { since: 935 },
            HEALTHY,
            940,
            S::AwaitReplacement { since: 940 },
            R::Report,
        ),
        (
            S::AwaitReplacement { since: 940 },
            DARK,
            5000,
            S::AwaitReplacement { since: 940 },
            R::Nothing,
        ),
        (
            S::AwaitReplacement { since: 940 },
            DEGRADED,
            5000,
            S::AwaitReplacement { since: 940 },
            R::Nothing,
        ),
        (
            S::AwaitReplacement { since: 940 },
            HEALTHY,
            5000,
            S::Healthy,
            R::Recovered,
        ),
    ];
    for (stage, verdict, now, next, remedy) in table {
        let step = stage.step(&verdict, now, &p);
        assert_eq!(
            (step.next, step.remedy),
            (next, remedy),
            "{stage:?} + {verdict:?} at {now}"
        );
    }
}

/// Walk a scripted series of verdicts; return the remedies taken.
fn walk(verdicts: &[(u64, Verdict)], p: &Policy) -> Vec<Remedy> {
    let mut stage = Stage::Healthy;
    let mut remedies = Vec::new();
    for (now, v) in verdicts {
        let step = stage.step(v, *now, p);
        if step.remedy != Remedy::Nothing {
            remedies.push(step.remedy);
        }
        stage = step.next;
    }
    remedies
}

#[test]
fn a_flapping_link_is_never_remediated() {
    let flapping: Vec<(u64, Verdict)> = (0..100)
        .map(|i| (i * 10, if i % 3 == 2 { HEALTHY } else { DARK }))
        .collect();
    assert!(walk(&flapping, &UNITS_AS_SECONDS).is_empty());
}

#[test]
fn a_hung_node_is_soft_then_hard_rebooted_then_recovers() {
    let p = UNITS_AS_SECONDS;
    let mut v = vec![(0, DARK), (10, DARK), (20, DARK), (25, HUNG)];
    v.extend((1..=40).map(|i| (25 + i * 10, HUNG)));
    v.push((500, HEALTHY));
    assert_eq!(
        walk(&v, &p),
        [Remedy::SoftReboot, Remedy::HardReboot, Remedy::Recovered]
    );
}

#[test]
fn a_failing_disk_is_fenced_and_reported_without_reboots() {
    let v = [(0, FAULTY), (5, FAULTY), (10, FAULTY), (15, FAULTY)];
    assert_eq!(walk(&v, &UNITS_AS_SECONDS), [Remedy::Fence, Remedy::Report]);
}

#[test]
fn after_folds_every_outcome_into_every_stage() {
    use Outcome as O;
    let p = UNITS_AS_SECONDS;
    let from = Stage::Confirm { since: 1 };
    let now = 1_000;
    let targets = [
        Stage::Healthy,
        Stage::Suspect {
            since: 5,
            failures: 2,
        },
        Stage::Confirm { since: 5 },
        Stage::Repair { since: 5 },
        Stage::SoftReboot { since: 5 },
        Stage::HardReboot { since: 5 },
        Stage::Fenced { since: 5 },
        Stage::AwaitReplacement { since: 5 },
    ];
    for target in targets {
        for outcome in [O::Done, O::Failed, O::Skipped, O::Busy, O::Refused] {
            let got = target.after(from, outcome, now, &p);
            let want = match (outcome, target) {
                (O::Busy, _) => from,
                // A recovery that failed (the health check): not recovered.
                (O::Failed, Stage::Healthy) => from,
                (O::Refused, _) => Stage::AwaitReplacement { since: now },
                (O::Skipped, Stage::SoftReboot { .. }) => Stage::SoftReboot {
                    since: now - p.soft_reboot_timeout,
                },
                (O::Skipped, Stage::Repair { .. }) => Stage::Repair {
                    since: now - p.repair_timeout,
                },
                (_, Stage::Healthy) => Stage::Healthy,
                (_, Stage::Suspect { .. }) => Stage::Suspect {
                    since: now,
                    failures: 2,
                },
                (_, t) => {
                    assert_eq!(got.name(), t.name(), "{outcome:?} into {t:?}");
                    assert_eq!(got.since(), now, "{outcome:?} into {t:?}: clock restarted");
                    continue;
                }
            };
            assert_eq!(got, want, "{outcome:?} into {target:?}");
        }
    }
}

#[test]
fn a_skipped_soft_reboot_escalates_on_the_next_round() {
    let p = UNITS_AS_SECONDS;
    let soft = Stage::SoftReboot { since: 0 }.after(
        Stage::Confirm { since: 0 },
        Outcome::Skipped,
        500,
        &p,
    );
    let step = soft.step(&HUNG, 500, &p);
    assert_eq!(step.remedy, Remedy::HardReboot);
}

#[test]
fn a_unit_down_is_repaired_then_soft_rebooted_when_ready_does_not_come() {
    use Remedy as R;
    use Stage as S;
    let p = UNITS_AS_SECONDS;
    let confirm = S::Confirm { since: 0 };
    assert_eq!(
        confirm.step(&UNIT, 10, &p),
        Step {
            next: S::Repair { since: 10 },
            remedy: R::Repair
        }
    );
    assert_eq!(
        confirm.step(&OS, 10, &p).remedy,
        R::SoftReboot,
        "no unit named: reboot"
    );
    let repair = S::Repair { since: 10 };
    for (verdict, at, next, remedy) in [
        (OS, 50, repair, R::Nothing),
        (UNIT, 129, repair, R::Nothing),
        (HEALTHY, 50, S::Healthy, R::Recovered),
        (FAULTY, 50, S::Fenced { since: 50 }, R::Fence),
        (OS, 130, S::SoftReboot { since: 130 }, R::SoftReboot),
    ] {
        assert_eq!(
            repair.step(&verdict, at, &p),
            Step { next, remedy },
            "{verdict:?} at {at}"
        );
    }
    // Nothing to restart after all: the soft reboot on the next round.
    let skipped = S::Repair { since: 0 }.after(confirm, Outcome::Skipped, 500, &p);
    assert_eq!(skipped.step(&OS, 500, &p).remedy, R::SoftReboot);
}
