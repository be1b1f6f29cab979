//! A simulated fleet for the demo and the ladder's end-to-end tests: every host is a mock
//! Redfish BMC (one system), a TCP port that answers with an SSH identification line while
//! the host is up, and a Node in the fake API server whose Ready condition and `bootID`
//! follow the host. The host follows its BMC: power off takes it down, power on boots it
//! (a new `bootID` after `boot_delay`), and a restart request reboots it unless the host is
//! hung (a hung OS ignores ACPI requests; only a hard power cycle cures it).
//!
//! TCP-only: liveness is the SSH port on loopback, not ICMP (every 127.x address answers
//! ping). The faults are the ones the ladder must handle: [`SimHost::hang`],
//! [`SimHost::fail_disk`], [`SimHost::flap`], and a Node whose `systemUUID` names another
//! machine ([`HostSpec::node_uuid`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::kube::{FakeApi, RunningApi};
use crate::redfish::{Config as RedfishConfig, Mock, RunningMock};
use crate::ssh::SshHost;

/// The one system path of every simulated BMC.
pub const SYSTEM: &str = "/redfish/v1/Systems/1";

/// BMC user and password of every simulated BMC.
pub const USER: &str = "admin";
/// Distinctive, so that a leak is found by a plain substring search.
pub const PASSWORD: &str = "oob-sim-S3cret-4q";

/// How the simulated fleet behaves in time.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A power request takes this long to show in PowerState.
    pub power_delay: Duration,
    /// From power on to the host answering and the kubelet posting Ready.
    pub boot_delay: Duration,
    /// How long after the host stops answering the Node's Ready turns Unknown (the
    /// node-monitor grace period, 40 s in a real cluster).
    pub ready_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            power_delay: Duration::from_millis(300),
            boot_delay: Duration::from_millis(1500),
            ready_grace: Duration::from_millis(1000),
        }
    }
}

/// One host to simulate.
#[derive(Debug, Clone)]
pub struct HostSpec {
    pub name: String,
    /// Pods (`ReplicaSet`-owned) scheduled on the node.
    pub pods: usize,
    /// The Node's `systemUUID`; `None` for the BMC's own (a correct inventory).
    pub node_uuid: Option<String>,
}

impl HostSpec {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            pods: 2,
            node_uuid: None,
        }
    }
}

#[derive(Debug)]
struct HostState {
    powered: bool,
    hung: bool,
    booting_until: Option<Instant>,
    boot_id: u32,
    /// (period, down) of a flapping link.
    flap: Option<(Duration, Duration)>,
    flap_start: Instant,
    down_since: Option<Instant>,
    /// What the Node says now (`True` / `False` / `Unknown`), to patch only changes.
    ready: String,
    /// Whether the Node shows KernelDeadlock=True now.
    deadlock_shown: bool,
    boots: u32,
}

impl HostState {
    fn up(&self, now: Instant) -> bool {
        let flapping_down = self.flap.is_some_and(|(period, down)| {
            let period = period.as_millis().max(1);
            now.duration_since(self.flap_start).as_millis() % period < down.as_millis()
        });
        self.powered && !self.hung && self.booting_until.is_none() && !flapping_down
    }
}

