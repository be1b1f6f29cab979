//! A world of independent peers for end-to-end runs of `oob serve`: hosts that are network
//! namespaces (answering ping; one runs sshd), sushy-emulator as their BMCs, the fake API
//! server with their Nodes (InternalIP only, no `host =` in the config), all reached from a
//! monitor namespace where `oob serve` runs. Used by `tests/peers_e2e.rs` and by
//! `benches/ladder_peers.rs`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use oob::remedy::journal::Journal;
use oob_mocks::kube::{FakeApi, RunningApi};
use serde_json::{json, Value};

use super::netns::{Lan, NsRuntime};
use super::sshd::Sshd;
use super::{free_port, peers, spawn_serve, sushy_systems};

/// sushy-emulator started inside the monitor namespace, stopped on drop.
pub struct NsSushy {
    ns: String,
    port: u16,
}

impl NsSushy {
    fn start(ns: &str) -> Self {
        let port = free_port();
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "bash"])
            .arg(peers().join("sushy/start.sh"))
            .arg(port.to_string())
            .output()
            .expect("run sushy start.sh");
        assert!(
            out.status.success(),
            "sushy-emulator did not start (the test script installs it): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            ns: ns.to_owned(),
            port,
        }
    }

    /// Reset requests sushy logged for system `uuid`.
    pub fn resets(&self, uuid: &str) -> usize {
        let log = std::fs::read_to_string(format!("/tmp/sushy-emulator-{}.log", self.port))
            .unwrap_or_default();
        let wanted = format!("POST /redfish/v1/Systems/{uuid}/Actions/ComputerSystem.Reset");
        log.lines().filter(|l| l.contains(&wanted)).count()
    }
}

impl Drop for NsSushy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "bash"])
            .arg(peers().join("sushy/stop.sh"))
            .arg(self.port.to_string())
            .output();
    }
}

/// The world of one test: hosts, sushy, the API server, the config.
pub struct World {
    pub lan: Lan,
    pub ns: NsRuntime,
    pub sushy: NsSushy,
    pub api: FakeApi,
    _running: RunningApi,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// (node name, sushy system UUID), one per host.
    pub nodes: Vec<(String, String)>,
    /// (node, ms since the epoch) each time the follower booted a host.
    pub boots: std::sync::Arc<std::sync::Mutex<Vec<(String, u64)>>>,
    _sshd: Sshd,
}

fn node(name: &str, uuid: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name }, "annotations": {} },
        "spec": {},
        "status": {
            "conditions": [{ "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": "2026-11-27T10:00:00Z", "lastTransitionTime": "2026-11-27T10:00:00Z" }],
            "addresses": [{ "type": "InternalIP", "address": ip }, { "type": "Hostname", "address": name }],
            "nodeInfo": { "systemUUID": uuid, "bootID": format!("{name}-boot-1"), "machineID": "m",
                "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                "containerRuntimeVersion": "containerd://1.7", "kubeletVersion": "v1.33.0",
                "kubeProxyVersion": "v1.33.0", "operatingSystem": "linux", "architecture": "amd64" }
        }
    })
}

impl World {
    /// Quick rounds for tests: probe every 0.5 s with one echo.
    pub const QUICK: &'static str = "probe_interval_ms = 500\nhardware_interval_ms = 5000\nprobe_timeout_ms = 300\nping_count = 1\n";

    /// Two hosts behind sushy's powered-on systems: host 0 runs sshd, host 1 runs none.
    /// `service` is added to the config's `[service]` table (intervals; empty for defaults).
    pub async fn start(service: &str) -> Self {
        Self::start_with(service, None).await
    }

    /// The same, with host 0's sshd finding stand-in commands in `bin` first on its PATH,
    /// and host 0's machine given SSH settings (key, known host): the in-band rungs.
    pub async fn start_with_ssh(service: &str, bin: &std::path::Path) -> Self {
        Self::start_with(service, Some(bin)).await
    }

