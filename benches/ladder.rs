//! The ladder's speed on the simulated fleet (mock Redfish BMCs, hosts on loopback TCP, the
//! fake API server), run with `cargo bench --bench ladder`:
//!
//! - dark → confirmed out-of-band verdict, with the default detection policy (probe every 2 s,
//!   1 s probe timeout, 3 failed rounds, then the BMC asked); hosts go dark at random offsets
//!   from the probe tick;
//! - the ladder's own overhead at each step beyond the policy's waits and the simulated
//!   machine's own delays (power 0.3 s, boot 1.5 s); the soft-reboot wait is shortened to 5 s
//!   so the bench takes a minute, not hours (it is a wait, not overhead);
//! - false verdicts under flapping links that are down 30 % of the time.

mod stats;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use oob::config::{Liveness, PolicySettings, ServiceSettings};
use oob::demo::demo_config;
use oob_mocks::sim::{self, HostSpec, SimFleet, Timing};
use stats::stats;
use tokio::sync::{broadcast, watch};

const HUNG: usize = 8;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let specs: Vec<HostSpec> = (1..=HUNG + 4)
        .map(|i| HostSpec::new(&format!("node-{i}")))
        .collect();
    let timing = Timing::default();
    let fleet = SimFleet::start(&specs, timing).await?;
    let pw = dir.path().join("pw");
    std::fs::write(&pw, sim::PASSWORD)?;
    let mut config = demo_config(&fleet, dir.path(), &pw, None)?;
    let defaults = ServiceSettings::default();
    config.service = ServiceSettings {
        liveness: Liveness::SshPort,
        journal: config.service.journal.clone(),
        reports_dir: config.service.reports_dir.clone(),
        ..defaults
    };
    config.policy = PolicySettings {
        soft_reboot_timeout_s: 5,
        max_concurrent: HUNG,
        max_unhealthy_percent: 100,
        cooldown_s: 0,
        ..PolicySettings::default()
    };
    let client = oob::k8s::client(kube::Config::new(fleet.api.url().parse()?))?;
    let (feed, mut rx) = broadcast::channel(4096);
    let svc = oob::service::build(config, client, false, "bench", feed)?;
    let (stop_tx, stop) = watch::channel(false);
    let runner = tokio::spawn(svc.clone().run(stop));
    let start = Instant::now();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(f64, String, String)>::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        while let Ok(l) = rx.recv().await {
            if let Ok(mut v) = sink.lock() {
                v.push((start.elapsed().as_secs_f64(), l.node, l.text));
            }
        }
    });
    // Two flapping links, down 30 % of the time, for the whole run.
    let flappy = [HUNG + 1, HUNG + 2];
    fleet.hosts[HUNG].flap(Duration::from_millis(2000), Duration::from_millis(600));
    fleet.hosts[HUNG + 1].flap(Duration::from_millis(3300), Duration::from_millis(1000));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut hung_at = BTreeMap::new();
    for (i, h) in fleet.hosts.iter().take(HUNG).enumerate() {
        // Random offsets from the 2 s probe tick.
        let jitter = (i as u64 * 733) % 2000;
        tokio::time::sleep(Duration::from_millis(1000 + jitter)).await;
        h.hang();
        hung_at.insert(h.name.clone(), start.elapsed().as_secs_f64());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline
        && !fleet
            .hosts
            .iter()
            .take(HUNG)
            .all(|h| h.boots() >= 1 && h.is_up())
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = stop_tx.send(true);
    let _ = runner.await;
    let lines = lines.lock().map(|v| v.clone()).unwrap_or_default();
    let at = |node: &str, needle: &str| {
        lines
            .iter()
            .find(|(_, n, t)| n == node && t.contains(needle))
            .map(|(t, _, _)| *t)
    };
    let mut verdict = Vec::new();
    let mut to_soft = Vec::new();
    let mut to_hard = Vec::new();
    let mut cycle = Vec::new();
    let mut recovery = Vec::new();
    let power = timing.power_delay.as_secs_f64();
    let boot = timing.boot_delay.as_secs_f64();
    for (node, t0) in &hung_at {
        let (Some(v), Some(soft), Some(hard), Some(done), Some(rec)) = (
            at(node, "verdict down"),
            at(node, "soft-reboot: graceful restart requested"),
            at(node, "hard reboot: power cycle"),
            at(node, "power cycle verified"),
            at(node, "recovered"),
        ) else {
            println!("{node}: the ladder did not complete");
            continue;
        };
        verdict.push(v - t0);
        to_soft.push(soft - v);
        to_hard.push(hard - (soft + 5.0));
        cycle.push(done - hard - 2.0 * power);
        recovery.push(rec - (done + boot));
    }
    let false_verdicts = flappy
        .iter()
        .map(|i| format!("node-{i}"))
        .filter(|n| at(n, "verdict down").is_some() || at(n, "soft reboot").is_some())
        .count();
    println!(
        "ladder on {} simulated machines ({HUNG} hung at random offsets from the probe tick)",
        fleet.hosts.len()
    );
    stats("dark -> confirmed out-of-band verdict", verdict);
    stats("overhead: verdict -> soft reboot sent", to_soft);
    stats("overhead: soft-reboot wait over -> cycle start", to_hard);
    stats("overhead: cycle beyond the BMC's 2 x 0.3 s", cycle);
    stats("overhead: host booted -> recovered noted", recovery);
    println!("false verdicts on 2 links flapping 30 % of the time: {false_verdicts}");
    Ok(())
}