/// One simulated host.
pub struct SimHost {
    pub name: String,
    pub bmc: RunningMock,
    /// The SSH port: a real SSH server while up (hardware commands answered from the
    /// simulated drive and NIC), a closed connection otherwise.
    pub ssh: SocketAddr,
    pub ssh_host: SshHost,
    pub uuid: String,
    pub serial: String,
    state: Arc<Mutex<HostState>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SimHost {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn lock(state: &Mutex<HostState>) -> MutexGuard<'_, HostState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimHost {
    /// The OS hangs: the host stops answering, power stays on, ACPI requests are ignored.
    pub fn hang(&self) {
        lock(&self.state).hung = true;
        self.bmc.mock.faults(|f| f.ignore_graceful = true);
    }

    /// A drive fails: the BMC logs a critical Drive Slot event. The host stays up.
    /// The host's own drive fails SMART (seen over SSH, not in the BMC's log): overall
    /// health FAILED, reallocated sectors past any sane limit.
    pub fn fail_smart(&self) {
        let mut d = self.ssh_host.disk.lock().unwrap_or_else(|p| p.into_inner());
        d.failed = true;
        d.reallocated = 1_204;
    }

    /// `ssh-ed25519 AAAA…`: the host key to pin.
    pub fn host_key(&self) -> String {
        self.ssh_host
            .config
            .keys
            .first()
            .and_then(|k| k.public_key().to_openssh().ok())
            .unwrap_or_default()
    }

    pub fn fail_disk(&self) {
        self.bmc.mock.push_sel(
            SYSTEM,
            "Critical",
            "Drive Slot / Bay",
            "Drive Fault asserted on Drive 3",
        );
    }

    /// The kubelet stops (the Node turns NotReady); SSH and ping still answer.
    pub fn stop_kubelet(&self) {
        self.ssh_host
            .os
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .kubelet_stopped = true;
    }

    /// node-problem-detector reports KernelDeadlock on the Node; the kubelet stays Ready.
    /// A reboot clears it.
    pub fn kernel_deadlock(&self) {
        self.ssh_host
            .os
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .deadlock = true;
    }

    /// The host's simulated OS (restarts and reboots asked over SSH).
    pub fn os(&self) -> crate::ssh::Os {
        *self.ssh_host.os.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The link flaps: down for `down` out of every `period`.
    pub fn flap(&self, period: Duration, down: Duration) {
        let mut s = lock(&self.state);
        s.flap = Some((period, down));
        s.flap_start = Instant::now();
    }

    /// Whether the host answers now.
    pub fn is_up(&self) -> bool {
        lock(&self.state).up(Instant::now())
    }

    /// How many times the host booted since the simulation started.
    pub fn boots(&self) -> u32 {
        lock(&self.state).boots
    }
}

/// A simulated fleet: hosts and the fake API server holding their Nodes.
pub struct SimFleet {
    pub api: RunningApi,
    pub hosts: Vec<SimHost>,
    /// The one key every host's SSH server lets in.
    pub ssh_client_key: russh::keys::PrivateKey,
    /// TCP connections accepted on the hosts' SSH ports (banner probes and sessions).
    pub ssh_connections: Arc<AtomicU64>,
    follower: Vec<JoinHandle<()>>,
}

impl Drop for SimFleet {
    fn drop(&mut self) {
        for t in &self.follower {
            t.abort();
        }
    }
}

/// Where a simulated fleet listens.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// The BMCs and the API server (ephemeral ports).
    pub services: IpAddr,
    /// One address per host, its SSH port on 22 there (and the Node's InternalIP); `None`:
    /// every host on `services` with an ephemeral port.
    pub hosts: Option<Vec<IpAddr>>,
}

impl Default for Addresses {
    fn default() -> Self {
        Self {
            services: IpAddr::V4(Ipv4Addr::LOCALHOST),
            hosts: None,
        }
    }
}

impl SimFleet {
    pub async fn start(specs: &[HostSpec], timing: Timing) -> anyhow::Result<Self> {
        Self::start_on(specs, timing, &Addresses::default()).await
    }

