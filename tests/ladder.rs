//! The ladder end to end: the five demo scenarios through the real `oob demo`; crash safety
//! with SIGKILL at each step against a simulated fleet in another process (`oob-mocks
//! fleet`), proven by the mock BMCs' received requests and the journal; the storm guard and
//! the concurrency limit on a 20-node simulated fleet.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use oob::demo;
use oob::remedy::journal::Journal;
use oob::remedy::stage::Stage;
use oob_mocks::sim::{self, HostSpec, SimFleet, Timing};
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::common::oob;
use crate::common::simfleet::{resets, serve, start_fleet, wait_for, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_scenarios_pass_with_their_steps_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = oob(&["demo", "-o", "json", "--dir", d, "--healthy", "2"], &[]).await;
    let v = run.json();
    assert_eq!(run.code, 0, "{}", run.all());
    let scenarios = v["scenarios"].as_array().unwrap();
    // Seven faults and the machine room's row (every report delivered once to the demo's
    // webhook and mailbox).
    assert_eq!(scenarios.len(), 8, "{v:#}");
    let room = scenarios
        .iter()
        .find(|s| s["name"] == "fault reports reach the machine room")
        .expect("the delivery row");
    assert!(
        room["outcome"]
            .as_str()
            .unwrap()
            .starts_with("3 messages (3 reports), 3 webhook posts, 3 mails"),
        "{room}"
    );
    for s in scenarios {
        for field in ["name", "node", "expected", "outcome"] {
            assert!(s[field].is_string(), "{field} in {s}");
        }
        assert_eq!(s["passed"], true, "{s:#}");
        assert!(s["power_cycles"].is_u64() && s["soft_reboots"].is_u64());
    }
    let by_node = |n: &str| scenarios.iter().find(|s| s["node"] == n).unwrap();
    assert_eq!(by_node("node-1")["power_cycles"], 1);
    assert_eq!(by_node("node-1")["soft_reboots"], 1);
    for n in ["node-2", "node-3", "node-4", "node-5", "node-6", "node-7"] {
        assert_eq!(by_node(n)["power_cycles"], 0, "{n}");
    }
    for n in ["node-6", "node-7"] {
        assert_eq!(
            by_node(n)["soft_reboots"],
            0,
            "{n}: in band, not through the BMC"
        );
    }
    let reports = v["reports"].as_array().unwrap();
    assert!(
        reports.len() >= 9,
        "node-2, node-3 and node-5 reports, 3 formats: {reports:?}"
    );
    for r in reports {
        assert!(Path::new(r.as_str().unwrap()).is_file(), "{r}");
    }
    // node-3's report says why nothing was done; node-2's names the drive.
    let report_text = |node: &str| {
        reports
            .iter()
            .map(|r| r.as_str().unwrap())
            .find(|r| r.contains(&format!("/{node}-")) && r.ends_with(".md"))
            .map(|r| std::fs::read_to_string(r).unwrap())
            .unwrap()
    };
    assert!(report_text("node-3").contains("identity"));
    assert!(report_text("node-2").contains("Drive 3"));
    // node-5's names the drive the host's smartctl failed, with the finding as evidence.
    let smart = report_text("node-5");
    assert!(smart.contains("/dev/sda"), "{smart}");
    assert!(smart.contains("smart_overall_failed"), "{smart}");
    assert!(
        report_text("node-2").contains("hall-1"),
        "location in the report"
    );

    // The journal proves the order of each ladder and that each step ran once.
    let j = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
    let in_order = |node: &str, steps: &[&str]| {
        let timeline: Vec<String> = j
            .timeline(node, 0)
            .unwrap()
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        // The steps, in this order (other lines may come between).
        let mut at = 0;
        for step in steps {
            let found = timeline[at..]
                .iter()
                .position(|t| t.contains(step))
                .unwrap_or_else(|| {
                    panic!("{node}: {step:?} missing or out of order: {timeline:#?}")
                });
            at += found + 1;
        }
    };
    let actions = |node: &str| -> Vec<(String, Option<String>)> {
        j.entries(Some(node))
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.outcome))
            .collect()
    };
    let done = |a: &str| (a.to_owned(), Some("done".to_owned()));
    in_order(
        "node-1",
        &[
            "suspect",
            "verdict down (host-hung)",
            "cordoned",
            "identity verified",
            "soft-reboot: graceful restart requested",
            "hard reboot: power cycle",
            "identity verified",
            "power cycle verified",
            "recovered: reboot verified",
            "uncordoned",
        ],
    );
    assert_eq!(actions("node-1"), [done("graceful-restart"), done("cycle")]);
    assert!(actions("node-4").is_empty());
    // The in-band rungs: the runbook's order, each action once.
    in_order(
        "node-6",
        &[
            "suspect: ssh up, Ready=False",
            "verdict down (unit-down)",
            "cordoned",
            "repair: `systemctl restart kubelet.service` over SSH",
            "health check passed",
            "recovered",
            "uncordoned",
        ],
    );
    assert_eq!(actions("node-6"), [done("restart kubelet.service")]);
    in_order(
        "node-7",
        &[
            "KernelDeadlock=True",
            "verdict down (os-problem)",
            "cordoned",
            "soft reboot: `systemctl reboot` over SSH",
            "health check passed",
            "recovered: reboot verified (bootID",
            "uncordoned",
        ],
    );
    assert_eq!(actions("node-7"), [done("systemctl-reboot")]);
}

