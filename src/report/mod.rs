//! Fault reports for the machine room: which machine, where it stands, who its BMC says it is,
//! what failed, the evidence, what `oob` did (the timeline) and what the technician should
//! do. One model, rendered as text, JSON, Markdown and HTML, written to a reports directory
//! and, through the [`outbox`], delivered to the machine room's [`sink`]s (webhooks, mail)
//! with its follow-ups ([`message`]). Decides nothing: the executor fills the model.

mod cause;
pub mod message;
pub mod outbox;
pub mod sink;

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

    /// The report as one self-contained HTML page (inline style, no script, readable on a
    /// phone) for mail and browsers. Everything that comes from outside (node names, BMC
    /// answers, findings, the timeline) is escaped.
    pub fn html(&self) -> String {
        let e = escape;
        let row = |k: &str, v: &str| format!("<tr><th>{}</th><td>{}</td></tr>\n", e(k), e(v));
        let mut out = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>Fault report: {node}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>Fault report: {node}</h1>\n<p class=\"summary\">{summary}</p>\n<table>\n",
            node = e(&self.node),
            summary = e(&self.summary),
        );
        out += &row("machine", &self.node);
        out += &row("location", &self.location.to_string());
        out += &row("locator LED", self.locator.as_deref().unwrap_or("not set"));
        out += &row("component", self.component.as_deref().unwrap_or("unknown"));
        out += &row("verdict", &self.verdict);
        out += &row("BMC", &self.bmc_address);
        if let Some(b) = &self.bmc {
            out += &row("BMC serial", b.serial.as_deref().unwrap_or("-"));
            out += &row("BMC system UUID", b.uuid.as_deref().unwrap_or("-"));
        }
        out += &row("created", &self.created);
        out += "</table>\n";
        out += &format!(
            "<h2>Recommended action</h2>\n<p>{}</p>\n",
            e(&self.recommended_action)
        );
        if !self.findings.is_empty() {
            out += "<h2>Findings</h2>\n<ul>\n";
            for f in &self.findings {
                out += &format!(
                    "<li><strong>{}</strong> <code>{}</code>: {}{}</li>\n",
                    e(f.severity.name()),
                    e(&f.code),
                    e(&f.detail),
                    f.fix
                        .as_deref()
                        .map(|fix| format!("<br>fix: {}", e(fix)))
                        .unwrap_or_default()
                );
            }
            out += "</ul>\n";
        }
        if !self.evidence.is_empty() {
            out += "<h2>Evidence</h2>\n<ul>\n";
            for line in &self.evidence {
                out += &format!("<li>{}</li>\n", e(line));
            }
            out += "</ul>\n";
        }
        out += "<h2>Timeline</h2>\n<ol>\n";
        for (at, what) in &self.timeline {
            out += &format!("<li><time>{}</time> {}</li>\n", e(at), e(what));
        }
        out += "</ol>\n</body>\n</html>\n";
        out
    }

    /// Write `<node>-<stamp>.{txt,json,md,html}` into `dir`; returns the paths.
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
            ("html", self.html()),
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

/// The page's style: system fonts, a table that fits a phone's width.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1rem;max-width:60rem}\
table{border-collapse:collapse}th,td{text-align:left;padding:.2rem .6rem;border-bottom:1px solid #ddd;\
vertical-align:top;overflow-wrap:anywhere}.summary{font-weight:bold}code{font-size:.9em}";

/// HTML text: `&`, `<`, `>`, `"` and `'` as entities (safe in text and quoted attributes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::health::Level;

    pub(crate) fn sample() -> FaultReport {
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
        for body in [
            r.text(),
            r.markdown(),
            serde_json::to_string(&r).unwrap(),
            r.html(),
        ] {
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
        assert_eq!(paths.len(), 4);
        assert!(paths[3].to_string_lossy().ends_with(".html"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&paths[1]).unwrap()).unwrap();
        assert_eq!(json["component"], "Drive 3");
    }

    #[test]
    fn the_html_report_escapes_everything_that_comes_from_outside() {
        let mut r = sample();
        r.node = "node-<b>2</b>".into();
        r.findings[0].detail = "<script>alert('x')</script> & \"quoted\"".into();
        r.timeline
            .push(("t".into(), "<img src=x onerror=alert(1)>".into()));
        let html = r.html();
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(!html.contains("<b>2</b>"), "{html}");
        assert!(html
            .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"));
        assert!(html.contains("node-&lt;b&gt;2&lt;/b&gt;"));
        // The page's own markup: one document, viewport for a phone, every section.
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("name=\"viewport\""));
        for h in ["Recommended action", "Findings", "Evidence", "Timeline"] {
            assert!(html.contains(&format!("<h2>{h}</h2>")), "{h}");
        }
        assert_eq!(
            html.matches("<table>").count(),
            html.matches("</table>").count()
        );
        assert_eq!(html.matches("<li>").count(), html.matches("</li>").count());
    }
}
