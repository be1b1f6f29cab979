//! `oob serve` end to end against independent peers only: sushy-emulator (OpenStack's Redfish
//! emulator) as the BMCs, hosts that are network namespaces answering ping, ICMP liveness,
//! and Nodes that give their address only as InternalIP (no `host =` in the config), as an
//! in-cluster inventory would. sushy reads Off at once on a restart and On 1–11 s later, has
//! no SEL, and logs every request: its log, not our code, says how many resets it received.
//!
//! Everything oob talks to lives in a monitor namespace: sushy and the fake API server
//! listen on that namespace's own loopback; the hosts sit behind veth pairs.

use std::time::{Duration, Instant};

use oob::remedy::stage::Stage;

use crate::common::world::World;

async fn wait_for(what: &str, limit: Duration, world: &World, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < until,
            "timed out waiting for {what}\n--- serve.log ---\n{}",
            world.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Healthy hosts (one without sshd) are left alone; a hung host behind a BMC without a SEL
/// is confirmed host-hung from its power state and recovers with exactly one reset, verified
/// by a new bootID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_host_recovers_with_one_reset_and_healthy_hosts_are_left_alone() {
    let w = World::start(World::QUICK).await;
    let (hung, hung_uuid) = w.nodes[0].clone();
    let (quiet, quiet_uuid) = w.nodes[1].clone();
    let mut serve = w.serve();
    // Several rounds with both hosts healthy: pinged at their InternalIP, no suspicion,
    // although host 1 has no sshd.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for n in [&hung, &quiet] {
        let t = w.timeline(n);
        assert!(
            !t.iter().any(|l| l.starts_with("suspect")),
            "{n} answers ping at its InternalIP and is Ready: {t:#?}\n{}",
            w.log()
        );
    }
    let follower = w.hang_host(0);
    wait_for(
        "the hung host's recovery",
        Duration::from_secs(90),
        &w,
        || w.timeline(&hung).iter().any(|l| l.starts_with("recovered")),
    )
    .await;
    let t = w.timeline(&hung);
    assert!(
        t.iter().any(|l| l.contains("verdict down (host-hung)")),
        "sushy has no SEL; its power state alone confirms a hung host: {t:#?}"
    );
    assert!(
        t.iter().any(|l| l.contains("exposes no SEL")),
        "the missing SEL is said, not taken for an unreachable BMC: {t:#?}"
    );
    assert!(
        t.iter().any(|l| l.contains("reboot verified (bootID")),
        "{t:#?}"
    );
    // A few more rounds: nothing else is sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    serve.kill().await.unwrap();
    follower.abort();
    assert_eq!(w.sushy.resets(&hung_uuid), 1, "exactly one reset");
    assert_eq!(
        w.sushy.resets(&quiet_uuid),
        0,
        "the host without sshd is left alone"
    );
    let quiet_timeline = w.timeline(&quiet);
    assert!(
        quiet_timeline.iter().all(|l| l.contains("exposes no SEL")),
        "nothing but the note that sushy has no SEL: {quiet_timeline:#?}"
    );
    let j = w.journal();
    assert!(j.entries(Some(&quiet)).unwrap().is_empty());
    assert_eq!(
        j.position(&quiet).unwrap().map(|p| p.stage),
        Some(Stage::Healthy)
    );
    let node = w.api.node(&quiet).unwrap();
    assert!(node["spec"]["unschedulable"].is_null(), "{node:#}");
    let conditions = node["status"]["conditions"].as_array().unwrap();
    assert!(!conditions.iter().any(|c| c["type"] == "OobRemediation"));
    assert!(!w
        .api
        .events()
        .iter()
        .any(|e| e["regarding"]["name"] == quiet.as_str()));
}

/// SIGKILL right after the reset reached sushy (its log says so), then a restart: the
/// restarted service resumes the journaled remedy and never sends a second reset, although
/// sushy reads Off for a moment during the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_right_after_the_reset_never_leads_to_a_second_one() {
    let w = World::start(World::QUICK).await;
    let (hung, hung_uuid) = w.nodes[0].clone();
    let mut serve = w.serve();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let follower = w.hang_host(0);
    wait_for(
        "the reset to reach sushy",
        Duration::from_secs(60),
        &w,
        || w.sushy.resets(&hung_uuid) > 0,
    )
    .await;
    serve.kill().await.unwrap();
    let _ = serve.wait().await;
    let mut serve = w.serve();
    wait_for(
        "the recovery after the restart",
        Duration::from_secs(90),
        &w,
        || w.timeline(&hung).iter().any(|l| l.starts_with("recovered")),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    serve.kill().await.unwrap();
    follower.abort();
    assert_eq!(
        w.sushy.resets(&hung_uuid),
        1,
        "one reset in the episode, across the kill: {:#?}",
        w.timeline(&hung)
    );
    let j = w.journal();
    let actions: Vec<String> = j
        .entries(Some(&hung))
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["graceful-restart"], "{:#?}", w.timeline(&hung));
    assert!(
        j.in_flight().unwrap().is_empty(),
        "every intent has an outcome"
    );
    assert_eq!(
        j.position(&hung).unwrap().map(|p| p.stage),
        Some(Stage::Healthy)
    );
}
