//! `oob serve`: one task per machine walks the ladder on its own. This file holds the
//! scheduler (leader election, one round per machine per tick, bounded concurrency, gauges)
//! and each machine's state; [`round`] is one round for one machine (probe, look, judge,
//! step), [`act`] carries a step out (storm guard, pending remedy persisted before anything
//! is sent, executor, outcome folded back), [`plan`] is `oob plan`. Positions persist in the
//! journal, so a restarted service resumes where it was. Leader election (a Lease) keeps
//! replicas from acting twice; HTTP serves `/metrics`, `/healthz`, `/readyz`; SIGTERM stops
//! between steps.

mod act;
mod build;
pub mod holder;
mod http;
mod look;
pub mod metrics;
mod outbox;
mod shared;
mod status;

pub use build::{add_annotated, build, executor};
mod plan;
mod round;
#[cfg(test)]
mod tests;

pub use crate::gather::host_address;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::clock::now_ms;
use crate::config::{Config, Liveness, Machine};
use crate::gather::liveness::{self, Network};
use crate::k8s::lease::LeaseLock;
use crate::probe::ping::Pinger;
use crate::remedy::executor::Executor;
use crate::remedy::journal::Position;
use crate::remedy::stage::Stage;
use crate::verdict::Verdict;

pub use metrics::Metrics;

/// The leader lease's name.
pub const LEADER_LEASE: &str = "oob-leader";

/// Slots per probe interval: machines start their rounds in the slot of their phase.
const SLOTS: u32 = 20;

/// How often the leader lists the OobRemediations for Node Healthcheck's requests.
const REQUESTS_EVERY_MS: u64 = 5_000;

/// Probe rounds a report shows.
const HISTORY: usize = 10;

/// What the ladder keeps per machine between rounds.
#[derive(Debug, Clone)]
struct MachineState {
    /// Stage, episode, findings of the episode, SEL baseline: persisted on every change.
    position: Position,
    last_hardware_ms: u64,
    /// The last probe rounds, newest last, for reports.
    history: VecDeque<Probed>,
    /// "The BMC exposes no SEL" was said (once per process, not every look).
    sel_noted: bool,
    /// The last host poll's error, so that a failing poll is logged when it changes.
    host_poll_error: Option<String>,
    /// The last "waiting" reason noted, so that a wait is noted once, not every round.
    waiting: Option<String>,
    /// When the SSH port was last probed next to the echoes, and what it said.
    banner_ms: u64,
    banner: Option<bool>,
    /// Whether the last round's echoes all came back (the next round then needs no SSH
    /// banner to tell a dark host from a firewalled one).
    answered: bool,
    paused: bool,
    /// The last round's verdict (the status page).
    verdict: Option<Verdict>,
    /// A fingerprint of what the journal holds, to write only changes (a second copy of
    /// every position cost 7 KiB a machine).
    persisted: Option<u64>,
}

impl MachineState {
    /// Take a round's copy back, reallocating only what changed: the kept state lives as
    /// long as the service, and a fresh copy of all of it every round would scatter it
    /// over the allocator's pages among the round's short-lived buffers (pages that then
    /// never empty: tens of MiB of RSS at 10,000 machines).
    fn update_from(&mut self, round: &MachineState) {
        let MachineState {
            position,
            last_hardware_ms,
            history,
            sel_noted,
            host_poll_error,
            waiting,
            banner_ms,
            banner,
            answered,
            paused,
            verdict,
            persisted,
        } = round;
        if self.position != *position {
            self.position.clone_from(position);
        }
        self.last_hardware_ms = *last_hardware_ms;
        self.history.clone_from(history);
        self.sel_noted = *sel_noted;
        self.host_poll_error.clone_from(host_poll_error);
        self.waiting.clone_from(waiting);
        self.banner_ms = *banner_ms;
        self.banner = *banner;
        self.answered = *answered;
        self.paused = *paused;
        if self.verdict != *verdict {
            self.verdict.clone_from(verdict);
        }
        self.persisted = *persisted;
    }
}

