//! Fakes of the ladder's seams for unit tests (BMCs, the cluster, the clock, liveness): each
//! stateful, so a power request changes what the next read sees, and each writes what it was
//! asked to one shared log, so tests can assert order across seams.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::bmc::connect::{Connected, Spec};
use crate::bmc::power::PowerTiming;
use crate::bmc::{
    Bmc, BmcError, Health, Identity, PowerRequest, PowerState, Protocol, RequestAck, SelEntry,
};
use crate::config::Machine;
use crate::gather::host::{GatherError, HostAccess};
use crate::gather::liveness::Liveness;
use crate::health::host::{HostChecks, UnitState};
use crate::k8s::drain::{DrainOptions, DrainReport};
use crate::k8s::{Condition, NodeEvent, NodeInfo, NodeOps, NodeOpsError, Taint};
use crate::probe::exec::SshError;
use crate::probe::ping::PingOptions;
use crate::remedy::executor::{BmcConnector, Clock};

mod hardware;

pub use hardware::FakeHardware;

/// Everything the fakes were asked, in order.
pub type Log = Arc<Mutex<Vec<String>>>;

pub fn said(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// A node's timeline in the journal, one line per entry.
pub fn timeline(journal: &crate::remedy::journal::Journal, node: &str) -> String {
    journal
        .timeline(node, 0)
        .unwrap()
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("\n")
}

fn say(log: &Log, what: String) {
    log.lock().unwrap().push(what);
}

/// A BMC whose power follows what it is asked (or ignores it when `stuck`).
#[derive(Debug)]
pub struct BmcState {
    pub power: PowerState,
    pub serial: String,
    pub stuck: bool,
    pub graceful_unsupported: bool,
    /// Answers nothing at all (connect fails).
    pub unreachable: bool,
    pub sel: Vec<SelEntry>,
    /// Every request received, in order.
    pub requests: Vec<PowerRequest>,
    /// The locator LED.
    pub led: bool,
}

impl BmcState {
    pub fn on(serial: &str) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            power: PowerState::On,
            serial: serial.to_owned(),
            stuck: false,
            graceful_unsupported: false,
            unreachable: false,
            sel: Vec::new(),
            requests: Vec::new(),
            led: false,
        }))
    }
}

struct FakeBmc {
    state: Arc<Mutex<BmcState>>,
    log: Log,
}

fn unsupported(what: &str) -> BmcError {
    BmcError::Unsupported {
        bmc: "fake".into(),
        what: what.into(),
    }
}

#[async_trait]
impl Bmc for FakeBmc {
    async fn locator(&self) -> Result<Option<bool>, BmcError> {
        Ok(Some(self.state.lock().unwrap().led))
    }
    async fn set_locator(&self, on: bool) -> Result<(), BmcError> {
        self.state.lock().unwrap().led = on;
        say(
            &self.log,
            format!("locator {}", if on { "on" } else { "off" }),
        );
        Ok(())
    }
    async fn identity(&self) -> Result<Identity, BmcError> {
        Ok(Identity {
            protocol: Protocol::Redfish,
            manufacturer: Some("Fake".into()),
            model: None,
            serial: Some(self.state.lock().unwrap().serial.clone()),
            uuid: None,
            bios_version: None,
            bmc_firmware: None,
        })
    }
    async fn power_state(&self) -> Result<PowerState, BmcError> {
        Ok(self.state.lock().unwrap().power)
    }
    async fn request_power(&self, request: PowerRequest) -> Result<RequestAck, BmcError> {
        let mut s = self.state.lock().unwrap();
        if request == PowerRequest::GracefulRestart && s.graceful_unsupported {
            return Err(unsupported("GracefulRestart"));
        }
        say(
            &self.log,
            format!("bmc {request:?} at {:?}", tokio::time::Instant::now()),
        );
        s.requests.push(request);
        if !s.stuck {
            s.power = match request {
                PowerRequest::On | PowerRequest::ForceRestart | PowerRequest::GracefulRestart => {
                    PowerState::On
                }
                PowerRequest::ForceOff | PowerRequest::GracefulShutdown => PowerState::Off,
            };
        }
        Ok(RequestAck::Accepted)
    }
    async fn sel(&self, _: usize) -> Result<Vec<SelEntry>, BmcError> {
        Ok(self.state.lock().unwrap().sel.clone())
    }
    async fn clear_sel(&self) -> Result<(), BmcError> {
        Ok(())
    }
    async fn health(&self) -> Result<Health, BmcError> {
        Err(unsupported("health"))
    }
    async fn close(&self) {}
}

