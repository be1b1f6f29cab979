//! The simulated fleet in its own process (`oob sim-fleet`), a config for it, and `oob
//! serve` against it: for tests that SIGKILL the service and read what the peers kept.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The simulated fleet (`oob sim-fleet`, as `oob-mocks fleet`) in its own process, so that killing `oob serve` leaves the BMCs' memory
/// of what they received intact.
pub struct FleetProcess {
    child: std::process::Child,
    pub desc: Value,
}

impl Drop for FleetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_fleet(dir: &Path, nodes: usize, extra: &[&str]) -> FleetProcess {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_oob"))
        .args(["sim-fleet", "--nodes", &nodes.to_string(), "--dir"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let path = dir.join("fleet.json");
    let until = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < until,
            "the simulated fleet did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let desc = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    FleetProcess { child, desc }
}

/// An `oob` config for the fleet; `extra` goes after `[policy]` (e.g. a `[report]` section).
pub fn write_config(dir: &Path, fleet: &Value, extra: &str) -> std::path::PathBuf {
    let mut out = format!(
        r#"[service]
probe_interval_ms = 500
hardware_interval_ms = 1000
probe_timeout_ms = 300
liveness = "ssh-port"
journal = "{d}/journal.sqlite"
reports_dir = "{d}/reports"
listen = "127.0.0.1:0"

[policy]
soft_reboot_timeout_s = 4
hard_reboot_timeout_s = 10
power_verify_timeout_s = 10
drain_timeout_s = 10
max_unhealthy_percent = 70
cooldown_s = 0
bmc_min_interval_ms = 200
{extra}
"#,
        d = dir.display()
    );
    for h in fleet["hosts"].as_array().unwrap() {
        out.push_str(&format!(
            r#"
[[machines]]
name = "{name}"
host = "127.0.0.1"
bmc = "{bmc}"
serial = "{serial}"
credentials = {{ user = "admin", password_file = "{d}/bmc-password" }}
ssh = {{ user = "root", key = "/nonexistent", host_key = "ssh-ed25519 AAAA", port = {port} }}
"#,
            name = h["name"].as_str().unwrap(),
            bmc = h["bmc"].as_str().unwrap(),
            serial = h["serial"].as_str().unwrap(),
            port = h["ssh_port"],
            d = dir.display()
        ));
    }
    let path = dir.join("oob.toml");
    std::fs::write(&path, out).unwrap();
    path
}

pub fn serve(dir: &Path, config: &Path) -> tokio::process::Child {
    super::spawn_serve(
        None,
        config,
        &dir.join("kubeconfig"),
        "oob-crash-test",
        &dir.join("serve.log"),
    )
}

pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The address the newest `oob serve` in `dir/serve.log` listens on (`http://ADDR/`).
pub fn served_at(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("serve.log"))
        .ok()?
        .lines()
        .rev()
        .filter_map(|l| l.split("listening on ").nth(1))
        .find_map(|r| r.split_whitespace().next())
        .map(|a| format!("http://{a}/"))
}

/// The reset types a BMC of the fleet received, in order (its `/_mock/state`).
pub async fn resets(fleet: &Value, node: &str) -> Vec<String> {
    let host = fleet["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == node)
        .unwrap();
    let bmc = host["bmc"].as_str().unwrap();
    let base = bmc
        .trim_start_matches("redfish+")
        .split("/redfish")
        .next()
        .unwrap();
    let state: Value = reqwest::get(format!("{base}/_mock/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    state["counters"]["resets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_str().unwrap().to_owned())
        .collect()
}
