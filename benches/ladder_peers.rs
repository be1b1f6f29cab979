//! The ladder's speed against independent peers, run with `cargo bench --bench ladder_peers`
//! (root: it creates network namespaces; sushy-emulator installed as by `scripts/test`):
//! `oob serve` (release build) in a monitor namespace with ICMP liveness and the default
//! detection policy (probe every 2 s, 3 echoes with a 1 s timeout, 3 failed rounds, then
//! the BMC asked); two hosts that are network namespaces, known only by their Node's
//! InternalIP; sushy-emulator as their BMCs (no SEL; a restart reads Off at once, On 1–11 s
//! later). Each host hangs in turn (link down, Ready=Unknown); a follower boots it when
//! sushy has restarted it (link up, new bootID, Ready=True).
//!
//! - dark → confirmed out-of-band verdict (the timeline's "verdict down" line);
//! - overhead: verdict → soft reboot sent (identity check, journal, the request);
//! - overhead: host booted (follower) → recovery noted;
//! - resets sushy received per hang (must be 1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod stats;

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::world::World;
use oob::clock::now_ms;
use stats::stats;

const ROUNDS: usize = 4;

fn after(lines: &[(u64, String)], t0: u64, needle: &str) -> Option<u64> {
    lines
        .iter()
        .find(|(at, l)| *at >= t0 && l.contains(needle))
        .map(|(at, _)| *at)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let w = World::start("").await;
    let mut serve = w.serve();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (mut verdict, mut to_soft, mut to_recovered, mut resets) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for (i, (node, uuid)) in w.nodes.clone().into_iter().enumerate() {
            let before = w.sushy.resets(&uuid);
            // Hang at an offset from the 2 s probe tick that differs each time.
            tokio::time::sleep(Duration::from_millis(
                700 + (round * 2 + i) as u64 * 433 % 2000,
            ))
            .await;
            let t0 = now_ms();
            let follower = w.hang_host(i);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while after(&w.timeline_at(&node), t0, "recovered").is_none() {
                if tokio::time::Instant::now() > deadline {
                    println!("{node}: not recovered within 120 s\n{}", w.log());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            follower.abort();
            let lines = w.timeline_at(&node);
            let booted = w
                .boots
                .lock()
                .unwrap()
                .iter()
                .find(|(n, at)| *n == node && *at >= t0)
                .map(|(_, at)| *at);
            if let (Some(v), Some(soft), Some(rec), Some(booted)) = (
                after(&lines, t0, "verdict down"),
                after(&lines, t0, "soft-reboot: graceful restart requested"),
                after(&lines, t0, "recovered"),
                booted,
            ) {
                verdict.push((v - t0) as f64 / 1000.0);
                to_soft.push(soft.saturating_sub(v) as f64 / 1000.0);
                to_recovered.push(rec.saturating_sub(booted) as f64 / 1000.0);
            }
            resets.push(w.sushy.resets(&uuid) - before);
            // Let the node settle (cooldown 0) before the next hang.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
    serve.kill().await.unwrap();
    println!(
        "ladder against sushy-emulator + namespace hosts, ICMP liveness, default detection policy ({} hangs)",
        ROUNDS * w.nodes.len()
    );
    stats("dark -> confirmed out-of-band verdict", verdict);
    stats("overhead: verdict -> soft reboot sent", to_soft);
    stats("overhead: host booted -> recovery noted", to_recovered);
    println!("resets sushy received per hang: {resets:?}");
}