/// One probe round as a report shows it: when, and what answered (16 bytes, formatted only
/// when a report is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probed {
    at_ms: u64,
    ping: Option<(u16, u16)>,
    ssh: Option<bool>,
    ready: Option<Ready>,
}

/// The Node's Ready condition, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ready {
    True,
    False,
    Unknown,
    Other,
}

impl Probed {
    fn of(at_ms: u64, e: &crate::verdict::Evidence) -> Self {
        Self {
            at_ms,
            ping: e.ping,
            ssh: e.ssh_reachable,
            ready: e.node_ready.as_deref().map(|r| match r {
                "True" => Ready::True,
                "False" => Ready::False,
                "Unknown" => Ready::Unknown,
                _ => Ready::Other,
            }),
        }
    }
}

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some((received, sent)) = self.ping {
            parts.push(format!("ping {received}/{sent}"));
        }
        if let Some(up) = self.ssh {
            parts.push(format!("ssh {}", if up { "up" } else { "down" }));
        }
        if let Some(r) = self.ready {
            parts.push(format!("Ready={r:?}"));
        }
        write!(
            f,
            "{} {}",
            crate::clock::rfc3339(self.at_ms),
            parts.join(", ")
        )
    }
}

/// One line of `oob plan`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanRow {
    pub node: String,
    pub stage: String,
    pub verdict: String,
    pub reasons: Vec<String>,
    pub next: String,
    pub remedy: String,
    pub paused: bool,
    /// Why the storm guard would hold the step back now (etcd quorum, breaker…).
    pub held: Option<String>,
}

/// A running ladder over a fleet.
pub struct Service {
    pub config: Config,
    pub exec: Arc<Executor>,
    client: Option<kube::Client>,
    pub metrics: Arc<Metrics>,
    machines: Vec<Arc<Machine>>,
    state: Mutex<HashMap<String, MachineState>>,
    admission: tokio::sync::Mutex<()>,
    /// etcd as last read on a control-plane peer (when, and what), shared by every
    /// control-plane node's admission for [`act::ETCD_FRESH_MS`].
    etcd_seen: Mutex<Option<(u64, crate::remedy::replace::EtcdRead)>>,
    /// Slots for the work that costs more than a probe (BMC looks, SSH polls, remedies):
    /// `service.concurrency` of them. Probes take none.
    slots: Arc<tokio::sync::Semaphore>,
    liveness: Arc<dyn liveness::Liveness>,
    hardware: Arc<dyn crate::gather::host::HostHardware>,
    /// Every Node from one watch, once `run` has started it: rounds read their Node from
    /// here, not with a GET each.
    node_cache: std::sync::OnceLock<crate::k8s::cache::NodeCache>,
    /// The cluster's side of the replacement rung (bootstrap tokens, restored labels).
    rejoin: Option<Arc<dyn crate::k8s::join::Rejoin>>,
    /// Leading, with the shared journal adopted (the outbox delivers only then in cluster
    /// mode: the messages are shared, the leader sends them).
    pub leading: AtomicBool,
    /// Cluster mode: the OobRemediations others made (NHC), by node, as last listed.
    requests: Mutex<HashMap<String, shared::Request>>,
    /// Requests whose ladder ended well (by object name), also before that is written.
    finished: Mutex<std::collections::HashSet<String>>,
    /// Last completed round (ms since the epoch), for /healthz.
    pub heartbeat: AtomicU64,
    pub ready: AtomicBool,
}

/// A fingerprint of a position: a hash of its JSON form (the form the journal stores).
fn fingerprint(p: &Position) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(p).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// When a machine's hardware was "last" checked, so that its first check falls at a phase
/// of the interval of its own (from its name): a fleet's BMC looks and SSH polls spread over
/// the interval instead of all firing in the first round, and again together every interval.
fn first_hardware(name: &str, now: u64, interval: u64) -> u64 {
    let phase = u64::from(round::name_hash(name)) % interval.max(1);
    now.saturating_sub(interval).saturating_add(phase)
}

