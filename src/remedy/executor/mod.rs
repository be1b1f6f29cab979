//! Carries out one [`Remedy`] for one machine with every safety interlock: the identity check
//! before any power action, the per-BMC governor, the per-node lock shared with the CLI, the
//! journal (intent before sending, outcome after; a step seen before is resumed by reading
//! the real state, never sent again), dry run, and verified outcomes. Every step leaves a
//! line in the node's timeline (journal, tracing, and the live feed the demo prints).
//!
//! Which remedy, and when, is decided elsewhere (`stage`, `guard`); this module only acts.
//! Split by rung: [`power`] (BMC power steps and their resumption), [`fence`] (cordon,
//! power off, taint, drain; recovery), [`report`] (the fault report).

mod fence;
mod inband;
mod look;
mod power;
pub mod replace;
mod report;
mod seams;
#[cfg(test)]
mod tests;

pub use look::{BmcLook, SelRead};
pub use seams::{BmcConnector, Clock, Profiled, SystemClock};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::governor::Governor;
use super::guard::{same_machine, Expected};
use super::journal::{Intent, Journal, JournalError};
use super::stage::Remedy;
use crate::bmc::connect::{self, Connected};
use crate::bmc::redfish::Credentials;
use crate::bmc::{BmcError, Identity};
use crate::config::{Machine, PolicySettings};
use crate::gather::host::HostAccess;
use crate::health::Finding;
use crate::k8s::lease::node_lock_name;
use crate::k8s::{NodeInfo, NodeOps};
use crate::report::Cause;

/// The condition `oob` owns on every node it acts on.
pub const CONDITION: &str = "OobRemediation";
/// A node with this annotation (any value but `false`) is left alone by the service.
pub const PAUSE_ANNOTATION: &str = "oob.dev/paused";
pub use crate::k8s::CORDONED_ANNOTATION;
/// Set by `oob release NODE` (`repaired` with `--repaired`, else `done`): a person ends the
/// hands-off of a node awaiting replacement; the service takes it away once acted on.
pub const RELEASE_ANNOTATION: &str = "oob.dev/release";

/// One line of a node's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub at_ms: u64,
    pub node: String,
    pub text: String,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Carried out (and verified where it can be).
    Ok(String),
    /// Not carried out for a safety reason (identity mismatch): report, never retry blindly.
    Refused(String),
    /// Tried and failed (BMC error, not verified); the ladder's timeouts take it from here.
    Failed(String),
    /// This step cannot be done on this machine (no soft reboot path): go to the next one.
    Skip(String),
    /// Someone else holds the node (the CLI's lock); try again next round.
    Busy(String),
    /// Stopped part-way (its per-node lock was lost): what it began may have reached the
    /// machine. Resumed from the journal like a step a crash stopped, never begun anew.
    Interrupted(String),
}

impl Done {
    /// The outcome as the ladder's stage machine folds it.
    pub fn kind(&self) -> crate::remedy::stage::Outcome {
        use crate::remedy::stage::Outcome;
        match self {
            Self::Ok(_) => Outcome::Done,
            Self::Refused(_) => Outcome::Refused,
            Self::Failed(_) => Outcome::Failed,
            Self::Skip(_) => Outcome::Skipped,
            Self::Busy(_) | Self::Interrupted(_) => Outcome::Busy,
        }
    }