    async fn start_with(service: &str, bin: Option<&std::path::Path>) -> Self {
        let lan = Lan::new(2);
        let ns = NsRuntime::enter(&lan.monitor.name);
        let sushy = NsSushy::start(&lan.monitor.name);
        let on: Vec<(String, String)> = sushy_systems()
            .into_iter()
            .filter(|(_, _, power)| power == "On")
            .map(|(name, uuid, _)| (name, uuid))
            .collect();
        assert_eq!(on.len(), 2, "emulator.conf has two systems powered on");
        let nodes: Vec<(String, String)> = on;
        let fixture = json!({ "nodes": nodes.iter().zip(&lan.hosts)
            .map(|((name, uuid), (_, _, ip))| node(name, uuid, ip)).collect::<Vec<_>>() });
        let running = ns
            .run(async move {
                FakeApi::start(&fixture, "127.0.0.1:0".parse().expect("addr"))
                    .await
                    .expect("fake API server")
            })
            .await;
        let sshd = Sshd::start_with_path(Some(&lan.hosts[0].0.name), 22, bin);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("kubeconfig"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: e2e\nusers:\n- name: e2e\n  user: {{}}\ncurrent-context: e2e\n",
                running.url()
            ),
        )
        .unwrap();
        std::fs::write(d.join("bmc-password"), "password").unwrap();
        let mut config = format!(
            r#"[service]
{service}liveness = "icmp"
journal = "{d}/journal.sqlite"
reports_dir = "{d}/reports"
listen = "127.0.0.1:0"

[policy]
soft_reboot_timeout_s = 60
hard_reboot_timeout_s = 60
power_verify_timeout_s = 20
max_unhealthy_percent = 100
cooldown_s = 0
"#,
            d = d.display()
        );
        for (i, (name, uuid)) in nodes.iter().enumerate() {
            config.push_str(&format!(
                "\n[[machines]]\nname = \"{name}\"\nbmc = \"redfish+http://127.0.0.1:{port}/redfish/v1/Systems/{uuid}\"\ncredentials = {{ user = \"admin\", password_file = \"{d}/bmc-password\" }}\n",
                port = sushy.port,
                d = d.display()
            ));
            if i == 0 && bin.is_some() {
                config.push_str(&format!(
                    "ssh = {{ user = \"root\", key = \"{}\", host_key = \"{}\", poll_hardware = false }}\n",
                    sshd.user_key.display(),
                    sshd.host_key_pub
                ));
            }
        }
        let config_path = d.join("oob.toml");
        std::fs::write(&config_path, config).unwrap();
        Self {
            api: running.api.clone(),
            _running: running,
            lan,
            ns,
            sushy,
            dir,
            config: config_path,
            nodes,
            boots: Default::default(),
            _sshd: sshd,
        }
    }

    pub fn serve(&self) -> tokio::process::Child {
        let d = self.dir.path();
        spawn_serve(
            Some(&self.lan.monitor.name),
            &self.config,
            &d.join("kubeconfig"),
            "oob-e2e",
            &d.join("serve.log"),
        )
    }

    pub fn journal(&self) -> Journal {
        Journal::open(&self.dir.path().join("journal.sqlite")).unwrap()
    }

    /// A node's timeline with times (ms since the epoch).
    pub fn timeline_at(&self, node: &str) -> Vec<(u64, String)> {
        self.journal().timeline(node, 0).unwrap()
    }

    pub fn timeline(&self, node: &str) -> Vec<String> {
        self.journal()
            .timeline(node, 0)
            .unwrap()
            .into_iter()
            .map(|(_, w)| w)
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Host `i` hangs: no answer on the network, the kubelet stops posting (Ready=Unknown),
    /// the BMC still reads On. A follower plays the machine: when sushy reads Off (a reset
    /// arrived) and then On again, the host boots: link up, a new bootID, Ready=True.
    pub fn hang_host(&self, i: usize) -> tokio::task::JoinHandle<u32> {
        let (name, uuid) = self.nodes[i].clone();
        self.lan.set_host(i, false);
        set_ready(&self.api, &name, "Unknown", None);
        let api = self.api.clone();
        let url = format!(
            "http://127.0.0.1:{}/redfish/v1/Systems/{uuid}",
            self.sushy.port
        );
        let boot_log = self.boots.clone();
        let host = self.lan.hosts[i].0.name.clone();
        let dev = self.lan.hosts[i].1.clone();
        self.ns.handle.spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut boots = 1;
            let mut off = false;
            let until = Instant::now() + Duration::from_secs(150);
            while Instant::now() < until {
                let power = match client.get(&url).send().await {
                    Ok(r) => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["PowerState"].as_str().map(str::to_owned)),
                    Err(_) => None,
                };
                match power.as_deref() {
                    Some("Off") => off = true,
                    Some("On") if off => {
                        off = false;
                        boots += 1;
                        let _ = std::process::Command::new("ip")
                            .args(["-n", &host, "link", "set", &dev, "up"])
                            .output();
                        set_ready(&api, &name, "True", Some(format!("{name}-boot-{boots}")));
                        if let Ok(mut log) = boot_log.lock() {
                            log.push((name.clone(), oob::clock::now_ms()));
                        }
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            boots
        })
    }
}

pub fn set_ready(api: &FakeApi, node: &str, status: &str, boot: Option<String>) {
    api.touch(node, |n| {
        if let Some(c) = n
            .pointer_mut("/status/conditions/0")
            .and_then(Value::as_object_mut)
        {
            c.insert("status".into(), json!(status));
        }
        if let Some(b) = boot {
            n["status"]["nodeInfo"]["bootID"] = json!(b);
        }
    });
}