/// BMCs by the port of their address; the password must be the one the cluster's Secret
/// holds ([`SECRET_PASSWORD`]).
pub struct FakeConnector {
    pub bmcs: BTreeMap<u16, Arc<Mutex<BmcState>>>,
    pub log: Log,
}

pub const SECRET_PASSWORD: &str = "from-the-secret";

#[async_trait]
impl BmcConnector for FakeConnector {
    async fn connect(&self, spec: Spec) -> Result<Connected, BmcError> {
        let url = spec.endpoint.to_string();
        let state = self
            .bmcs
            .get(&spec.endpoint.port)
            .filter(|s| !s.lock().unwrap().unreachable)
            .ok_or_else(|| BmcError::Timeout {
                url: url.clone(),
                after: Duration::from_secs(5),
            })?;
        if spec.creds.password.expose() != SECRET_PASSWORD {
            return Err(BmcError::Auth {
                url,
                detail: "wrong password".into(),
            });
        }
        let profiles = crate::bmc::profile::Profiles::embedded().unwrap();
        Ok(Connected {
            bmc: Box::new(FakeBmc {
                state: state.clone(),
                log: self.log.clone(),
            }),
            profile: profiles.generic(Protocol::Redfish).unwrap().clone(),
            timing: PowerTiming {
                timeout: Duration::from_secs(30),
                poll: Duration::from_secs(1),
            },
        })
    }
}

/// A cluster of Nodes with leases and a drain that evicts one pod per node.
pub struct FakeCluster {
    pub nodes: Mutex<BTreeMap<String, NodeInfo>>,
    /// Lease name → holder.
    pub leases: Mutex<BTreeMap<String, String>>,
    /// Per-node lock name → another remediator holding the node's medik8s lease.
    pub held: Mutex<BTreeMap<String, String>>,
    /// The API server unreachable for the per-node locks (taking and renewing them).
    pub lock_outage: std::sync::atomic::AtomicBool,
    /// The API server never answers a per-node lock request.
    pub lock_hang: std::sync::atomic::AtomicBool,
    pub log: Log,
}

/// A Ready node with a bootID.
pub fn node(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        ready: Some("True".into()),
        system_uuid: None,
        boot_id: Some("boot-a".into()),
        addresses: Vec::new(),
        unschedulable: false,
        taints: Vec::new(),
        labels: Default::default(),
        annotations: Default::default(),
        problems: Vec::new(),
    }
}

impl FakeCluster {
    pub fn new(names: &[&str], log: &Log) -> Self {
        Self {
            nodes: Mutex::new(names.iter().map(|n| ((*n).to_owned(), node(n))).collect()),
            leases: Mutex::default(),
            held: Mutex::default(),
            lock_outage: Default::default(),
            lock_hang: Default::default(),
            log: log.clone(),
        }
    }

    pub fn edit(&self, name: &str, f: impl FnOnce(&mut NodeInfo)) {
        f(self.nodes.lock().unwrap().get_mut(name).unwrap());
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut NodeInfo) -> T) -> Result<T, NodeOpsError> {
        let mut nodes = self.nodes.lock().unwrap();
        let n = nodes.get_mut(name).ok_or_else(|| NodeOpsError::NotFound {
            node: name.to_owned(),
        })?;
        Ok(f(n))
    }
}

