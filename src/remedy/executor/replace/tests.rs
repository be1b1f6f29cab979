//! The replacement's interlocks over fakes (cluster, BMC, hosts, tokens) and a real journal,
//! on tokio's paused clock. The whole workflow against real sshd and the fake API server is
//! `tests/replace_e2e.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use super::*;
use crate::remedy::executor::{Deps, Settings};
use crate::remedy::journal::Journal;
use crate::testing::{
    said, BmcState, FakeCluster, FakeConnector, FakeHosts, FakeRejoin, Log, TokioClock,
};

const CONFIG: &str = r#"
[[machines]]
name = "cp-1"
host = "10.0.0.1"
bmc = "redfish://127.0.0.1:9001/redfish/v1/Systems/1"
serial = "SN-1"
credentials = { user = "admin", password_secret = "oob-system/bmc" }
ssh = { user = "root", key = "/k", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }

[[machines]]
name = "cp-2"
host = "10.0.0.2"
bmc = "redfish://127.0.0.1:9002/redfish/v1/Systems/1"
serial = "SN-2"
credentials = { user = "admin", password_secret = "oob-system/bmc" }
ssh = { user = "root", key = "/k", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }

[[machines]]
name = "cp-3"
host = "10.0.0.3"
bmc = "redfish://127.0.0.1:9003/redfish/v1/Systems/1"
serial = "SN-3"
credentials = { user = "admin", password_secret = "oob-system/bmc" }
ssh = { user = "root", key = "/k", host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }
"#;

const MEMBERS: &str = r#"{"members":[{"ID":10276657743932975437,"name":"cp-1"},{"ID":2,"name":"cp-2"},{"ID":3,"name":"cp-3"}]}"#;
const KEY: &str = "4b9e4f1c1c0a3e6f2b6d8a1e3f5c7d9b0a2c4e6f8a1b3c5d7e9f0a2b4c6d8e0f";

struct World {
    exec: Executor,
    config: crate::config::Config,
    cluster: Arc<FakeCluster>,
    hosts: Arc<FakeHosts>,
    bmc: Arc<Mutex<BmcState>>,
    rejoin: FakeRejoin,
    log: Log,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::config::Config::parse("t.toml", CONFIG).unwrap();
    let log: Log = Arc::default();
    let bmc = BmcState::on("SN-1");
    let cluster = Arc::new(FakeCluster::new(&["cp-1", "cp-2", "cp-3"], &log));
    for n in ["cp-1", "cp-2", "cp-3"] {
        cluster.edit(n, |n| {
            n.labels
                .insert(crate::remedy::guard::CONTROL_PLANE_LABEL, String::new());
        });
    }
    cluster.edit("cp-1", |n| n.ready = Some("Unknown".into()));
    let hosts = Arc::new(FakeHosts::default());
    hosts.reply("member list", 0, MEMBERS);
    hosts.reply("upload-certs", 0, &format!("[upload-certs] key:\n{KEY}\n"));
    let deps = Deps {
        journal: Arc::new(Journal::open(&dir.path().join("journal.sqlite")).unwrap()),
        nodes: cluster.clone(),
        bmcs: Arc::new(FakeConnector {
            bmcs: [(9001, bmc.clone())].into(),
            log: log.clone(),
        }),
        hosts: hosts.clone(),
        clock: Arc::new(TokioClock::new(1_800_000_000_000)),
    };
    let settings = Settings {
        policy: config.policy.clone(),
        holder: "oob-test".into(),
        reports_dir: dir.path().join("reports"),
        sinks: Vec::new(),
        node_lock: crate::timeouts::NODE_LOCK,
        dry_run: false,
        feed: broadcast::channel(64).0,
    };
    World {
        exec: Executor::new(deps, settings),
        config,
        cluster,
        hosts,
        bmc,
        rejoin: FakeRejoin::default(),
        log,
        _dir: dir,
    }
}

impl World {
    fn peers(&self) -> Vec<(Machine, NodeInfo)> {
        let nodes = self.cluster.nodes.lock().unwrap();
        self.config.machines[1..]
            .iter()
            .map(|m| (m.clone(), nodes[&m.name].clone()))
            .collect()
    }