    /// A fleet listening where `at` says (a scale benchmark puts every host on an address
    /// of its own inside a network namespace, so that ICMP reaches a host that can go dark).
    pub async fn start_on(
        specs: &[HostSpec],
        timing: Timing,
        at: &Addresses,
    ) -> anyhow::Result<Self> {
        let loopback = SocketAddr::new(at.services, 0);
        let ssh_connections = Arc::new(AtomicU64::new(0));
        let client_key = crate::ssh::new_key();
        let mut hosts = Vec::with_capacity(specs.len());
        let mut nodes = Vec::new();
        let mut pods = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let n = i + 1;
            let bmc = Mock::start(
                RedfishConfig {
                    user: USER.into(),
                    password: PASSWORD.into(),
                    power_delay: timing.power_delay,
                    // Half the fleet has the older locator LED property.
                    indicator_led: n % 2 == 0,
                    ..RedfishConfig::default()
                },
                loopback,
            )
            .await?;
            let uuid = format!("5a1d0000-0000-4000-8000-{n:012}");
            let serial = format!("SIM-{n:04}");
            bmc.mock.set_identity(SYSTEM, &uuid, &serial);
            // A listener per host, or one for all of them (port 22 of every host address,
            // told apart by the address a connection came to).
            let (listener, ssh) = match &at.hosts {
                Some(addrs) => {
                    let ip = *addrs
                        .get(i)
                        .ok_or_else(|| anyhow::anyhow!("fewer host addresses than hosts"))?;
                    (None, SocketAddr::new(ip, 22))
                }
                None => {
                    let l = TcpListener::bind(loopback).await?;
                    let a = l.local_addr()?;
                    (Some(l), a)
                }
            };
            let ssh_host = SshHost::new(
                crate::ssh::new_key(),
                client_key.public_key().clone(),
                &serial,
            );
            nodes.push(node(spec, spec.node_uuid.as_deref().unwrap_or(&uuid), ssh));
            for p in 0..spec.pods {
                pods.push(pod(&spec.name, p));
            }
            let state = Arc::new(Mutex::new(HostState {
                powered: true,
                hung: false,
                booting_until: None,
                boot_id: 1,
                flap: None,
                flap_start: Instant::now(),
                down_since: None,
                ready: "True".into(),
                deadlock_shown: false,
                boots: 0,
            }));
            hosts.push(SimHost {
                name: spec.name.clone(),
                bmc,
                ssh,
                uuid,
                serial,
                tasks: listener
                    .map(|l| {
                        let host = (state.clone(), ssh_host.clone());
                        let one = move |_: IpAddr| Some(host.clone());
                        tokio::spawn(answer(l, one, ssh_connections.clone()))
                    })
                    .into_iter()
                    .collect(),
                ssh_host,
                state,
            });
        }
        let fixture = json!({
            "nodes": nodes,
            "pods": pods,
            "pdbs": [{
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"namespace": "apps", "name": "web"},
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            }],
        });
        let api = FakeApi::start(&fixture, loopback).await?;
        let mut shared = None;
        if at.hosts.is_some() {
            anyhow::ensure!(
                crate::serve::may_bind(at.services),
                "host addresses of their own need a network namespace of their own"
            );
            let by_addr: std::collections::HashMap<IpAddr, (Arc<Mutex<HostState>>, SshHost)> =
                hosts
                    .iter()
                    .map(|h| (h.ssh.ip(), (h.state.clone(), h.ssh_host.clone())))
                    .collect();
            let l =
                TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 22)).await?;
            let find = move |ip: IpAddr| by_addr.get(&ip).cloned();
            shared = Some(tokio::spawn(answer(l, find, ssh_connections.clone())));
        }
        let followed = hosts
            .iter()
            .map(|h| Followed {
                name: h.name.clone(),
                bmc: h.bmc.mock.clone(),
                state: h.state.clone(),
                os: h.ssh_host.os.clone(),
            })
            .collect();
        let mut follower = vec![tokio::spawn(follow(followed, api.api.clone(), timing))];
        follower.extend(shared);
        Ok(Self {
            api,
            hosts,
            ssh_client_key: client_key,
            ssh_connections,
            follower,
        })
    }

    pub fn host(&self, name: &str) -> Option<&SimHost> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

fn node(spec: &HostSpec, uuid: &str, ssh: SocketAddr) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": {"kubernetes.io/hostname": spec.name, "node-role.kubernetes.io/worker": ""},
            "annotations": {},
        },
        "spec": {"taints": []},
        "status": {
            "conditions": [ready_condition("True")],
            "addresses": [
                {"type": "InternalIP", "address": ssh.ip().to_string()},
                {"type": "Hostname", "address": spec.name},
            ],
            "nodeInfo": {
                "systemUUID": uuid, "bootID": boot_id(&spec.name, 1), "machineID": "m",
                "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                "containerRuntimeVersion": "containerd://1.7", "kubeletVersion": "v1.33.0",
                "kubeProxyVersion": "v1.33.0", "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    })
}

fn pod(node: &str, i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "namespace": "apps", "name": format!("web-{node}-{i}"), "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "rs-1", "controller": true}],
        },
        "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx"}]},
        "status": {"phase": "Running"},
    })
}

