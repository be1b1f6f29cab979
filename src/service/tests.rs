//! The per-machine driver (probe → decide → admit → execute → fold) over fakes of every seam,
//! on tokio's paused clock: hosts that go dark on cue, stateful BMCs, a cluster of Nodes with
//! leases, a real journal in a temporary directory. No process, no network.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use super::Service;
use crate::bmc::{PowerRequest, SelEntry, Severity};
use crate::config::Config;
use crate::remedy::executor::{Deps, Executor, Settings, PAUSE_ANNOTATION};
use crate::remedy::guard::CONTROL_PLANE_LABEL;
use crate::remedy::journal::Journal;
use crate::remedy::stage::Stage;
use crate::testing::{
    said, BmcState, FakeCluster, FakeConnector, FakeEpisodes, FakeHardware, FakeHosts, Log,
    TokioClock,
};

struct Fleet {
    svc: Arc<Service>,
    hosts: Arc<FakeHosts>,
    hardware: Arc<FakeHardware>,
    bmcs: Vec<Arc<Mutex<BmcState>>>,
    cluster: Arc<FakeCluster>,
    log: Log,
    dir: tempfile::TempDir,
}

/// `n` machines `node-1..n` (host 127.0.0.1i, BMC port 900i, serial SN-i); `policy` is the
/// body of a `[policy]` table.
fn fleet(n: usize, policy: &str) -> Fleet {
    fleet_with(n, policy, "")
}

/// The same, with more tables (`[replacement]`…) in the config.
fn fleet_with(n: usize, policy: &str, tables: &str) -> Fleet {
    fleet_full(n, policy, tables, None)
}

/// The same in cluster mode: the journal shared through `episodes`.
fn fleet_shared(n: usize, policy: &str, episodes: Arc<FakeEpisodes>) -> Fleet {
    fleet_full(n, policy, "", Some(episodes))
}