    /// The outcome's name (journal, metrics, CLI JSON) and its detail.
    pub fn outcome(&self) -> (&'static str, &str) {
        match self {
            Self::Ok(d) => ("done", d),
            Self::Refused(d) => ("refused", d),
            Self::Failed(d) => ("failed", d),
            Self::Skip(d) => ("skipped", d),
            Self::Busy(d) => ("busy", d),
            Self::Interrupted(d) => ("interrupted", d),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What the executor acts through, each behind a small trait so that every interlock can be
/// driven over fakes: the BMCs, the cluster (nodes, drain, leases, Secrets), the journal and
/// the clock. An offline run (no kubeconfig) is [`crate::k8s::Offline`], not a branch here.
pub struct Deps {
    pub journal: Arc<Journal>,
    pub nodes: Arc<dyn NodeOps>,
    pub bmcs: Arc<dyn BmcConnector>,
    /// The host's own OS over SSH (health checks, `systemctl reboot`).
    pub hosts: Arc<dyn HostAccess>,
    pub clock: Arc<dyn Clock>,
}

/// How the executor acts.
pub struct Settings {
    pub policy: PolicySettings,
    /// Who holds the per-node locks this executor takes (pod or host name).
    pub holder: String,
    pub reports_dir: PathBuf,
    /// The report sinks' names: each report and follow-up gets one delivery per sink in
    /// the outbox.
    pub sinks: Vec<String>,
    /// The per-node lock's lease (renewed every third while a step runs).
    pub node_lock: Duration,
    pub dry_run: bool,
    /// Every timeline line also goes here (the demo and `oob reboot` print them).
    pub feed: broadcast::Sender<Line>,
}

/// Carries out remedies; see the module documentation.
pub struct Executor {
    journal: Arc<Journal>,
    nodes: Arc<dyn NodeOps>,
    bmcs: Arc<dyn BmcConnector>,
    hosts: Arc<dyn HostAccess>,
    clock: Arc<dyn Clock>,
    governor: Governor,
    /// Per node: when its last health check before uncordoning failed (ms), so that a node
    /// that stays unfit is looked at every `HEALTH_CHECK_EVERY`, not every round.
    health_failed: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    policy: PolicySettings,
    holder: String,
    reports_dir: PathBuf,
    sinks: Vec<String>,
    node_lock: Duration,
    dry_run: bool,
    feed: broadcast::Sender<Line>,
    /// Cluster mode: the OobRemediations, where every intent goes before it is sent.
    episodes: Option<Arc<dyn crate::k8s::remediation::Episodes>>,
}

/// What the ladder knows about a machine for one step.
pub struct Subject<'a> {
    pub machine: &'a Machine,
    pub node: &'a NodeInfo,
    /// Idempotency key prefix: `node/episode`.
    pub episode: u64,
    pub findings: &'a [Finding],
    pub evidence: &'a [String],
    pub verdict: &'a str,
    /// The host still answers (a fence then cordons and drains, it does not power off).
    pub alive: bool,
    /// The host's SSH port answered this round: a soft reboot is `systemctl reboot` over
    /// SSH, not the BMC's graceful restart.
    pub ssh_up: bool,
    /// The bootID recorded when a reboot was sent (tells a verified reboot from a node
    /// that came back on its own).
    pub boot_before: Option<&'a str>,
    /// Why a report is written (for [`Remedy::Report`]).
    pub cause: Option<&'a Cause>,
}

impl Subject<'_> {
    fn key(&self, step: &str) -> String {
        format!("{}/{}/{step}", self.machine.name, self.episode)
    }
}

impl Executor {
    pub fn new(deps: Deps, settings: Settings) -> Self {
        Self {
            governor: Governor::new(Duration::from_millis(settings.policy.bmc_min_interval_ms)),
            journal: deps.journal,
            nodes: deps.nodes,
            bmcs: deps.bmcs,
            hosts: deps.hosts,
            clock: deps.clock,
            health_failed: std::sync::Mutex::default(),
            policy: settings.policy,
            holder: settings.holder,
            reports_dir: settings.reports_dir,
            sinks: settings.sinks,
            node_lock: settings.node_lock,
            dry_run: settings.dry_run,
            feed: settings.feed,
            episodes: None,
        }
    }

    /// Share the journal through the API (cluster mode): every intent is written to the
    /// node's OobRemediation before anything is sent, outcomes after.
    #[must_use]
    pub fn with_episodes(mut self, episodes: Arc<dyn crate::k8s::remediation::Episodes>) -> Self {
        self.episodes = Some(episodes);
        self
    }