/// node-problem-detector's KernelDeadlock condition (its kernel monitor's wording).
fn kernel_deadlock_condition(deadlocked: bool) -> Value {
    let (status, reason, message) = if deadlocked {
        (
            "True",
            "DockerHung",
            "kernel: INFO: task docker:20744 blocked for more than 120 seconds.",
        )
    } else {
        ("False", "KernelHasNoDeadlock", "kernel has no deadlock")
    };
    json!({
        "type": "KernelDeadlock", "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": "2026-11-22T10:00:00Z", "lastTransitionTime": "2026-11-22T10:00:00Z",
    })
}

fn ready_condition(status: &str) -> Value {
    let (reason, message) = match status {
        "True" => ("KubeletReady", "kubelet is posting ready status"),
        "False" => (
            "KubeletNotReady",
            "container runtime status check may not have completed yet",
        ),
        _ => ("NodeStatusUnknown", "Kubelet stopped posting node status."),
    };
    json!({
        "type": "Ready", "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": "2026-11-22T10:00:00Z", "lastTransitionTime": "2026-11-22T10:00:00Z",
    })
}

fn boot_id(name: &str, n: u32) -> String {
    let tag: u32 = name.bytes().map(u32::from).sum();
    format!("b0070000-{tag:04x}-4000-8000-{n:012}")
}

/// The SSH port: an identification line while the host is up, else the connection is
/// closed at once (as a kernel would answer a closed port, or a dead host not at all).
async fn answer(
    listener: TcpListener,
    host: impl Fn(IpAddr) -> Option<(Arc<Mutex<HostState>>, SshHost)>,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let Some((state, ssh)) = stream.local_addr().ok().and_then(|a| host(a.ip())) else {
            continue;
        };
        if lock(&state).up(Instant::now()) {
            tokio::spawn(ssh.serve(stream));
        }
    }
}

/// What the follower keeps in step for one host.
struct Followed {
    name: String,
    bmc: Mock,
    state: Arc<Mutex<HostState>>,
    os: Arc<Mutex<crate::ssh::Os>>,
}

/// Follow every BMC's power state and keep each Node in step: one task for the fleet (a
/// task per host waking twenty times a second costs a 10,000-host benchmark a core).
async fn follow(hosts: Vec<Followed>, api: FakeApi, timing: Timing) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        for h in &hosts {
            follow_one(h, &api, timing);
        }
    }
}