fn fleet_full(n: usize, policy: &str, tables: &str, episodes: Option<Arc<FakeEpisodes>>) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let mut toml = format!(
        "[service]\nliveness = \"ssh-port\"\nprobe_interval_ms = 2000\nprobe_timeout_ms = 500\nhardware_interval_ms = 10000\n\n[policy]\n{policy}\n\n{tables}\n"
    );
    for i in 1..=n {
        toml.push_str(&format!(
            "\n[[machines]]\nname = \"node-{i}\"\nhost = \"127.0.0.{}\"\nbmc = \"redfish://127.0.0.1:{}/redfish/v1/Systems/1\"\nserial = \"SN-{i}\"\ncredentials = {{ user = \"admin\", password_secret = \"oob-system/bmc-node-{i}\" }}\nssh = {{ user = \"root\", key = \"/nonexistent\", host_key = \"ssh-ed25519 AAAA\" }}\n",
            10 + i,
            9000 + i
        ));
    }
    let mut config = Config::parse("fleet.toml", &toml).unwrap();
    config.service.reports_dir = dir.path().join("reports");
    let log: Log = Arc::default();
    let bmcs: Vec<_> = (1..=n).map(|i| BmcState::on(&format!("SN-{i}"))).collect();
    let names: Vec<String> = (1..=n).map(|i| format!("node-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let cluster = Arc::new(FakeCluster::new(&names, &log));
    let hosts = Arc::new(FakeHosts::default());
    let deps = Deps {
        journal: Arc::new(Journal::open(&dir.path().join("journal.sqlite")).unwrap()),
        nodes: cluster.clone(),
        bmcs: Arc::new(FakeConnector {
            bmcs: bmcs
                .iter()
                .enumerate()
                .map(|(i, b)| (9001 + u16::try_from(i).unwrap(), b.clone()))
                .collect(),
            log: log.clone(),
        }),
        hosts: hosts.clone(),
        clock: Arc::new(TokioClock::new(1_800_000_000_000)),
    };
    let settings = Settings {
        policy: config.policy.clone(),
        holder: "oob-test".into(),
        reports_dir: config.service.reports_dir.clone(),
        sinks: config.report.sink_names(),
        node_lock: crate::timeouts::NODE_LOCK,
        dry_run: false,
        feed: broadcast::channel(256).0,
    };
    let mut exec = Executor::new(deps, settings);
    if let Some(e) = episodes {
        exec = exec.with_episodes(e);
    }
    let exec = Arc::new(exec);
    let hardware = Arc::new(FakeHardware::default());
    for i in 1..=n {
        hardware.edit(&format!("node-{i}"), |p| p.rx_packets = 1_000_000);
    }
    let svc = Service::new(config, exec, None)
        .unwrap()
        .with_liveness(hosts.clone())
        .with_host_hardware(hardware.clone())
        .with_rejoin(Arc::new(crate::testing::FakeRejoin::default()));
    Fleet {
        svc: Arc::new(svc),
        hosts,
        hardware,
        bmcs,
        cluster,
        log,
        dir,
    }
}

impl Fleet {
    /// `count` rounds of every machine, one probe interval apart.
    async fn rounds(&self, count: usize) {
        for _ in 0..count {
            for m in self.svc.machines.clone() {
                self.svc.round(&m).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    fn go_dark(&self, i: usize) {
        self.hosts.set_dark(&format!("127.0.0.{}", 10 + i), true);
        self.cluster
            .edit(&format!("node-{i}"), |n| n.ready = Some("Unknown".into()));
    }

    fn come_back(&self, i: usize, boot_id: &str) {
        self.hosts.set_dark(&format!("127.0.0.{}", 10 + i), false);
        self.cluster.edit(&format!("node-{i}"), |n| {
            n.ready = Some("True".into());
            n.boot_id = Some(boot_id.into());
        });
    }

    fn stage(&self, i: usize) -> Stage {
        let name = format!("node-{i}");
        self.svc
            .stages()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    }

    /// How many of the hosts' recorded actions `which` picks.
    fn host_actions(&self, which: impl Fn(&str) -> bool) -> usize {
        self.hosts.actions().iter().filter(|a| which(a)).count()
    }

    fn requests(&self, i: usize) -> Vec<PowerRequest> {
        self.bmcs[i - 1].lock().unwrap().requests.clone()
    }

    fn timeline(&self, i: usize) -> String {
        crate::testing::timeline(self.svc.exec.journal(), &format!("node-{i}"))
    }

    /// Every report file's text.
    fn reports(&self) -> String {
        std::fs::read_dir(self.dir.path().join("reports"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }

    /// node-1 was cordoned, drained by eviction and reported, with no power request, and
    /// nothing touched its three neighbours.
    fn only_node_1_fenced_for_hardware(&self) {
        let l = said(&self.log);
        assert!(l.contains(&"cordon node-1".to_owned()), "{l:?}");
        assert!(l.contains(&"drain node-1 force=false".to_owned()), "{l:?}");
        assert!(
            l.iter().any(|x| x == "event node-1 Warning FaultReport"),
            "{l:?}"
        );
        assert!(self.requests(1).is_empty(), "no power action for hardware");
        assert!(
            !l.iter()
                .any(|x| ["node-2", "node-3", "node-4"].iter().any(|n| x.contains(n))),
            "{l:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_host_is_confirmed_soft_then_hard_rebooted_and_recovery_is_verified_by_boot_id() {
    // Five machines: one dark is 20 %, under the storm guard's default 30 %.
    let f = fleet(
        5,
        "suspect_after = 2\nconfirm_timeout_s = 60\nsoft_reboot_timeout_s = 60\nhard_reboot_timeout_s = 300",
    );
    f.rounds(2).await;
    assert_eq!(f.stage(1), Stage::Healthy);
    f.go_dark(1);
    f.rounds(2).await;
    assert!(
        matches!(f.stage(1), Stage::SoftReboot { .. }),
        "{:?}\n{}",
        f.stage(1),
        f.timeline(1)
    );
    assert_eq!(f.requests(1), [PowerRequest::GracefulRestart]);
    // The soft reboot does not bring it back: after its timeout, a verified power cycle.
    f.rounds(35).await;
    assert!(
        matches!(f.stage(1), Stage::HardReboot { .. }),
        "{:?}",
        f.stage(1)
    );
    assert_eq!(
        f.requests(1),
        [
            PowerRequest::GracefulRestart,
            PowerRequest::ForceOff,
            PowerRequest::On
        ]
    );
    f.come_back(1, "boot-b");
    f.rounds(1).await;
    assert_eq!(f.stage(1), Stage::Healthy);
    let t = f.timeline(1);
    assert!(t.contains("confirming out of band"), "{t}");
    assert!(
        t.contains("reboot verified (bootID boot-a → boot-b)"),
        "{t}"
    );
    // The neighbours were never touched.
    assert!((2..=5).all(|i| f.requests(i).is_empty()));
    // Every power request went out under the node's lock.
    let l = said(&f.log);
    assert!(l.iter().any(|x| x == "lock oob-node-node-1"), "{l:?}");
}

/// Another remediator takes the node while oob's power cycle waits for the machine to go off:
/// the step stops, its position stays (as after a crash), and once the node is free again
/// the same step is resumed from the journal: the power-off is never sent twice, and the node
/// is not judged afresh into another remedy.
#[tokio::test(start_paused = true)]
async fn a_step_whose_lock_is_lost_is_resumed_never_begun_again() {
    let f = fleet(
        5,
        "suspect_after = 2\nconfirm_timeout_s = 60\nsoft_reboot_timeout_s = 60\nhard_reboot_timeout_s = 300",
    );
    f.rounds(2).await;
    f.go_dark(1);
    f.rounds(2).await;
    assert_eq!(f.requests(1), [PowerRequest::GracefulRestart]);
    // The BMC takes the power-off but the machine never gets there; the moment it was sent,
    // Self Node Remediation takes the node's medik8s lease.
    f.bmcs[0].lock().unwrap().stuck = true;
    let (bmc, cluster) = (f.bmcs[0].clone(), f.cluster.clone());
    let lease = crate::k8s::lease::node_lock_name("node-1");
    let taker = tokio::spawn(async move {
        while !bmc
            .lock()
            .unwrap()
            .requests
            .contains(&PowerRequest::ForceOff)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster
            .held
            .lock()
            .unwrap()
            .insert(lease, "self-node-remediation".into());
    });
    f.rounds(32).await;
    taker.await.unwrap();
    let offs = |f: &Fleet| {
        f.requests(1)
            .iter()
            .filter(|r| **r == PowerRequest::ForceOff)
            .count()
    };
    assert_eq!(offs(&f), 1, "{:?}\n{}", f.requests(1), f.timeline(1));
    let t = f.timeline(1);
    assert!(t.contains("per-node lock lost"), "{t}");
    assert!(
        matches!(f.stage(1), Stage::HardReboot { .. }),
        "the position stays: {:?}\n{t}",
        f.stage(1)
    );
    // Still held: the resumed step waits, said once.
    f.rounds(5).await;
    assert_eq!(offs(&f), 1);
    assert_eq!(
        f.timeline(1).matches("oob yields").count(),
        1,
        "{}",
        f.timeline(1)
    );
    // Free again: the same step resumes from the journal, nothing is sent twice.
    f.cluster.held.lock().unwrap().clear();
    f.bmcs[0].lock().unwrap().stuck = false;
    f.rounds(3).await;
    let t = f.timeline(1);
    assert!(t.contains("not sending it again"), "{t}");
    assert_eq!(offs(&f), 1, "{:?}\n{t}", f.requests(1));
    assert!(
        !f.requests(1)[1..].contains(&PowerRequest::GracefulRestart),
        "not judged afresh into another soft reboot: {:?}",
        f.requests(1)
    );
}

#[tokio::test(start_paused = true)]
async fn node_problem_detector_kernel_deadlock_on_a_ready_node_gets_the_reboot_path() {
    let f = fleet(5, "suspect_after = 2");
    f.rounds(2).await;
    // The host answers and the kubelet still says Ready; node-problem-detector does not.
    f.cluster.edit("node-1", |n| {
        n.problems = vec![(
            "KernelDeadlock".into(),
            "DockerHung: task docker:7 blocked for more than 300 seconds.".into(),
        )];
    });
    f.rounds(2).await;
    assert!(
        matches!(f.stage(1), Stage::SoftReboot { .. }),
        "{:?}\n{}",
        f.stage(1),
        f.timeline(1)
    );
    // SSH answers: the host checks (nothing a restart fixes), then `systemctl reboot` over
    // SSH, no BMC action.
    assert_eq!(
        f.hosts.actions(),
        ["checks 127.0.0.11", "reboot 127.0.0.11"]
    );
    assert!(f.requests(1).is_empty());
    let t = f.timeline(1);
    assert!(t.contains("KernelDeadlock=True"), "{t}");
    assert!(t.contains("down (os-problem)"), "{t}");
    // After the reboot NPD starts afresh: the condition is gone, the bootID new.
    f.cluster.edit("node-1", |n| {
        n.problems.clear();
        n.boot_id = Some("boot-b".into());
    });
    f.rounds(1).await;
    assert_eq!(f.stage(1), Stage::Healthy, "{}", f.timeline(1));
    assert!((2..=5).all(|i| f.requests(i).is_empty()));
}

#[tokio::test(start_paused = true)]
async fn an_os_problem_is_cordoned_rebooted_over_ssh_and_uncordoned_only_once_the_health_check_passes(
) {
    use crate::testing::{healthy_host, unit};
    let f = fleet(5, "suspect_after = 2\nsoft_reboot_timeout_s = 600");
    f.rounds(2).await;
    // The host answers (ping, SSH) but its kubelet is NotReady: an OS problem.
    f.cluster.edit("node-1", |n| n.ready = Some("False".into()));
    f.rounds(2).await;
    assert!(
        matches!(f.stage(1), Stage::SoftReboot { .. }),
        "{:?}\n{}",
        f.stage(1),
        f.timeline(1)
    );
    let l = said(&f.log);
    let cordon = l
        .iter()
        .position(|x| x == "cordon node-1")
        .expect("cordoned first");
    assert!(l[cordon + 1].contains("oob.dev/cordoned"), "{l:?}");
    assert_eq!(
        f.hosts.actions(),
        ["checks 127.0.0.11", "reboot 127.0.0.11"],
        "looked inside (nothing to restart), then systemctl reboot over SSH"
    );
    assert!(f.requests(1).is_empty(), "no BMC action while SSH answers");
    // Back on a new boot and Ready, but the kubelet keeps restarting: not recovered.
    let mut looping = healthy_host();
    looping.kubelet = Some(unit("activating", "auto-restart"));
    f.hosts.set_os("127.0.0.11", looping);
    f.cluster.edit("node-1", |n| {
        n.ready = Some("True".into());
        n.boot_id = Some("boot-b".into());
    });
    f.rounds(1).await;
    assert!(
        matches!(f.stage(1), Stage::SoftReboot { .. }),
        "{:?}",
        f.stage(1)
    );
    let t = f.timeline(1);
    assert!(t.contains("health check before uncordon failed"), "{t}");
    assert!(!said(&f.log).iter().any(|x| x == "uncordon node-1"));
    // Not asked again every round: once per 30 s.
    f.rounds(5).await;
    let checks = |f: &Fleet| f.host_actions(|a| a.starts_with("checks"));
    // The look at confirmation, then one health check in these 12 s.
    assert_eq!(checks(&f), 2, "{:?}\n{}", f.hosts.actions(), f.timeline(1));
    assert_eq!(t.matches("health check before uncordon failed").count(), 1);
    // The kubelet settles: the next check passes, oob's cordon is lifted.
    f.hosts.set_os("127.0.0.11", healthy_host());
    f.rounds(12).await;
    assert_eq!(f.stage(1), Stage::Healthy, "{}", f.timeline(1));
    assert!(said(&f.log).iter().any(|x| x == "uncordon node-1"));
    let t = f.timeline(1);
    assert!(t.contains("health check passed"), "{t}");
    assert!(
        t.contains("reboot verified (bootID boot-a → boot-b)"),
        "{t}"
    );
    assert!(f.requests(1).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stopped_kubelet_is_restarted_over_ssh_and_nothing_is_rebooted() {
    use crate::testing::{healthy_host, unit};
    let f = fleet(5, "suspect_after = 2");
    f.rounds(2).await;
    let mut stopped = healthy_host();
    stopped.kubelet = Some(unit("inactive", "dead"));
    f.hosts.set_os("127.0.0.11", stopped);
    f.cluster.edit("node-1", |n| n.ready = Some("False".into()));
    f.rounds(2).await;
    assert!(
        matches!(f.stage(1), Stage::Repair { .. }),
        "{:?}\n{}",
        f.stage(1),
        f.timeline(1)
    );
    assert_eq!(
        f.hosts.actions(),
        [
            "checks 127.0.0.11",
            "checks 127.0.0.11",
            "restart 127.0.0.11 kubelet.service"
        ],
        "the look that judged it, the repair's own fresh look, the restart"
    );
    let t = f.timeline(1);
    assert!(t.contains("down (unit-down)"), "{t}");
    assert!(t.contains("restart-kubelet would fix it"), "{t}");
    // The kubelet comes back: Ready, the health check passes, oob's cordon is lifted.
    f.hosts.set_os("127.0.0.11", healthy_host());
    f.cluster.edit("node-1", |n| n.ready = Some("True".into()));
    f.rounds(1).await;
    assert_eq!(f.stage(1), Stage::Healthy, "{}", f.timeline(1));
    assert!(said(&f.log).iter().any(|x| x == "uncordon node-1"));
    assert!(
        !f.hosts.actions().iter().any(|a| a.starts_with("reboot")),
        "{:?}",
        f.hosts.actions()
    );
    assert!(f.requests(1).is_empty(), "no BMC action");
    // The restart is journaled: the same episode never sends it twice.
    let entries = f.svc.exec.journal().entries(Some("node-1")).unwrap();
    let restarts: Vec<_> = entries
        .iter()
        .filter(|e| e.key.ends_with("/repair"))
        .collect();
    assert_eq!(restarts.len(), 1);
    assert_eq!(restarts[0].action, "restart kubelet.service");
}

#[tokio::test(start_paused = true)]
async fn a_full_var_is_never_restarted_or_rebooted_but_drained_and_reported_with_the_fix() {
    use crate::health::host::Usage;
    use crate::testing::{healthy_host, unit};
    let f = fleet(4, "suspect_after = 2");
    f.rounds(2).await;
    let mut full = healthy_host();
    full.kubelet = Some(unit("failed", "failed"));
    full.disk = Usage::parse_df(
        "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda3 1000 995 5 100% /var\n",
    );
    f.hosts.set_os("127.0.0.11", full);
    f.cluster.edit("node-1", |n| n.ready = Some("False".into()));
    f.rounds(4).await;
    let actions = f.hosts.actions();
    assert!(
        !actions
            .iter()
            .any(|a| a.starts_with("restart") || a.starts_with("reboot")),
        "{actions:?}"
    );
    f.only_node_1_fenced_for_hardware();
    assert!(
        matches!(f.stage(1), Stage::AwaitReplacement { .. }),
        "{:?}\n{}",
        f.stage(1),
        f.timeline(1)
    );
    let t = f.timeline(1);
    assert!(
        t.contains("new critical finding: disk_full (/var 100% of space used"),
        "{t}"
    );
    let report = f.reports();
    assert!(report.contains("no restart fixes it"), "{report}");
    assert!(
        report.contains("disk_full") && report.contains("fix: free space"),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_only_filesystem_condition_is_fenced_as_a_fault_and_memory_pressure_only_noted() {
    let f = fleet(4, "");
    f.rounds(2).await;
    f.cluster.edit("node-2", |n| {
        n.problems = vec![(
            "MemoryPressure".into(),
            "KubeletHasInsufficientMemory".into(),
        )];
    });
    f.cluster.edit("node-1", |n| {
        n.problems = vec![(
            "ReadonlyFilesystem".into(),
            "FilesystemIsReadOnly: Node condition ReadonlyFilesystem is now: True".into(),
        )];
    });
    f.rounds(4).await;
    f.only_node_1_fenced_for_hardware();
    assert!(
        f.reports().contains("ReadonlyFilesystem"),
        "{}",
        f.reports()
    );
    assert_eq!(f.stage(2), Stage::Healthy, "a warning is not a remediation");
}

#[tokio::test(start_paused = true)]
async fn two_control_plane_nodes_down_at_once_are_remediated_one_at_a_time() {
    // Seven machines: two dark are 28 %, under the storm guard's 30 %.
    let f = fleet(
        7,
        "suspect_after = 2\nmax_concurrent = 4\nsoft_reboot_timeout_s = 600",
    );
    for n in ["node-1", "node-2", "node-3"] {
        f.cluster.edit(n, |info| {
            info.labels.insert(CONTROL_PLANE_LABEL, String::new());
        });
    }
    f.rounds(2).await;
    f.go_dark(1);
    f.go_dark(2);
    f.rounds(4).await;
    let acted: Vec<usize> = [1, 2]
        .into_iter()
        .filter(|i| !f.requests(*i).is_empty())
        .collect();
    assert_eq!(
        acted.len(),
        1,
        "one control-plane node at a time: {acted:?}"
    );
    let held = if acted == [1] { 2 } else { 1 };
    let t = f.timeline(held);
    assert!(t.contains("held back to keep etcd's quorum"), "{t}");
    assert_eq!(t.matches("held back").count(), 1, "said once: {t}");
    let l = said(&f.log);
    let events = l
        .iter()
        .filter(|x| *x == &format!("event node-{held} Warning RemediationHeldBack"))
        .count();
    assert_eq!(events, 1, "{l:?}");
    // `oob plan` shows the hold (asked, not admitted: still one acted on).
    let rows = f.svc.plan().await;
    let row = rows
        .iter()
        .find(|r| r.node == format!("node-{held}"))
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(
        row.held.as_deref().is_some_and(|h| h.contains("etcd")),
        "{row:?}"
    );
    assert!(f.requests(held).is_empty());
}

/// What a control-plane peer's etcdctl prints: three members named after the nodes, the
/// member of each node in `down` not answering its health check.
fn etcd_says(down: &[usize]) -> String {
    let members: Vec<String> = (1..=3)
        .map(|i| format!(r#"{{"ID":{i},"name":"node-{i}","peerURLs":["https://127.0.0.{0}:2380"],"clientURLs":["https://127.0.0.{0}:2379"]}}"#, 10 + i))
        .collect();
    let health: Vec<String> = (1..=3)
        .map(|i| {
            format!(
                r#"{{"endpoint":"https://127.0.0.{}:2379","health":{},"took":"2ms"}}"#,
                10 + i,
                !down.contains(&i)
            )
        })
        .collect();
    format!(
        "{{\"members\":[{}]}}\n=== oob: endpoint health ===\n[{}]\n",
        members.join(","),
        health.join(",")
    )
}

/// node-1..3 are the control plane and node-2's etcd member is down on a Ready node, so
/// node-1's healthy member is needed for the quorum.
fn member_2_down(f: &Fleet) {
    for n in ["node-1", "node-2", "node-3"] {
        f.cluster.edit(n, |info| {
            info.labels.insert(CONTROL_PLANE_LABEL, String::new());
        });
    }
    f.hosts.reply("member list", 1, &etcd_says(&[2]));
    // node-2's own etcdctl talks to its own member, which is down: it prints nothing, and
    // the next control-plane machine is asked.
    f.hosts.reply("127.0.0.12 ", 1, "");
}

/// A control-plane node with an OS problem (it answers: its etcd member may still vote) is
/// held back while etcd says another member is down, though every Node is Ready; it goes
/// once etcd is whole again.
#[tokio::test(start_paused = true)]
async fn an_etcd_member_down_on_a_ready_node_holds_back_another_control_plane_reboot() {
    let f = fleet(5, "suspect_after = 2\nsoft_reboot_timeout_s = 600");
    member_2_down(&f);
    f.rounds(2).await;
    f.cluster.edit("node-1", |n| n.ready = Some("False".into()));
    f.rounds(4).await;
    let t = f.timeline(1);
    assert!(
        t.contains("without this node 1 of 3 voting members are healthy"),
        "{t}"
    );
    let acts = f.hosts.actions();
    assert!(!acts.iter().any(|a| a.starts_with("reboot")), "{acts:?}");
    assert!(
        acts.iter()
            .any(|a| a.starts_with("run 127.0.0.12") && a.contains("endpoint health --cluster")),
        "etcd asked on a Ready control-plane peer: {acts:?}"
    );
    assert!(f.requests(1).is_empty());
    // Asked at most once per 15 s for the whole fleet, though node-1 asks every round.
    let asked = |f: &Fleet| f.host_actions(|a| a.contains("endpoint health"));
    assert_eq!(asked(&f), 2, "node-2, then node-3: {:?}", f.hosts.actions());
    // etcd whole again: the reboot goes once the last read is stale.
    f.hosts.reply("member list", 0, &etcd_says(&[]));
    f.rounds(10).await;
    assert!(asked(&f) >= 3, "read again once stale");
    assert!(
        f.hosts.actions().iter().any(|a| a == "reboot 127.0.0.11"),
        "{:?}\n{}",
        f.hosts.actions(),
        f.timeline(1)
    );
}

/// A unit restart takes no etcd member away (etcd runs on under a restarted kubelet): it is
/// not held by the quorum rule that holds a reboot of the same node.
#[tokio::test(start_paused = true)]
async fn a_kubelet_restart_on_a_control_plane_node_is_not_held_for_etcd() {
    use crate::testing::{healthy_host, unit};
    let f = fleet(5, "suspect_after = 2");
    member_2_down(&f);
    f.rounds(2).await;
    let mut stopped = healthy_host();
    stopped.kubelet = Some(unit("inactive", "dead"));
    f.hosts.set_os("127.0.0.11", stopped);
    f.cluster.edit("node-1", |n| n.ready = Some("False".into()));
    f.rounds(2).await;
    let acts = f.hosts.actions();
    assert!(
        acts.iter()
            .any(|a| a == "restart 127.0.0.11 kubelet.service"),
        "{acts:?}\n{}",
        f.timeline(1)
    );
    assert!(
        !f.timeline(1).contains("etcd's quorum"),
        "{}",
        f.timeline(1)
    );
    assert!(
        !acts.iter().any(|a| a.contains("endpoint health")),
        "etcd is not asked for a restart: {acts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_node_is_left_alone_and_the_timeline_says_so() {
    let f = fleet(2, "suspect_after = 1\nmax_unhealthy_percent = 50");
    f.cluster.edit("node-1", |n| {
        n.annotations.insert(PAUSE_ANNOTATION, "maintenance".into());
    });
    f.go_dark(1);
    f.rounds(10).await;
    assert_eq!(f.stage(1), Stage::Healthy);
    assert!(f.requests(1).is_empty());
    assert!(
        f.timeline(1).contains("automation paused"),
        "{}",
        f.timeline(1)
    );
    // Unpaused, the ladder starts.
    f.cluster.edit("node-1", |n| {
        n.annotations.remove(PAUSE_ANNOTATION);
    });
    f.rounds(1).await;
    assert!(f.timeline(1).contains("automation resumed"));
    assert!(
        matches!(f.stage(1), Stage::SoftReboot { .. }),
        "{:?}",
        f.stage(1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_lost_leadership_begins_no_step() {
    use std::sync::atomic::Ordering;
    let f = fleet(2, "suspect_after = 1\nmax_unhealthy_percent = 50");
    f.svc.leading.store(false, Ordering::Relaxed);
    f.go_dark(1);
    f.rounds(10).await;
    assert!(f.requests(1).is_empty(), "{:?}", f.requests(1));
    assert!(
        !said(&f.log).iter().any(|l| l.starts_with("cordon")),
        "{:?}",
        said(&f.log)
    );
    assert!(
        f.timeline(1).contains("no longer leads"),
        "{}",
        f.timeline(1)
    );
    // Leading again (the lease taken back, the journal adopted): the ladder goes on.
    f.svc.leading.store(true, Ordering::Relaxed);
    f.rounds(1).await;
    assert!(
        matches!(f.stage(1), Stage::SoftReboot { .. }),
        "{:?}",
        f.stage(1)
    );
}

#[tokio::test(start_paused = true)]
async fn too_many_dark_machines_trip_the_breaker_before_any_power_action() {
    let f = fleet(10, "max_unhealthy_percent = 30");
    for i in 1..=4 {
        f.go_dark(i);
    }
    f.rounds(4).await;
    for i in 1..=10 {
        assert!(f.requests(i).is_empty(), "node-{i}: {:?}", f.requests(i));
    }
    let b = f.svc.exec.journal().breaker().unwrap().expect("tripped");
    assert!(b.reason.contains("4 of 10"), "{}", b.reason);
    assert!(f.timeline(1).contains("breaker TRIPPED") || f.timeline(4).contains("breaker TRIPPED"));
    // Still tripped on later rounds: nothing is sent until a person resets it.
    f.rounds(3).await;
    assert!((1..=10).all(|i| f.requests(i).is_empty()));
}

#[tokio::test(start_paused = true)]
async fn hardware_looks_are_spread_over_the_interval_not_fired_together() {
    let f = fleet(10, "");
    // One probe round per 2 s; the hardware interval is 10 s: each machine's first BMC look
    // falls in a round of its own phase, so no round looks at every BMC at once.
    let mut first_round_of = Vec::new();
    for _ in 0..6 {
        for m in f.svc.machines.clone() {
            f.svc.round(&m).await;
        }
        let looked = f
            .svc
            .lock()
            .values()
            .filter(|s| s.position.sel_seen.is_some())
            .count();
        first_round_of.push(looked);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(first_round_of[0] < 10, "{first_round_of:?}");
    assert_eq!(
        first_round_of[5], 10,
        "all looked within one interval: {first_round_of:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_machine_being_admitted_counts_among_the_unhealthy() {
    // One of three dark, decided straight into a reboot (suspect_after = 1): 33 % > 30 %.
    let f = fleet(3, "suspect_after = 1");
    f.go_dark(1);
    f.rounds(2).await;
    assert!(f.requests(1).is_empty(), "{:?}", f.requests(1));
    let b = f.svc.exec.journal().breaker().unwrap().expect("tripped");
    assert!(b.reason.contains("1 of 3"), "{}", b.reason);
}

#[tokio::test(start_paused = true)]
async fn at_most_max_concurrent_machines_are_remediated_at_once() {
    let f = fleet(
        10,
        "suspect_after = 1\nmax_concurrent = 1\nmax_unhealthy_percent = 50",
    );
    f.go_dark(1);
    f.go_dark(2);
    f.rounds(2).await;
    let soft: Vec<usize> = (1..=2).filter(|&i| !f.requests(i).is_empty()).collect();
    assert_eq!(soft.len(), 1, "{soft:?}");
    let waiting = 3 - soft[0];
    assert!(
        f.timeline(waiting)
            .contains("remediation deferred: 1 remediations in flight"),
        "{}",
        f.timeline(waiting)
    );
}

#[tokio::test(start_paused = true)]
async fn a_bmc_of_another_machine_is_refused_reported_and_never_powered() {
    let f = fleet(2, "suspect_after = 1\nmax_unhealthy_percent = 50");
    f.bmcs[0].lock().unwrap().serial = "SN-OTHER".into();
    f.go_dark(1);
    f.rounds(3).await;
    assert!(f.requests(1).is_empty(), "{:?}", f.requests(1));
    assert!(
        matches!(f.stage(1), Stage::AwaitReplacement { .. }),
        "{:?}",
        f.stage(1)
    );
    let t = f.timeline(1);
    assert!(t.contains("identity check FAILED"), "{t}");
    let report = f.reports();
    assert!(report.contains("SN-OTHER"), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_new_critical_sel_entry_on_a_live_machine_is_cordoned_drained_and_reported() {
    let f = fleet(4, "");
    f.rounds(6).await; // the first look (within one hardware interval) sets the SEL baseline
    f.bmcs[0].lock().unwrap().sel.push(ecc_error());
    f.rounds(8).await; // past the hardware interval
    f.only_node_1_fenced_for_hardware();
    assert!(
        matches!(f.stage(1), Stage::AwaitReplacement { .. }),
        "{:?}",
        f.stage(1)
    );
}

/// A machine's own hardware turning bad between two polls over SSH: cordoned, drained by
/// eviction, reported with the finding; never power-cycled; the neighbours untouched.
async fn hardware_turns_bad(change: impl FnOnce(&FakeHardware), code: &str) {
    let f = fleet(4, "");
    f.rounds(6).await; // every machine polled once: the baselines are set
    assert!(f.hardware.polls.lock().unwrap().values().all(|n| *n >= 1));
    assert!(said(&f.log).iter().all(|l| !l.starts_with("cordon")));
    change(&f.hardware);
    f.rounds(8).await;
    f.only_node_1_fenced_for_hardware();
    let report = f.reports();
    assert!(report.contains(code), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_drive_that_fails_smart_between_two_polls_is_cordoned_drained_and_reported() {
    hardware_turns_bad(
        |h| {
            h.edit("node-1", |p| {
                p.drive_failed = true;
                p.reallocated = 40;
            })
        },
        "smart_overall_failed",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn nic_receive_loss_past_the_runbook_limit_is_cordoned_drained_and_reported() {
    // 10,000 packets arrived since the last poll and 1,000 of them were dropped: 10 % > 5 %.
    hardware_turns_bad(
        |h| {
            h.edit("node-1", |p| {
                p.rx_packets += 9_000;
                p.rx_dropped += 1_000;
            })
        },
        "nic_packet_loss",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn rounds_that_outlast_the_interval_are_counted_late_not_stacked() {
    // A dark machine entering Confirm needs a slot for its BMC look; while every slot is
    // taken (long looks elsewhere), its round waits past the interval.
    let f = fleet(5, "suspect_after = 1\nmax_unhealthy_percent = 50");
    f.go_dark(1);
    let held = f
        .svc
        .slots
        .clone()
        .acquire_many_owned(u32::try_from(f.svc.config.service.concurrency).unwrap())
        .await
        .unwrap();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(f.svc.clone().run(stop));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let late = f.svc.metrics.rounds_late.get();
    assert!(late > 0, "no late round counted");
    assert!(f.requests(1).is_empty(), "acted without a slot");
    drop(held);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let _ = stop_tx.send(true);
    runner.await.unwrap();
    let text = f.svc.metrics.encode();
    assert!(text.contains("oob_rounds_late_total"), "{text}");
    // Never two rounds of one machine at once: one soft reboot, sent once.
    assert_eq!(f.requests(1), [PowerRequest::GracefulRestart]);
}

#[tokio::test(start_paused = true)]
async fn the_scheduler_paces_probes_across_the_interval_and_probes_each_machine_every_interval() {
    let f = fleet(40, "");
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let start = tokio::time::Instant::now();
    let runner = tokio::spawn(f.svc.clone().run(stop));
    tokio::time::sleep(Duration::from_millis(10_050)).await;
    let _ = stop_tx.send(true);
    runner.await.unwrap();
    let mut firsts = Vec::new();
    for i in 1..=40 {
        let pings = f.hosts.asked(&format!("127.0.0.{}", 10 + i), "ping");
        // Five intervals: a round each, one interval apart (give or take the slot's
        // jitter), none skipped and none doubled.
        // (Six for a machine whose slot is the first: it starts at once.)
        assert!((5..=6).contains(&pings.len()), "node-{i}: {pings:?}");
        for w in pings.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= Duration::from_millis(1_850) && gap <= Duration::from_millis(2_150),
                "node-{i}: rounds {gap:?} apart"
            );
        }
        firsts.push((pings[0] - start).as_millis() / 100);
    }
    // Spread over the interval's slots, not a burst at each tick.
    firsts.sort_unstable();
    firsts.dedup();
    assert!(firsts.len() >= 12, "first probes fell in only {firsts:?}");
    assert_eq!(f.svc.metrics.rounds_late.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_host_that_answers_its_echoes_has_its_ssh_port_asked_once_a_minute_a_silent_one_every_round(
) {
    let f = fleet(1, "suspect_after = 5");
    f.rounds(31).await;
    let ip = "127.0.0.11";
    assert_eq!(f.hosts.asked(ip, "ping").len(), 31);
    let banners = f.hosts.asked(ip, "ssh").len();
    assert_eq!(banners, 2, "SSH probes in 62 s (at 0 and 60 s)");
    f.hosts.set_dark(ip, true);
    f.rounds(3).await;
    // The first silent round goes on echoes alone (a suspicion); from then on the port is
    // asked every round, so a firewall that drops echoes can never make a host "dark".
    assert_eq!(f.hosts.asked(ip, "ssh").len(), banners + 2);
    assert!(
        matches!(f.stage(1), Stage::Suspect { failures: 3, .. }),
        "{:?}",
        f.stage(1)
    );
}

#[tokio::test(start_paused = true)]
async fn probes_take_no_slot_and_a_due_hardware_check_waits_for_a_free_one_without_holding_the_round(
) {
    let f = fleet(3, "");
    // Every slot is taken (long BMC looks elsewhere, say).
    let all = u32::try_from(f.svc.config.service.concurrency).unwrap();
    let held = f.svc.slots.clone().acquire_many_owned(all).await.unwrap();
    // Every machine's hardware check is due: the rounds still finish (the probe goes on
    // every interval), the checks are put off and counted, nothing is read.
    for st in f.svc.lock().values_mut() {
        st.last_hardware_ms = 0;
    }
    for m in f.svc.machines.clone() {
        tokio::time::timeout(Duration::from_secs(5), f.svc.round(&m))
            .await
            .expect("a round waited for a slot");
    }
    assert_eq!(f.svc.metrics.hardware_deferred.get(), 3);
    assert!(f.svc.lock().values().all(|st| st.last_hardware_ms == 0));
    assert!(
        f.hardware.polls.lock().unwrap().is_empty(),
        "a host was polled"
    );
    // With a slot free again, the next round does the check.
    drop(held);
    let m = f.svc.machines[0].clone();
    f.svc.round(&m).await;
    assert_ne!(f.svc.lock()["node-1"].last_hardware_ms, 0);
    assert_eq!(f.svc.metrics.hardware_deferred.get(), 3);
}

#[test]
fn a_probe_round_is_kept_in_16_bytes_and_reads_like_the_verdicts_reasons() {
    let e = crate::verdict::Evidence {
        ping: Some((0, 3)),
        ssh_reachable: Some(false),
        node_ready: Some("Unknown".into()),
        ..Default::default()
    };
    let p = super::Probed::of(1_800_000_000_000, &e);
    assert_eq!(std::mem::size_of::<super::Probed>(), 16);
    assert_eq!(
        p.to_string(),
        format!(
            "{} ping 0/3, ssh down, Ready=Unknown",
            crate::clock::rfc3339(1_800_000_000_000)
        )
    );
}

/// node-1 refused by the identity check (another board answered its BMC): awaiting
/// replacement, hands off.
async fn awaiting_replacement(f: &Fleet) {
    f.bmcs[0].lock().unwrap().serial = "SN-OTHER".into();
    f.go_dark(1);
    f.rounds(3).await;
    assert!(
        matches!(f.stage(1), Stage::AwaitReplacement { .. }),
        "{:?}",
        f.stage(1)
    );
}

fn release(f: &Fleet, i: usize, how: &str) {
    f.cluster.edit(&format!("node-{i}"), |n| {
        n.annotations
            .insert(crate::remedy::executor::RELEASE_ANNOTATION, how.into());
    });
}

fn released(f: &Fleet, i: usize) -> bool {
    f.cluster
        .nodes
        .lock()
        .unwrap()
        .get(&format!("node-{i}"))
        .is_some_and(|n| {
            n.annotations
                .contains_key(crate::remedy::executor::RELEASE_ANNOTATION)
        })
}

#[tokio::test(start_paused = true)]
async fn a_node_released_as_repaired_is_replaced_by_the_ladder_when_the_policy_allows() {
    let f = fleet_with(
        2,
        "suspect_after = 1\nmax_unhealthy_percent = 50",
        "[replacement]\nenabled = true\njoin_timeout_s = 60",
    );
    awaiting_replacement(&f).await;
    f.rounds(3).await;
    assert!(f.hosts.actions().iter().all(|a| !a.contains("kubeadm")));
    // The technicians put the right board back, reinstall and boot it (it answers, its
    // kubelet is not joined), and say so.
    f.bmcs[0].lock().unwrap().serial = "SN-1".into();
    f.bmcs[0].lock().unwrap().led = true;
    f.hosts.set_dark("127.0.0.11", false);
    release(&f, 1, "repaired");
    // The kubelet's part: the machine registers once the join ran on it.
    let (hosts, cluster) = (f.hosts.clone(), f.cluster.clone());
    let kubelet = tokio::spawn(async move {
        loop {
            if hosts.actions().iter().any(|a| a.contains("kubeadm join")) {
                let mut n = crate::testing::node("node-1");
                n.boot_id = Some("boot-new".into());
                cluster.nodes.lock().unwrap().insert("node-1".into(), n);
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    f.rounds(4).await;
    let t = f.timeline(1);
    assert!(
        kubelet.is_finished(),
        "no join: {t}\n{:?}",
        f.hosts.actions()
    );
    assert!(t.contains("released as repaired by a person"), "{t}");
    let joins = f
        .hosts
        .actions()
        .iter()
        .filter(|a| a.contains("kubeadm join"))
        .count();
    assert_eq!(joins, 1, "{:?}", f.hosts.actions());
    assert!(said(&f.log).contains(&"delete node-1".to_owned()));
    assert_eq!(f.stage(1), Stage::Healthy, "{t}");
    assert!(!released(&f, 1));
    // The technicians are done: the locator LED off, read back.
    assert!(!f.bmcs[0].lock().unwrap().led);
    assert!(t.contains("locator LED off (read back: off)"), "{t}");
    assert!(
        f.requests(1).is_empty(),
        "no power request: {:?}",
        f.requests(1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_release_without_the_replacement_ends_the_hands_off_and_a_stale_one_is_dropped() {
    let f = fleet(2, "suspect_after = 1\nmax_unhealthy_percent = 50");
    awaiting_replacement(&f).await;
    release(&f, 1, "repaired");
    // A release for a node that is not awaiting replacement is not kept for later.
    release(&f, 2, "done");
    f.rounds(1).await;
    let t = f.timeline(1);
    assert!(
        t.contains("the replacement is off ([replacement] enabled = false): hands-off ended"),
        "{t}"
    );
    assert!(!released(&f, 1) && !released(&f, 2));
    assert!(
        f.timeline(2).contains("release ignored"),
        "{}",
        f.timeline(2)
    );
    assert!(f.hosts.actions().iter().all(|a| !a.contains("kubeadm")));
    // The ladder goes on: still the wrong board, so refused and hands off again.
    f.rounds(3).await;
    assert!(
        matches!(f.stage(1), Stage::AwaitReplacement { .. }),
        "{:?}",
        f.stage(1)
    );
    assert!(f.requests(1).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_node_another_remediator_holds_is_left_to_it_said_once_and_taken_when_free() {
    let f = fleet(2, "suspect_after = 1\nmax_unhealthy_percent = 50");
    f.cluster
        .held
        .lock()
        .unwrap()
        .insert("oob-node-node-1".into(), "self-node-remediation".into());
    f.go_dark(1);
    f.rounds(6).await;
    assert!(f.requests(1).is_empty(), "{:?}", f.requests(1));
    let t = f.timeline(1);
    assert_eq!(
        t.matches("held by self-node-remediation").count(),
        1,
        "said once: {t}"
    );
    let events = said(&f.log)
        .iter()
        .filter(|x| *x == "event node-1 Normal RemediationYielded")
        .count();
    assert_eq!(events, 1, "{:?}", said(&f.log));
    // The other remediator is done with it: oob's ladder goes on.
    f.cluster.held.lock().unwrap().clear();
    f.rounds(3).await;
    assert!(!f.requests(1).is_empty(), "{}", f.timeline(1));
}

#[tokio::test(start_paused = true)]
async fn a_replacement_that_stops_is_tried_once_per_release_not_every_round() {
    let f = fleet_with(
        2,
        "suspect_after = 1\nmax_unhealthy_percent = 50",
        "[replacement]\nenabled = true\njoin_timeout_s = 60",
    );
    awaiting_replacement(&f).await;
    // Released as repaired, but the BMC still answers for another board: refused.
    f.hosts.set_dark("127.0.0.11", false);
    release(&f, 1, "repaired");
    f.rounds(5).await;
    let t = f.timeline(1);
    assert_eq!(
        t.matches("released as repaired by a person").count(),
        1,
        "tried once: {t}"
    );
    assert!(t.contains("identity check FAILED"), "{t}");
    assert!(!released(&f, 1), "the release is used up");
    assert!(
        matches!(f.stage(1), Stage::AwaitReplacement { .. }),
        "{:?}",
        f.stage(1)
    );
    assert!(f.hosts.actions().iter().all(|a| !a.contains("kubeadm")));
}

/// A critical SEL entry (an uncorrectable memory error).
fn ecc_error() -> SelEntry {
    SelEntry {
        id: "7".into(),
        created: None,
        severity: Severity::Critical,
        message: "Uncorrectable ECC memory error on DIMM A1".into(),
        message_id: None,
        sensor_type: Some("Memory".into()),
    }
}

const SHARED_POLICY: &str =
    "suspect_after = 2\nconfirm_timeout_s = 60\nsoft_reboot_timeout_s = 60\nhard_reboot_timeout_s = 300";

#[tokio::test(start_paused = true)]
async fn in_cluster_mode_nothing_is_sent_that_the_api_did_not_record_first() {
    let episodes = Arc::new(FakeEpisodes::default());
    episodes
        .refuse
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let f = fleet_shared(5, SHARED_POLICY, episodes.clone());
    f.rounds(2).await;
    f.go_dark(1);
    f.rounds(6).await;
    assert!(f.requests(1).is_empty(), "{}", f.timeline(1));
    let t = f.timeline(1);
    assert!(t.contains("not sent"), "{t}");
    // The API back: the soft reboot goes, its intent and the position recorded first.
    episodes
        .refuse
        .store(false, std::sync::atomic::Ordering::Relaxed);
    f.rounds(2).await;
    assert_eq!(f.requests(1), [PowerRequest::GracefulRestart]);
    let objects = episodes.objects.lock().unwrap().clone();
    let own = objects
        .values()
        .find(|r| r.node == "node-1")
        .expect("node-1's episode");
    assert!(!own.requested);
    assert!(
        own.status
            .steps
            .iter()
            .any(|s| s.key.ends_with("/soft-reboot")),
        "{:?}",
        own.status
    );
    assert_eq!(own.status.stage.as_deref(), Some("soft-reboot"));
    assert!(own.status.position.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_adopts_an_intent_without_outcome_and_never_sends_it_again() {
    // What the old leader left: node-1 in soft-reboot, its graceful restart journaled
    // without an outcome (it may have reached the BMC).
    let episodes = Arc::new(FakeEpisodes::default());
    {
        let old = fleet_shared(5, SHARED_POLICY, episodes.clone());
        old.rounds(2).await;
        old.go_dark(1);
        old.rounds(2).await;
        assert_eq!(old.requests(1), [PowerRequest::GracefulRestart]);
    }
    // Its outcome never reached the API (the crash came first).
    for r in episodes.objects.lock().unwrap().values_mut() {
        for step in &mut r.status.steps {
            step.outcome = None;
            step.detail = None;
            step.done_ms = None;
        }
    }
    // The new leader: its own empty journal, the same cluster state.
    let f = fleet_shared(5, SHARED_POLICY, episodes.clone());
    f.go_dark(1);
    assert!(f.svc.adopt().await);
    assert!(
        matches!(f.stage(1), Stage::SoftReboot { .. }),
        "{:?}",
        f.stage(1)
    );
    let in_flight = f.svc.exec.journal().in_flight().unwrap();
    assert!(
        in_flight.iter().any(|e| e.key.ends_with("/soft-reboot")),
        "{in_flight:?}"
    );
    assert!(f.timeline(1).contains("taken over from the cluster"));
    // It resumes from the machine's state: the graceful restart is not sent again; when
    // the soft reboot's time is up, the verified cycle.
    f.rounds(40).await;
    assert_eq!(
        f.requests(1),
        [PowerRequest::ForceOff, PowerRequest::On],
        "{}",
        f.timeline(1)
    );
    f.come_back(1, "boot-b");
    f.rounds(1).await;
    assert_eq!(f.stage(1), Stage::Healthy);
    // The episode is over: oob's own object deleted.
    assert!(episodes.objects.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_request_from_node_healthcheck_runs_the_ladder_and_its_conditions_follow() {
    let episodes = Arc::new(FakeEpisodes::default());
    let f = fleet_shared(5, SHARED_POLICY, episodes.clone());
    f.rounds(1).await;
    // node-2 answers and is Ready; NHC says it is unhealthy.
    episodes.request("node-2-x7k2p", "node-2");
    f.svc.refresh_requests().await;
    f.rounds(1).await;
    let status = |e: &FakeEpisodes| e.objects.lock().unwrap()["node-2-x7k2p"].status.clone();
    let st = status(&episodes);
    assert_eq!(
        st.condition("Processing").map(|c| c.status.as_str()),
        Some("True"),
        "{st:?}\n{}",
        f.timeline(2)
    );
    assert_eq!(
        st.condition("Succeeded").map(|c| c.status.as_str()),
        Some("Unknown")
    );
    assert!(f
        .timeline(2)
        .contains("remediation requested by OobRemediation node-2-x7k2p"));
    // The ladder: confirmed, cordoned, rebooted over SSH, health check, uncordoned.
    f.rounds(4).await;
    let st = status(&episodes);
    assert_eq!(
        st.condition("Succeeded")
            .map(|c| (c.status.as_str(), c.reason.as_str())),
        Some(("True", "RemediationFinished")),
        "{st:?}\n{}",
        f.timeline(2)
    );
    assert_eq!(
        st.condition("Processing").map(|c| c.status.as_str()),
        Some("False")
    );
    // The steps were recorded on NHC's object, none of oob's own was made.
    assert!(
        st.steps
            .iter()
            .any(|s| s.outcome.as_deref() == Some("done")),
        "{st:?}"
    );
    assert_eq!(episodes.objects.lock().unwrap().len(), 1);
    // A request that succeeded starts nothing more (NHC deletes it when it sees the node
    // healthy), and oob never deletes it.
    let t = f.timeline(2);
    f.svc.refresh_requests().await;
    f.rounds(10).await;
    assert_eq!(f.timeline(2), t);
    assert!(episodes
        .objects
        .lock()
        .unwrap()
        .contains_key("node-2-x7k2p"));
}

#[tokio::test(start_paused = true)]
async fn node_healthchecks_time_out_stops_the_ladder_between_steps() {
    let episodes = Arc::new(FakeEpisodes::default());
    let f = fleet_shared(5, SHARED_POLICY, episodes.clone());
    f.rounds(1).await;
    episodes.request("node-1", "node-1");
    f.svc.refresh_requests().await;
    f.go_dark(1);
    f.rounds(3).await;
    assert_eq!(
        f.requests(1),
        [PowerRequest::GracefulRestart],
        "{}",
        f.timeline(1)
    );
    // NHC times it out: no hard cycle, and the conditions say why.
    episodes
        .objects
        .lock()
        .unwrap()
        .get_mut("node-1")
        .unwrap()
        .timed_out = true;
    f.svc.refresh_requests().await;
    f.rounds(40).await;
    assert_eq!(f.requests(1), [PowerRequest::GracefulRestart]);
    let st = episodes.objects.lock().unwrap()["node-1"].status.clone();
    assert_eq!(
        st.condition("Processing")
            .map(|c| (c.status.as_str(), c.reason.as_str())),
        Some(("False", "RemediationStoppedByNHC"))
    );
    assert_eq!(
        st.condition("Succeeded").map(|c| c.status.as_str()),
        Some("False")
    );
    assert!(f
        .timeline(1)
        .contains("stopped: Node Healthcheck timed OobRemediation node-1 out"));
    assert!(episodes.objects.lock().unwrap().contains_key("node-1"));
}

#[tokio::test(start_paused = true)]
async fn in_cluster_mode_the_episode_names_its_findings_and_its_report() {
    let episodes = Arc::new(FakeEpisodes::default());
    let f = fleet_shared(4, "", episodes.clone());
    f.rounds(6).await;
    f.bmcs[0].lock().unwrap().sel.push(ecc_error());
    f.rounds(8).await;
    assert!(matches!(f.stage(1), Stage::AwaitReplacement { .. }));
    let objects = episodes.objects.lock().unwrap().clone();
    let r = objects
        .values()
        .find(|r| r.node == "node-1")
        .expect("the episode");
    let report = r.status.report.clone().expect("the report named");
    assert!(
        report.starts_with("node-1-") && report.ends_with(".html"),
        "{report}"
    );
    assert!(f.dir.path().join("reports").join(&report).is_file());
    assert!(
        r.status
            .findings
            .iter()
            .any(|x| x["severity"] == "critical"),
        "{:?}",
        r.status.findings
    );
    assert_eq!(r.status.stage.as_deref(), Some("await-replacement"));
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_delivers_what_the_old_one_had_not() {
    const SINKS: &str = "[[report.sinks]]\nkind = \"webhook\"\nname = \"hook\"\nurl = \"http://127.0.0.1:9/reports\"\n\n[[report.sinks]]\nkind = \"smtp\"\nname = \"mail\"\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nfrom = \"oob@example.net\"\nto = [\"noc@example.net\"]\n";
    let episodes = Arc::new(FakeEpisodes::default());
    let id = {
        let old = fleet_full(4, "", SINKS, Some(episodes.clone()));
        old.rounds(6).await;
        old.bmcs[0].lock().unwrap().sel.push(ecc_error());
        old.rounds(8).await;
        let rows = old.svc.exec.journal().deliveries(Some("node-1")).unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        let id = rows[0].message.clone();
        // The webhook took it; the mail relay had not yet when the leader died.
        old.svc.share_delivered(&id, "hook").await;
        id
    };
    let objects = episodes.objects.lock().unwrap().clone();
    let shared = objects
        .values()
        .flat_map(|r| r.status.messages.clone())
        .find(|m| m.id == id)
        .expect("the report in the shared outbox");
    assert_eq!(shared.delivered, ["hook"]);
    let new = fleet_full(4, "", SINKS, Some(episodes.clone()));
    assert!(new.svc.adopt().await);
    let rows = new.svc.exec.journal().deliveries(Some("node-1")).unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.message.as_str(), r.sink.as_str(), r.state))
            .collect::<Vec<_>>(),
        [(id.as_str(), "mail", "pending")]
    );
    // Adopted twice (another takeover): still one.
    assert!(new.svc.adopt().await);
    assert_eq!(
        new.svc
            .exec
            .journal()
            .deliveries(Some("node-1"))
            .unwrap()
            .len(),
        1
    );
}