    /// The shared journal, in cluster mode.
    pub fn episodes(&self) -> Option<&Arc<dyn crate::k8s::remediation::Episodes>> {
        self.episodes.as_ref()
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn nodes(&self) -> &dyn NodeOps {
        self.nodes.as_ref()
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Timeline lines not yet taken by every subscriber of the feed.
    pub fn feed_pending(&self) -> usize {
        self.feed.len()
    }

    /// The live feed of timeline lines.
    pub fn subscribe(&self) -> broadcast::Receiver<Line> {
        self.feed.subscribe()
    }

    /// Now, by the executor's clock (ms since the Unix epoch).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Carry out `remedy` for `s`; `None` for the remedies that are not actions.
    pub async fn execute(&self, remedy: Remedy, s: &Subject<'_>) -> Option<Done> {
        // Cordon first: no repair or reboot of a node the scheduler still places pods on.
        if matches!(
            remedy,
            Remedy::Repair
                | Remedy::SoftReboot
                | Remedy::HardReboot
                | Remedy::PowerOn
                | Remedy::Fence
        ) && !self.dry_run
        {
            // Held by someone else (another oob actor, a medik8s operator's lease): yield
            // before touching the node at all, the cordon included.
            if let Err(busy) = self.locked(&s.machine.name, async {}).await {
                return Some(busy);
            }
        }
        if matches!(
            remedy,
            Remedy::Repair | Remedy::SoftReboot | Remedy::HardReboot | Remedy::PowerOn
        ) && !self.dry_run
        {
            if let Err(e) = self.cordon(s).await {
                return Some(Done::Failed(format!("cordon before the reboot: {e}")));
            }
        }
        Some(match remedy {
            Remedy::Nothing => return None,
            Remedy::Repair => self.repair(s).await,
            Remedy::SoftReboot => self.soft_reboot(s).await,
            Remedy::HardReboot => self.hard_reboot(s).await,
            Remedy::PowerOn => self.power_on(s).await,
            Remedy::Fence => self.fence(s).await,
            Remedy::Report => {
                let unknown = Cause::NoRecovery {
                    reasons: s.evidence.join(", "),
                };
                self.report(s, s.cause.unwrap_or(&unknown)).await.0
            }
            Remedy::Recovered => self.recovered(s).await,
            // It needs the inventory's other machines and the cluster's bootstrap tokens:
            // the service calls `Executor::replace` with them.
            Remedy::Replace => Done::Failed(
                "the replacement runs through Executor::replace, with the inventory".into(),
            ),
        })
    }

    /// When the node's current episode began (its first timeline line since it was healthy).
    pub fn episode_start(&self, node: &str) -> u64 {
        let entries = self.journal.timeline(node, 0).unwrap_or_default();
        entries
            .iter()
            .rev()
            .find(|(_, what)| what.starts_with("recovered"))
            .map_or(0, |(at, _)| *at + 1)
    }

    /// A timeline line: journal, log, live feed.
    pub fn note(&self, node: &str, text: impl Into<String>) {
        let text = text.into();
        let at_ms = self.now_ms();
        if let Err(e) = self.journal.note(node, at_ms, &text) {
            warn!(node, error = %e, "journal write failed");
        }
        info!(node, what = %text, "timeline");
        let _ = self.feed.send(Line {
            at_ms,
            node: node.to_owned(),
            text,
        });
    }

    /// Connect to a machine's BMC (the password from its Secret when it names one).
    pub async fn connect(&self, m: &Machine) -> Result<Connected, BmcError> {
        let endpoint = m.bmc.clone();
        let password = match &m.credentials.password_secret {
            Some(reference) => self
                .nodes
                .secret_password(reference, m.credentials.labelled_secret)
                .await
                .map_err(|e| BmcError::Auth {
                    url: endpoint.to_string(),
                    detail: format!("credential from Secret {reference}: {e}"),
                })?,
            None => m.credentials.resolve(&m.name).map_err(|e| BmcError::Auth {
                url: endpoint.to_string(),
                detail: e.to_string(),
            })?,
        };
        let spec = connect::Spec {
            endpoint,
            creds: Credentials {
                user: m.credentials.user.clone(),
                password,
            },
            tls: m.tls.policy()?,
            profile: m.profile.clone(),
            cipher_suite: None,
            privilege: None,
            verify_timeout: Some(Duration::from_secs(self.policy.power_verify_timeout_s)),
        };
        let deadline = crate::timeouts::BMC_REQUEST;
        tokio::time::timeout(deadline, self.bmcs.connect(spec))
            .await
            .map_err(|_| BmcError::Timeout {
                url: m.bmc.to_string(),
                after: deadline,
            })?
    }

    /// The identity interlock: is the BMC's machine this node?
    async fn check_identity(&self, s: &Subject<'_>, c: &Connected) -> Result<Identity, Done> {
        let identity = c
            .bmc
            .identity()
            .await
            .map_err(|e| Done::Failed(format!("reading the BMC's identity: {e}")))?;
        let expected = Expected {
            system_uuid: s.node.system_uuid.clone(),
            serial: s.machine.serial.clone(),
        };
        match same_machine(&identity, &expected) {
            Ok(matched) => {
                self.note(&s.machine.name, format!("identity verified: {matched}"));
                Ok(identity)
            }
            Err(why) => {
                self.note(
                    &s.machine.name,
                    format!("identity check FAILED, power action refused: {why}"),
                );
                Err(Done::Refused(format!("identity mismatch: {why}")))
            }
        }
    }

    /// Hold the per-node lock (shared with the CLI) around `work`, renewing it every third
    /// of its duration while `work` runs (a crashed holder blocks the node one duration);
    /// `work` is stopped when the lock is lost.
    async fn locked<F, T>(&self, node: &str, work: F) -> Result<T, Done>
    where
        F: std::future::Future<Output = T>,
    {
        let lease = node_lock_name(node);
        // The lease lives `node_lock` from when it was asked for, not from the answer.
        let asked = tokio::time::Instant::now();
        match self
            .nodes
            .try_lock(&lease, &self.holder, self.node_lock)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(Done::Busy(format!("{node} is locked by another actor"))),
            Err(crate::k8s::NodeOpsError::Held { lease, holder }) => {
                return Err(Done::Busy(format!(
                    "{node} is held by {holder} (Lease {lease}); oob yields"
                )))
            }
            Err(e) => return Err(Done::Failed(format!("per-node lock: {e}"))),
        }
        // Renewed next to the work, not in turn with it: the BMC's future keeps being polled
        // while a renewal waits on the API. A lock another actor now holds, or one that could
        // not be renewed in time (the lease lives `node_lock` from the start of the last
        // renewal that took), stops the step before the lease can expire: from then on
        // someone else may act on the node. The step is interrupted as by a crash: its
        // position (stage, pending remedy) stays, and a later round resumes it from the
        // journal, never sending it again.
        let renew = async {
            let period = self.node_lock / 3;
            let mut renewed = asked;
            let mut next = tokio::time::Instant::now();
            loop {
                // At a fixed rate: a try that waited out its deadline does not delay the next.
                next += period;
                tokio::time::sleep_until(next).await;
                let started = tokio::time::Instant::now();
                let why = match tokio::time::timeout(
                    period / 2,
                    self.nodes.try_lock(&lease, &self.holder, self.node_lock),
                )
                .await
                {
                    Ok(Ok(true)) => {
                        renewed = started;
                        continue;
                    }
                    Ok(Ok(false)) => return "another actor holds it now".to_owned(),
                    Ok(Err(e @ crate::k8s::NodeOpsError::Held { .. })) => return e.to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("the API did not answer within {:?}", period / 2),
                };
                // The next try, with its own deadline, would end after the lease expired.
                if started + period + period / 2 >= renewed + self.node_lock {
                    let unrenewed = started.saturating_duration_since(renewed);
                    return format!(
                        "not renewed for {}s of its {}s ({why})",
                        unrenewed.as_secs(),
                        self.node_lock.as_secs()
                    );
                }
                warn!(node, error = %why, "renewing the per-node lock failed; tried again");
            }
        };
        tokio::pin!(work);
        tokio::pin!(renew);
        let out = tokio::select! {
            out = &mut work => Ok(out),
            lost = &mut renew => Err(lost),
        };
        // A lost lock is not released: another actor may hold it, or take it the moment it
        // expires (oob replicas share the medik8s holder name, so a late release could take
        // the new holder's lease away). It expires on its own.
        if out.is_ok() {
            if let Err(e) = self.nodes.unlock(&lease, &self.holder).await {
                warn!(node, error = %e, "releasing the per-node lock failed; it expires on its own");
            }
        }
        // The timeline says it where the ladder keeps the step's position (service::act).
        out.map_err(|why| {
            warn!(node, reason = %why, "per-node lock lost: the step in progress stops");
            Done::Interrupted(format!("per-node lock lost: {why}"))
        })
    }

    /// Journal an intent; `Err` carries the step's end when it was seen before.
    /// Journal the intent for `key` before anything is sent. In cluster mode the intent is
    /// written to the node's OobRemediation first: if the API does not take it, nothing is
    /// journaled and nothing is sent (a new leader must find every intent there).
    async fn intent(
        &self,
        key: &str,
        node: &str,
        action: &str,
        before: &super::journal::Before,
    ) -> Result<Intent, Done> {
        self.share_intent(key, node, action, before)
            .await
            .map_err(Done::Failed)?;
        self.journal
            .intent(key, node, action, before, self.now_ms())
            .map_err(|e| Done::Failed(format!("journal: {e}")))
    }

    /// The shared half of [`Self::intent`]: `Err` when the intent could not be recorded in
    /// the API (nothing may be sent then). A key the local journal holds already is not
    /// written again; a key the API holds already (another replica began the step) is not
    /// overwritten but taken into the local journal, so that [`Self::intent`] finds it seen.
    async fn share_intent(
        &self,
        key: &str,
        node: &str,
        action: &str,
        before: &super::journal::Before,
    ) -> Result<(), String> {
        let Some(shared) = &self.episodes else {
            return Ok(());
        };
        match self.journal.entry(key) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => return Err(format!("journal: {e}")),
        }
        let step = crate::k8s::remediation::Step {
            key: key.to_owned(),
            action: action.to_owned(),
            intent_ms: self.now_ms(),
            before: serde_json::to_value(before).unwrap_or_default(),
            outcome: None,
            detail: None,
            done_ms: None,
        };
        let found: std::sync::Mutex<Option<crate::k8s::remediation::Step>> =
            std::sync::Mutex::default();
        shared
            .update(node, &crate::k8s::remediation::tag_of(key), &|s| {
                let mut slot = found.lock().unwrap_or_else(|p| p.into_inner());
                match s.steps.iter().find(|x| x.key == key) {
                    Some(there) => *slot = Some(there.clone()),
                    None => {
                        *slot = None;
                        s.put_step(&step);
                    }
                }
            })
            .await
            .map_err(|e| {
                format!("the intent could not be recorded in the cluster, nothing was sent: {e}")
            })?;
        let there = found.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(there) = there {
            let before = serde_json::from_value(there.before.clone()).unwrap_or_default();
            let outcome = there.outcome.as_deref().map(|o| {
                (
                    o,
                    there.detail.as_deref().unwrap_or(""),
                    there.done_ms.unwrap_or(there.intent_ms),
                )
            });
            self.journal
                .import(key, node, &there.action, there.intent_ms, &before, outcome)
                .map_err(|e| format!("journal: {e}"))?;
            self.note(
                node,
                format!("{action}: begun before by another replica (found in the cluster); not sent again"),
            );
        }
        Ok(())
    }

