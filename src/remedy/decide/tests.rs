//! `decide` on positions as the journal records them (the stage's JSON) and evidence as the
//! gatherer hands it over.

use super::*;
use crate::bmc::PowerState;
use crate::health::{Finding, Level};
use crate::remedy::journal::Pending;
use crate::remedy::stage::Remedy;

const NOW: u64 = 1_800_000_000_000;

/// A position whose stage is read from its journal form.
fn at(stage_json: &str) -> Position {
    Position {
        stage: serde_json::from_str(stage_json).unwrap(),
        episode: 4,
        ..Position::default()
    }
}

fn dark() -> Evidence {
    Evidence {
        ping: Some((0, 3)),
        ssh_reachable: Some(false),
        node_ready: Some("Unknown".into()),
        ..Evidence::default()
    }
}

fn answering() -> Evidence {
    Evidence {
        ping: Some((3, 3)),
        ssh_reachable: Some(true),
        node_ready: Some("True".into()),
        ..Evidence::default()
    }
}

fn with_bmc(e: Evidence, power: Option<PowerState>) -> Evidence {
    Evidence {
        bmc_reachable: Some(power.is_some()),
        power,
        ..e
    }
}

fn act(d: Decision) -> Plan {
    match d {
        Decision::Act(p) => p,
        Decision::Gather(n) => panic!("expected a plan, got a request for {n:?}"),
    }
}

fn policy() -> Policy {
    Policy::default()
}

