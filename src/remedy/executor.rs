//! Carries out one [`Remedy`] for one machine with every safety interlock: the identity check
//! before any power action, the per-BMC governor, the per-node lock shared with the CLI, the
//! journal (intent before sending, outcome after; a step seen before is resumed by reading
//! the real state, never sent again), dry run, and verified outcomes. Every step leaves a
//! line in the node's timeline (journal, tracing, and the live feed the demo prints).
//!
//! Which remedy, and when, is decided elsewhere (`stage`, `guard`); this module only acts.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::governor::Governor;
use super::guard::{same_machine, Expected};
use super::journal::{Intent, Journal, JournalError};
use crate::bmc::connect::{self, Connected};
use crate::bmc::power::{self, PowerTiming};
use crate::bmc::profile::Profiles;
use crate::bmc::redfish::Credentials;
use crate::bmc::{BmcError, Endpoint, Identity, PowerAction, PowerRequest, PowerState};
use crate::clock::{now_ms, rfc3339};
use crate::config::{Machine, PolicySettings};
use crate::health::Finding;
use crate::k8s::drain::{self, DrainOptions, VerifiedPowerOff};
use crate::k8s::lease::{node_lock_name, LeaseLock};
use crate::k8s::{Condition, NodeEvent, NodeInfo, NodeOps, Taint, OUT_OF_SERVICE};
use crate::report::{Cause, FaultReport};

/// The condition `oob` owns on every node it acts on.
pub const CONDITION: &str = "OobRemediation";
/// A node with this annotation (any value but `false`) is left alone by the service.
pub const PAUSE_ANNOTATION: &str = "oob.dev/paused";
/// Set when `oob` cordoned the node, so that recovery uncordons only what `oob` cordoned.
pub const CORDONED_ANNOTATION: &str = "oob.dev/cordoned";

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
}

/// What one look at a BMC saw.
#[derive(Debug, Clone, PartialEq)]
pub struct BmcLook {
    pub power: PowerState,
    /// New SEL findings since the baseline (none when the log was not read).
    pub findings: Vec<Finding>,
    pub sel: SelRead,
}

/// Whether the system event log could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelRead {
    Read,
    /// The BMC has no SEL it exposes (no LogService, command unsupported): judged on power
    /// alone, no hardware findings from this source.
    Absent(String),
    /// The read failed this time; the baseline is kept for the next look.
    Failed(String),
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
            Self::Busy(_) => Outcome::Busy,
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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Everything the executor acts through.
pub struct Executor {
    pub journal: Arc<Journal>,
    pub nodes: Arc<dyn NodeOps>,
    /// For drains and per-node leases; `None` outside a cluster (no drain, no lock).
    pub kube: Option<kube::Client>,
    pub governor: Governor,
    pub profiles: Profiles,
    pub policy: PolicySettings,
    pub namespace: String,
    pub holder: String,
    pub reports_dir: PathBuf,
    pub dry_run: bool,
    pub feed: broadcast::Sender<Line>,
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
}

impl Subject<'_> {
    fn key(&self, step: &str) -> String {
        format!("{}/{}/{step}", self.machine.name, self.episode)
    }
}

