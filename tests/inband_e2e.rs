//! The in-band rungs end to end: `oob serve` against sushy-emulator (the BMCs), hosts that
//! are network namespaces, the fake API server, and a real `sshd` on host 0 whose root finds
//! stand-in `systemctl` and `df` first on its PATH. The stand-ins print the recorded real
//! outputs of `tests/fixtures/host` for the unit states the test sets, and write down every
//! call: what they were asked, not our code, says how many restarts and reboots were sent.
//! The other checks (`/proc`, `journalctl`, `openssl`, …) run for real on the host.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oob::remedy::stage::Stage;

use crate::common::world::{set_ready, World};

/// The stand-ins' directory: `bin/` for the commands, `state/` for the units and the record.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        Self::with_df("df-P.txt", "df-iP.txt")
    }

    /// Stand-ins whose `df` prints these recordings (blocks, inodes).
    fn with_df(blocks: &str, inodes: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host");
        let f = |name: &str| fixtures.join(name).display().to_string();
        let systemctl = format!(
            r#"#!/bin/sh
S='{state}'
echo "systemctl $*" >> "$S/asked"
unit=""
for a in "$@"; do unit="$a"; done
case "$1" in
  show)
    case "$(cat "$S/$unit" 2>/dev/null || echo running)" in
      running) f='{active}' ;;
      stopped) f='{stopped}' ;;
      looping) f='{looping}' ;;
    esac
    grep -v '^rc=' "$f" ;;
  restart) echo running > "$S/$unit" ;;
  reboot) : ;;
  *) exit 1 ;;
esac
"#,
            state = state.display(),
            active = f("systemctl-show-active.txt"),
            stopped = f("systemctl-show-stopped.txt"),
            looping = f("systemctl-show-crash-looping.txt"),
        );
        // The recorded df (87 % of /: a warning), whatever this machine's disk holds.
        let df = format!(
            "#!/bin/sh\ncase \"$1\" in\n  -iP) f='{}' ;;\n  *) f='{}' ;;\nesac\ngrep -v '^rc=' \"$f\"\nexit 1\n",
            f(inodes),
            f(blocks)
        );
        for (name, text) in [("systemctl", systemctl), ("df", df)] {
            let p = bin.join(name);
            std::fs::write(&p, text).unwrap();
            std::process::Command::new("chmod")
                .arg("+x")
                .arg(&p)
                .status()
                .unwrap();
        }
        Self { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn set(&self, unit: &str, state: &str) {
        std::fs::write(self.dir.path().join("state").join(unit), state).unwrap();
    }

    /// Every stand-in call that changes something (`systemctl restart|reboot …`).
    fn sent(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("state/asked"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("systemctl show"))
            .map(str::to_owned)
            .collect()
    }
}

