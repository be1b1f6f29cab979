//! The executor's interlocks, driven over fakes of every seam (BMC connector, cluster, clock)
//! and a real journal in a temporary directory, on tokio's paused clock: no process, no
//! network, milliseconds each.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use super::*;
use crate::bmc::{PowerAction, PowerState};
use crate::health::Level;
use crate::k8s::OUT_OF_SERVICE;
use crate::testing::{said, BmcState, FakeCluster, FakeConnector, Log, TokioClock};

const CONFIG: &str = r#"
[[machines]]
name = "node-1"
bmc = "redfish://127.0.0.1:9001/redfish/v1/Systems/1"
serial = "SN-1"
credentials = { user = "admin", password_secret = "oob-system/bmc-node-1" }
"#;

struct World {
    exec: Executor,
    machine: Machine,
    node: NodeInfo,
    bmc: Arc<Mutex<BmcState>>,
    cluster: Arc<FakeCluster>,
    log: Log,
    _dir: tempfile::TempDir,
}

fn world(dry_run: bool, min_interval_ms: u64) -> World {
    world_with(dry_run, min_interval_ms, &[])
}

/// A world whose reports go to the report sinks `sinks` (through the outbox).
fn world_with(dry_run: bool, min_interval_ms: u64, sinks: &[&str]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::config::Config::parse("t.toml", CONFIG).unwrap();
    config.policy.bmc_min_interval_ms = min_interval_ms;
    let log: Log = Arc::default();
    let bmc = BmcState::on("SN-1");
    let cluster = Arc::new(FakeCluster::new(&["node-1"], &log));
    cluster.edit("node-1", |n| n.ready = Some("False".into()));
    let node = cluster.nodes.lock().unwrap()["node-1"].clone();
    let deps = Deps {
        journal: Arc::new(Journal::open(&dir.path().join("journal.sqlite")).unwrap()),
        nodes: cluster.clone(),
        bmcs: Arc::new(FakeConnector {
            bmcs: [(9001, bmc.clone())].into(),
            log: log.clone(),
        }),
        hosts: Arc::new(crate::testing::FakeHosts::default()),
        clock: Arc::new(TokioClock::new(1_800_000_000_000)),
    };
    let settings = Settings {
        policy: config.policy.clone(),
        holder: "oob-test".into(),
        reports_dir: dir.path().join("reports"),
        sinks: sinks.iter().map(|s| (*s).to_owned()).collect(),
        node_lock: crate::timeouts::NODE_LOCK,
        dry_run,
        feed: broadcast::channel(64).0,
    };
    World {
        exec: Executor::new(deps, settings),
        machine: config.machines[0].clone(),
        node,
        bmc,
        cluster,
        log,
        _dir: dir,
    }
}

impl World {
    fn subject(&self) -> Subject<'_> {
        Subject {
            machine: &self.machine,
            node: &self.node,
            episode: 1,
            findings: &[],
            evidence: &[],
            verdict: "down",
            alive: false,
            ssh_up: false,
            boot_before: None,
            cause: None,
        }
    }

    fn requests(&self) -> Vec<String> {
        said(&self.log)
            .into_iter()
            .filter(|l| l.starts_with("bmc "))
            .map(|l| l.split(" at ").next().unwrap_or_default().to_owned())
            .collect()
    }

    fn timeline(&self) -> String {
        crate::testing::timeline(self.exec.journal(), "node-1")
    }
}