#[test]
fn a_first_dark_round_makes_a_suspect_of_a_healthy_node_and_opens_an_episode() {
    let p = act(decide(
        &at(r#"{"stage":"healthy"}"#),
        &dark(),
        NOW,
        &policy(),
    ));
    assert!(
        matches!(p.step.next, Stage::Suspect { failures: 1, .. }),
        "{p:?}"
    );
    assert_eq!(p.step.remedy, Remedy::Nothing);
    // A new episode is numbered by when it began (unique across replicas).
    assert_eq!(p.episode, NOW);
    assert!(p.notes[0].starts_with("suspect: "), "{:?}", p.notes);
}

#[test]
fn entering_confirm_asks_for_the_bmc_and_a_reprobe_first() {
    let pos = at(r#"{"stage":"suspect","since":1000,"failures":2}"#);
    let Decision::Gather(n) = decide(&pos, &dark(), NOW, &policy()) else {
        panic!("Confirm is not judged without the BMC's look");
    };
    assert!(n.bmc_look && n.reprobe, "{n:?}");
    assert!(
        n.note
            .as_deref()
            .unwrap()
            .ends_with("confirming out of band"),
        "{n:?}"
    );
}

#[test]
fn a_dark_machine_the_bmc_reports_off_is_powered_on_in_the_same_decision() {
    let pos = at(r#"{"stage":"suspect","since":1000,"failures":2}"#);
    let e = with_bmc(dark(), Some(PowerState::Off));
    let p = act(decide(&pos, &e, NOW, &policy()));
    assert_eq!(p.step.remedy, Remedy::PowerOn);
    assert_eq!(p.step.next, Stage::HardReboot { since: NOW });
    assert!(
        p.notes.iter().any(|n| n.starts_with("verdict down")),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_dark_machine_with_power_on_gets_a_soft_reboot() {
    let pos = at(r#"{"stage":"suspect","since":1000,"failures":2}"#);
    let e = with_bmc(dark(), Some(PowerState::On));
    let p = act(decide(&pos, &e, NOW, &policy()));
    assert_eq!(p.step.remedy, Remedy::SoftReboot);
    assert_eq!(p.step.next, Stage::SoftReboot { since: NOW });
}

#[test]
fn a_bmc_that_never_answers_is_waited_for_then_reported() {
    let e = with_bmc(dark(), None);
    let waiting = at(&format!(
        r#"{{"stage":"confirm","since":{}}}"#,
        NOW - 10_000
    ));
    let p = act(decide(&waiting, &e, NOW, &policy()));
    assert_eq!(p.step.remedy, Remedy::Nothing);
    assert!(matches!(p.step.next, Stage::Confirm { .. }));
    let late = at(&format!(
        r#"{{"stage":"confirm","since":{}}}"#,
        NOW - 61_000
    ));
    let p = act(decide(&late, &e, NOW, &policy()));
    assert_eq!(p.step.remedy, Remedy::Report);
    assert_eq!(p.step.next, Stage::AwaitReplacement { since: NOW });
}

#[test]
fn a_confirming_machine_that_answers_again_is_healthy_without_asking_the_bmc() {
    let pos = at(r#"{"stage":"confirm","since":1000}"#);
    let p = act(decide(&pos, &answering(), NOW, &policy()));
    assert_eq!(p.step.next, Stage::Healthy);
    assert_eq!(p.episode, 4, "same episode");
}

#[test]
fn a_suspect_answering_again_is_cleared_with_a_line_that_says_so() {
    let pos = at(r#"{"stage":"suspect","since":1000,"failures":2}"#);
    let p = act(decide(&pos, &answering(), NOW, &policy()));
    assert_eq!(p.step.next, Stage::Healthy);
    assert!(
        p.notes[0].contains("after 2 failed round(s)"),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_pending_remedy_is_resumed_as_it_is_whatever_the_evidence() {
    let mut pos = at(r#"{"stage":"hard-reboot","since":1000}"#);
    pos.pending = Some(Pending {
        remedy: Remedy::HardReboot,
        from: Stage::SoftReboot { since: 500 },
        at_ms: 1000,
    });
    for e in [dark(), answering(), with_bmc(dark(), Some(PowerState::Off))] {
        let p = act(decide(&pos, &e, NOW, &policy()));
        assert_eq!(p.step.remedy, Remedy::HardReboot);
        assert_eq!(p.step.next, pos.stage);
        assert_eq!(p.resumed_from, Some(Stage::SoftReboot { since: 500 }));
        assert!(
            p.notes[0].starts_with("resuming hard-reboot"),
            "{:?}",
            p.notes
        );
    }
}

#[test]
fn a_critical_drive_on_a_live_machine_is_fenced_after_the_bmc_look_without_a_reprobe() {
    let mut pos = at(r#"{"stage":"healthy"}"#);
    pos.findings = vec![Finding {
        severity: Level::Critical,
        code: "smart_overall_failed".into(),
        detail: "/dev/sda FAILED".into(),
        value: None,
        component: Some("/dev/sda".into()),
        fix: None,
    }];
    let Decision::Gather(n) = decide(&pos, &answering(), NOW, &policy()) else {
        panic!("a faulty verdict enters Confirm");
    };
    assert!(n.bmc_look && !n.reprobe, "{n:?}");
    assert!(n.note.unwrap().contains("1 new finding(s)"));
    let e = with_bmc(answering(), Some(PowerState::On));
    let p = act(decide(&pos, &e, NOW, &policy()));
    assert_eq!(p.step.remedy, Remedy::Fence);
    assert_eq!(p.step.next, Stage::Fenced { since: NOW });
    assert_eq!(p.episode, NOW);
}

#[test]
fn the_stage_policy_is_the_one_passed_in() {
    let pos = at(r#"{"stage":"healthy"}"#);
    let quick = Policy {
        stages: StagePolicy {
            suspect_after: 1,
            ..StagePolicy::default()
        },
        ..Policy::default()
    };
    assert!(matches!(
        decide(&pos, &dark(), NOW, &quick),
        Decision::Gather(_)
    ));
}

#[test]
fn a_release_replaces_when_allowed_else_ends_the_hands_off_and_a_healthy_node_recovers() {
    use crate::remedy::stage::Remedy;
    let waiting = at(r#"{"stage":"await-replacement","since":5}"#);
    let repaired = Evidence {
        released: Some(true),
        ..dark()
    };
    let allowed = Policy {
        replace: true,
        ..Policy::default()
    };
    let Decision::Act(p) = decide(&waiting, &repaired, NOW, &allowed) else {
        panic!("a released node is acted on");
    };
    assert_eq!(p.step.remedy, Remedy::Replace);
    assert_eq!(p.step.next, Stage::Replace { since: NOW });
    assert!(p.notes[0].contains("released as repaired"), "{:?}", p.notes);
    // The policy off: the hands-off ends and the ladder goes on from Healthy, no action.
    let Decision::Act(p) = decide(&waiting, &repaired, NOW, &policy()) else {
        panic!("acted on");
    };
    assert_eq!(
        (p.step.next, p.step.remedy),
        (Stage::Healthy, Remedy::Nothing)
    );
    assert!(p.notes[0].contains("enabled = false"), "{:?}", p.notes);
    // Released but not repaired, and the node is Healthy already: its usual recovery.
    let fine = Evidence {
        released: Some(false),
        ..answering()
    };
    let Decision::Act(p) = decide(&waiting, &fine, NOW, &allowed) else {
        panic!("acted on");
    };
    assert_eq!(p.step.remedy, Remedy::Recovered);
    // No release: hands off, whatever the policy.
    let Decision::Act(p) = decide(&waiting, &dark(), NOW, &allowed) else {
        panic!("acted on");
    };
    assert_eq!(p.step.remedy, Remedy::Nothing);
    assert!(matches!(p.step.next, Stage::AwaitReplacement { .. }));
}
