//! The executor's fault report: files (text, JSON, Markdown, HTML), the Warning Event and the
//! `OobRemediation` condition, journaled once per episode (also across restarts).

use std::path::PathBuf;

use super::{Done, Executor, Subject, CONDITION};
use crate::clock::rfc3339;
use crate::remedy::journal::{Before, Intent};
use crate::report::{Cause, FaultReport};

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
        let first = match self.intent(&key, node, "report", &Before::default()) {
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
}

impl Executor {
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
