//! `oob serve`: one task per machine walks the ladder on its own. Each round probes the host
//! (ICMP or the SSH port, and the Node's Ready), looks at the BMC when hardware checks are
//! due or the host is suspect, judges (pure), steps the stage machine (pure), passes
//! mutating remedies through the storm guard (pure) and hands them to the executor (which
//! holds the other interlocks). Positions persist in the journal, so a restarted service
//! resumes where it was. Leader election (a Lease) keeps replicas from acting twice; HTTP
//! serves `/metrics`, `/healthz`, `/readyz`; SIGTERM stops between steps.

pub mod demo;
mod http;
pub mod metrics;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Config, Liveness, Machine};
use crate::health::Level;
use crate::k8s::lease::LeaseLock;
use crate::k8s::{KubeNodeOps, NodeInfo};
use crate::probe::ping::{PingOptions, Pinger};
use crate::remedy::executor::{now_ms, Done, Executor, Subject, PAUSE_ANNOTATION};
use crate::remedy::guard::{admit, Admission, Fleet, StormPolicy};
use crate::remedy::journal::Position;
use crate::remedy::stage::{Remedy, Stage};
use crate::verdict::{judge, Evidence, Judgement, Policy as VerdictPolicy, Verdict};

pub use metrics::Metrics;

/// The leader lease's name.
pub const LEADER_LEASE: &str = "oob-leader";

/// What the ladder keeps per machine between rounds.
#[derive(Debug, Clone)]
struct MachineState {
    /// Stage, episode, findings of the episode, SEL baseline: persisted on every change.
    position: Position,
    last_hardware_ms: u64,
    /// The last probe rounds, newest last, for reports.
    history: VecDeque<String>,
    /// bootID when the current reboot was sent, to verify the reboot by its change.
    boot_before: Option<String>,
    /// The last "waiting" reason noted, so that a wait is noted once, not every round.
    waiting: Option<String>,
    paused: bool,
    /// What the journal holds, to write only changes.
    persisted: Option<Position>,
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
}

/// A running ladder over a fleet.
pub struct Service {
    pub config: Config,
    pub exec: Arc<Executor>,
    pub metrics: Arc<Metrics>,
    machines: Vec<Machine>,
    state: Mutex<HashMap<String, MachineState>>,
    admission: tokio::sync::Mutex<()>,
    pinger: Option<Pinger>,
    /// Last completed round (ms since the epoch), for /healthz.
    pub heartbeat: AtomicU64,
    pub ready: AtomicBool,
}

/// Whether a probe round found the host not answering.
fn dark(e: &Evidence) -> bool {
    let pinged = e.ping.is_some_and(|(received, _)| received > 0);
    let ssh = e.ssh_reachable == Some(true);
    !(pinged || ssh)
}

fn remediating(s: &Stage) -> bool {
    matches!(
        s,
        Stage::SoftReboot { .. } | Stage::HardReboot { .. } | Stage::Fenced { .. }
    )
}

