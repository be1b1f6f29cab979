//! What the ladder costs the API server, run with `cargo bench --bench api_load`: a fleet of
//! 1,000 healthy machines (Nodes in the fake API server, hosts answering an SSH banner on
//! loopback, liveness by the SSH port), and the requests the API server receives per round
//!
//! - when each round reads its Node with a GET (what `oob serve` did before the node watch,
//!   and what a round without the watch still does);
//! - with the node watch that `oob serve` starts (one list and one watch for the fleet).
//!
//! Healthy machines write nothing, so every request counted is a read (plus the leader
//! lease's renewal, once per tick).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use oob_mocks::kube::FakeApi;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{broadcast, watch};

const MACHINES: usize = 1000;
const ROUNDS: u64 = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    // An SSH banner for every probe.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ssh_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"SSH-2.0-bench\r\n").await;
            });
        }
    });
    let nodes: Vec<_> = (0..MACHINES)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": format!("node-{i}"), "annotations": {}},
                "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "nodeInfo": {"systemUUID": format!("uuid-{i}"), "bootID": "b1"}}})
        })
        .collect();
    let api = FakeApi::start(&json!({ "nodes": nodes }), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "x").unwrap();
    let mut text = format!(
        "[service]\nprobe_interval_ms = 2000\nhardware_interval_ms = 3600000\nliveness = \"ssh-port\"\nconcurrency = 64\njournal = \"{d}/journal.sqlite\"\nreports_dir = \"{d}/reports\"\nlisten = \"127.0.0.1:0\"\n",
        d = dir.path().display()
    );
    for i in 0..MACHINES {
        text.push_str(&format!(
            "[[machines]]\nname = \"node-{i}\"\nbmc = \"redfish+http://127.0.0.1:1/redfish/v1/Systems/1\"\ncredentials = {{ user = \"u\", password_file = \"{}\" }}\nssh = {{ user = \"root\", key = \"/nonexistent\", host_key = \"ssh-ed25519 AAAA\", port = {ssh_port} }}\n",
            pw.display()
        ));
    }
    let config = oob::config::Config::parse("bench.toml", &text).unwrap();
    let client = oob::k8s::client(kube::Config::new(api.url().parse().unwrap())).unwrap();

    // Rounds that read their Node with a GET each.
    let (feed, _) = broadcast::channel(1024);
    let exec = oob::service::executor(&config, Some(client.clone()), false, "bench", feed).unwrap();
    let svc = Arc::new(oob::service::Service::new(config.clone(), Arc::new(exec), None).unwrap());
    let before = api.api.requests().len();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let sem = Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = Vec::new();
        for m in config.machines.clone() {
            let (svc, sem) = (svc.clone(), sem.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                svc.round(&m).await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
    let per_get = (api.api.requests().len() - before) as f64 / ROUNDS as f64;
    let get_secs = started.elapsed().as_secs_f64() / ROUNDS as f64;
    drop(svc);

    // `oob serve`'s scheduler with the node watch.
    let dir2 = tempfile::tempdir().unwrap();
    let mut config2 = config.clone();
    config2.service.journal = dir2.path().join("journal.sqlite");
    let (feed, _) = broadcast::channel(1024);
    let exec =
        oob::service::executor(&config2, Some(client.clone()), false, "bench", feed).unwrap();
    let svc = Arc::new(oob::service::Service::new(config2, Arc::new(exec), Some(client)).unwrap());
    let (stop_tx, stop) = watch::channel(false);
    let start_requests = api.api.requests().len();
    let runner = tokio::spawn(svc.clone().run(stop));
    // Warm-up: the list, the watch, the first rounds.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let warm = api.api.requests().len();
    tokio::time::sleep(Duration::from_secs(2 * ROUNDS)).await;
    let per_watch = (api.api.requests().len() - warm) as f64 / ROUNDS as f64;
    let _ = stop_tx.send(true);
    let _ = runner.await;
    let startup = warm - start_requests;
    println!("API requests per round, {MACHINES} healthy machines, probe interval 2 s:");
    println!("  a GET per machine per round:  {per_get:>8.1}  ({get_secs:.2} s per round of all machines)");
    println!(
        "  one node watch for the fleet: {per_watch:>8.1}  (start-up: {startup} requests incl. the list and the watch)"
    );
}
