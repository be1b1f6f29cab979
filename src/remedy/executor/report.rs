//! The executor's fault report: files (text, JSON, Markdown), the Warning Event and the
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
        let report = FaultReport {
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
