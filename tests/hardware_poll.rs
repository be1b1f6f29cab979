//! `oob serve` polls the host's drives and NICs over SSH at `hardware_interval`: a real
//! `sshd` on loopback, a stand-in `smartctl` on the host that answers with real recorded
//! outputs from `../shared/peers/smart-corpus`, and sysfs NIC counters read for real. A
//! drive whose output turns FAILED between two polls is a critical finding: the live node
//! is cordoned and drained by eviction (never power-cycled) and reported, with the drive's
//! SMART findings as the report's evidence.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oob::remedy::journal::Journal;
use oob::remedy::stage::Stage;
use oob_mocks::kube::FakeApi;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::common::sshd::Sshd;
use crate::common::{free_port, mock, mock_config, peers, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drive_that_turns_failed_is_cordoned_drained_and_reported() {
    let sshd = Sshd::start(None, free_port());
    sshd.wait_ready();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = peers().join("smart-corpus/json");
    let failed_flag = d.join("drive-failed");
    let poll_log = d.join("polls");
    let smartctl = d.join("smartctl");
    std::fs::write(
        &smartctl,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  *--scan-open*) printf '{{\"devices\":[{{\"name\":\"/dev/nvme0\",\"type\":\"nvme\"}}]}}' ;;\n  \
             *nvme0*) echo poll >> '{log}'; if [ -e '{flag}' ]; then cat '{bad}'; exit 8; else cat '{good}'; fi ;;\nesac\n",
            flag = failed_flag.display(),
            log = poll_log.display(),
            good = corpus.join("pysmart__nvme_5_issue_46__nvmessd.json").display(),
            bad = corpus
                .join("smartctl_exporter__nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json")
                .display(),
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&smartctl)
        .status()
        .unwrap();

    let bmc = mock(mock_config()).await;
    let uuid = "6f1c7a52-0b3e-4d8a-9c41-000000000001";
    let fixture = json!({
        "nodes": [{
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "annotations": {}},
            "spec": {},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "nodeInfo": {"systemUUID": uuid, "bootID": "b1"}
            }
        }],
        "pods": [{"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "default", "name": "web-1", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-7d9f", "uid": "u-web-7d9f", "controller": true}]},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "registry.example/app:1"}]},
            "status": {"phase": "Running"}}]
    });
    let api = FakeApi::start(&fixture, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    std::fs::write(d.join("pw"), PASSWORD).unwrap();
    let text = format!(
        "[service]\nprobe_interval_ms = 500\nhardware_interval_ms = 1500\nprobe_timeout_ms = 500\nliveness = \"ssh-port\"\n\
         journal = \"{d}/journal.sqlite\"\nreports_dir = \"{d}/reports\"\nlisten = \"127.0.0.1:0\"\n\
         [policy]\ndrain_timeout_s = 10\ncooldown_s = 0\nmax_unhealthy_percent = 100\n\
         [[machines]]\nname = \"node-1\"\nhost = \"127.0.0.1\"\nbmc = \"{bmc}/redfish/v1/Systems/1\"\n\
         credentials = {{ user = \"admin\", password_file = \"{d}/pw\" }}\n\
         ssh = {{ user = \"root\", key = \"{key}\", known_hosts = \"{kh}\", port = {port}, smartctl = \"{smartctl}\" }}\n",
        d = d.display(),
        bmc = bmc.url(),
        key = sshd.user_key.display(),
        kh = sshd.known_hosts("127.0.0.1").display(),
        port = sshd.port,
        smartctl = smartctl.display(),
    );
    let config = oob::config::Config::parse("hardware.toml", &text).unwrap();
    let client = oob::k8s::client(kube::Config::new(api.url().parse().unwrap())).unwrap();
    let (feed, _) = broadcast::channel(1024);
    let svc = oob::service::build(config, client, false, "oob-test", feed).unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let runner = tokio::spawn(Arc::clone(&svc).run(stop));
    let journal = || Journal::open(&d.join("journal.sqlite")).unwrap();

    // Two polls of a healthy drive (the stand-in counts them): a baseline, no finding.
    let polls = || {
        std::fs::read_to_string(&poll_log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let until = Instant::now() + Duration::from_secs(30);
    while polls() < 2 {
        assert!(Instant::now() < until, "two host polls within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = journal().position("node-1").unwrap().unwrap();
    assert_eq!(
        p.stage,
        Stage::Healthy,
        "{:#?}",
        journal().timeline("node-1", 0)
    );
    assert!(p.findings.is_empty(), "{:?}", p.findings);
    let baseline = p.host_baseline.expect("the host poll set a baseline");
    assert!(baseline.drives.contains_key("/dev/nvme0"), "{baseline:?}");
    assert!(
        baseline.nics.contains_key("lo"),
        "sysfs counters read: {baseline:?}"
    );

    // The drive fails.
    std::fs::write(&failed_flag, "").unwrap();
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let p = journal().position("node-1").unwrap().unwrap();
        if matches!(p.stage, Stage::AwaitReplacement { .. }) {
            break;
        }
        assert!(
            Instant::now() < until,
            "not reported: {:#?}",
            journal().timeline("node-1", 0).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    let _ = runner.await;

    let node = api.api.node("node-1").unwrap();
    assert_eq!(node["spec"]["unschedulable"], true, "cordoned: {node:#}");
    assert!(
        !api.api.pods().iter().any(|p| p.contains("web-1")),
        "drained by eviction: {:?}",
        api.api.pods()
    );
    assert!(
        bmc.mock.counters().resets.is_empty(),
        "a live node with a failing drive is never power-cycled"
    );
    let report = std::fs::read_dir(d.join("reports"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .expect("a JSON report");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == "smart_overall_failed" && f["component"] == "/dev/nvme0"),
        "{report:#}"
    );
    assert!(
        report["summary"].as_str().unwrap().contains("/dev/nvme0"),
        "{report:#}"
    );
    let timeline: Vec<String> = journal()
        .timeline("node-1", 0)
        .unwrap()
        .into_iter()
        .map(|(_, w)| w)
        .collect();
    assert!(
        timeline
            .iter()
            .any(|l| l.starts_with("new critical finding: smart_overall_failed")),
        "{timeline:#?}"
    );
}