#[async_trait]
impl NodeOps for FakeCluster {
    async fn get(&self, name: &str) -> Result<NodeInfo, NodeOpsError> {
        self.with(name, |n| n.clone())
    }
    async fn set_unschedulable(&self, name: &str, on: bool) -> Result<(), NodeOpsError> {
        self.with(name, |n| n.unschedulable = on)?;
        say(
            &self.log,
            format!("{} {name}", if on { "cordon" } else { "uncordon" }),
        );
        Ok(())
    }
    async fn set_taint(
        &self,
        name: &str,
        key: &str,
        effect: &str,
        taint: Option<Taint>,
    ) -> Result<(), NodeOpsError> {
        let verb = if taint.is_some() { "taint" } else { "untaint" };
        self.with(name, |n| {
            n.taints.retain(|t| !(t.key == key && t.effect == effect));
            n.taints.extend(taint);
        })?;
        say(&self.log, format!("{verb} {name} {key}"));
        Ok(())
    }
    async fn set_condition(&self, name: &str, c: Condition) -> Result<(), NodeOpsError> {
        self.with(name, |_| ())?;
        say(
            &self.log,
            format!("condition {name} {}={} {}", c.type_, c.status, c.reason),
        );
        Ok(())
    }
    async fn publish(&self, name: &str, e: NodeEvent) -> Result<(), NodeOpsError> {
        self.with(name, |_| ())?;
        say(&self.log, format!("event {name} {} {}", e.type_, e.reason));
        Ok(())
    }
    async fn annotate(&self, name: &str, key: &str, v: Option<&str>) -> Result<(), NodeOpsError> {
        self.with(name, |n| match v {
            Some(v) => {
                n.annotations.insert(key, v.to_owned());
            }
            None => {
                n.annotations.remove(key);
            }
        })?;
        say(&self.log, format!("annotate {name} {key}={v:?}"));
        Ok(())
    }
    async fn delete(&self, name: &str) -> Result<(), NodeOpsError> {
        self.nodes.lock().unwrap().remove(name);
        say(&self.log, format!("delete {name}"));
        Ok(())
    }
    async fn try_lock(&self, lease: &str, holder: &str, _: Duration) -> Result<bool, NodeOpsError> {
        if self.lock_hang.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.lock_outage.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(NodeOpsError::Transport {
                detail: "connection refused".into(),
            });
        }
        let mut leases = self.leases.lock().unwrap();
        if leases.get(lease).is_some_and(|h| h != holder) {
            return Ok(false);
        }
        if let Some(other) = self.held.lock().unwrap().get(lease) {
            return Err(NodeOpsError::Held {
                lease: format!("medik8s-leases/{lease}"),
                holder: other.clone(),
            });
        }
        leases.insert(lease.to_owned(), holder.to_owned());
        say(&self.log, format!("lock {lease}"));
        Ok(true)
    }
    async fn unlock(&self, lease: &str, holder: &str) -> Result<(), NodeOpsError> {
        let mut leases = self.leases.lock().unwrap();
        if leases.get(lease).is_some_and(|h| h == holder) {
            leases.remove(lease);
        }
        say(&self.log, format!("unlock {lease}"));
        Ok(())
    }
    async fn drain(
        &self,
        name: &str,
        o: &DrainOptions,
    ) -> Result<Option<DrainReport>, NodeOpsError> {
        say(
            &self.log,
            format!("drain {name} force={}", o.force.is_some()),
        );
        Ok(Some(DrainReport {
            evicted: vec!["default/web-0".into()],
            ..DrainReport::default()
        }))
    }
    async fn secret_password(
        &self,
        reference: &str,
        _: bool,
    ) -> Result<crate::secret::Secret, NodeOpsError> {
        if !reference.starts_with("oob-system/") {
            return Err(NodeOpsError::NotFound {
                node: reference.to_owned(),
            });
        }
        Ok(crate::secret::Secret::new(SECRET_PASSWORD))
    }
}