impl Service {
    /// `client` watches the Nodes and holds the leader lease; `None` outside a cluster.
    pub fn new(
        config: Config,
        exec: Arc<Executor>,
        client: Option<kube::Client>,
    ) -> Result<Self, crate::remedy::journal::JournalError> {
        // The service owns the inventory; one copy of it, shared with the rounds.
        let mut config = config;
        let inventory = std::mem::take(&mut config.machines);
        // Not `collect()`: that would reuse the inventory's allocation (sized for whole
        // machines) to hold the pointers.
        let mut machines: Vec<Arc<Machine>> = Vec::with_capacity(inventory.len());
        machines.extend(inventory.into_iter().map(Arc::new));
        let mut state = HashMap::new();
        for m in &machines {
            let position = exec.journal().position(&m.name)?.unwrap_or_default();
            state.insert(
                m.name.clone(),
                MachineState {
                    position,
                    last_hardware_ms: first_hardware(
                        &m.name,
                        exec.now_ms(),
                        config.service.hardware_interval_ms,
                    ),
                    history: VecDeque::with_capacity(HISTORY),
                    sel_noted: false,
                    host_poll_error: None,
                    waiting: None,
                    banner_ms: first_hardware(&m.name, exec.now_ms(), round::BANNER_EVERY_MS),
                    banner: None,
                    answered: false,
                    paused: false,
                    verdict: None,
                    persisted: None,
                },
            );
        }
        // One socket per address family, whatever the config lists: most hosts' addresses
        // come from their Node (InternalIP), not from the file.
        let pinger = match config.service.liveness {
            Liveness::Icmp => match Pinger::all_families() {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!(error = %e, "ICMP unavailable; liveness falls back to the SSH port");
                    None
                }
            },
            Liveness::SshPort => None,
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(config.service.concurrency));
        let rejoin = client.clone().map(|c| {
            Arc::new(crate::k8s::join::KubeRejoin(c)) as Arc<dyn crate::k8s::join::Rejoin>
        });
        let client_less = client.is_none();
        Ok(Self {
            rejoin,
            config,
            exec,
            client,
            metrics: Arc::new(Metrics::default()),
            machines,
            state: Mutex::new(state),
            admission: tokio::sync::Mutex::new(()),
            etcd_seen: Mutex::new(None),
            slots,
            liveness: Arc::new(Network { pinger }),
            hardware: Arc::new(crate::gather::host::OverSsh),
            node_cache: std::sync::OnceLock::new(),
            requests: Mutex::default(),
            finished: Mutex::default(),
            // Outside a cluster there is no one else to lead: a person's command or a local
            // service acts at once. In a cluster, `run` says when (lease held, journal adopted).
            leading: AtomicBool::new(client_less),
            heartbeat: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        })
    }

    /// Probe liveness through `liveness` instead of the network (tests: hosts that go dark
    /// on cue).
    #[must_use]
    /// The cluster's side of the replacement rung (tests: a fake).
    pub fn with_rejoin(mut self, rejoin: Arc<dyn crate::k8s::join::Rejoin>) -> Self {
        self.rejoin = Some(rejoin);
        self
    }

    pub fn with_liveness(mut self, liveness: Arc<dyn liveness::Liveness>) -> Self {
        self.liveness = liveness;
        self
    }

    /// Read the hosts' drives and NICs through `hardware` instead of SSH (tests).
    #[must_use]
    pub fn with_host_hardware(
        mut self,
        hardware: Arc<dyn crate::gather::host::HostHardware>,
    ) -> Self {
        self.hardware = hardware;
        self
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, MachineState>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Each machine's stage now (for `oob plan`, the demo and tests).
    pub fn stages(&self) -> Vec<(String, Stage)> {
        let s = self.lock();
        let mut v: Vec<_> = s
            .iter()
            .map(|(n, m)| (n.clone(), m.position.stage))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Run until `stop` turns true: leader election (when configured), then the rounds.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let leader = match (&self.client, self.config.service.leader_election) {
            (Some(client), true) => Some(LeaseLock::new(
                client.clone(),
                &self.config.service.namespace,
                LEADER_LEASE,
                self.exec.holder(),
                Duration::from_secs(self.config.service.lease_duration_s),
            )),
            _ => None,
        };
        if let Some(client) = &self.client {
            let cache = crate::k8s::cache::NodeCache::start(client.clone());
            if !cache.ready(crate::timeouts::KUBE_READ).await {
                warn!("the node watch has not listed the nodes yet; rounds read them one by one until it has");
            }
            let _ = self.node_cache.set(cache);
        }
        self.ready.store(true, Ordering::Relaxed);
        let interval = Duration::from_millis(self.config.service.probe_interval_ms);
        // The interval is cut into slots and every machine starts its round in the slot of
        // its own phase (from its name): probes go out paced across the interval, not in a
        // burst at each tick, and a machine is probed every interval, not whenever the
        // burst reaches it.
        let slot = interval / SLOTS;
        let mut by_slot: Vec<Vec<usize>> = vec![Vec::new(); SLOTS as usize];
        for (i, m) in self.machines.iter().enumerate() {
            by_slot[round::name_hash(&m.name) as usize % SLOTS as usize].push(i);
        }
        let deliveries = tokio::spawn(self.clone().deliver_loop(stop.clone()));
        let mut tick = tokio::time::interval(slot);
        // Slots late (a lease renewal, a busy moment) are caught up at once, so that the
        // rounds keep their rate over time instead of the cycle stretching.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut leading = leader.is_none();
        let (mut last_try_ms, mut renewed_ms) = (0_u64, 0_u64);
        // Whether what the API holds was adopted since this replica began to lead: no round
        // runs before (it would not know what the old leader began).
        let mut adopted = false;
        let (mut last_adopt_ms, mut requests_ms) = (0_u64, 0_u64);
        let mut running: Vec<Option<tokio::task::JoinHandle<()>>> =
            (0..self.machines.len()).map(|_| None).collect();
        let mut late_said_ms = 0_u64;
        let mut late_this_cycle = 0_usize;
        let mut k = 0_usize;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            let at = k % SLOTS as usize;
            k = k.wrapping_add(1);
            // Leader election: try every retry period; a leader that could not renew for
            // the renew deadline steps down (another replica may take the lease once it
            // expires, lease_duration_s after the last renewal).
            if let Some(lease) = &leader {
                let now = now_ms();
                if now.saturating_sub(last_try_ms) >= self.config.service.retry_period_ms {
                    last_try_ms = now;
                    let held = match lease.try_acquire().await {
                        Ok(held) => {
                            if held {
                                renewed_ms = now;
                            }
                            held
                        }
                        Err(e) => {
                            warn!(error = %e, "leader lease renewal failed");
                            // Still the leader until the renew deadline passes.
                            leading
                                && now.saturating_sub(renewed_ms)
                                    < self.config.service.renew_deadline_s * 1000
                        }
                    };
                    if held != leading {
                        info!(leading = held, holder = %self.exec.holder(), "leadership changed");
                    }
                    if !held {
                        adopted = false;
                    }
                    leading = held;
                }
            }
            if leading && !adopted {
                // Taking over (or starting): the old leader's intents and positions first,
                // so that nothing it began is begun again; retried until the API answers.
                let now = now_ms();
                if now.saturating_sub(last_adopt_ms) >= self.config.service.retry_period_ms {
                    last_adopt_ms = now;
                    adopted = self.adopt().await;
                }
            }
            self.leading.store(leading && adopted, Ordering::Relaxed);
            if at == 0 {
                if leading && adopted && now_ms().saturating_sub(requests_ms) >= REQUESTS_EVERY_MS {
                    requests_ms = now_ms();
                    self.refresh_requests().await;
                }
                self.metrics.leader.set(i64::from(leading));
                self.heartbeat.store(now_ms(), Ordering::Relaxed);
                self.refresh_gauges();
                // Machines found still in their last round when their slot came, over the
                // last interval.
                self.metrics
                    .round_backlog
                    .set(i64::try_from(late_this_cycle).unwrap_or(i64::MAX));
                if late_this_cycle > 0 {
                    // Said when it starts and then at most once a minute, not every tick.
                    let now = now_ms();
                    if now.saturating_sub(late_said_ms) >= 60_000 {
                        warn!(
                            late = late_this_cycle,
                            machines = self.machines.len(),
                            interval_ms = self.config.service.probe_interval_ms,
                            "cannot keep the probe interval: machines still in their last round"
                        );
                        late_said_ms = now;
                    }
                }
                late_this_cycle = 0;
            }
            if !(leading && adopted) {
                continue;
            }
            for &i in &by_slot[at] {
                // One round per machine at a time; a machine still busy (a long drain, a
                // power verification) is skipped and counted late rather than stacked.
                if running[i].as_ref().is_some_and(|h| !h.is_finished()) {
                    late_this_cycle += 1;
                    self.metrics.rounds_late.inc();
                    continue;
                }
                let svc = self.clone();
                let m = self.machines[i].clone();
                let spread = u64::try_from(slot.as_millis()).unwrap_or(0);
                running[i] = Some(tokio::spawn(async move {
                    // Jitter within the slot, so that rounds do not sample a periodic
                    // flap at exactly the same phase every time.
                    let jitter = rand::random_range(0..=spread);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                    svc.round(&m).await;
                }));
            }
        }
        // Graceful: let every machine finish the step it is in, then let go of the lease.
        info!("stopping: waiting for steps in progress");
        for h in running.into_iter().flatten() {
            let _ = h.await;
        }
        let _ = deliveries.await;
        if let Some(lease) = &leader {
            let _ = lease.release().await;
        }
        info!("stopped");
    }

    fn refresh_gauges(&self) {
        if let Ok(n) = self.exec.journal().count() {
            self.metrics
                .journal_entries
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let open = self.exec.journal().breaker().ok().flatten().is_some();
        self.metrics.breaker_open.set(i64::from(open));
        let mut counts: HashMap<&'static str, i64> = HashMap::new();
        for s in self.lock().values() {
            *counts.entry(s.position.stage.name()).or_default() += 1;
        }
        for name in [
            "healthy",
            "suspect",
            "confirm",
            "soft-reboot",
            "hard-reboot",
            "fenced",
            "await-replacement",
        ] {
            self.metrics
                .machines
                .get_or_create(&metrics::StageLabel { stage: name.into() })
                .set(counts.get(name).copied().unwrap_or(0));
        }
    }

    /// Keep a machine's state; a changed position (stage, findings, SEL baseline, pending
    /// remedy) is written to the journal first. `false` when that write failed.
    fn put(&self, name: &str, st: &mut MachineState) -> bool {
        // A dry run keeps its positions in memory only: a later real run must not resume
        // from steps that were never carried out.
        let mut written = true;
        let print = fingerprint(&st.position);
        if !self.exec.dry_run() && st.persisted != Some(print) {
            match self.exec.journal().save_position(name, &st.position) {
                Ok(()) => st.persisted = Some(print),
                Err(e) => {
                    warn!(node = name, error = %e, "journal write failed");
                    written = false;
                }
            }
        }
        if let Some(s) = self.lock().get_mut(name) {
            s.update_from(st);
        }
        written
    }

    fn count_verdict(&self, v: &Verdict) {
        self.metrics
            .verdicts
            .get_or_create(&metrics::VerdictLabel { verdict: v.name() })
            .inc();
    }

    fn bmc_timing(&self, op: &str, started: std::time::Instant) {
        self.metrics
            .bmc_seconds
            .get_or_create(&metrics::OpLabel { op: op.into() })
            .observe(started.elapsed().as_secs_f64());
    }
}

pub use http::serve_http;