impl Service {
    pub fn new(
        config: Config,
        exec: Arc<Executor>,
    ) -> Result<Self, crate::remedy::journal::JournalError> {
        let machines = config.machines.clone();
        let mut state = HashMap::new();
        for m in &machines {
            let position = exec.journal.position(&m.name)?.unwrap_or_default();
            state.insert(
                m.name.clone(),
                MachineState {
                    position,
                    last_hardware_ms: 0,
                    history: VecDeque::new(),
                    boot_before: None,
                    waiting: None,
                    paused: false,
                    persisted: None,
                },
            );
        }
        let pinger = match config.service.liveness {
            Liveness::Icmp => {
                let addrs: Vec<IpAddr> = machines
                    .iter()
                    .filter_map(|m| m.host.as_deref()?.parse().ok())
                    .collect();
                match Pinger::new(&addrs) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        warn!(error = %e, "ICMP unavailable; liveness falls back to the SSH port");
                        None
                    }
                }
            }
            Liveness::SshPort => None,
        };
        Ok(Self {
            config,
            exec,
            metrics: Arc::new(Metrics::default()),
            machines,
            state: Mutex::new(state),
            admission: tokio::sync::Mutex::new(()),
            pinger,
            heartbeat: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        })
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
        let leader = match (&self.exec.kube, self.config.service.leader_election) {
            (Some(client), true) => Some(LeaseLock::new(
                client.clone(),
                &self.config.service.namespace,
                LEADER_LEASE,
                &self.exec.holder,
                Duration::from_secs(15),
            )),
            _ => None,
        };
        self.ready.store(true, Ordering::Relaxed);
        let interval = Duration::from_millis(self.config.service.probe_interval_ms);
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.config.service.concurrency));
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut leading = leader.is_none();
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            if let Some(lease) = &leader {
                let now = lease.try_acquire().await.unwrap_or_else(|e| {
                    warn!(error = %e, "leader lease renewal failed");
                    false
                });
                if now != leading {
                    info!(leading = now, holder = %self.exec.holder, "leadership changed");
                }
                leading = now;
            }
            self.metrics.leader.set(i64::from(leading));
            self.heartbeat.store(now_ms(), Ordering::Relaxed);
            self.refresh_gauges();
            if !leading {
                continue;
            }
            // One round per machine at a time; a machine still busy (a long drain, a power
            // verification) is skipped this tick rather than stacked.
            running.retain(|_, h| !h.is_finished());
            for m in &self.machines {
                if running.contains_key(&m.name) {
                    continue;
                }
                let svc = self.clone();
                let m = m.clone();
                let sem = semaphore.clone();
                let name = m.name.clone();
                running.insert(
                    name,
                    tokio::spawn(async move {
                        // Jitter (up to a fifth of the interval) so that rounds do not sample
                        // a periodic flap at the same phase every time.
                        let spread = u64::try_from(interval.as_millis() / 5).unwrap_or(0);
                        let jitter = rand::random_range(0..=spread);
                        tokio::time::sleep(Duration::from_millis(jitter)).await;
                        let Ok(_permit) = sem.acquire_owned().await else {
                            return;
                        };
                        svc.round(&m).await;
                    }),
                );
            }
        }
        // Graceful: let every machine finish the step it is in, then let go of the lease.
        info!("stopping: waiting for steps in progress");
        for (_, h) in running {
            let _ = h.await;
        }
        if let Some(lease) = &leader {
            let _ = lease.release().await;
        }
        info!("stopped");
    }

    fn refresh_gauges(&self) {
        if let Ok(n) = self.exec.journal.count() {
            self.metrics
                .journal_entries
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let open = self.exec.journal.breaker().ok().flatten().is_some();
        self.metrics.breaker_open.set(i64::from(open));
        let mut counts: HashMap<&'static str, i64> = HashMap::new();
        for (_, s) in self.stages() {
            *counts.entry(s.name()).or_default() += 1;
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

    /// Probe one machine: (evidence, node, human-readable probe line).
    pub async fn probe(&self, m: &Machine) -> (Evidence, Option<NodeInfo>, String) {
        let node = self.exec.nodes.get(&m.name).await.ok();
        let host: Option<IpAddr> = m.host.as_deref().and_then(|h| h.parse().ok()).or_else(|| {
            node.as_ref()?
                .addresses
                .iter()
                .find(|(t, _)| t == "InternalIP")
                .and_then(|(_, a)| a.parse().ok())
        });
        let timeout = Duration::from_millis(self.config.service.probe_timeout_ms);
        let mut e = Evidence {
            node_ready: node.as_ref().and_then(|n| n.ready.clone()),
            ssh_is_liveness: self.pinger.is_none(),
            ..Evidence::default()
        };
        if let Some(ip) = host {
            if let Some(pinger) = &self.pinger {
                let o = PingOptions {
                    count: self.config.service.ping_count,
                    timeout,
                    ..PingOptions::default()
                };
                let ident = u16::try_from(m.name.len() * 7919 % 65_536).unwrap_or(1);
                let stats = pinger.ping(ip, ident, o).await;
                e.ping = Some((stats.received, stats.sent));
            }
            let port = m.ssh.as_ref().map_or(22, |s| s.port);
            let banner = crate::probe::ssh::banner(SocketAddr::new(ip, port), timeout).await;
            e.ssh_reachable = Some(banner.reachable);
        }
        let line = crate::verdict::judge(&e, &VerdictPolicy::default())
            .reasons
            .join(", ");
        let up = e.ssh_reachable == Some(true) || e.ping.is_some_and(|(r, _)| r > 0);
        self.metrics
            .probes
            .get_or_create(&metrics::ResultLabel {
                result: if up { "up" } else { "down" }.into(),
            })
            .inc();
        (e, node, line)
    }

    /// One round for one machine.
    pub async fn round(&self, m: &Machine) {
        let name = m.name.as_str();
        let (mut evidence, node, line) = self.probe(m).await;
        let Some(node) = node else {
            warn!(node = name, "node not readable; skipping the round");
            return;
        };
        let paused = node
            .annotations
            .get(PAUSE_ANNOTATION)
            .is_some_and(|v| v != "false");
        let mut st = match self.lock().get(name) {
            Some(s) => s.clone(),
            None => return,
        };
        if paused != st.paused {
            self.exec.note(
                name,
                if paused {
                    format!("automation paused ({PAUSE_ANNOTATION})")
                } else {
                    "automation resumed".to_owned()
                },
            );
            st.paused = paused;
            self.put(name, &st);
        }
        if paused {
            return;
        }
        st.history.push_back(format!(
            "{} {line}",
            crate::remedy::executor::rfc3339(now_ms())
        ));
        while st.history.len() > 10 {
            st.history.pop_front();
        }
        let now = now_ms();
        // Hardware: on the first round, then every hardware interval (a BMC that does not
        // answer is asked again at that pace, not every round).
        let hardware_due =
            now.saturating_sub(st.last_hardware_ms) >= self.config.service.hardware_interval_ms;
        if hardware_due {
            st.last_hardware_ms = now;
            let started = std::time::Instant::now();
            match self.exec.confirm(m, &mut st.position.sel_seen).await {
                Ok((_, new)) => {
                    for f in &new {
                        self.exec.note(
                            name,
                            format!("new {:?} finding: {} ({})", f.severity, f.code, f.detail)
                                .to_lowercase(),
                        );
                    }
                    st.position.findings.extend(new);
                }
                Err(e) => warn!(node = name, error = %e, "hardware check failed"),
            }
            self.bmc_timing("hardware", started);
        }
        evidence.findings = st.position.findings.clone();
        let j = judge(&evidence, &VerdictPolicy::default());
        self.count_verdict(&j.verdict);
        let policy = self.config.policy.stages();
        let before = st.position.stage;
        let mut step = before.step(&j.verdict, now, &policy);
        let mut judgement = j;
        // Out of band on entering Confirm, and every round while in it (a Confirm stage
        // judged without the BMC's answer would only ever see "dark").
        let entering = step.remedy == Remedy::ConfirmOutOfBand;
        let confirming = matches!(before, Stage::Confirm { .. })
            && !matches!(judgement.verdict, Verdict::Healthy | Verdict::Degraded);
        if entering || confirming {
            if entering {
                let why = if dark(&evidence) {
                    line.clone()
                } else {
                    format!("{line}, {} new finding(s)", st.position.findings.len())
                };
                self.exec
                    .note(name, format!("suspect: {why}; confirming out of band"));
                // A link that flaps in step with the probe interval fails every round; three
                // quick re-probes spread over a second tell a flap from an outage.
                for _ in 0..(if dark(&evidence) { 3 } else { 0 }) {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    let (again, _, again_line) = self.probe(m).await;
                    if !dark(&again) {
                        self.exec.note(
                            name,
                            format!("answered on a re-probe ({again_line}): a flap, not an outage"),
                        );
                        evidence.ping = again.ping;
                        evidence.ssh_reachable = again.ssh_reachable;
                        break;
                    }
                }
            }
            if let Some(e) = self
                .confirm_out_of_band(m, &mut st.position, &mut evidence)
                .await
            {
                self.exec.note(name, format!("BMC unreachable: {e}"));
            }
            judgement = judge(&evidence, &VerdictPolicy::default());
            if entering {
                self.exec.note(
                    name,
                    format!(
                        "verdict {}: {}",
                        judgement.verdict.name(),
                        judgement.reasons.join(", ")
                    ),
                );
            }
            let confirm = if entering { step.next } else { before };
            st.position.stage = confirm;
            step = confirm.step(&judgement.verdict, now, &policy);
        }
        if matches!(before, Stage::Healthy) && !matches!(step.next, Stage::Healthy) {
            st.position.episode += 1;
        }
        if matches!(step.next, Stage::Suspect { .. }) && !matches!(before, Stage::Suspect { .. }) {
            self.exec.note(name, format!("suspect: {line}"));
        }
        if let (Stage::Suspect { failures, .. }, Stage::Healthy) = (before, step.next) {
            self.exec.note(
                name,
                format!(
                    "suspect cleared: answering again after {failures} failed round(s); no action"
                ),
            );
        }
        self.put(name, &st);
        self.act(m, &node, st, step, &judgement, &evidence).await;
    }

    /// What the service would do for each machine now (`oob plan`): probe, judge and step
    /// from the journaled position; nothing is carried out (the storm guard is not asked).
    pub async fn plan(&self) -> Vec<PlanRow> {
        let mut rows = Vec::new();
        for m in &self.machines {
            let (mut evidence, node, _) = self.probe(m).await;
            let Some(st) = self.lock().get(&m.name).cloned() else {
                continue;
            };
            evidence.findings = st.position.findings.clone();
            let now = now_ms();
            let policy = self.config.policy.stages();
            let mut j = judge(&evidence, &VerdictPolicy::default());
            let mut step = st.position.stage.step(&j.verdict, now, &policy);
            if step.remedy == Remedy::ConfirmOutOfBand
                || matches!(st.position.stage, Stage::Confirm { .. })
            {
                // On a copy: a plan changes no position.
                let mut position = st.position.clone();
                let _ = self
                    .confirm_out_of_band(m, &mut position, &mut evidence)
                    .await;
                j = judge(&evidence, &VerdictPolicy::default());
                let confirm = if step.remedy == Remedy::ConfirmOutOfBand {
                    step.next
                } else {
                    st.position.stage
                };
                step = confirm.step(&j.verdict, now, &policy);
            }
            let paused = node.as_ref().is_some_and(|n| {
                n.annotations
                    .get(PAUSE_ANNOTATION)
                    .is_some_and(|v| v != "false")
            });
            rows.push(PlanRow {
                node: m.name.clone(),
                stage: st.position.stage.name().into(),
                verdict: j.verdict.name(),
                reasons: j.reasons,
                next: step.next.name().into(),
                remedy: step.remedy.name().into(),
                paused,
            });
        }
        rows
    }

    /// The Confirm stage's look at the BMC: its power state into `evidence`, new SEL findings
    /// into the position (and the evidence). The error, when the BMC did not answer.
    async fn confirm_out_of_band(
        &self,
        m: &Machine,
        position: &mut Position,
        evidence: &mut Evidence,
    ) -> Option<crate::bmc::BmcError> {
        let started = std::time::Instant::now();
        let result = self.exec.confirm(m, &mut position.sel_seen).await;
        self.bmc_timing("confirm", started);
        let error = match result {
            Ok((power, new)) => {
                position.findings.extend(new);
                evidence.power = Some(power);
                evidence.bmc_reachable = Some(true);
                None
            }
            Err(e) => {
                evidence.bmc_reachable = Some(false);
                Some(e)
            }
        };
        evidence.findings = position.findings.clone();
        error
    }

    /// Keep a machine's state; a changed position (stage, findings, SEL baseline) is written
    /// to the journal first.
    fn put(&self, name: &str, st: &MachineState) {
        let mut st = st.clone();
        // A dry run keeps its positions in memory only: a later real run must not resume
        // from steps that were never carried out.
        if !self.exec.dry_run && st.persisted.as_ref() != Some(&st.position) {
            match self.exec.journal.save_position(name, &st.position) {
                Ok(()) => st.persisted = Some(st.position.clone()),
                Err(e) => warn!(node = name, error = %e, "journal write failed"),
            }
        }
        if let Some(s) = self.lock().get_mut(name) {
            *s = st;
        }
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

    /// The storm guard, atomically with marking the node as remediating.
    async fn admit(&self, name: &str, next: Stage, recovered_ms: Option<u64>) -> Admission {
        let _turn = self.admission.lock().await;
        let breaker_open = self.exec.journal.breaker().ok().flatten().is_some();
        let (total, unhealthy, in_flight) = {
            let s = self.lock();
            let total = s.len();
            let unhealthy = s
                .values()
                .filter(|m| !matches!(m.position.stage, Stage::Healthy))
                .count();
            let in_flight = s
                .iter()
                .filter(|(n, m)| n.as_str() != name && remediating(&m.position.stage))
                .count();
            (total, unhealthy, in_flight)
        };
        let p = &self.config.policy;
        let storm = StormPolicy {
            max_concurrent: p.max_concurrent,
            max_unhealthy_percent: p.max_unhealthy_percent,
            cooldown_ms: p.cooldown_s.saturating_mul(1000),
        };
        let fleet = Fleet {
            total,
            unhealthy,
            in_flight,
            breaker_open,
        };
        let a = admit(fleet, &storm, now_ms(), recovered_ms);
        if let Admission::Go = a {
            if let Some(m) = self.lock().get_mut(name) {
                m.position.stage = next;
            }
        }
        a
    }

    async fn act(
        &self,
        m: &Machine,
        node: &NodeInfo,
        mut st: MachineState,
        step: crate::remedy::stage::Step,
        j: &Judgement,
        evidence: &Evidence,
    ) {
        let name = m.name.as_str();
        let now = now_ms();
        let verdict = j.verdict.name();
        let mut evidence_lines: Vec<String> = j.reasons.clone();
        evidence_lines.extend(st.history.iter().map(|h| format!("probe {h}")));
        let findings = st.position.findings.clone();
        let subject = Subject {
            machine: m,
            node,
            episode: st.position.episode,
            findings: &findings,
            evidence: &evidence_lines,
            verdict: &verdict,
        };
        let mutating = matches!(
            step.remedy,
            Remedy::SoftReboot | Remedy::HardReboot | Remedy::PowerOn | Remedy::Fence
        );
        if mutating && !self.exec.dry_run {
            match self.admit(name, step.next, st.position.recovered_ms).await {
                Admission::Go => st.waiting = None,
                Admission::Trip { reason } => {
                    if let Ok(true) = self.exec.journal.trip_breaker(&reason, now) {
                        self.exec.note(name, format!("storm guard: breaker TRIPPED: {reason}; no remediation until `oob breaker reset`"));
                        warn!(node = name, reason = %reason, "breaker tripped");
                    }
                    self.metrics.remedy(step.remedy.name(), "blocked");
                    self.wait(name, st, "breaker open".into());
                    return;
                }
                Admission::Blocked { reason } | Admission::Wait { reason } => {
                    self.metrics.remedy(step.remedy.name(), "deferred");
                    self.wait(name, st, reason);
                    return;
                }
            }
        }
        let mut position = st.position.clone();
        position.stage = step.next;
        let kind = step.remedy.name();
        let done = match step.remedy {
            Remedy::Nothing | Remedy::ConfirmOutOfBand => None,
            Remedy::SoftReboot => {
                st.boot_before = node.boot_id.clone();
                Some(self.exec.soft_reboot(&subject).await)
            }
            Remedy::HardReboot => {
                st.boot_before = node.boot_id.clone();
                Some(self.exec.hard_reboot(&subject).await)
            }
            Remedy::PowerOn => {
                st.boot_before = node.boot_id.clone();
                Some(self.exec.power_on(&subject).await)
            }
            Remedy::Fence => {
                let alive =
                    matches!(j.verdict, Verdict::Faulty) && evidence.ssh_reachable != Some(false);
                Some(self.exec.fence(&subject, alive).await)
            }
            Remedy::Report => {
                let summary = self.summary(&st, j);
                let since = self.episode_start(name);
                let (done, _) = self.exec.report(&subject, &summary, since).await;
                Some(done)
            }
            Remedy::Recovered => {
                let how = match (&st.boot_before, &node.boot_id) {
                    (Some(a), Some(b)) if a != b => {
                        format!("recovered: reboot verified (bootID {a} → {b}), Ready=True")
                    }
                    _ => "recovered: answering and Ready=True".to_owned(),
                };
                self.exec.note(name, how.clone());
                let d = self.exec.recovered(&subject, &how).await;
                st.position.findings.clear();
                st.boot_before = None;
                position.recovered_ms = Some(now);
                Some(d)
            }
        };
        if let Some(done) = &done {
            self.metrics.remedy(kind, done.outcome().0);
            match done {
                Done::Ok(d) if mutating && step.remedy != Remedy::Fence => {
                    self.exec.note(name, format!("{kind}: {d}"))
                }
                Done::Failed(d) => self.exec.note(name, format!("{kind} failed: {d}")),
                Done::Skip(d) => {
                    self.exec.note(name, format!("{kind} skipped: {d}"));
                    // No soft path: let the next round escalate at once.
                    position.stage = Stage::SoftReboot {
                        since: now.saturating_sub(self.config.policy.stages().soft_reboot_timeout),
                    };
                }
                Done::Busy(d) => {
                    self.exec.note(name, format!("{kind} deferred: {d}"));
                    position.stage = st.position.stage;
                }
                Done::Refused(d) => {
                    // Never power-cycle the wrong machine: straight to the report, hands off.
                    position.stage = Stage::AwaitReplacement { since: now };
                    st.position = position.clone();
                    self.put(name, &st);
                    let summary = format!("power action refused: {d}");
                    let since = self.episode_start(name);
                    let _ = self.exec.report(&subject, &summary, since).await;
                    self.metrics.remedy("report", "ok");
                    st.position = position;
                    self.put(name, &st);
                    return;
                }
                Done::Ok(_) => {}
            }
        }
        if position.stage != st.position.stage {
            info!(
                node = name,
                from = st.position.stage.name(),
                to = position.stage.name(),
                "stage"
            );
        }
        st.position = position;
        self.put(name, &st);
    }

    fn wait(&self, name: &str, mut st: MachineState, reason: String) {
        if st.waiting.as_deref() != Some(reason.as_str()) {
            self.exec
                .note(name, format!("remediation deferred: {reason}"));
            st.waiting = Some(reason);
        }
        self.put(name, &st);
    }

    /// When the node's current episode began (its first timeline line since it was healthy).
    fn episode_start(&self, name: &str) -> u64 {
        let entries = self.exec.journal.timeline(name, 0).unwrap_or_default();
        entries
            .iter()
            .rev()
            .find(|(_, what)| what.starts_with("recovered"))
            .map_or(0, |(at, _)| *at + 1)
    }

    fn summary(&self, st: &MachineState, j: &Judgement) -> String {
        if let Some(f) = st
            .position
            .findings
            .iter()
            .find(|f| f.severity == Level::Critical)
        {
            return format!(
                "critical hardware finding on {}: {}",
                f.component.as_deref().unwrap_or("the machine"),
                f.detail
            );
        }
        match st.position.stage {
            Stage::Confirm { .. } => format!(
                "the BMC did not confirm the machine's state within {} s ({})",
                self.config.policy.confirm_timeout_s,
                j.reasons.join(", ")
            ),
            _ => format!(
                "did not come back after a soft reboot and a verified hard power cycle; fenced ({})",
                j.reasons.join(", ")
            ),
        }
    }
}

pub use http::serve_http;

/// Add the Nodes that describe their BMC in annotations (`oob.dev/bmc`, …) to the
/// inventory; the file's machines win on a name clash. Problems are logged and skipped.
pub async fn add_annotated(config: &mut Config, client: &kube::Client) -> anyhow::Result<()> {
    let nodes = crate::k8s::node_annotations(client).await?;
    for problem in config.add_annotated(&nodes) {
        warn!(problem = %problem, "annotated node skipped");
    }
    Ok(())
}

/// The executor for a configuration: journal, governor, profiles, node operations. `client`
/// is `None` for a CLI without cluster access (no drain, no lock, no Node to compare).
pub fn executor(
    config: &Config,
    client: Option<kube::Client>,
    dry_run: bool,
    holder: &str,
    feed: tokio::sync::broadcast::Sender<crate::remedy::executor::Line>,
) -> anyhow::Result<Executor> {
    use anyhow::Context as _;
    let profiles = match &config.profiles_dir {
        Some(dir) => crate::bmc::profile::Profiles::with_overrides(dir)?,
        None => crate::bmc::profile::Profiles::embedded()?,
    };
    let journal = crate::remedy::journal::Journal::open(&config.service.journal)
        .with_context(|| format!("opening the journal (service.journal in {})", config.path))?;
    let nodes: Arc<dyn crate::k8s::NodeOps> = match &client {
        Some(c) => Arc::new(KubeNodeOps::new(c.clone(), "default", holder)),
        None => Arc::new(crate::k8s::Offline),
    };
    Ok(Executor {
        journal: Arc::new(journal),
        nodes,
        kube: client,
        governor: crate::remedy::governor::Governor::new(Duration::from_millis(
            config.policy.bmc_min_interval_ms,
        )),
        profiles,
        policy: config.policy.clone(),
        namespace: config.service.namespace.clone(),
        holder: holder.to_owned(),
        reports_dir: config.service.reports_dir.clone(),
        dry_run,
        feed,
    })
}

/// Build a service from a configuration. `feed` receives every timeline line (the demo
/// prints it).
pub fn build(
    config: Config,
    client: kube::Client,
    dry_run: bool,
    holder: &str,
    feed: tokio::sync::broadcast::Sender<crate::remedy::executor::Line>,
) -> anyhow::Result<Arc<Service>> {
    let exec = executor(&config, Some(client), dry_run, holder, feed)?;
    for e in exec.journal.in_flight()? {
        warn!(key = %e.key, node = %e.node, action = %e.action, "journaled action without an outcome (interrupted); it is resumed from the real state, never re-sent");
    }
    Ok(Arc::new(Service::new(config, Arc::new(exec))?))
}
