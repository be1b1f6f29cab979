//! The status page on `service.listen`: `/` the fleet as a table, `/node/NAME` one
//! machine's findings, evidence, actions, reports and timeline, `/report/FILE` a report
//! file. Server-rendered HTML (askama templates, escaped by default), no JavaScript,
//! refreshed by the browser. It reads the service's memory and the journal; it never acts.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Service;
use crate::clock::rfc3339;

/// Seconds between the browser's reloads.
const REFRESH_S: u64 = 5;

/// Timeline lines a node page shows (the newest).
const TIMELINE_LINES: usize = 200;

/// No script, no frames, no outside resources: even a missed escape could not run code.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct FleetRow {
    node: String,
    stage: &'static str,
    verdict: String,
    last_action: String,
    last_when: String,
    bmc: String,
    location: String,
    paused: bool,
    held: Option<String>,
}

#[derive(Template)]
#[template(path = "status_fleet.html")]
struct FleetPage {
    rows: Vec<FleetRow>,
    unhealthy: usize,
    breaker: Option<String>,
    leader: bool,
    pending: u64,
    refresh_s: u64,
    version: &'static str,
    generated: String,
}

#[derive(Template)]
#[template(path = "status_node.html")]
struct NodePage {
    node: String,
    stage: &'static str,
    verdict: String,
    bmc: String,
    location: String,
    paused: bool,
    held: Option<String>,
    /// (severity, code, detail, fix)
    findings: Vec<(&'static str, String, String, Option<String>)>,
    evidence: Vec<String>,
    /// (when, action, outcome, detail)
    actions: Vec<(String, String, String, String)>,
    reports: Vec<String>,
    /// (message, sink, state, tries, when, last error)
    deliveries: Vec<(String, String, &'static str, u32, String, String)>,
    timeline: Vec<(String, String)>,
    refresh_s: u64,
    version: &'static str,
    generated: String,
}

fn html(page: Result<String, askama::Error>) -> Response {
    match page {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "status page rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response()
        }
    }
}

fn verdict_name(v: Option<&crate::verdict::Verdict>) -> String {
    v.map_or_else(|| "-".to_owned(), crate::verdict::Verdict::name)
}

pub(super) async fn fleet(State(svc): State<Arc<Service>>) -> Response {
    let journal = svc.exec.journal();
    let last = journal.last_actions().unwrap_or_default();
    let state = svc.lock();
    let mut rows: Vec<FleetRow> = svc
        .machines
        .iter()
        .filter_map(|m| {
            let st = state.get(&m.name)?;
            let (last_action, last_when) = match last.get(&m.name) {
                Some((action, outcome, at)) => (
                    format!("{action}: {}", outcome.as_deref().unwrap_or("in flight")),
                    rfc3339(*at),
                ),
                None => ("-".to_owned(), "-".to_owned()),
            };
            Some(FleetRow {
                node: m.name.clone(),
                stage: st.position.stage.name(),
                verdict: verdict_name(st.verdict.as_ref()),
                last_action,
                last_when,
                bmc: m.bmc.to_string(),
                location: m.location.to_string(),
                paused: st.paused,
                held: st.waiting.clone(),
            })
        })
        .collect();
    drop(state);
    rows.sort_by(|a, b| a.node.cmp(&b.node));
    let page = FleetPage {
        unhealthy: rows.iter().filter(|r| r.stage != "healthy").count(),
        rows,
        breaker: journal
            .breaker()
            .ok()
            .flatten()
            .map(|b| format!("{} (since {})", b.reason, rfc3339(b.since_ms))),
        leader: svc.metrics.leader.get() == 1 || !svc.config.service.leader_election,
        pending: journal.pending_deliveries().unwrap_or(0),
        refresh_s: REFRESH_S,
        version: env!("CARGO_PKG_VERSION"),
        generated: rfc3339(svc.exec.now_ms()),
    };
    html(page.render())
}

/// The report files of `node` in `dir`: `NODE-<digit>…` (a stamp or a replacement id), so
/// that `node-1` does not list `node-10`'s.
fn report_files(dir: &std::path::Path, node: &str) -> Vec<String> {
    let prefix = format!("{node}-");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| {
                    name.strip_prefix(&prefix).is_some_and(|rest| {
                        rest.starts_with(|c: char| c.is_ascii_digit() || c == 'r')
                    }) && !name.ends_with(".tmp")
                        && safe_file_name(name)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort_unstable_by(|a, b| b.cmp(a));
    files
}

fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) async fn node(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> Response {
    let Some(m) = svc.machines.iter().find(|m| m.name == name).cloned() else {
        return (StatusCode::NOT_FOUND, "no such machine in the inventory\n").into_response();
    };
    let Some(st) = svc.lock().get(&name).cloned() else {
        return (StatusCode::NOT_FOUND, "no such machine in the inventory\n").into_response();
    };
    let journal = svc.exec.journal();
    let mut actions: Vec<_> = journal
        .entries(Some(&name))
        .unwrap_or_default()
        .into_iter()
        .rev()
        .take(30)
        .map(|e| {
            (
                rfc3339(e.intent_ms),
                e.action,
                e.outcome.unwrap_or_else(|| "in flight".into()),
                e.detail.unwrap_or_default(),
            )
        })
        .collect();
    actions.reverse();
    let page = NodePage {
        stage: st.position.stage.name(),
        verdict: verdict_name(st.verdict.as_ref()),
        bmc: m.bmc.to_string(),
        location: m.location.to_string(),
        paused: st.paused,
        held: st.waiting.clone(),
        findings: st
            .position
            .findings
            .iter()
            .map(|f| {
                (
                    f.severity.name(),
                    f.code.clone(),
                    match &f.component {
                        Some(c) => format!("{c}: {}", f.detail),
                        None => f.detail.clone(),
                    },
                    f.fix.clone(),
                )
            })
            .collect(),
        evidence: st.history.iter().map(ToString::to_string).collect(),
        actions,
        reports: report_files(&svc.config.service.reports_dir, &name),
        deliveries: journal
            .deliveries(Some(&name))
            .unwrap_or_default()
            .into_iter()
            .map(|d| {
                (
                    d.message,
                    d.sink,
                    d.state,
                    d.attempts,
                    rfc3339(d.at_ms),
                    d.last_error.unwrap_or_default(),
                )
            })
            .collect(),
        timeline: journal
            .recent_timeline(&name, TIMELINE_LINES)
            .unwrap_or_default()
            .into_iter()
            .map(|(at, what)| (rfc3339(at), what))
            .collect(),
        node: name,
        refresh_s: REFRESH_S,
        version: env!("CARGO_PKG_VERSION"),
        generated: rfc3339(svc.exec.now_ms()),
    };
    html(page.render())
}

/// A report file from the reports directory (names as oob writes them, nothing else).
pub(super) async fn report(State(svc): State<Arc<Service>>, Path(file): Path<String>) -> Response {
    let known = svc.machines.iter().any(|m| {
        file.strip_prefix(&format!("{}-", m.name))
            .is_some_and(|rest| !rest.is_empty())
    });
    if !known || !safe_file_name(&file) {
        return (StatusCode::NOT_FOUND, "no such report\n").into_response();
    }
    let kind = match file.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("md" | "txt") => "text/plain; charset=utf-8",
        _ => return (StatusCode::NOT_FOUND, "no such report\n").into_response(),
    };
    match tokio::fs::read(svc.config.service.reports_dir.join(&file)).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, kind),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no such report\n").into_response(),
    }
}