/// Wall-clock milliseconds that follow tokio's (paused) clock from `base`.
pub struct TokioClock {
    base: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new(base: u64) -> Self {
        Self {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.base + u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Hosts that answer or are dark on cue, by address; their OS over SSH too: the host checks
/// they answer (healthy unless set) and the in-band actions they were asked for.
#[derive(Default)]
pub struct FakeHosts {
    pub dark: Mutex<BTreeMap<IpAddr, bool>>,
    /// Every probe asked: address, `"ping"` or `"ssh"`, when (tokio's clock).
    pub asked: Mutex<Vec<(IpAddr, &'static str, tokio::time::Instant)>>,
    /// What the host checks find, by address (default: kubelet and runtime running).
    pub os: Mutex<BTreeMap<String, HostChecks>>,
    /// In-band actions, in order: `reboot IP`, `restart IP UNIT`, `checks IP`, `run IP CMD`.
    pub actions: Mutex<Vec<String>>,
    /// What a command run on a host prints, by a word it contains (first match); exit 0 and
    /// no output unless set.
    pub replies: Mutex<Vec<(String, crate::probe::exec::Output)>>,
    /// Hosts whose SSH host key changed (reinstalled): nothing reaches them.
    pub new_host_key: Mutex<Vec<String>>,
}

/// A unit as `systemctl show` reports it.
pub fn unit(active: &str, sub: &str) -> UnitState {
    UnitState {
        load: "loaded".into(),
        active: active.into(),
        sub: sub.into(),
        restarts: Some(0),
        exit_status: Some(0),
        result: Some("success".into()),
    }
}

/// Host checks of a host whose kubelet and runtime run and nothing is wrong.
pub fn healthy_host() -> HostChecks {
    HostChecks {
        kubelet: Some(unit("active", "running")),
        runtime: Some(unit("active", "running")),
        ..HostChecks::default()
    }
}

impl FakeHosts {
    pub fn set_dark(&self, ip: &str, dark: bool) {
        self.dark.lock().unwrap().insert(ip.parse().unwrap(), dark);
    }

    fn is_dark(&self, ip: IpAddr) -> bool {
        self.dark.lock().unwrap().get(&ip).copied().unwrap_or(false)
    }

    fn ask(&self, ip: IpAddr, kind: &'static str) {
        self.asked
            .lock()
            .unwrap()
            .push((ip, kind, tokio::time::Instant::now()));
    }

    /// What the host at `ip` answers its checks with from now on.
    pub fn set_os(&self, ip: &str, checks: HostChecks) {
        self.os.lock().unwrap().insert(ip.to_owned(), checks);
    }

    /// A command containing `word` prints `stdout` and exits with `status` from now on
    /// (`word` may start with the host's address: `"127.0.0.12 "` for that host alone).
    pub fn reply(&self, word: &str, status: u32, stdout: &str) {
        self.replies.lock().unwrap().insert(
            0,
            (
                word.to_owned(),
                crate::probe::exec::Output {
                    stdout: stdout.as_bytes().to_vec(),
                    stderr: Vec::new(),
                    exit_status: Some(status),
                },
            ),
        );
    }

    /// The in-band actions asked so far.
    pub fn actions(&self) -> Vec<String> {
        self.actions.lock().unwrap().clone()
    }

    fn act(&self, what: String) {
        self.actions.lock().unwrap().push(what);
    }

    fn down(&self, host: &str) -> Result<(), GatherError> {
        match host.parse() {
            Ok(ip) if self.is_dark(ip) => Err(GatherError::Ssh(SshError::Ssh {
                host: host.to_owned(),
                detail: "connection timed out".into(),
            })),
            _ => Ok(()),
        }
    }

    /// When `kind` probes of `ip` were asked.
    pub fn asked(&self, ip: &str, kind: &str) -> Vec<tokio::time::Instant> {
        let ip: IpAddr = ip.parse().unwrap();
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, k, _)| *a == ip && *k == kind)
            .map(|(_, _, t)| *t)
            .collect()
    }
}

#[async_trait]
impl Liveness for FakeHosts {
    async fn ping(&self, ip: IpAddr, _: u16, o: PingOptions) -> Option<(u16, u16)> {
        self.ask(ip, "ping");
        if self.is_dark(ip) {
            tokio::time::sleep(o.timeout).await;
            return Some((0, o.count));
        }
        Some((o.count, o.count))
    }
    async fn ssh(&self, addr: SocketAddr, _: Duration) -> bool {
        self.ask(addr.ip(), "ssh");
        !self.is_dark(addr.ip())
    }
}

#[async_trait]
impl HostAccess for FakeHosts {
    async fn checks(&self, _: &Machine, host: &str, _: &str) -> Result<HostChecks, GatherError> {
        self.act(format!("checks {host}"));
        self.down(host)?;
        Ok(self
            .os
            .lock()
            .unwrap()
            .get(host)
            .cloned()
            .unwrap_or_else(healthy_host))
    }
    async fn restart(&self, _: &Machine, host: &str, unit: &str) -> Result<(), GatherError> {
        self.act(format!("restart {host} {unit}"));
        self.down(host)
    }
    async fn reboot(&self, _: &Machine, host: &str) -> Result<(), GatherError> {
        self.act(format!("reboot {host}"));
        self.down(host)
    }
    async fn run(
        &self,
        _: &Machine,
        host: &str,
        command: &str,
        _: std::time::Duration,
    ) -> Result<crate::probe::exec::Output, GatherError> {
        if self.new_host_key.lock().unwrap().iter().any(|h| h == host) {
            return Err(GatherError::Ssh(SshError::ChangedHostKey {
                host: host.to_owned(),
                detail: "the host key differs from the pinned one".into(),
            }));
        }
        self.act(format!("run {host} {command}"));
        self.down(host)?;
        let replies = self.replies.lock().unwrap();
        Ok(replies
            .iter()
            .find(|(w, _)| format!("{host} {command}").contains(w.as_str()))
            .map(|(_, o)| o.clone())
            .unwrap_or(crate::probe::exec::Output {
                exit_status: Some(0),
                ..Default::default()
            }))
    }
}

/// Tokens in memory, restores recorded.
#[derive(Default)]
pub struct FakeRejoin {
    pub minted: Mutex<Vec<String>>,
    pub restored: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl crate::k8s::join::Rejoin for FakeRejoin {
    async fn discovery(&self) -> Result<(String, Vec<String>), NodeOpsError> {
        Ok(("10.0.0.10:6443".into(), vec!["sha256:00".into()]))
    }
    async fn mint(
        &self,
        _: std::time::Duration,
    ) -> Result<crate::k8s::join::BootstrapToken, NodeOpsError> {
        let id = format!("tok{:03}", self.minted.lock().unwrap().len());
        self.minted.lock().unwrap().push(id.clone());
        Ok(crate::k8s::join::BootstrapToken {
            id,
            secret: crate::secret::Secret::new("0123456789abcdef"),
            expiration: "2027-01-01T00:00:00Z".into(),
        })
    }
    async fn token(
        &self,
        id: &str,
    ) -> Result<Option<crate::k8s::join::BootstrapToken>, NodeOpsError> {
        Ok(self
            .minted
            .lock()
            .unwrap()
            .contains(&id.to_owned())
            .then(|| crate::k8s::join::BootstrapToken {
                id: id.to_owned(),
                secret: crate::secret::Secret::new("0123456789abcdef"),
                expiration: "2027-01-01T00:00:00Z".into(),
            }))
    }
    async fn restore(
        &self,
        node: &str,
        labels: &std::collections::BTreeMap<String, String>,
        _: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), NodeOpsError> {
        self.restored
            .lock()
            .unwrap()
            .push(format!("{node} {}", labels.len()));
        Ok(())
    }
}

/// The OobRemediations in memory, with the API's choice of object (a request someone made
/// for the node first, else oob's own `NODE.TAG`, created on first write). `refuse` makes
/// every write fail, like an API server that is down.
#[derive(Default)]
pub struct FakeEpisodes {
    pub objects: Mutex<BTreeMap<String, crate::k8s::remediation::Remediation>>,
    pub refuse: std::sync::atomic::AtomicBool,
    pub writes: std::sync::atomic::AtomicUsize,
}

impl FakeEpisodes {
    /// Put a request as Node Healthcheck would make it.
    pub fn request(&self, name: &str, node: &str) {
        self.objects.lock().unwrap().insert(
            name.to_owned(),
            crate::k8s::remediation::Remediation {
                name: name.to_owned(),
                node: node.to_owned(),
                requested: true,
                timed_out: false,
                status: crate::k8s::remediation::Status::default(),
            },
        );
    }
}

#[async_trait]
impl crate::k8s::remediation::Episodes for FakeEpisodes {
    async fn list(&self) -> Result<Vec<crate::k8s::remediation::Remediation>, NodeOpsError> {
        Ok(self.objects.lock().unwrap().values().cloned().collect())
    }

    async fn update(
        &self,
        node: &str,
        tag: &str,
        change: &(dyn for<'s> Fn(&'s mut crate::k8s::remediation::Status) + Send + Sync),
    ) -> Result<(), NodeOpsError> {
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(NodeOpsError::Transport {
                detail: "connection refused".into(),
            });
        }
        let own = crate::k8s::remediation::own_name(node, tag);
        let mut objects = self.objects.lock().unwrap();
        let name = crate::k8s::remediation::choose(objects.values(), node, tag);
        let name = match name {
            Some(n) => n,
            None if tag.is_empty() => {
                return Err(NodeOpsError::NotFound {
                    node: node.to_owned(),
                })
            }
            None => {
                objects.insert(
                    own.clone(),
                    crate::k8s::remediation::Remediation {
                        name: own.clone(),
                        node: node.to_owned(),
                        requested: false,
                        timed_out: false,
                        status: crate::k8s::remediation::Status::default(),
                    },
                );
                own
            }
        };
        if let Some(r) = objects.get_mut(&name) {
            change(&mut r.status);
            r.status.node.get_or_insert_with(|| node.to_owned());
        }
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn delete_own(&self, name: &str) -> Result<(), NodeOpsError> {
        let mut objects = self.objects.lock().unwrap();
        if objects.get(name).is_some_and(|r| !r.requested) {
            objects.remove(name);
        }
        Ok(())
    }
}
