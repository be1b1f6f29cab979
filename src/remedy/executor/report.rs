//! The executor's fault report: files (text, JSON, Markdown, HTML), the Warning Event and the
//! `OobRemediation` condition, journaled once per episode (also across restarts).

use std::path::PathBuf;

use super::{Done, Executor, Subject, CONDITION};
use crate::clock::rfc3339;
use crate::remedy::journal::{Before, Intent, StoredMessage};
use crate::report::message::{Kind, Message};
use crate::report::{outbox, Cause, FaultReport};
use tracing::warn;

impl Executor {
    /// The fault report (files, Event, condition); returns the report files.
    pub async fn report(&self, s: &Subject<'_>, cause: &Cause) -> (Done, Vec<PathBuf>) {
        let node = s.machine.name.as_str();
        let since_ms = self.episode_start(node);
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
        let mut report = FaultReport {
            node: node.to_owned(),
            created: rfc3339(self.now_ms()),
            location: s.machine.location.clone(),
            bmc,
            bmc_address: s.machine.bmc.to_string(),
            summary: summary.to_owned(),
            component,
            verdict: s.verdict.to_owned(),
            findings: s.findings.to_vec(),
            evidence: s.evidence.to_vec(),
            timeline,
            recommended_action: recommended.clone(),
            locator: None,
        };
        if self.dry_run {
            self.note(node, "dry run: would write a fault report");
            return (Done::Ok("dry run".into()), Vec::new());
        }
        // Journaled like an action: one report per episode, also across restarts (the file
        // name comes from the first intent, so a rewrite after a crash replaces, not adds).
        let key = s.key("report");
        let first = match self.intent(&key, node, "report", &Before::default()).await {
            Err(done) => return (done, Vec::new()),
            Ok(Intent::Seen(e)) if e.outcome.is_some() => {
                return (Done::Ok("already reported".into()), Vec::new())
            }
            Ok(Intent::Seen(e)) => e.intent_ms,
            Ok(Intent::New) => self.now_ms(),
        };
        // The technician is led to the box: its locator LED on, unless the BMC answers for
        // another machine (then lighting it would send them to the wrong one).
        report.locator = Some(if matches!(cause, Cause::IdentityMismatch { .. }) {
            "left off: this BMC answers for another machine".to_owned()
        } else {
            let led = match self.locator(s.machine, s.node, true).await {
                Ok(state) => state,
                Err(why) => format!("not on: {why}"),
            };
            self.note(node, format!("locator LED {led}"));
            led
        });
        let stamp = rfc3339(first).replace([':', '-'], "");
        // The message's id: the step's key and when it was first begun, unique across
        // replicas and restarts (episode numbers are each replica's own), the same after a
        // crash (the intent's time is journaled and shared).
        let message_id = format!("{key}/{stamp}");
        let paths = match report.write(&self.reports_dir, &stamp) {
            Ok(p) => p,
            Err(e) => {
                let done = Done::Failed(e.to_string());
                self.outcome(&key, &done).await;
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
        // Into the outbox before the outcome: a crash in between writes the report again
        // after the restart, and the outbox keeps the first copy.
        self.enqueue(&message_id, &report).await;
        // Cluster mode: the episode's OobRemediation names the report (the status page
        // serves it at /report/FILE).
        if let Some(shared) = &self.episodes {
            let file = paths
                .iter()
                .find(|p| p.extension().is_some_and(|e| e == "html"))
                .and_then(|p| p.file_name())
                .map(|f| f.to_string_lossy().into_owned());
            if let Some(file) = file {
                let tag = crate::k8s::remediation::tag_of(&key);
                if let Err(e) = shared
                    .update(node, &tag, &|st| st.report = Some(file.clone()))
                    .await
                {
                    warn!(node, error = %e, "naming the report in the cluster failed");
                }
            }
        }
        let note = format!("{summary}. Recommended: {recommended}");
        self.mark(
            node,
            ("True", "AwaitingRepair", &summary),
            ("Warning", "FaultReport", "Report", &note),
        )
        .await;
        let done = Done::Ok(summary.to_owned());
        self.outcome(&key, &done).await;
        (done, paths)
    }
}

impl Executor {
    /// Put a report into the outbox (one delivery per sink).
    async fn enqueue(&self, id: &str, report: &FaultReport) {
        let node = report.node.as_str();
        let queued = match Message::report(id, report) {
            Ok(m) => self.queue(&m).await,
            Err(e) => Err(e.to_string()),
        };
        match queued {
            Ok(true) if !self.sinks.is_empty() => self.note(
                node,
                format!("fault report queued for {}", self.sinks.join(", ")),
            ),
            Ok(_) => {}
            Err(e) => warn!(node, error = %e, "queueing the fault report failed"),
        }
    }

    /// The outbox: the local journal, and in cluster mode the episode's OobRemediation too
    /// (best effort: a new leader then delivers what this replica had not). `Ok(true)` when
    /// the message is new.
    async fn queue(&self, m: &Message) -> Result<bool, String> {
        let now = self.now_ms();
        let new = outbox::enqueue(&self.journal, &self.sink_names(), m, now)
            .map_err(|e| e.to_string())?;
        if let (true, Some(shared)) = (new, &self.episodes) {
            let body = serde_json::to_string(m).map_err(|e| e.to_string())?;
            let shared_message = crate::k8s::remediation::SharedMessage {
                id: m.id.clone(),
                kind: m.kind.name().to_owned(),
                created_ms: now,
                body,
                delivered: Vec::new(),
            };
            let tag = crate::k8s::remediation::tag_of(&m.id);
            if let Err(e) = shared
                .update(&m.node, &tag, &|st| {
                    if !st.messages.iter().any(|x| x.id == shared_message.id) {
                        st.messages.push(shared_message.clone());
                    }
                })
                .await
            {
                warn!(node = %m.node, error = %e, "sharing the message in the cluster failed; delivered from this replica");
            }
        }
        Ok(new)
    }

    fn sink_names(&self) -> Vec<&str> {
        self.sinks.iter().map(String::as_str).collect()
    }

    /// The node's last report while it is open (no follow-up has said the machine is back
    /// or replaced since), as stored and as sent.
    pub fn open_report(&self, node: &str) -> Option<(StoredMessage, Message)> {
        let stored = self
            .journal
            .last_message(node, Kind::Report.name())
            .ok()??;
        for closing in [Kind::Recovered, Kind::Replaced] {
            let id = format!("{}/{}", stored.id, closing.name());
            if self.journal.has_message(&id).unwrap_or(true) {
                return None;
            }
        }
        let message = outbox::decode(&stored).ok()?;
        Some((stored, message))
    }

    /// A follow-up on the node's open report, with the id `REPORT/suffix` (one message per
    /// event, also across restarts). With no open report, `alone` is its id when the event
    /// is worth a message of its own (a replacement), else nothing is sent. `true` when it
    /// was queued now.
    pub async fn follow_up(
        &self,
        node: &str,
        kind: Kind,
        suffix: &str,
        alone: Option<String>,
        what: &str,
    ) -> bool {
        if self.dry_run {
            return false;
        }
        let (id, since, report) = match self.open_report(node) {
            Some((stored, m)) => (
                format!("{}/{suffix}", stored.id),
                stored.created_ms,
                Some(m),
            ),
            None => match alone {
                Some(id) => (id, self.episode_start(node), None),
                None => return false,
            },
        };
        if self.journal.has_message(&id).unwrap_or(true) {
            return false;
        }
        // What happened since the report, newest 30 lines.
        let mut details: Vec<String> = self
            .journal
            .timeline(node, since)
            .unwrap_or_default()
            .into_iter()
            .map(|(at, line)| format!("{} {line}", rfc3339(at)))
            .collect();
        details.drain(..details.len().saturating_sub(30));
        let m = Message::follow_up(
            kind,
            &id,
            node,
            &rfc3339(self.now_ms()),
            what,
            &details,
            report.as_ref(),
        );
        match self.queue(&m).await {
            Ok(true) => {
                if !self.sinks.is_empty() {
                    self.note(node, format!("follow-up queued: {what}"));
                }
                true
            }
            Ok(false) => false,
            Err(e) => {
                warn!(node, error = %e, "queueing the follow-up failed");
                false
            }
        }
    }

    /// Turn the machine's locator LED on or off, after the identity check (a lit LED on the
    /// wrong box sends the technician to the wrong machine), and read it back. `Ok` is the
    /// state as the timeline and the report say it; `Err` why it was not changed.
    pub async fn locator(
        &self,
        m: &crate::config::Machine,
        node: &crate::k8s::NodeInfo,
        on: bool,
    ) -> Result<String, String> {
        let want = if on { "on" } else { "off" };
        if self.dry_run {
            return Ok(format!("dry run: would be turned {want}"));
        }
        let c = self.connect(m).await.map_err(|e| format!("BMC: {e}"))?;
        let result = async {
            let identity = c.bmc.identity().await.map_err(|e| e.to_string())?;
            let expected = crate::remedy::guard::Expected {
                system_uuid: node.system_uuid.clone(),
                serial: m.serial.clone(),
            };
            crate::remedy::guard::same_machine(&identity, &expected)
                .map_err(|why| format!("identity check failed, LED left alone: {why}"))?;
            c.bmc.set_locator(on).await.map_err(|e| e.to_string())?;
            match c.bmc.locator().await {
                Ok(Some(state)) if state == on => Ok(format!("{want} (read back: {want})")),
                Ok(Some(_)) => Err(format!(
                    "asked {want}, but it reads {}",
                    if on { "off" } else { "on" }
                )),
                Ok(None) => Ok(format!(
                    "{want} (sent; this BMC does not report the LED's state)"
                )),
                Err(e) => Ok(format!("{want} (sent; reading it back failed: {e})")),
            }
        }
        .await;
        c.bmc.close().await;
        result
    }
}