    /// The shared half of an outcome (best effort: without it a new leader re-reads the
    /// machine's state instead of trusting a record, which is safe).
    async fn share_outcome(&self, key: &str, outcome: &str, detail: &str) {
        let Some(shared) = &self.episodes else {
            return;
        };
        let Ok(Some(entry)) = self.journal.entry(key) else {
            return;
        };
        let step = crate::k8s::remediation::Step {
            key: key.to_owned(),
            action: entry.action.clone(),
            intent_ms: entry.intent_ms,
            before: serde_json::to_value(&entry.before).unwrap_or_default(),
            outcome: Some(outcome.to_owned()),
            detail: Some(detail.to_owned()),
            done_ms: Some(self.now_ms()),
        };
        if let Err(e) = shared
            .update(&entry.node, &crate::k8s::remediation::tag_of(key), &|s| {
                s.put_step(&step);
            })
            .await
        {
            warn!(key, error = %e, "recording the outcome in the cluster failed");
        }
    }

    async fn outcome(&self, key: &str, done: &Done) {
        let (outcome, detail) = done.outcome();
        if let Err(e) = self.journal.outcome(key, outcome, detail, self.now_ms()) {
            warn!(key, error = %e, "journal write failed");
        }
        self.share_outcome(key, outcome, detail).await;
    }
}