impl Executor {
    /// A timeline line: journal, log, live feed.
    pub fn note(&self, node: &str, text: impl Into<String>) {
        let text = text.into();
        let at_ms = now_ms();
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

    /// Connect to a machine's BMC.
    pub async fn connect(&self, m: &Machine) -> Result<Connected, BmcError> {
        let endpoint = Endpoint::parse(&m.bmc)?;
        let password = match (&m.credentials.password_secret, &self.kube) {
            (Some(reference), Some(client)) => crate::k8s::secret_password(client, reference)
                .await
                .map_err(|e| BmcError::Auth {
                    url: endpoint.to_string(),
                    detail: format!("credential from Secret {reference}: {e}"),
                })?,
            _ => m.credentials.resolve(&m.name).map_err(|e| BmcError::Auth {
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
            tls: connect::tls_policy(&m.tls)?,
            profile: m.profile.clone(),
            cipher_suite: None,
            privilege: None,
            verify_timeout: Some(Duration::from_secs(self.policy.power_verify_timeout_s)),
        };
        let deadline = crate::timeouts::BMC_REQUEST;
        tokio::time::timeout(deadline, connect::connect(spec, &self.profiles))
            .await
            .map_err(|_| BmcError::Timeout {
                url: m.bmc.clone(),
                after: deadline,
            })?
    }

    /// Out-of-band look: power state and new SEL findings (`seen` is the baseline of SEL ids
    /// already looked at; `None` on the first look, which only sets it). The BMC answered
    /// when its power state did: a BMC without a SEL (many expose none over Redfish) or
    /// whose log read fails is still a BMC that confirms power, and says so in `sel`.
    pub async fn confirm(
        &self,
        m: &Machine,
        seen: &mut Option<BTreeSet<String>>,
    ) -> Result<BmcLook, BmcError> {
        let c = self.connect(m).await?;
        let result = async {
            let power = c.bmc.power_state().await?;
            let (findings, sel) = match c.bmc.sel(crate::timeouts::SEL_MAX_ENTRIES).await {
                Ok(entries) => {
                    let findings = match seen {
                        Some(ids) => crate::health::sel::findings(&entries, ids),
                        None => Vec::new(),
                    };
                    *seen = Some(entries.iter().map(|e| e.id.clone()).collect());
                    (findings, SelRead::Read)
                }
                Err(e) if e.is_unsupported() => (Vec::new(), SelRead::Absent(e.to_string())),
                Err(e) => (Vec::new(), SelRead::Failed(e.to_string())),
            };
            Ok(BmcLook {
                power,
                findings,
                sel,
            })
        }
        .await;
        c.bmc.close().await;
        result
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

    /// Hold the per-node lock (shared with the CLI) around `work`.
    async fn locked<F, T>(&self, node: &str, work: F) -> Result<T, Done>
    where
        F: std::future::Future<Output = T>,
    {
        let Some(client) = &self.kube else {
            return Ok(work.await);
        };
        let lock = LeaseLock::new(
            client.clone(),
            &self.namespace,
            &node_lock_name(node),
            &self.holder,
            Duration::from_secs(600),
        );
        match lock.try_acquire().await {
            Ok(true) => {}
            Ok(false) => return Err(Done::Busy(format!("{node} is locked by another actor"))),
            Err(e) => return Err(Done::Failed(format!("per-node lock: {e}"))),
        }
        let out = work.await;
        if let Err(e) = lock.release().await {
            warn!(node, error = %e, "releasing the per-node lock failed; it expires on its own");
        }
        Ok(out)
    }

    /// Journal an intent; `Err` carries the step's end when it was seen before.
    fn intent(&self, key: &str, node: &str, action: &str, before: &str) -> Result<Intent, Done> {
        self.journal
            .intent(key, node, action, before, now_ms())
            .map_err(|e| Done::Failed(format!("journal: {e}")))
    }

    fn outcome(&self, key: &str, done: &Done) {
        let (outcome, detail) = done.outcome();
        if let Err(e) = self.journal.outcome(key, outcome, detail, now_ms()) {
            warn!(key, error = %e, "journal write failed");
        }
    }

    /// A BMC power step (soft restart request, cycle, on, off), journaled and verified.
    async fn power_step(&self, s: &Subject<'_>, step: &str, what: PowerStep) -> Done {
        let node = &s.machine.name;
        let key = s.key(step);
        if self.dry_run {
            let d = format!("dry run: would {}", what.describe());
            self.note(node, d.clone());
            return Done::Ok(d);
        }
        let run = async {
            let c = match self.connect(s.machine).await {
                Ok(c) => c,
                Err(e) => return Done::Failed(format!("BMC: {e}")),
            };
            let done = self.power_connected(s, &c, &key, what).await;
            c.bmc.close().await;
            done
        };
        match self.locked(node, run).await {
            Ok(done) | Err(done) => done,
        }
    }

    async fn power_connected(
        &self,
        s: &Subject<'_>,
        c: &Connected,
        key: &str,
        what: PowerStep,
    ) -> Done {
        let node = &s.machine.name;
        if let Err(refused) = self.check_identity(s, c).await {
            return refused;
        }
        let state = match c.bmc.power_state().await {
            Ok(p) => p,
            Err(e) => return Done::Failed(format!("BMC power state: {e}")),
        };
        let before = json!({ "boot_id": s.node.boot_id, "power": state.to_string() }).to_string();
        match self.intent(key, node, what.name(), &before) {
            Err(done) => return done,
            Ok(Intent::Seen(e)) if e.outcome.is_some() => {
                let d = format!(
                    "{} already done at {} ({}); not sent again",
                    what.name(),
                    rfc3339(e.done_ms.unwrap_or(e.intent_ms)),
                    e.outcome.as_deref().unwrap_or("")
                );
                self.note(node, d.clone());
                return Done::Ok(d);
            }
            Ok(Intent::Seen(e)) => {
                // Started before a crash: whether it reached the BMC is unknown. Never resend;
                // finish what the real state says is unfinished.
                self.note(
                    node,
                    format!(
                        "resuming {} journaled at {}: power is {state}, not sending it again",
                        what.name(),
                        rfc3339(e.intent_ms)
                    ),
                );
                let done = self.resume(s, c, what, state, &e.before).await;
                self.outcome(key, &done);
                return done;
            }
            Ok(Intent::New) => {}
        }
        let Some(permit) = self
            .governor
            .acquire(&s.machine.bmc, Duration::from_secs(60))
            .await
        else {
            let done = Done::Failed("the BMC's governor did not give a turn within 60 s".into());
            self.outcome(key, &done);
            return done;
        };
        let done = match what {
            PowerStep::SoftRestart => {
                match c.bmc.request_power(PowerRequest::GracefulRestart).await {
                    Ok(_) => Done::Ok("graceful restart requested through the BMC".into()),
                    Err(e) if e.is_unsupported() => Done::Skip(format!("no soft reboot path: {e}")),
                    Err(e) => Done::Failed(format!("graceful restart: {e}")),
                }
            }
            PowerStep::Action(action) => verified(c, action).await,
        };
        drop(permit);
        self.outcome(key, &done);
        done
    }

    /// Finish a power step found in flight after a restart, from the observed state.
    /// `before` is what the intent recorded (bootID, power).
    async fn resume(
        &self,
        s: &Subject<'_>,
        c: &Connected,
        what: PowerStep,
        state: PowerState,
        before: &str,
    ) -> Done {
        let boot_before = serde_json::from_str::<serde_json::Value>(before)
            .ok()
            .and_then(|v| v["boot_id"].as_str().map(str::to_owned));
        let rebooted = boot_before.is_some() && s.node.boot_id != boot_before;
        if let (PowerStep::Action(PowerAction::Cycle), PowerState::On, false) =
            (what, state, rebooted)
        {
            // On, same boot: the off may have been accepted and not applied yet, or never
            // sent. Watch (bounded) for it to take effect; never send it again.
            let until = tokio::time::Instant::now() + c.timing.timeout;
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(c.timing.poll).await;
                if let Ok(PowerState::Off) = c.bmc.power_state().await {
                    self.note(
                        &s.machine.name,
                        "the interrupted cycle's off took effect; completing it with on",
                    );
                    return verified(c, PowerAction::On).await;
                }
            }
            return Done::Ok(format!(
                "power stayed On for {} s and the node did not reboot: the interrupted off never took effect; not re-sent, the ladder decides next",
                c.timing.timeout.as_secs()
            ));
        }
        if rebooted {
            return Done::Ok(format!(
                "completed before the restart: the node rebooted (bootID {} → {})",
                boot_before.unwrap_or_default(),
                s.node.boot_id.clone().unwrap_or_default()
            ));
        }
        match (what, state) {
            // The cycle's Off happened (or the machine is off): its remaining half is On.
            (PowerStep::Action(PowerAction::Cycle | PowerAction::On), PowerState::Off) => {
                verified(c, PowerAction::On).await
            }
            (PowerStep::Action(PowerAction::Off), PowerState::On) => Done::Failed(
                "power off was journaled but the machine is on; a person must look (not re-sent)"
                    .into(),
            ),
            (_, state) => Done::Ok(format!(
                "resumed without resending: power is {state}; the ladder verifies the boot"
            )),
        }
    }

    /// Soft reboot: the BMC's graceful restart (the host's own `systemctl reboot` over SSH
    /// needs SSH, which a dark host does not answer).
    pub async fn soft_reboot(&self, s: &Subject<'_>) -> Done {
        self.note(
            &s.machine.name,
            "soft reboot: graceful restart through the BMC",
        );
        self.power_step(s, "soft-reboot", PowerStep::SoftRestart)
            .await
    }

    /// Hard reboot: identity, then verified off → verified on.
    pub async fn hard_reboot(&self, s: &Subject<'_>) -> Done {
        self.note(&s.machine.name, "hard reboot: power cycle through the BMC");
        self.power_step(s, "hard-reboot", PowerStep::Action(PowerAction::Cycle))
            .await
    }

    /// A person's power action on an inventory machine (`oob power VERB NODE`): the same
    /// lock, identity check, journal and verification as the ladder's steps.
    pub async fn power_action(&self, s: &Subject<'_>, action: PowerAction) -> Done {
        self.note(
            &s.machine.name,
            format!("power {} requested by a person", action.as_str()),
        );
        let step = format!("power-{}", action.as_str());
        self.power_step(s, &step, PowerStep::Action(action)).await
    }

    /// The machine was found off: identity, then verified on.
    pub async fn power_on(&self, s: &Subject<'_>) -> Done {
        self.note(&s.machine.name, "power on through the BMC (found off)");
        self.power_step(s, "power-on", PowerStep::Action(PowerAction::On))
            .await
    }

    /// Fence: cordon; for a dead machine verified power off and the out-of-service taint;
    /// then a PDB-aware drain (pods that will not evict are deleted only after the verified
    /// power off). A live machine with failing hardware is cordoned and drained by eviction,
    /// not powered off: its kubelet still moves pods gracefully.
    pub async fn fence(&self, s: &Subject<'_>, alive: bool) -> Done {
        let node = s.machine.name.as_str();
        if self.dry_run {
            let d = format!(
                "dry run: would cordon{} and drain {node}",
                if alive {
                    ""
                } else {
                    ", power off, taint out-of-service"
                }
            );
            self.note(node, d.clone());
            return Done::Ok(d);
        }
        if let Err(e) = self.cordon(node).await {
            return Done::Failed(format!("cordon: {e}"));
        }
        let mut force = None;
        if !alive {
            match self
                .power_step(s, "fence-power-off", PowerStep::Action(PowerAction::Off))
                .await
            {
                Done::Ok(d) => {
                    self.note(node, format!("power off verified ({d})"));
                    let taint = Taint {
                        key: OUT_OF_SERVICE.into(),
                        value: Some("nodeshutdown".into()),
                        effect: "NoExecute".into(),
                    };
                    if let Err(e) = self
                        .nodes
                        .set_taint(node, OUT_OF_SERVICE, "NoExecute", Some(taint))
                        .await
                    {
                        return Done::Failed(format!("out-of-service taint: {e}"));
                    }
                    self.note(node, format!("tainted {OUT_OF_SERVICE}:NoExecute"));
                    force = Some(VerifiedPowerOff {
                        node: node.to_owned(),
                        evidence: format!("BMC power off verified at {}", rfc3339(now_ms())),
                    });
                }
                other => return other,
            }
        }
        let Some(client) = &self.kube else {
            return Done::Ok("cordoned (no cluster access for a drain)".into());
        };
        let options = DrainOptions {
            deadline: Duration::from_secs(self.policy.drain_timeout_s),
            force,
            ..DrainOptions::default()
        };
        match drain::drain(client, node, &options).await {
            Ok(r) if r.complete() => {
                let d = format!(
                    "drained: {} evicted, {} force-deleted, {} skipped",
                    r.evicted.len(),
                    r.force_deleted.len(),
                    r.skipped.len()
                );
                self.note(node, d.clone());
                Done::Ok(d)
            }
            Ok(r) => {
                let d = format!(
                    "drain incomplete after {} s: {} pods blocked ({})",
                    self.policy.drain_timeout_s,
                    r.blocked.len(),
                    r.blocked
                        .iter()
                        .map(|(p, why)| format!("{p}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                self.note(node, d.clone());
                Done::Failed(d)
            }
            Err(e) => Done::Failed(format!("drain: {e}")),
        }
    }

    async fn cordon(&self, node: &str) -> Result<(), crate::k8s::NodeOpsError> {
        self.nodes.set_unschedulable(node, true).await?;
        self.nodes
            .annotate(node, CORDONED_ANNOTATION, Some("true"))
            .await?;
        self.note(node, "cordoned");
        Ok(())
    }

    /// The fault report (files, Event, condition); returns the report files.
    pub async fn report(
        &self,
        s: &Subject<'_>,
        cause: &Cause,
        since_ms: u64,
    ) -> (Done, Vec<PathBuf>) {
        let node = s.machine.name.as_str();
        let summary = cause.summary();
        let component = cause.component();
        let recommended = cause.recommended(node, CONDITION);
        let bmc = if self.dry_run {
            None
        } else {
            match self.connect(s.machine).await {
                Ok(c) => {
                    let id = c.bmc.identity().await.ok();
                    c.bmc.close().await;
                    id
                }
                Err(_) => None,
            }
        };
        let timeline = self
            .journal
            .timeline(node, since_ms)
            .unwrap_or_default()
            .into_iter()
            .map(|(at, what)| (rfc3339(at), what))
            .collect();
        let report = FaultReport {
            node: node.to_owned(),
            created: rfc3339(now_ms()),
            location: s.machine.location.clone(),
            bmc,
            bmc_address: Endpoint::parse(&s.machine.bmc)
                .map(|e| e.to_string())
                .unwrap_or_else(|_| "(invalid address)".into()),
            summary: summary.to_owned(),
            component,
            verdict: s.verdict.to_owned(),
            findings: s.findings.to_vec(),
            evidence: s.evidence.to_vec(),
            timeline,
            recommended_action: recommended.clone(),
        };
        if self.dry_run {
            self.note(node, "dry run: would write a fault report");
            return (Done::Ok("dry run".into()), Vec::new());
        }
        // Journaled like an action: one report per episode, also across restarts (the file
        // name comes from the first intent, so a rewrite after a crash replaces, not adds).
        let key = s.key("report");
        let first = match self.intent(&key, node, "report", "{}") {
            Err(done) => return (done, Vec::new()),
            Ok(Intent::Seen(e)) if e.outcome.is_some() => {
                return (Done::Ok("already reported".into()), Vec::new())
            }
            Ok(Intent::Seen(e)) => e.intent_ms,
            Ok(Intent::New) => now_ms(),
        };
        let stamp = rfc3339(first).replace([':', '-'], "");
        let paths = match report.write(&self.reports_dir, &stamp) {
            Ok(p) => p,
            Err(e) => {
                let done = Done::Failed(e.to_string());
                self.outcome(&key, &done);
                return (done, Vec::new());
            }
        };
        self.note(
            node,
            format!(
                "fault report written: {}",
                paths
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        );
        let note = format!("{summary}. Recommended: {recommended}");
        self.mark(
            node,
            ("True", "AwaitingRepair", &summary),
            ("Warning", "FaultReport", "Report", &note),
        )
        .await;
        let done = Done::Ok(summary.to_owned());
        self.outcome(&key, &done);
        (done, paths)
    }

    /// Set our condition (status, reason, message) and publish an Event (type, reason,
    /// action, note). Best effort: the timeline and the journal already hold the facts.
    async fn mark(
        &self,
        node: &str,
        condition: (&str, &str, &str),
        event: (&str, &str, &str, &str),
    ) {
        let (status, reason, message) = condition;
        let c = Condition {
            type_: CONDITION.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.chars().take(512).collect(),
        };
        if let Err(e) = self.nodes.set_condition(node, c).await {
            warn!(node, error = %e, "setting the node condition failed");
        }
        let (type_, reason, action, note) = event;
        let e = NodeEvent {
            type_: type_.into(),
            reason: reason.into(),
            action: action.into(),
            note: note.into(),
        };
        if let Err(e) = self.nodes.publish(node, e).await {
            warn!(node, error = %e, "publishing the event failed");
        }
    }

    /// Back to health: uncordon what we cordoned, drop our taint, clear our condition.
    pub async fn recovered(&self, s: &Subject<'_>, how: &str) -> Done {
        let node = s.machine.name.as_str();
        if self.dry_run {
            return Done::Ok("dry run".into());
        }
        if s.node.annotations.contains_key(CORDONED_ANNOTATION) {
            if let Err(e) = self.nodes.set_unschedulable(node, false).await {
                return Done::Failed(format!("uncordon: {e}"));
            }
            let _ = self.nodes.annotate(node, CORDONED_ANNOTATION, None).await;
            self.note(node, "uncordoned");
        }
        if s.node.taints.iter().any(|t| t.key == OUT_OF_SERVICE) {
            let _ = self
                .nodes
                .set_taint(node, OUT_OF_SERVICE, "NoExecute", None)
                .await;
        }
        self.mark(
            node,
            ("False", "Recovered", how),
            ("Normal", "Recovered", "Recover", how),
        )
        .await;
        Done::Ok(how.to_owned())
    }
}

/// A power step the executor journals.
#[derive(Debug, Clone, Copy)]
enum PowerStep {
    SoftRestart,
    Action(PowerAction),
}

impl PowerStep {
    fn name(self) -> &'static str {
        match self {
            Self::SoftRestart => "graceful-restart",
            Self::Action(a) => a.as_str(),
        }
    }

    fn describe(self) -> String {
        match self {
            Self::SoftRestart => "request a graceful restart through the BMC".into(),
            Self::Action(a) => format!("power {} through the BMC (verified)", a.as_str()),
        }
    }
}

async fn verified(c: &Connected, action: PowerAction) -> Done {
    let timing: PowerTiming = c.timing;
    match power::execute(c.bmc.as_ref(), action, timing).await {
        Ok(o) if o.verified => Done::Ok(format!(
            "power {} verified: {} observed after {} ms (sent: {})",
            action.as_str(),
            o.power,
            o.elapsed_ms,
            if o.sent.is_empty() {
                "nothing, already there".to_owned()
            } else {
                o.sent
                    .iter()
                    .map(|r| format!("{r:?}"))
                    .collect::<Vec<_>>()
                    .join(" then ")
            }
        )),
        Ok(o) => Done::Failed(format!(
            "power {} NOT verified: still {} after {} ms",
            action.as_str(),
            o.power,
            o.elapsed_ms
        )),
        Err(e) => Done::Failed(format!("power {}: {e}", action.as_str())),
    }
}