async fn wait_for(what: &str, limit: Duration, world: &World, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < until,
            "timed out waiting for {what}\n--- timeline ---\n{:#?}\n--- serve.log ---\n{}",
            world.timeline(&world.nodes[0].0),
            world.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unschedulable(w: &World, node: &str) -> bool {
    w.api.node(node).unwrap()["spec"]["unschedulable"] == true
}

/// A stopped kubelet: cordoned, restarted over SSH exactly once although oob is SIGKILLed
/// right after sending the restart, Ready again, the health check passes, uncordoned; no
/// reboot of any kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_kubelet_is_restarted_once_across_a_sigkill_and_nothing_is_rebooted() {
    let host = Host::new();
    let w = World::start_with_ssh(World::QUICK, &host.bin()).await;
    let (node, uuid) = w.nodes[0].clone();
    let mut serve = w.serve();
    tokio::time::sleep(Duration::from_secs(3)).await;
    host.set("kubelet.service", "stopped");
    set_ready(&w.api, &node, "False", None);
    wait_for("the restart", Duration::from_secs(60), &w, || {
        !host.sent().is_empty()
    })
    .await;
    serve.kill().await.unwrap();
    assert_eq!(host.sent(), ["systemctl restart kubelet.service"]);
    assert!(unschedulable(&w, &node), "cordoned before the restart");
    // A new process resumes the journaled restart: not sent again. The kubelet posts Ready.
    let mut serve = w.serve();
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_ready(&w.api, &node, "True", None);
    wait_for("the recovery", Duration::from_secs(60), &w, || {
        w.timeline(&node)
            .iter()
            .any(|l| l.starts_with("recovered:"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    serve.kill().await.unwrap();
    assert_eq!(host.sent(), ["systemctl restart kubelet.service"], "once");
    assert!(
        !unschedulable(&w, &node),
        "uncordoned after the health check"
    );
    assert_eq!(w.sushy.resets(&uuid), 0, "no BMC action");
    let t = w.timeline(&node);
    for expected in [
        "verdict down (unit-down)",
        "cordoned",
        "repair: `systemctl restart kubelet.service` over SSH",
        // ("not sent again" is said when the kill came before the outcome was written;
        // under load the outcome may be on disk first: either way one restart, above.)
        "health check passed",
        "uncordoned",
    ] {
        assert!(t.iter().any(|l| l.contains(expected)), "{expected}: {t:#?}");
    }
    let p = w.journal().position(&node).unwrap().unwrap();
    assert_eq!(p.stage, Stage::Healthy);
}

/// An OS problem with SSH up and nothing to restart: `systemctl reboot` over SSH before any
/// BMC action, never sent twice across a SIGKILL, verified by the new bootID; back with a
/// crash-looping kubelet the node stays cordoned until the kubelet settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_os_problem_is_rebooted_over_ssh_once_and_uncordoned_only_when_the_kubelet_settles() {
    let host = Host::new();
    let w = World::start_with_ssh(World::QUICK, &host.bin()).await;
    let (node, uuid) = w.nodes[0].clone();
    let mut serve = w.serve();
    tokio::time::sleep(Duration::from_secs(3)).await;
    set_ready(&w.api, &node, "False", None);
    wait_for("the reboot", Duration::from_secs(60), &w, || {
        !host.sent().is_empty()
    })
    .await;
    serve.kill().await.unwrap();
    assert_eq!(host.sent(), ["systemctl reboot"]);
    assert_eq!(w.sushy.resets(&uuid), 0, "SSH first, not the BMC");
    // The host comes back on a new boot, Ready, but its kubelet keeps restarting.
    host.set("kubelet.service", "looping");
    set_ready(&w.api, &node, "True", Some(format!("{node}-boot-2")));
    let mut serve = w.serve();
    wait_for(
        "the failed health check",
        Duration::from_secs(60),
        &w,
        || {
            w.timeline(&node)
                .iter()
                .any(|l| l.contains("health check before uncordon failed"))
        },
    )
    .await;
    assert!(
        unschedulable(&w, &node),
        "not uncordoned while the kubelet crash loops"
    );
    host.set("kubelet.service", "running");
    wait_for("the recovery", Duration::from_secs(60), &w, || {
        w.timeline(&node)
            .iter()
            .any(|l| l.starts_with("recovered:"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    serve.kill().await.unwrap();
    assert_eq!(
        host.sent(),
        ["systemctl reboot"],
        "once, across the SIGKILL"
    );
    assert_eq!(w.sushy.resets(&uuid), 0);
    assert!(
        !unschedulable(&w, &node),
        "{:#?}\n{:#}",
        w.timeline(&node),
        w.api.node(&node).unwrap()
    );
    let t = w.timeline(&node);
    assert!(
        t.iter().any(|l| l.contains("reboot verified (bootID")),
        "{t:#?}"
    );
}

/// The kubelet stopped because /var is full (a real `df` of a full filesystem): no restart
/// and no reboot would fix that. The node is cordoned, drained and reported with the finding
/// and its fix; nothing is sent to the host or the BMC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_var_is_drained_and_reported_never_restarted_or_rebooted() {
    let host = Host::with_df("df-P-var-full.txt", "df-iP-var-full.txt");
    let w = World::start_with_ssh(World::QUICK, &host.bin()).await;
    let (node, uuid) = w.nodes[0].clone();
    let mut serve = w.serve();
    tokio::time::sleep(Duration::from_secs(3)).await;
    host.set("kubelet.service", "stopped");
    set_ready(&w.api, &node, "False", None);
    wait_for("the report", Duration::from_secs(60), &w, || {
        w.timeline(&node)
            .iter()
            .any(|l| l.starts_with("fault report written"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    serve.kill().await.unwrap();
    assert!(
        host.sent().is_empty(),
        "nothing restarted or rebooted: {:?}",
        host.sent()
    );
    assert_eq!(w.sushy.resets(&uuid), 0);
    assert!(unschedulable(&w, &node), "cordoned");
    let t = w.timeline(&node);
    assert!(
        t.iter()
            .any(|l| l.starts_with("new critical finding: disk_full (/var 100% of space used")),
        "{t:#?}"
    );
    let report: String = std::fs::read_dir(w.dir.path().join("reports"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".md"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(report.contains("no restart fixes it"), "{report}");
    assert!(
        report.contains("`disk_full`") && report.contains("fix: free space"),
        "{report}"
    );
    let p = w.journal().position(&node).unwrap().unwrap();
    assert!(
        matches!(p.stage, Stage::AwaitReplacement { .. }),
        "{:?}",
        p.stage
    );
}

/// A hung host whose SSH does not answer gets the BMC rungs although it has SSH settings:
/// one reset in sushy's log, recovery verified by the new bootID, and nothing sent over SSH
/// (the health check before uncordoning only asks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_host_whose_ssh_does_not_answer_gets_the_bmc_rungs() {
    let host = Host::new();
    let w = World::start_with_ssh(World::QUICK, &host.bin()).await;
    let (node, uuid) = w.nodes[0].clone();
    let mut serve = w.serve();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let follower = w.hang_host(0);
    wait_for("the recovery", Duration::from_secs(90), &w, || {
        w.timeline(&node)
            .iter()
            .any(|l| l.starts_with("recovered:"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    serve.kill().await.unwrap();
    follower.abort();
    assert_eq!(w.sushy.resets(&uuid), 1, "exactly one reset");
    assert!(host.sent().is_empty(), "{:?}", host.sent());
    assert!(
        !unschedulable(&w, &node),
        "uncordoned after the health check"
    );
    let t = w.timeline(&node);
    for expected in [
        "verdict down (host-hung)",
        "cordoned",
        "health check passed",
        "reboot verified (bootID",
    ] {
        assert!(t.iter().any(|l| l.contains(expected)), "{expected}: {t:#?}");
    }
}