/// The config with node-2's serial changed: the inventory names another machine.
fn wrong_serial_config(dir: &Path, config: &Path) -> std::path::PathBuf {
    let wrong = std::fs::read_to_string(config)
        .unwrap()
        .replace("serial = \"SIM-0002\"", "serial = \"SIM-9999\"");
    let path = dir.join("wrong.toml");
    std::fs::write(&path, wrong).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_each_ladder_step_never_repeats_an_action() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = start_fleet(
        dir.path(),
        3,
        &[
            "--hang",
            "node-1",
            "--fail-disk",
            "node-2",
            "--fault-after-ms",
            "1500",
        ],
    );
    let config = write_config(dir.path(), &fleet.desc, "");
    let desc = fleet.desc.clone();

    // Step 1: killed right after the soft reboot reached the BMC.
    let mut s = serve(dir.path(), &config);
    wait_for("the soft reboot", Duration::from_secs(30), || async {
        resets(&desc, "node-1")
            .await
            .contains(&"GracefulRestart".to_owned())
    })
    .await;
    s.kill().await.unwrap();

    // Step 2: restarted; killed the moment the hard cycle's ForceOff reached the BMC (the
    // cycle is half done: off sent, on not yet).
    let mut s = serve(dir.path(), &config);
    wait_for("the cycle's off", Duration::from_secs(30), || async {
        resets(&desc, "node-1")
            .await
            .contains(&"ForceOff".to_owned())
    })
    .await;
    s.kill().await.unwrap();

    // Step 3: restarted; it must finish the cycle (on) without sending off again, verify
    // the reboot, and recover the node; node-2 is fenced and reported meanwhile.
    let mut s = serve(dir.path(), &config);
    let journal_path = dir.path().join("journal.sqlite");
    wait_for("node-1 recovered", Duration::from_secs(40), || async {
        Journal::open(&journal_path)
            .and_then(|j| j.timeline("node-1", 0))
            .map(|t| t.iter().any(|(_, w)| w.starts_with("recovered")))
            .unwrap_or(false)
    })
    .await;
    // Step 4: killed after node-2's report; restarted; nothing more is done.
    wait_for("node-2 reported", Duration::from_secs(30), || async {
        Journal::open(&journal_path)
            .and_then(|j| j.position("node-2"))
            .map(|p| matches!(p.map(|p| p.stage), Some(Stage::AwaitReplacement { .. })))
            .unwrap_or(false)
    })
    .await;
    s.kill().await.unwrap();
    let mut s = serve(dir.path(), &config);
    tokio::time::sleep(Duration::from_secs(4)).await;
    s.kill().await.unwrap();

    assert_eq!(
        resets(&desc, "node-1").await,
        ["GracefulRestart", "ForceOff", "On"],
        "each remediation exactly once, across three kills"
    );
    assert!(
        resets(&desc, "node-2").await.is_empty(),
        "a live faulty node is not power-cycled"
    );
    assert!(resets(&desc, "node-3").await.is_empty());
    let j = Journal::open(&journal_path).unwrap();
    assert!(
        j.in_flight().unwrap().is_empty(),
        "every intent has an outcome"
    );
    let actions: Vec<String> = j
        .entries(Some("node-1"))
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["graceful-restart", "cycle"]);
    let timeline: Vec<String> = j
        .timeline("node-1", 0)
        .unwrap()
        .into_iter()
        .map(|(_, w)| w)
        .collect();
    assert!(
        timeline.iter().any(|w| w.starts_with("resuming cycle")),
        "the interrupted cycle was resumed, not re-sent: {timeline:#?}"
    );
    let reports: Vec<_> = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .collect();
    assert_eq!(
        reports.len(),
        1,
        "one report for node-2, not one per restart"
    );
    // The report is summarised on the Node: a Warning Event and our condition.
    let api = desc["api"].as_str().unwrap();
    let events: Value = reqwest::get(format!(
        "{api}/apis/events.k8s.io/v1/namespaces/default/events"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let fault_events: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "FaultReport" && e["regarding"]["name"] == "node-2")
        .collect();
    assert_eq!(fault_events.len(), 1, "{events:#}");
    assert!(fault_events[0]["note"]
        .as_str()
        .unwrap()
        .contains("Drive 3"));
    let node: Value = reqwest::get(format!("{api}/api/v1/nodes/node-2"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let condition = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "OobRemediation")
        .cloned()
        .unwrap_or_else(|| panic!("no OobRemediation condition: {node:#}"));
    assert_eq!(condition["status"], "True");
    assert_eq!(node["spec"]["unschedulable"], true);
}

async fn in_process(
    nodes: usize,
    dir: &Path,
    adjust: impl FnOnce(&mut oob::config::Config),
) -> (
    SimFleet,
    std::sync::Arc<oob::service::Service>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let specs: Vec<HostSpec> = (1..=nodes)
        .map(|i| HostSpec::new(&format!("node-{i}")))
        .collect();
    let fleet = SimFleet::start(&specs, Timing::default()).await.unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, sim::PASSWORD).unwrap();
    let mut config = demo::demo_config(&fleet, dir, &pw, None).unwrap();
    adjust(&mut config);
    let client = oob::k8s::client(kube::Config::new(fleet.api.url().parse().unwrap())).unwrap();
    let (feed, _) = broadcast::channel(1024);
    let svc = oob::service::build(config, client, false, "oob-test", feed).unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let runner = tokio::spawn(svc.clone().run(stop));
    (fleet, svc, stop_tx, runner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_trips_the_breaker_and_nothing_is_power_cycled() {
    let dir = tempfile::tempdir().unwrap();
    let (fleet, svc, stop, runner) = in_process(20, dir.path(), |c| {
        c.policy.max_unhealthy_percent = 30;
        c.policy.max_concurrent = 2;
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // 40 % of the fleet goes dark at once.
    for h in fleet.hosts.iter().take(8) {
        h.hang();
    }
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if svc.exec.journal().breaker().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < until, "the breaker did not trip");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Keep watching: nothing mutates while the breaker is open.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let _ = stop.send(true);
    runner.await.unwrap();
    let total: usize = fleet
        .hosts
        .iter()
        .map(|h| h.bmc.mock.counters().resets.len())
        .sum();
    assert_eq!(total, 0, "no power request while the breaker is open");
    let b = svc.exec.journal().breaker().unwrap().unwrap();
    assert!(b.reason.contains("8 of 20"), "{}", b.reason);
    assert!(b.reason.contains("above the policy's 30%"), "{}", b.reason);
    let said = svc
        .exec
        .journal()
        .timeline("node-1", 0)
        .unwrap()
        .into_iter()
        .chain((2..=8).flat_map(|i| {
            svc.exec
                .journal()
                .timeline(&format!("node-{i}"), 0)
                .unwrap()
        }))
        .any(|(_, w)| w.contains("breaker TRIPPED"));
    assert!(said, "the timeline says the breaker tripped");
    assert!(svc.metrics.encode().contains("oob_breaker_open 1"));

    // A person resets it through the CLI; status says so.
    let config = dir.path().join("oob.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\njournal = \"{}\"\n",
            dir.path().join("journal.sqlite").display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let status = oob(&["--config", cfg, "-o", "json", "breaker", "status"], &[]).await;
    assert_eq!(status.json()["open"], true, "{}", status.all());
    let reset = oob(&["--config", cfg, "-o", "json", "breaker", "reset"], &[]).await;
    assert!(reset.json()["was"].as_str().unwrap().contains("8 of 20"));
    assert!(svc.exec.journal().breaker().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_more_remediations_run_at_once_than_the_policy_allows() {
    let dir = tempfile::tempdir().unwrap();
    let (fleet, svc, stop, _runner) = in_process(20, dir.path(), |c| {
        c.policy.max_unhealthy_percent = 30;
        c.policy.max_concurrent = 2;
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for h in fleet.hosts.iter().take(4) {
        h.hang();
    }
    let mut most = 0;
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let stages = svc.stages();
        let remediating = stages
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    Stage::SoftReboot { .. } | Stage::HardReboot { .. } | Stage::Fenced { .. }
                )
            })
            .count();
        most = most.max(remediating);
        let recovered = fleet.hosts.iter().take(4).all(|h| h.boots() == 1)
            && stages.iter().all(|(_, s)| matches!(s, Stage::Healthy));
        if recovered {
            break;
        }
        assert!(
            Instant::now() < until,
            "the four hung nodes did not all recover: {stages:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    assert!(
        most <= 2,
        "{most} remediations at once; the policy allows 2"
    );
    assert_eq!(most, 2, "the limit was reached, so the test exercised it");
    for h in fleet.hosts.iter().take(4) {
        let r: Vec<String> = h
            .bmc
            .mock
            .counters()
            .resets
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(r, ["GracefulRestart", "ForceOff", "On"], "{}", h.name);
    }
    assert!(svc.exec.journal().breaker().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_persons_commands_take_the_same_guards() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = start_fleet(
        dir.path(),
        3,
        &["--hang", "node-3", "--fault-after-ms", "300"],
    );
    let config = write_config(dir.path(), &fleet.desc, "");
    let cfg = config.to_str().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let desc = fleet.desc.clone();

    // The mock BMC's SEL holds two warnings (temperature, ECC limit): alive but degraded,
    // which `check` reports as problems found (exit 1).
    let check = oob(&["--config", cfg, "-o", "json", "check", "node-1"], &env).await;
    assert_eq!(check.code, 1, "{}", check.all());
    let v = check.json();
    assert_eq!(v["judgement"]["verdict"]["verdict"], "degraded", "{v:#}");
    assert_eq!(
        v["judgement"]["findings"].as_array().unwrap().len(),
        2,
        "{v:#}"
    );
    assert_eq!(v["identity"]["matches"], true, "{v:#}");
    // The service's own decision from the journaled position: degraded is not acted on.
    assert_eq!(v["stage"], "healthy", "{v:#}");
    assert_eq!(v["next"]["remedy"], "nothing", "{v:#}");
    assert_eq!(v["next"]["stage"], "healthy", "{v:#}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let plan = oob(&["--config", cfg, "-o", "json", "plan"], &env).await;
    let rows = plan.json()["plan"].as_array().unwrap().clone();
    let row = |n: &str| rows.iter().find(|r| r["node"] == n).unwrap().clone();
    assert_eq!(row("node-1")["remedy"], "nothing");
    assert!(
        row("node-3")["verdict"]
            .as_str()
            .unwrap()
            .starts_with("down"),
        "{rows:#?}"
    );
    assert!(
        resets(&desc, "node-3").await.is_empty(),
        "plan acts on nothing"
    );
    let j = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
    assert!(
        j.timeline("node-3", 0).unwrap().is_empty() && j.position("node-3").unwrap().is_none(),
        "plan writes nothing: {:?}",
        j.timeline("node-3", 0)
    );

    let dry = oob(
        &[
            "--config",
            cfg,
            "--dry-run",
            "-o",
            "json",
            "cycle",
            "node-2",
        ],
        &env,
    )
    .await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        resets(&desc, "node-2").await.is_empty(),
        "dry run sends nothing"
    );

    let cycle = oob(&["--config", cfg, "-o", "json", "cycle", "node-1"], &env).await;
    assert_eq!(cycle.code, 0, "{}", cycle.all());
    assert_eq!(cycle.json()["verified"], true);
    assert_eq!(resets(&desc, "node-1").await, ["ForceOff", "On"]);

    // The inventory says node-2 is another machine: refused, nothing sent.
    let wrong_cfg = wrong_serial_config(dir.path(), &config);
    let refused = oob(
        &["--config", wrong_cfg.to_str().unwrap(), "cycle", "node-2"],
        &env,
    )
    .await;
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(refused.stderr.contains("SIM-9999"), "{}", refused.all());
    assert!(resets(&desc, "node-2").await.is_empty());

    // A hung host ignores the soft reboot; the hard cycle brings it back, verified by bootID.
    let reboot = oob(
        &[
            "--config",
            cfg,
            "-o",
            "json",
            "reboot",
            "node-3",
            "--soft-timeout",
            "3",
        ],
        &env,
    )
    .await;
    assert_eq!(reboot.code, 0, "{}", reboot.all());
    assert_eq!(reboot.json()["detail"], "hard reboot verified");
    assert_eq!(
        resets(&desc, "node-3").await,
        ["GracefulRestart", "ForceOff", "On"]
    );
    // A host that honours the graceful restart: verified by its new bootID, no hard cycle.
    let soft = oob(&["--config", cfg, "-o", "json", "reboot", "node-1"], &env).await;
    assert_eq!(soft.code, 0, "{}", soft.all());
    assert_eq!(soft.json()["detail"], "soft reboot verified");
    assert!(
        soft.stderr.contains("soft reboot verified: bootID"),
        "{}",
        soft.all()
    );
    assert_eq!(
        resets(&desc, "node-1").await,
        ["ForceOff", "On", "GracefulRestart"]
    );

    let ok = oob(&["--config", cfg, "-o", "json", "config", "check"], &env).await;
    assert_eq!(ok.code, 0, "{}", ok.all());
    assert_eq!(ok.json()["effective"]["policy"]["max_concurrent"], 2);
    let missing =
        std::fs::read_to_string(&config)
            .unwrap()
            .replacen("bmc-password", "no-such-file", 1);
    let missing_cfg = dir.path().join("missing.toml");
    std::fs::write(&missing_cfg, missing).unwrap();
    let bad = oob(
        &[
            "--config",
            missing_cfg.to_str().unwrap(),
            "-o",
            "json",
            "config",
            "check",
        ],
        &env,
    )
    .await;
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(bad.json()["problems"][0]
        .as_str()
        .unwrap()
        .contains("no-such-file"));
    assert!(!bad.all().contains(sim::PASSWORD) && !ok.all().contains(sim::PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_reports_health_and_metrics_honours_pause_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = start_fleet(
        dir.path(),
        3,
        &["--hang", "node-2", "--fault-after-ms", "1500"],
    );
    let config = write_config(dir.path(), &fleet.desc, "");
    let api = fleet.desc["api"].as_str().unwrap().to_owned();
    // A person paused automation for node-2 before it hangs.
    let patched = reqwest::Client::new()
        .patch(format!("{api}/api/v1/nodes/node-2"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"metadata":{"annotations":{"oob.dev/paused":"true"}}}"#)
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success(), "{}", patched.status());
    let port = crate::common::free_port();
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_oob"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for("/healthz", Duration::from_secs(20), || async {
        reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .status()
        .is_success());
    tokio::time::sleep(Duration::from_secs(7)).await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "oob_probes_total{result=\"up\"}",
        "oob_leader 1",
        "oob_bmc_call_seconds_bucket",
        "oob_machines{stage=\"healthy\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    assert!(
        resets(&fleet.desc, "node-2").await.is_empty(),
        "a paused node is left alone"
    );
    let j = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
    let said = j
        .timeline("node-2", 0)
        .unwrap()
        .iter()
        .any(|(_, w)| w.contains("automation paused"));
    assert!(said);
    // SIGTERM: stops between steps and exits 0.
    let pid = serve.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), serve.wait())
        .await
        .expect("oob serve did not stop within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_join_the_inventory_by_annotation_with_a_secret_credential() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let fleet = start_fleet(dir.path(), 2, &[]);
    let api = fleet.desc["api"].as_str().unwrap().to_owned();
    let host = fleet.desc["hosts"][1].clone();
    let http = reqwest::Client::new();
    let password = base64::engine::general_purpose::STANDARD.encode(sim::PASSWORD);
    for (name, labels) in [
        (
            "bmc-node-2",
            serde_json::json!({"oob.dev/bmc-credentials": "true"}),
        ),
        ("unlabelled", serde_json::json!({})),
    ] {
        let created = http
            .post(format!("{api}/api/v1/namespaces/oob-system/secrets"))
            .json(&serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "oob-system", "labels": labels},
                "data": {"password": password},
            }))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{}", created.status());
    }
    let annotate = |node: &str, secret: &str, host: &serde_json::Value| {
        let body = serde_json::json!({"metadata": {"annotations": {
            "oob.dev/bmc": host["bmc"],
            "oob.dev/bmc-credentials": format!("admin:secret:{secret}"),
            "oob.dev/serial": host["serial"],
            "oob.dev/location": "fra1/hall-2/r07/U33",
        }}});
        http.patch(format!("{api}/api/v1/nodes/{node}"))
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
    };
    let patched = annotate("node-2", "oob-system/bmc-node-2", &host)
        .await
        .unwrap();
    assert!(patched.status().is_success());
    // A config without machines: the inventory comes from the cluster, BMCs on loopback.
    let config = dir.path().join("oob.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\nliveness = \"ssh-port\"\njournal = \"{}/journal.sqlite\"\n\
             [inventory]\nbmc_networks = [\"127.0.0.0/8\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let plan = oob(&["--config", cfg, "-o", "json", "plan"], &env).await;
    let rows = plan.json()["plan"].as_array().unwrap().clone();
    let nodes: Vec<&str> = rows.iter().map(|r| r["node"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["node-2"], "{}", plan.all());
    let check = oob(&["--config", cfg, "-o", "json", "check", "node-2"], &env).await;
    let v = check.json();
    assert_eq!(v["identity"]["matches"], true, "{v:#}");
    assert_eq!(v["location"]["rack"], "r07");
    let cycle = oob(&["--config", cfg, "-o", "json", "cycle", "node-2"], &env).await;
    assert_eq!(cycle.code, 0, "{}", cycle.all());
    assert_eq!(resets(&fleet.desc, "node-2").await, ["ForceOff", "On"]);
    assert!(!cycle.all().contains(sim::PASSWORD));

    // A Secret without the label cannot be named by an annotation: nothing sent to the BMC.
    let other = fleet.desc["hosts"][0].clone();
    let patched = annotate("node-1", "unlabelled", &other).await.unwrap();
    assert!(patched.status().is_success());
    let cycle = oob(&["--config", cfg, "-o", "json", "cycle", "node-1"], &env).await;
    assert_ne!(cycle.code, 0, "{}", cycle.all());
    assert!(cycle.all().contains("not labelled"), "{}", cycle.all());
    assert!(resets(&fleet.desc, "node-1").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_serve_says_what_it_would_do_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = start_fleet(
        dir.path(),
        3,
        &["--hang", "node-1", "--fault-after-ms", "500"],
    );
    let config = write_config(dir.path(), &fleet.desc, "");
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_oob"))
        .arg("--config")
        .arg(&config)
        .args(["--dry-run", "serve"])
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let journal_path = dir.path().join("journal.sqlite");
    // Long enough for the soft-reboot wait (4 s) to pass and the hard step to be "done".
    wait_for(
        "the dry-run hard reboot",
        Duration::from_secs(40),
        || async {
            Journal::open(&journal_path)
                .and_then(|j| j.timeline("node-1", 0))
                .map(|t| {
                    t.iter()
                        .any(|(_, w)| w.contains("dry run: would power cycle"))
                })
                .unwrap_or(false)
        },
    )
    .await;
    serve.kill().await.unwrap();
    assert!(
        resets(&fleet.desc, "node-1").await.is_empty(),
        "a dry run sends nothing"
    );
    let j = Journal::open(&journal_path).unwrap();
    assert!(j.entries(None).unwrap().is_empty(), "no action journaled");
    assert_eq!(
        j.position("node-1").unwrap(),
        None,
        "no position a real run would resume"
    );
    let api = fleet.desc["api"].as_str().unwrap();
    let node: Value = reqwest::get(format!("{api}/api/v1/nodes/node-1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(node["spec"]["unschedulable"], true);
}

/// `oob power VERB NODE` on an inventory machine goes through the executor like the service:
/// a wrong serial is refused (exit 2, in the node's timeline, nothing sent); the right one is
/// journaled and verified; a node locked by another actor is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_verbs_on_an_inventory_machine_take_the_guards() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = start_fleet(dir.path(), 2, &[]);
    let config = write_config(dir.path(), &fleet.desc, "");
    let cfg = config.to_str().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let desc = fleet.desc.clone();
    let journal_path = dir.path().join("journal.sqlite");

    let wrong_cfg = wrong_serial_config(dir.path(), &config);
    let refused = oob(
        &[
            "--config",
            wrong_cfg.to_str().unwrap(),
            "power",
            "cycle",
            "node-2",
        ],
        &env,
    )
    .await;
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(refused.stderr.contains("SIM-9999"), "{}", refused.all());
    assert!(resets(&desc, "node-2").await.is_empty(), "nothing sent");
    let j = Journal::open(&journal_path).unwrap();
    assert!(
        j.timeline("node-2", 0)
            .unwrap()
            .iter()
            .any(|(_, w)| w.starts_with("identity check FAILED")),
        "the refusal is journaled"
    );

    let cycle = oob(
        &["--config", cfg, "-o", "json", "power", "cycle", "node-1"],
        &env,
    )
    .await;
    assert_eq!(cycle.code, 0, "{}", cycle.all());
    assert_eq!(cycle.json()["verified"], true, "{}", cycle.all());
    assert_eq!(resets(&desc, "node-1").await, ["ForceOff", "On"]);
    let entries = Journal::open(&journal_path)
        .unwrap()
        .entries(Some("node-1"))
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].action, "cycle");
    assert_eq!(entries[0].outcome.as_deref(), Some("done"));

    // Another actor holds node-2's lock: the command waits for nobody and sends nothing.
    let api = desc["api"].as_str().unwrap();
    let now = k8s_openapi::jiff::Timestamp::now();
    // The refused attempt above took node-2's lock and released it; now another actor holds it.
    let url =
        format!("{api}/apis/coordination.k8s.io/v1/namespaces/oob-system/leases/oob-node-node-2");
    let http = reqwest::Client::new();
    let mut lease: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    lease["spec"] = serde_json::json!({
        "holderIdentity": "someone-else", "leaseDurationSeconds": 600,
        "acquireTime": format!("{now:.6}"), "renewTime": format!("{now:.6}")
    });
    let taken = http.put(&url).json(&lease).send().await.unwrap();
    assert!(taken.status().is_success(), "{:?}", taken.text().await);
    let busy = oob(&["--config", cfg, "power", "off", "node-2"], &env).await;
    assert_eq!(busy.code, 2, "{}", busy.all());
    assert!(busy.stderr.contains("locked"), "{}", busy.all());
    assert!(resets(&desc, "node-2").await.is_empty());

    // An ad hoc --bmc target stays a raw call and says so.
    let host = desc["hosts"][1]["bmc"].as_str().unwrap();
    let raw = oob(
        &[
            "-o",
            "json",
            "power",
            "on",
            "--bmc",
            host,
            "--user",
            "admin",
            "--password-file",
        ]
        .iter()
        .copied()
        .chain([dir.path().join("bmc-password").to_str().unwrap()])
        .collect::<Vec<_>>(),
        &[],
    )
    .await;
    assert_eq!(raw.code, 0, "{}", raw.all());
    assert!(raw.stderr.contains("raw BMC call"), "{}", raw.all());
    assert!(raw.stderr.contains("no identity check"), "{}", raw.all());
}