fn follow_one(h: &Followed, api: &FakeApi, timing: Timing) {
    let (name, bmc) = (h.name.as_str(), &h.bmc);
    let powered = bmc.power_state(SYSTEM).as_deref() == Some("On");
    let now = Instant::now();
    let mut booted = None;
    let mut os = h.os.lock().unwrap_or_else(|p| p.into_inner());
    let ready = {
        let mut s = lock(&h.state);
        // `systemctl reboot` over SSH: the OS goes down and boots again.
        if os.reboot_requested && s.powered {
            os.reboot_requested = false;
            s.hung = false;
            s.booting_until = Some(now + timing.boot_delay);
        }
        if !powered {
            s.powered = false;
            s.hung = false;
            s.booting_until = None;
        } else if !s.powered {
            s.powered = true;
            s.booting_until = Some(now + timing.boot_delay);
        }
        if s.booting_until.is_some_and(|t| now >= t) {
            s.booting_until = None;
            s.boot_id += 1;
            s.boots += 1;
            bmc.faults(|f| f.ignore_graceful = false);
            booted = Some(s.boot_id);
            // A fresh boot: the kubelet runs, node-problem-detector starts clean.
            os.kubelet_stopped = false;
            os.deadlock = false;
        }
        if s.up(now) {
            s.down_since = None;
        } else if s.down_since.is_none() {
            s.down_since = Some(now);
        }
        let want = match s.down_since {
            Some(t) if now.duration_since(t) >= timing.ready_grace => "Unknown",
            _ if os.kubelet_stopped => "False",
            _ => "True",
        };
        let deadlock = os.deadlock;
        (want != s.ready || booted.is_some() || deadlock != s.deadlock_shown).then(|| {
            s.ready = want.to_owned();
            s.deadlock_shown = deadlock;
            (want, deadlock)
        })
    };
    drop(os);
    if let Some((ready, deadlock)) = ready {
        api.touch(name, |n| {
            // Replace Ready (and node-problem-detector's KernelDeadlock) only: other
            // controllers' conditions (oob's) stay.
            let mut conditions: Vec<Value> = n["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c["type"] != "Ready" && c["type"] != "KernelDeadlock")
                .collect();
            conditions.insert(0, ready_condition(ready));
            conditions.push(kernel_deadlock_condition(deadlock));
            n["status"]["conditions"] = Value::Array(conditions);
            if let Some(id) = booted {
                n["status"]["nodeInfo"]["bootID"] = json!(boot_id(name, id));
            }
        });
    }
}

/// Run a simulated fleet until Ctrl-C (the `oob-mocks fleet` command): writes
/// `DIR/fleet.json` (hosts: name, BMC URL, SSH port, serial, UUID), `DIR/kubeconfig` for the
/// fake API server and `DIR/bmc-password`, then injects the faults after `fault_after_ms`.
pub async fn run_fleet(
    nodes: usize,
    dir: &std::path::Path,
    at: &Addresses,
    hang: &[String],
    fail_disk: &[String],
    fault_after_ms: u64,
) -> anyhow::Result<()> {
    let specs: Vec<HostSpec> = (1..=nodes)
        .map(|i| HostSpec::new(&format!("node-{i}")))
        .collect();
    let fleet = SimFleet::start_on(&specs, Timing::default(), at).await?;
    std::fs::create_dir_all(dir)?;
    let hosts: Vec<serde_json::Value> = fleet
        .hosts
        .iter()
        .map(|h| {
            serde_json::json!({
                "name": h.name, "bmc": format!("{}{}", h.bmc.url(), SYSTEM),
                "host": h.ssh.ip().to_string(), "ssh_port": h.ssh.port(),
                "host_key": h.host_key(), "serial": h.serial, "uuid": h.uuid,
            })
        })
        .collect();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {}\ncontexts:\n- name: sim\n  context:\n    cluster: sim\n    user: sim\nusers:\n- name: sim\n  user: {{}}\ncurrent-context: sim\n",
        fleet.api.url()
    );
    std::fs::write(dir.join("kubeconfig"), kubeconfig)?;
    std::fs::write(dir.join("bmc-password"), PASSWORD)?;
    std::fs::write(
        dir.join("ssh-key"),
        fleet
            .ssh_client_key
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)?
            .as_bytes(),
    )?;
    let description = serde_json::json!({ "api": fleet.api.url(), "hosts": hosts });
    // Written last, via rename: its presence means the fleet is up.
    let tmp = dir.join("fleet.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&description)?)?;
    std::fs::rename(&tmp, dir.join("fleet.json"))?;
    println!(
        "simulated fleet of {nodes} up; described in {}",
        dir.join("fleet.json").display()
    );
    // What the fleet has seen, every second, for benchmarks: DIR/stats.json.
    let stats = {
        let dir = dir.to_owned();
        let api = fleet.api.api.clone();
        let ssh = fleet.ssh_connections.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                let doc = json!({
                    "at": now,
                    "api_requests": api.request_count(),
                    "ssh_connections": ssh.load(Ordering::Relaxed),
                });
                let tmp = dir.join("stats.json.tmp");
                if std::fs::write(&tmp, doc.to_string()).is_ok() {
                    let _ = std::fs::rename(&tmp, dir.join("stats.json"));
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(fault_after_ms)).await;
    for h in &fleet.hosts {
        if hang.contains(&h.name) {
            h.hang();
        }
        if fail_disk.contains(&h.name) {
            h.fail_disk();
        }
    }
    tokio::signal::ctrl_c().await?;
    stats.abort();
    Ok(())
}