#[tokio::test(start_paused = true)]
async fn a_bmc_reporting_another_serial_is_refused_journaled_and_never_powered() {
    let w = world(false, 0);
    w.bmc.lock().unwrap().serial = "SN-OTHER".into();
    let done = w.exec.execute(Remedy::HardReboot, &w.subject()).await;
    assert!(
        matches!(&done, Some(Done::Refused(d)) if d.contains("identity mismatch")),
        "{done:?}"
    );
    assert!(w.requests().is_empty(), "{:?}", said(&w.log));
    assert!(
        w.timeline().contains("identity check FAILED"),
        "{}",
        w.timeline()
    );
    // Nobody else holds the node; cordoned first (the node is confirmed down, whoever its
    // BMC is), and oob's cordon recorded; the lock taken and given back around the refused
    // attempt.
    let l = said(&w.log);
    assert_eq!(
        l,
        [
            "lock oob-node-node-1",
            "unlock oob-node-node-1",
            "cordon node-1",
            "annotate node-1 oob.dev/cordoned=Some(\"true\")",
            "lock oob-node-node-1",
            "unlock oob-node-node-1"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_locked_by_another_holder_is_busy_and_nothing_is_sent() {
    let w = world(false, 0);
    w.cluster
        .leases
        .lock()
        .unwrap()
        .insert("oob-node-node-1".into(), "oob-cli-alice".into());
    let done = w.exec.execute(Remedy::HardReboot, &w.subject()).await;
    assert!(matches!(done, Some(Done::Busy(_))), "{done:?}");
    assert!(w.requests().is_empty());
    assert!(
        w.exec.journal().entries(None).unwrap().is_empty(),
        "not journaled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hard_reboot_is_journaled_verified_off_then_on_under_the_lock() {
    let w = world(false, 0);
    let done = w.exec.execute(Remedy::HardReboot, &w.subject()).await;
    assert!(
        matches!(&done, Some(Done::Ok(d)) if d.contains("verified")),
        "{done:?}"
    );
    assert_eq!(w.requests(), ["bmc ForceOff", "bmc On"]);
    let l = said(&w.log);
    // The lock asked first (nobody else holds the node), cordoned before the reboot, then
    // everything under the lock.
    assert_eq!(l.first().map(String::as_str), Some("lock oob-node-node-1"));
    assert_eq!(l.get(2).map(String::as_str), Some("cordon node-1"));
    assert_eq!(l.get(4).map(String::as_str), Some("lock oob-node-node-1"));
    assert_eq!(l.last().map(String::as_str), Some("unlock oob-node-node-1"));
    let entries = w.exec.journal().entries(Some("node-1")).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].key, "node-1/1/hard-reboot");
    assert_eq!(entries[0].outcome.as_deref(), Some("done"));
    assert_eq!(entries[0].before.boot_id.as_deref(), Some("boot-a"));
    // The same step again (a second round, a second replica) is not sent again.
    let again = w.exec.execute(Remedy::HardReboot, &w.subject()).await;
    assert!(
        matches!(&again, Some(Done::Ok(d)) if d.contains("not sent again")),
        "{again:?}"
    );
    assert_eq!(w.requests().len(), 2);
}

/// A cycle journaled (bootID boot-a, power On) by a service that died before its outcome.
fn interrupted_cycle(w: &World) {
    let before = crate::remedy::journal::Before {
        boot_id: Some("boot-a".into()),
        power: Some("On".into()),
    };
    w.exec
        .journal()
        .intent("node-1/1/hard-reboot", "node-1", "cycle", &before, 1)
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_cycle_whose_off_took_effect_is_completed_with_on_only() {
    let w = world(false, 0);
    interrupted_cycle(&w);
    w.bmc.lock().unwrap().power = PowerState::Off;
    let done = w.exec.execute(Remedy::HardReboot, &w.subject()).await;
    assert!(matches!(done, Some(Done::Ok(_))), "{done:?}");
    assert_eq!(w.requests(), ["bmc On"], "the off is never sent again");
    assert!(w.timeline().contains("resuming cycle"), "{}", w.timeline());
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_cycle_whose_off_never_showed_is_watched_and_never_resent() {
    let w = world(false, 0);
    interrupted_cycle(&w);
    let started = tokio::time::Instant::now();
    let done = w.exec.execute(Remedy::HardReboot, &w.subject()).await;
    assert!(
        matches!(&done, Some(Done::Ok(d)) if d.contains("never took effect")),
        "{done:?}"
    );
    assert!(w.requests().is_empty(), "{:?}", w.requests());
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "watched for the profile's verify timeout"
    );
    let e = &w.exec.journal().entries(Some("node-1")).unwrap()[0];
    assert_eq!(e.outcome.as_deref(), Some("done"));
}

#[tokio::test(start_paused = true)]
async fn the_governor_spaces_two_actions_on_one_bmc_by_its_minimum_interval() {
    let w = world(false, 20_000);
    let s = w.subject();
    let first = w.exec.power_action(&s, PowerAction::Off).await;
    assert!(matches!(first, Done::Ok(_)), "{first:?}");
    let t0 = tokio::time::Instant::now();
    let second = w.exec.power_action(&s, PowerAction::On).await;
    assert!(matches!(second, Done::Ok(_)), "{second:?}");
    assert!(
        t0.elapsed() >= Duration::from_secs(20),
        "second request only after the interval, waited {:?}",
        t0.elapsed()
    );
    assert_eq!(w.requests(), ["bmc ForceOff", "bmc On"]);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_sends_nothing_and_writes_nothing_to_the_cluster() {
    let w = world(true, 0);
    for r in [Remedy::SoftReboot, Remedy::HardReboot, Remedy::Fence] {
        let done = w.exec.execute(r, &w.subject()).await;
        assert!(
            matches!(&done, Some(Done::Ok(d)) if d.contains("dry run")),
            "{done:?}"
        );
    }
    assert!(said(&w.log).is_empty(), "{:?}", said(&w.log));
    assert!(w.exec.journal().entries(None).unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_dead_machine_is_tainted_out_of_service_only_after_its_off_is_verified() {
    let w = world(false, 0);
    let done = w.exec.execute(Remedy::Fence, &w.subject()).await;
    assert!(
        matches!(&done, Some(Done::Ok(d)) if d.contains("drained")),
        "{done:?}"
    );
    let l = said(&w.log);
    let at = |what: &str| {
        l.iter()
            .position(|x| x.starts_with(what))
            .unwrap_or_else(|| panic!("{what} missing from {l:?}"))
    };
    assert!(at("cordon node-1") < at("bmc ForceOff"));
    assert!(at("bmc ForceOff") < at(&format!("taint node-1 {OUT_OF_SERVICE}")));
    assert!(at(&format!("taint node-1 {OUT_OF_SERVICE}")) < at("drain node-1 force=true"));
}

/// Recovery takes away only the out-of-service taint oob put on; one that Fence Agents
/// Remediation or a person put on stays.
#[tokio::test(start_paused = true)]
async fn recovery_takes_away_only_the_out_of_service_taint_oob_put_on() {
    let untainted = |w: &World| {
        said(&w.log)
            .iter()
            .any(|x| x.starts_with(&format!("untaint node-1 {OUT_OF_SERVICE}")))
    };
    // Someone else's: not put on again, not taken away.
    let w = world(false, 0);
    let theirs = crate::k8s::Taint {
        key: OUT_OF_SERVICE.into(),
        value: Some("nodeshutdown".into()),
        effect: "NoExecute".into(),
    };
    let mut node = w.node.clone();
    node.taints.push(theirs);
    let s = Subject {
        node: &node,
        ..w.subject()
    };
    w.exec.execute(Remedy::Fence, &s).await;
    assert!(w.timeline().contains("by someone else"), "{}", w.timeline());
    assert!(!said(&w.log).iter().any(|x| x.starts_with("taint")));
    let after = w.cluster.nodes.lock().unwrap()["node-1"].clone();
    let s = Subject {
        node: &after,
        ..w.subject()
    };
    w.exec.execute(Remedy::Recovered, &s).await;
    assert!(!untainted(&w), "{:?}", said(&w.log));

    // oob's own: marked before it is put on, taken away with the mark.
    let w = world(false, 0);
    w.exec.execute(Remedy::Fence, &w.subject()).await;
    let after = w.cluster.nodes.lock().unwrap()["node-1"].clone();
    assert!(after
        .annotations
        .contains_key(crate::k8s::OUT_OF_SERVICE_ANNOTATION));
    assert!(after.taints.iter().any(|t| t.key == OUT_OF_SERVICE));
    let s = Subject {
        node: &after,
        ..w.subject()
    };
    w.exec.execute(Remedy::Recovered, &s).await;
    assert!(untainted(&w), "{:?}", said(&w.log));
    let end = w.cluster.nodes.lock().unwrap()["node-1"].clone();
    assert!(!end
        .annotations
        .contains_key(crate::k8s::OUT_OF_SERVICE_ANNOTATION));
    assert!(!end.taints.iter().any(|t| t.key == OUT_OF_SERVICE));

    // Put on by a version before the mark: oob's value on a node oob cordoned is oob's.
    let w = world(false, 0);
    let mut node = w.node.clone();
    node.annotations
        .insert(CORDONED_ANNOTATION, "true".to_owned());
    node.unschedulable = true;
    node.taints.push(crate::k8s::Taint {
        key: OUT_OF_SERVICE.into(),
        value: Some("nodeshutdown".into()),
        effect: "NoExecute".into(),
    });
    let s = Subject {
        node: &node,
        ..w.subject()
    };
    w.exec.execute(Remedy::Recovered, &s).await;
    assert!(untainted(&w), "{:?}", said(&w.log));
}

#[tokio::test(start_paused = true)]
async fn an_off_that_does_not_verify_leaves_no_taint_and_no_forced_drain() {
    let w = world(false, 0);
    w.bmc.lock().unwrap().stuck = true;
    let done = w.exec.execute(Remedy::Fence, &w.subject()).await;
    assert!(
        matches!(&done, Some(Done::Failed(d)) if d.contains("NOT verified")),
        "{done:?}"
    );
    let l = said(&w.log);
    assert!(l.iter().any(|x| x == "cordon node-1"), "{l:?}");
    assert!(!l.iter().any(|x| x.starts_with("taint")), "{l:?}");
    assert!(!l.iter().any(|x| x.starts_with("drain")), "{l:?}");
}

#[tokio::test(start_paused = true)]
async fn failing_hardware_on_a_live_machine_is_cordoned_drained_and_reported_not_powered() {
    let w = world(false, 0);
    let findings = vec![Finding {
        severity: Level::Critical,
        code: "smart_overall_failed".into(),
        detail: "/dev/sda: SMART overall-health self-assessment FAILED".into(),
        value: None,
        component: Some("/dev/sda".into()),
        fix: None,
    }];
    let cause = Cause::Hardware {
        component: Some("/dev/sda".into()),
        code: "smart_overall_failed".into(),
        detail: findings[0].detail.clone(),
    };
    let s = Subject {
        findings: &findings,
        verdict: "faulty",
        alive: true,
        ssh_up: false,
        cause: Some(&cause),
        ..w.subject()
    };
    let fenced = w.exec.execute(Remedy::Fence, &s).await;
    assert!(matches!(fenced, Some(Done::Ok(_))), "{fenced:?}");
    let reported = w.exec.execute(Remedy::Report, &s).await;
    assert!(matches!(reported, Some(Done::Ok(_))), "{reported:?}");
    let l = said(&w.log);
    assert!(
        w.requests().is_empty(),
        "no power action for hardware: {l:?}"
    );
    assert!(l.contains(&"cordon node-1".to_owned()), "{l:?}");
    assert!(l.contains(&"drain node-1 force=false".to_owned()), "{l:?}");
    assert!(
        l.iter()
            .any(|x| x.starts_with("event node-1 Warning FaultReport")),
        "{l:?}"
    );
    let report = std::fs::read_dir(w._dir.path().join("reports"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|t| t.contains("/dev/sda"))
        .expect("a report naming the drive");
    assert!(report.contains("smart_overall_failed"), "{report}");
    // The technician is led to the box: the locator LED on, read back, in the report.
    assert!(w.bmc.lock().unwrap().led);
    assert!(l.contains(&"locator on".to_owned()), "{l:?}");
    assert!(report.contains("on (read back: on)"), "{report}");
}

#[tokio::test(start_paused = true)]
async fn the_locator_led_is_never_lit_on_a_bmc_that_answers_for_another_machine() {
    let w = world(false, 0);
    w.bmc.lock().unwrap().serial = "SN-OTHER".into();
    let led = w.exec.locator(&w.machine, &w.node, true).await;
    assert!(
        led.as_ref()
            .is_err_and(|e| e.contains("identity check failed")),
        "{led:?}"
    );
    assert!(!w.bmc.lock().unwrap().led);
    // The identity refusal's report does not light it either.
    let cause = Cause::IdentityMismatch {
        detail: "serial SN-OTHER".into(),
    };
    let s = Subject {
        cause: Some(&cause),
        ..w.subject()
    };
    w.exec.execute(Remedy::Report, &s).await;
    assert!(!w.bmc.lock().unwrap().led);
    assert!(!said(&w.log).contains(&"locator on".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn recovery_tells_a_verified_reboot_from_a_node_back_on_its_own() {
    let w = world(false, 0);
    let s = Subject {
        boot_before: Some("boot-0"),
        ..w.subject()
    };
    w.exec.execute(Remedy::Recovered, &s).await;
    let s = Subject {
        boot_before: Some("boot-a"),
        ..w.subject()
    };
    w.exec.execute(Remedy::Recovered, &s).await;
    let t = w.timeline();
    assert!(
        t.contains("reboot verified (bootID boot-0 → boot-a)"),
        "{t}"
    );
    assert!(t.contains("back on its own"), "{t}");
}

#[tokio::test(start_paused = true)]
async fn no_soft_path_on_the_bmc_is_a_skip_not_a_failure() {
    let w = world(false, 0);
    w.bmc.lock().unwrap().graceful_unsupported = true;
    let done = w.exec.execute(Remedy::SoftReboot, &w.subject()).await;
    assert!(matches!(done, Some(Done::Skip(_))), "{done:?}");
}

/// oob's mark without the cordon (a person uncordoned, or an uncordon's second half was
/// lost) is stale: the next fence cordons again instead of taking the node for cordoned.
#[tokio::test(start_paused = true)]
async fn a_stale_cordon_mark_does_not_stop_a_cordon() {
    let w = world(false, 0);
    let mut node = w.node.clone();
    node.annotations
        .insert(CORDONED_ANNOTATION, "true".to_owned());
    let s = Subject {
        node: &node,
        ..w.subject()
    };
    w.exec.execute(Remedy::Fence, &s).await;
    let after = w.cluster.nodes.lock().unwrap()["node-1"].clone();
    assert!(after.unschedulable, "{:?}", said(&w.log));
    assert!(after.annotations.contains_key(CORDONED_ANNOTATION));
}

#[tokio::test(start_paused = true)]
async fn a_cordon_someone_else_made_is_left_and_never_claimed() {
    let w = world(false, 0);
    let mut node = w.node.clone();
    node.unschedulable = true;
    let s = Subject {
        node: &node,
        ..w.subject()
    };
    let done = w.exec.execute(Remedy::HardReboot, &s).await;
    assert!(matches!(done, Some(Done::Ok(_))), "{done:?}");
    let l = said(&w.log);
    assert!(
        !l.iter()
            .any(|x| x.starts_with("cordon") || x.contains("oob.dev/cordoned")),
        "{l:?}"
    );
    assert!(
        w.timeline().contains("already cordoned by someone else"),
        "{}",
        w.timeline()
    );
    // Its recovery does not uncordon it.
    let done = w.exec.execute(Remedy::Recovered, &s).await;
    assert!(matches!(done, Some(Done::Ok(_))), "{done:?}");
    assert!(
        !said(&w.log).iter().any(|x| x.starts_with("uncordon")),
        "{:?}",
        said(&w.log)
    );
}

#[tokio::test(start_paused = true)]
async fn an_in_band_step_journaled_before_a_crash_is_never_sent_again_by_any_path() {
    use crate::remedy::journal::Before;
    let w = world(false, 0);
    let before = Before {
        boot_id: Some("boot-a".into()),
        power: None,
    };
    // `systemctl reboot` went out over SSH, then the process died before its outcome.
    w.exec
        .journal()
        .intent(
            "node-1/1/soft-reboot-ssh",
            "node-1",
            "systemctl-reboot",
            &before,
            1,
        )
        .unwrap();
    // Resumed while the host reboots (SSH down): neither SSH nor the BMC is asked.
    let done = w.exec.execute(Remedy::SoftReboot, &w.subject()).await;
    assert!(
        matches!(&done, Some(Done::Ok(d)) if d.contains("not sent again")),
        "{done:?}"
    );
    assert!(w.requests().is_empty(), "{:?}", said(&w.log));
    // The same for a unit restart: not sent again, not judged again.
    w.exec
        .journal()
        .intent(
            "node-1/1/repair",
            "node-1",
            "restart kubelet.service",
            &before,
            1,
        )
        .unwrap();
    let done = w.exec.execute(Remedy::Repair, &w.subject()).await;
    assert!(
        matches!(&done, Some(Done::Ok(d)) if d.contains("not sent again")),
        "{done:?}"
    );
    // A failed SSH reboot hands over to the BMC's graceful restart.
    let w = world(false, 0);
    w.exec
        .journal()
        .intent(
            "node-1/1/soft-reboot-ssh",
            "node-1",
            "systemctl-reboot",
            &before,
            1,
        )
        .unwrap();
    w.exec
        .journal()
        .outcome(
            "node-1/1/soft-reboot-ssh",
            "failed",
            "connection refused",
            2,
        )
        .unwrap();
    let _ = w.exec.execute(Remedy::SoftReboot, &w.subject()).await;
    assert_eq!(w.requests(), ["bmc GracefulRestart"]);
}

#[tokio::test(start_paused = true)]
async fn a_node_held_by_another_remediator_is_not_even_cordoned() {
    let w = world(false, 0);
    w.cluster
        .held
        .lock()
        .unwrap()
        .insert("oob-node-node-1".into(), "self-node-remediation".into());
    for remedy in [Remedy::SoftReboot, Remedy::HardReboot, Remedy::Fence] {
        let done = w.exec.execute(remedy, &w.subject()).await;
        assert!(
            matches!(&done, Some(Done::Busy(d)) if d.contains("held by self-node-remediation")),
            "{done:?}"
        );
    }
    assert!(said(&w.log).is_empty(), "{:?}", said(&w.log));
    assert!(w.requests().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_report_goes_to_the_outbox_once_and_the_recovery_follows_it_up_once() {
    let w = world_with(false, 0, &["hook", "mail"]);
    let findings =
        vec![Finding::new(Level::Critical, "drive_fault", "Drive Fault").component("Drive 3")];
    let cause = Cause::Hardware {
        component: Some("Drive 3".into()),
        code: "drive_fault".into(),
        detail: "Drive Fault".into(),
    };
    let s = Subject {
        findings: &findings,
        verdict: "faulty",
        cause: Some(&cause),
        ..w.subject()
    };
    w.exec.execute(Remedy::Report, &s).await;
    // Written again (a restart before the outcome was kept would do this): still one.
    w.exec.execute(Remedy::Report, &s).await;
    let j = w.exec.journal();
    let rows = j.deliveries(Some("node-1")).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let id = rows[0].message.clone();
    // The step's key and when it was begun: unique across replicas and restarts.
    assert!(id.starts_with("node-1/1/report/2"), "{id}");
    assert!(rows.iter().all(|r| r.message == id && r.state == "pending"));
    assert!(
        w.timeline().contains("fault report queued for hook, mail"),
        "{}",
        w.timeline()
    );
    let (stored, report) = w.exec.open_report("node-1").expect("an open report");
    assert_eq!(stored.kind, "report");
    assert!(
        report.subject.contains("node-1") && report.subject.contains("Drive 3"),
        "{}",
        report.subject
    );

    // Still down: one follow-up per period, never twice for the same one.
    let still_down = |period: &'static str| {
        w.exec.follow_up(
            "node-1",
            crate::report::message::Kind::StillDown,
            period,
            None,
            "still down",
        )
    };
    assert!(still_down("still-down-1").await);
    assert!(!still_down("still-down-1").await);

    // Back: the recovery follows the report up, threaded on it; the report is closed.
    w.cluster.edit("node-1", |n| n.ready = Some("True".into()));
    let node = w.cluster.nodes.lock().unwrap()["node-1"].clone();
    let s = Subject {
        node: &node,
        ..w.subject()
    };
    let done = w.exec.execute(Remedy::Recovered, &s).await;
    assert!(matches!(done, Some(Done::Ok(_))), "{done:?}");
    let back = j
        .last_message("node-1", "recovered")
        .unwrap()
        .expect("a follow-up");
    assert_eq!(back.id, format!("{id}/recovered"));
    let m = crate::report::outbox::decode(&back).unwrap();
    assert_eq!(m.in_reply_to.as_deref(), Some(id.as_str()));
    assert!(m.summary.contains("is back"), "{}", m.summary);
    assert!(w.exec.open_report("node-1").is_none());
    // A later recovery without a new report says nothing more.
    w.exec.execute(Remedy::Recovered, &s).await;
    assert_eq!(j.deliveries(Some("node-1")).unwrap().len(), 6);
    assert!(!still_down("still-down-2").await);
}

#[tokio::test(start_paused = true)]
async fn without_a_report_a_recovery_sends_nothing_and_a_dry_run_queues_nothing() {
    let w = world_with(false, 0, &["hook"]);
    w.cluster.edit("node-1", |n| n.ready = Some("True".into()));
    let node = w.cluster.nodes.lock().unwrap()["node-1"].clone();
    let s = Subject {
        node: &node,
        ..w.subject()
    };
    w.exec.execute(Remedy::Recovered, &s).await;
    assert!(w.exec.journal().deliveries(None).unwrap().is_empty());
    let dry = world_with(true, 0, &["hook"]);
    let cause = Cause::Hardware {
        component: None,
        code: "x".into(),
        detail: "y".into(),
    };
    let s = Subject {
        cause: Some(&cause),
        ..dry.subject()
    };
    dry.exec.execute(Remedy::Report, &s).await;
    assert!(dry.exec.journal().deliveries(None).unwrap().is_empty());
}

/// A step that outlives its per-node lock: another remediator takes the node (its medik8s
/// lease) while a long verification runs.
#[tokio::test(start_paused = true)]
async fn a_per_node_lock_taken_by_another_stops_the_step_at_the_next_renewal() {
    let w = world(false, 0);
    let lock = w.exec.node_lock;
    let lease = node_lock_name("node-1");
    let began = tokio::time::Instant::now();
    let out = w
        .exec
        .locked("node-1", async {
            w.cluster
                .held
                .lock()
                .unwrap()
                .insert(lease.clone(), "self-node-remediation".into());
            tokio::time::sleep(lock * 10).await;
            "finished"
        })
        .await;
    match out {
        Err(Done::Interrupted(why)) => assert!(
            why.contains("per-node lock lost") && why.contains("self-node-remediation"),
            "{why}"
        ),
        other => panic!("the step went on without its lock: {other:?}"),
    }
    assert_eq!(began.elapsed(), lock / 3, "stopped at the first renewal");
    assert!(
        !said(&w.log).iter().any(|l| l.starts_with("unlock")),
        "another's lock is not released: {:?}",
        said(&w.log)
    );
}

/// The API server unreachable while a step runs: the step goes on through one failed
/// renewal and stops before the lease could expire (another actor may take it then).
#[tokio::test(start_paused = true)]
async fn a_per_node_lock_that_cannot_be_renewed_stops_the_step_before_it_expires() {
    use std::sync::atomic::Ordering;
    let w = world(false, 0);
    let lock = w.exec.node_lock;
    let began = tokio::time::Instant::now();
    let out = w
        .exec
        .locked("node-1", async {
            w.cluster.lock_outage.store(true, Ordering::SeqCst);
            tokio::time::sleep(lock * 10).await;
        })
        .await;
    let Err(Done::Interrupted(why)) = out else {
        panic!("the step went on without its lock: {out:?}")
    };
    assert!(
        why.contains("not renewed") && why.contains("connection refused"),
        "{why}"
    );
    assert!(began.elapsed() < lock, "stopped at {:?}", began.elapsed());
    assert_eq!(
        began.elapsed(),
        lock / 3 * 2,
        "one failed renewal is tolerated"
    );
    w.cluster.lock_outage.store(false, Ordering::SeqCst);

    // An API that never answers: each try has its own deadline, and the step stops before
    // the lease (renewed at its start) can expire.
    let began = tokio::time::Instant::now();
    let out = w
        .exec
        .locked("node-1", async {
            w.cluster.lock_hang.store(true, Ordering::SeqCst);
            tokio::time::sleep(lock * 10).await;
        })
        .await;
    assert!(matches!(out, Err(Done::Interrupted(_))), "{out:?}");
    assert!(began.elapsed() < lock, "stopped at {:?}", began.elapsed());
    w.cluster.lock_hang.store(false, Ordering::SeqCst);
    w.cluster.leases.lock().unwrap().clear();

    // A short outage is ridden out: the step finishes and the lock is let go.
    w.cluster.lock_outage.store(false, Ordering::SeqCst);
    let cluster = w.cluster.clone();
    let out = w
        .exec
        .locked("node-1", async {
            cluster.lock_outage.store(true, Ordering::SeqCst);
            tokio::time::sleep(lock / 2).await;
            cluster.lock_outage.store(false, Ordering::SeqCst);
            tokio::time::sleep(lock).await;
            "finished"
        })
        .await;
    assert!(matches!(out, Ok("finished")), "{out:?}");
    assert!(
        w.cluster.leases.lock().unwrap().is_empty(),
        "the lock is let go"
    );
}
