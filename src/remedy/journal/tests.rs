use super::*;
use crate::remedy::stage::Stage;

#[test]
fn an_intent_is_written_once_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite");
    let before = Before {
        boot_id: Some("boot-a".into()),
        power: Some("On".into()),
    };
    {
        let j = Journal::open(&path).unwrap();
        assert_eq!(
            j.intent("n/1/hard", "n", "hard-reboot", &before, 5)
                .unwrap(),
            Intent::New
        );
    }
    let j = Journal::open(&path).unwrap();
    let in_flight = j.in_flight().unwrap();
    assert_eq!(in_flight.len(), 1);
    assert_eq!(in_flight[0].outcome, None);
    let Intent::Seen(e) = j
        .intent("n/1/hard", "n", "hard-reboot", &Before::default(), 9)
        .unwrap()
    else {
        panic!("a second intent for the same key must be seen, not new");
    };
    assert_eq!(e.intent_ms, 5);
    assert_eq!(
        e.before, before,
        "what was seen first, typed, not the second caller's"
    );
    assert_eq!(j.count().unwrap(), 1);
    j.outcome("n/1/hard", "verified", "on", 10).unwrap();
    j.outcome("n/1/hard", "failed", "late", 11).unwrap();
    assert!(j.in_flight().unwrap().is_empty());
    assert_eq!(
        j.entries(Some("n")).unwrap()[0].outcome.as_deref(),
        Some("verified")
    );
}

#[test]
fn positions_and_the_breaker_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite");
    let j = Journal::open(&path).unwrap();
    let p = Position {
        stage: Stage::SoftReboot { since: 42 },
        episode: 3,
        recovered_ms: None,
        findings: vec![crate::health::Finding::new(
            crate::health::Level::Critical,
            "drive_fault",
            "Drive Fault",
        )],
        sel_seen: Some(["1".to_owned(), "103".to_owned()].into()),
        boot_before: Some("b-1".into()),
        pending: Some(Pending {
            remedy: super::super::stage::Remedy::SoftReboot,
            from: Stage::Confirm { since: 40 },
            at_ms: 42,
        }),
        host_baseline: Some(crate::gather::host::Baseline {
            drives: [(
                "/dev/sda".to_owned(),
                [("smart_reallocated_sectors".to_owned(), 3)].into(),
            )]
            .into(),
            nics: Default::default(),
        }),
    };
    j.save_position("node-1", &p).unwrap();
    assert!(j.trip_breaker("storm", 7).unwrap());
    assert!(!j.trip_breaker("again", 8).unwrap());
    drop(j);
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.position("node-1").unwrap(), Some(p));
    assert_eq!(j.position("node-2").unwrap(), None);
    assert_eq!(j.breaker().unwrap().unwrap().reason, "storm");
    assert!(j.reset_breaker().unwrap().is_some());
    assert_eq!(j.breaker().unwrap(), None);
}
