//! Fault reports for the machine room: which machine, where it stands, who its BMC says it is,
//! what failed, the evidence, what `oob` did (the timeline) and what the technician should
//! do. One model, rendered as text, JSON and Markdown, written to a reports directory.
//! Decides nothing: the executor fills the model.

mod cause;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bmc::Identity;
use crate::config::Location;
use crate::health::Finding;

pub use cause::Cause;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the report to {path}: {detail}")]
    Write { path: String, detail: String },
}

/// One fault report.
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    pub node: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub location: Location,
    /// The BMC's answer to identity, when it was read.
    pub bmc: Option<Identity>,
    pub bmc_address: String,
    /// One line: why the machine needs a person.
    pub summary: String,
    /// The failed component when known (`Drive 3`, `DIMM A1`, `host OS`).
    pub component: Option<String>,
    pub verdict: String,
    pub findings: Vec<Finding>,
    /// Probe results and BMC answers that support the verdict.
    pub evidence: Vec<String>,
    /// What oob did, in order: (RFC 3339 time, what).
    pub timeline: Vec<(String, String)>,
    pub recommended_action: String,
    /// The locator LED as oob left it (`on (read back: on)`, or why not), for the person
    /// looking for the box.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locator: Option<String>,
}

impl FaultReport {
    pub fn text(&self) -> String {
        let mut out = format!(
            "FAULT REPORT  {}\n\nmachine:   {}\nlocation:  {}\nlocator:   {}\nbmc:       {}{}\ncreated:   {}\nverdict:   {}\ncomponent: {}\n\n{}\n",
            self.node,
            self.node,
            self.location,
            self.locator.as_deref().unwrap_or("not set"),
            self.bmc_address,
            self.bmc
                .as_ref()
                .map(|b| format!(
                    " (serial {}, UUID {}, {} {})",
                    b.serial.as_deref().unwrap_or("-"),
                    b.uuid.as_deref().unwrap_or("-"),
                    b.manufacturer.as_deref().unwrap_or(""),
                    b.model.as_deref().unwrap_or("")
                ))
                .unwrap_or_default(),
            self.created,
            self.verdict,
            self.component.as_deref().unwrap_or("unknown"),
            self.summary,
        );
        if !self.findings.is_empty() {
            out.push_str("\nfindings:\n");
            for f in &self.findings {
                out.push_str(&format!("  [{:?}] {}: {}\n", f.severity, f.code, f.detail));
                if let Some(fix) = &f.fix {
                    out.push_str(&format!("      fix: {fix}\n"));
                }
            }
        }
        if !self.evidence.is_empty() {
            out.push_str("\nevidence:\n");
            for e in &self.evidence {
                out.push_str(&format!("  {e}\n"));
            }
        }
        out.push_str("\ntimeline:\n");
        for (at, what) in &self.timeline {
            out.push_str(&format!("  {at}  {what}\n"));
        }
        out.push_str(&format!(
            "\nrecommended action:\n  {}\n",
            self.recommended_action
        ));
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Fault report: {}\n\n| | |\n|---|---|\n| machine | `{}` |\n| location | {} |\n| locator LED | {} |\n| BMC | `{}` |\n| BMC serial | {} |\n| BMC system UUID | {} |\n| created | {} |\n| verdict | {} |\n| component | {} |\n\n{}\n",
            self.node,
            self.node,
            self.location,
            self.locator.as_deref().unwrap_or("not set"),
            self.bmc_address,
            self.bmc.as_ref().and_then(|b| b.serial.as_deref()).unwrap_or("-"),
            self.bmc.as_ref().and_then(|b| b.uuid.as_deref()).unwrap_or("-"),
            self.created,
            self.verdict,
            self.component.as_deref().unwrap_or("unknown"),
            self.summary,
        );
        if !self.findings.is_empty() {
            out.push_str("\n## Findings\n\n");
            for f in &self.findings {
                out.push_str(&format!(
                    "- **{:?}** `{}`: {}\n",
                    f.severity, f.code, f.detail
                ));
                if let Some(fix) = &f.fix {
                    out.push_str(&format!("  - fix: {fix}\n"));
                }
            }
        }
        if !self.evidence.is_empty() {
            out.push_str("\n## Evidence\n\n");
            for e in &self.evidence {
                out.push_str(&format!("- {e}\n"));
            }
        }
        out.push_str("\n## Timeline\n\n");
        for (at, what) in &self.timeline {
            out.push_str(&format!("- `{at}` {what}\n"));
        }
        out.push_str(&format!(
            "\n## Recommended action\n\n{}\n",
            self.recommended_action
        ));
        out
    }

    /// Write `<node>-<stamp>.{txt,json,md}` into `dir`; returns the paths.
    pub fn write(&self, dir: &Path, stamp: &str) -> Result<Vec<PathBuf>, ReportError> {
        let fail = |path: &Path, e: std::io::Error| ReportError::Write {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| ReportError::Write {
            path: dir.display().to_string(),
            detail: e.to_string(),
        })?;
        let mut paths = Vec::new();
        for (ext, body) in [
            ("txt", self.text()),
            ("json", json),
            ("md", self.markdown()),
        ] {
            let path = dir.join(format!("{}-{stamp}.{ext}", self.node));
            // Write then rename: a reader never sees half a report.
            let tmp = path.with_extension(format!("{ext}.tmp"));
            std::fs::write(&tmp, body).map_err(|e| fail(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| fail(&path, e))?;
            paths.push(path);
        }
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Level;

    fn sample() -> FaultReport {
        FaultReport {
            node: "node-2".into(),
            created: "2026-11-22T10:00:00Z".into(),
            location: Location {
                site: Some("fra1".into()),
                room: None,
                rack: Some("r12".into()),
                unit: Some("U7".into()),
            },
            bmc: None,
            bmc_address: "redfish://10.0.0.2".into(),
            summary: "critical hardware finding".into(),
            component: Some("Drive 3".into()),
            verdict: "faulty".into(),
            findings: vec![
                Finding::new(Level::Critical, "drive_fault", "Drive Fault").component("Drive 3")
            ],
            evidence: vec!["ping 3/3".into()],
            timeline: vec![("2026-11-22T10:00:00Z".into(), "cordoned".into())],
            recommended_action: "replace Drive 3".into(),
            locator: Some("on (read back: on)".into()),
        }
    }

    #[test]
    fn every_rendering_names_the_machine_place_component_and_action() {
        let r = sample();
        for body in [r.text(), r.markdown(), serde_json::to_string(&r).unwrap()] {
            for needle in [
                "node-2",
                "r12",
                "Drive 3",
                "replace Drive 3",
                "drive_fault",
                "cordoned",
            ] {
                assert!(body.contains(needle), "{needle} missing from:\n{body}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let paths = r.write(dir.path(), "20261122T100000Z").unwrap();
        assert_eq!(paths.len(), 3);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&paths[1]).unwrap()).unwrap();
        assert_eq!(json["component"], "Drive 3");
    }
}