    async fn replace(&self, new_board: bool) -> Result<Replaced, ReplaceError> {
        let peers = self.peers();
        let settings = ReplacementSettings {
            join_timeout_s: 60,
            ..ReplacementSettings::default()
        };
        let r = ReplaceRequest {
            machine: &self.config.machines[0],
            peers: &peers,
            new_board,
            fresh: false,
            settings: &settings,
        };
        self.exec.replace(&r, &self.rejoin).await
    }

    /// The kubelet's part: registers cp-1 once a join was run.
    fn kubelet(&self) -> tokio::task::JoinHandle<()> {
        let (hosts, cluster) = (self.hosts.clone(), self.cluster.clone());
        tokio::spawn(async move {
            loop {
                if hosts.actions().iter().any(|a| a.contains("kubeadm join")) {
                    let mut n = crate::testing::node("cp-1");
                    n.labels
                        .insert(crate::remedy::guard::CONTROL_PLANE_LABEL, String::new());
                    n.boot_id = Some("boot-new".into());
                    cluster.nodes.lock().unwrap().insert("cp-1".into(), n);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    fn ran(&self) -> Vec<String> {
        self.hosts
            .actions()
            .into_iter()
            .filter_map(|a| a.strip_prefix("run ").map(str::to_owned))
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_control_plane_member_is_removed_on_a_ready_peer_before_the_join() {
    let w = world();
    let kubelet = w.kubelet();
    let done = w.replace(false).await.unwrap();
    kubelet.await.unwrap();
    assert!(done.control_plane && !done.board_changed);
    let ran = w.ran();
    let at = |what: &str| {
        ran.iter()
            .position(|r| r.contains(what))
            .unwrap_or_else(|| panic!("{what}: {ran:#?}"))
    };
    // On cp-2 (Ready, control plane): the list, the removal by hex ID, the certificate key.
    assert!(ran[at("member list")].starts_with("10.0.0.2 "));
    assert!(ran[at("member remove 8e9e05c52164694d")].starts_with("10.0.0.2 "));
    assert!(ran[at("upload-certs")].starts_with("10.0.0.2 "));
    // On cp-1: reset, then the control-plane join with the key, after the removal.
    assert!(ran[at("kubeadm reset -f")].starts_with("10.0.0.1 "));
    let join = &ran[at("kubeadm join")];
    assert!(join.starts_with("10.0.0.1 "));
    assert!(join.contains(&format!("--control-plane --certificate-key {KEY}")));
    assert!(at("member remove") < at("kubeadm join"));
    assert!(said(&w.log).contains(&"delete cp-1".to_owned()));
    // Registered, cordoned at first sight, restored, uncordoned.
    let n = w.cluster.nodes.lock().unwrap()["cp-1"].clone();
    assert!(!n.unschedulable && !n.annotations.contains_key(CORDONED_ANNOTATION));
    assert_eq!(w.rejoin.restored.lock().unwrap().len(), 1);
    // Run again once done: the rejoined node is Ready, a new replacement is refused and
    // nothing is sent.
    let before = w.ran().len();
    let again = w.replace(false).await;
    assert!(
        matches!(again, Err(ReplaceError::ReadyNodeExists { .. })),
        "{again:?}"
    );
    assert_eq!(w.ran().len(), before);
    assert_eq!(w.rejoin.minted.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_etcd_removal_interrupted_in_flight_is_not_sent_again() {
    let w = world();
    // A run that journaled the removal's intent and died before the outcome (the member is
    // still listed: the removal never reached etcd).
    w.replace_intent_for_test("etcd-member");
    let err = w.replace(false).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("journaled before and the member is still listed"),
        "{err}"
    );
    assert!(!w.ran().iter().any(|r| r.contains("member remove")));
    assert!(!said(&w.log).iter().any(|l| l.starts_with("delete")));
}

#[tokio::test(start_paused = true)]
async fn another_board_is_refused_unless_a_person_said_it_was_replaced() {
    let w = world();
    w.bmc.lock().unwrap().serial = "SN-NEW".into();
    let err = w.replace(false).await.unwrap_err();
    assert!(matches!(err, ReplaceError::Identity { .. }), "{err}");
    assert!(err.to_string().contains("--new-board"), "{err}");
    assert!(w.ran().is_empty(), "{:?}", w.ran());
    assert!(!said(&w.log).iter().any(|l| l.starts_with("delete")));
    // Said so: accepted and reported as a new board.
    let kubelet = w.kubelet();
    let done = w.replace(true).await.unwrap();
    kubelet.await.unwrap();
    assert!(done.board_changed);
}

#[tokio::test(start_paused = true)]
async fn no_quorum_no_removal_and_nothing_deleted() {
    let w = world();
    w.cluster.edit("cp-3", |n| n.ready = Some("False".into()));
    let err = w.replace(false).await.unwrap_err();
    assert!(matches!(err, ReplaceError::Quorum { .. }), "{err}");
    assert!(
        w.ran().iter().all(|r| r.contains("member list")),
        "{:?}",
        w.ran()
    );
    assert!(!said(&w.log).iter().any(|l| l.starts_with("delete")));
}

impl World {
    /// Journal the intent of `step` as a run killed right after it would have.
    fn replace_intent_for_test(&self, step: &str) {
        // The record and identity steps first, as that run did them.
        let key = |s: &str| format!("cp-1/r1/replace-{s}");
        let j = self.exec.journal();
        let kept = Kept::of(&self.cluster.nodes.lock().unwrap()["cp-1"]);
        for (s, detail) in [
            ("record", serde_json::to_string(&kept).unwrap()),
            ("identity", r#"{"uuid":null,"changed":false}"#.to_owned()),
        ] {
            j.intent(&key(s), "cp-1", s, &Before::default(), 1).unwrap();
            j.outcome(&key(s), "done", &detail, 2).unwrap();
        }
        j.intent(&key(step), "cp-1", step, &Before::default(), 3)
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_locked_by_another_actor_is_not_replaced_and_the_lock_is_given_back() {
    let w = world();
    w.cluster
        .leases
        .lock()
        .unwrap()
        .insert("oob-node-cp-1".into(), "someone-else".into());
    let err = w.replace(false).await.unwrap_err();
    assert!(matches!(err, ReplaceError::Busy { .. }), "{err}");
    assert!(w.ran().is_empty(), "{:?}", w.ran());
    // Free: the whole replacement holds the lock and gives it back.
    w.cluster.leases.lock().unwrap().clear();
    let kubelet = w.kubelet();
    w.replace(false).await.unwrap();
    kubelet.await.unwrap();
    let l = said(&w.log);
    // Taken, renewed before every step, given back once at the end.
    let locks = l
        .iter()
        .filter(|x| x.starts_with("lock oob-node-cp-1"))
        .count();
    assert!(locks > 5, "{l:?}");
    assert_eq!(
        l.iter().filter(|x| x.starts_with("unlock")).count(),
        1,
        "{l:?}"
    );
    assert!(
        l.last().is_some_and(|x| x == "unlock oob-node-cp-1"),
        "{l:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_command_refused_before_it_reached_the_host_is_sent_later() {
    let w = world();
    // Reinstalled: a new host key, the pinned one refuses it. Nothing reached the host.
    w.hosts.new_host_key.lock().unwrap().push("10.0.0.1".into());
    let err = w.replace(false).await.unwrap_err();
    assert!(
        matches!(err, ReplaceError::NotSent { step: "reset", .. }),
        "{err}"
    );
    // The key updated: the same replacement goes on and sends the reset and the join.
    w.hosts.new_host_key.lock().unwrap().clear();
    let kubelet = w.kubelet();
    w.replace(false).await.unwrap();
    kubelet.await.unwrap();
    let ran = w.ran();
    assert_eq!(
        ran.iter()
            .filter(|r| r.contains("kubeadm reset -f"))
            .count(),
        1,
        "{ran:#?}"
    );
    assert_eq!(ran.iter().filter(|r| r.contains("kubeadm join")).count(), 1);
}
