//! Whether each scenario passed, judged from what the peers observed: the mock BMCs'
//! received resets, the fake API server's Node and pods, the report files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oob_mocks::sim::SimFleet;
use serde_json::Value;

use super::{DemoResult, ScenarioResult, SCENARIOS, SCENARIO_NODES};
use crate::remedy::stage::Stage;

fn count(fleet: &SimFleet, node: &str, reset_type: &str) -> usize {
    fleet.host(node).map_or(0, |h| {
        h.bmc
            .mock
            .counters()
            .resets
            .iter()
            .filter(|(_, t)| t == reset_type)
            .count()
    })
}

pub(super) fn evaluate(
    fleet: &SimFleet,
    svc: &crate::service::Service,
    dir: &Path,
) -> anyhow::Result<DemoResult> {
    let stages: BTreeMap<String, Stage> = svc.stages().into_iter().collect();
    let mut reports: Vec<PathBuf> = match std::fs::read_dir(dir.join("reports")) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    reports.sort();
    let report_of = |node: &str| -> Option<Value> {
        reports
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .find(|p| {
                p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with(&format!("{node}-")))
            })
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
    };
    let node = |n: &str| fleet.api.api.node(n).unwrap_or(Value::Null);
    let unschedulable =
        |n: &str| node(n).pointer("/spec/unschedulable") == Some(&Value::Bool(true));
    let pods_left = |n: &str| {
        fleet
            .api
            .api
            .pods()
            .iter()
            // The simulated fleet names a node's pods `apps/web-<node>-<i>`, however many.
            .filter(|p| p.starts_with(&format!("apps/web-{n}-")))
            .count()
    };
    let journal_entries = svc.exec.journal().entries(None)?;
    let mut results = Vec::new();
    for (name, n, expected) in SCENARIOS {
        let cycles = count(fleet, n, "ForceOff");
        let soft = count(fleet, n, "GracefulRestart");
        let all_resets = fleet
            .host(n)
            .map_or(0, |h| h.bmc.mock.counters().resets.len());
        let stage = stages.get(n).copied().unwrap_or(Stage::Healthy);
        let led = fleet
            .host(n)
            .and_then(|h| h.bmc.mock.locator(oob_mocks::sim::SYSTEM))
            .unwrap_or(false);
        let (passed, outcome) = match n {
            "node-1" => {
                let boots = fleet.host(n).map_or(0, |h| h.boots());
                let ok = matches!(stage, Stage::Healthy)
                    && cycles == 1
                    && soft == 1
                    && boots == 1
                    && !unschedulable(n);
                (ok, format!("stage {}, soft reboots {soft}, power cycles {cycles}, boots {boots}, unschedulable {}", stage.name(), unschedulable(n)))
            }
            "node-2" => {
                let report = report_of(n);
                let component = report
                    .as_ref()
                    .and_then(|r| r["component"].as_str().map(str::to_owned));
                let ok = matches!(stage, Stage::AwaitReplacement { .. })
                    && unschedulable(n)
                    && pods_left(n) == 0
                    && component.as_deref() == Some("Drive 3")
                    && led
                    && all_resets == 0;
                (ok, format!("stage {}, cordoned {}, pods left {}, report component {}, locator LED on {led}, power requests {all_resets}", stage.name(), unschedulable(n), pods_left(n), component.unwrap_or_else(|| "none".into())))
            }
            "node-3" => {
                let refused = journal_entries
                    .iter()
                    .any(|e| e.node == n && e.outcome.as_deref() == Some("refused"))
                    || report_of(n)
                        .and_then(|r| r["summary"].as_str().map(|s| s.contains("identity")))
                        .unwrap_or(false);
                // Never lit on a BMC that answers for another machine.
                let ok = matches!(stage, Stage::AwaitReplacement { .. })
                    && refused
                    && !led
                    && all_resets == 0;
                (
                    ok,
                    format!(
                        "stage {}, refused and reported {refused}, locator LED on {led}, power requests {all_resets}",
                        stage.name()
                    ),
                )
            }
            "node-5" => {
                let report = report_of(n);
                let component = report
                    .as_ref()
                    .and_then(|r| r["component"].as_str().map(str::to_owned));
                let smart = report.as_ref().is_some_and(|r| {
                    r["findings"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|f| f["code"] == "smart_overall_failed"))
                });
                let ok = matches!(stage, Stage::AwaitReplacement { .. })
                    && unschedulable(n)
                    && pods_left(n) == 0
                    && component.as_deref() == Some("/dev/sda")
                    && smart
                    && led
                    && all_resets == 0;
                (ok, format!("stage {}, cordoned {}, pods left {}, report component {}, SMART finding in the report {smart}, locator LED on {led}, power requests {all_resets}", stage.name(), unschedulable(n), pods_left(n), component.unwrap_or_else(|| "none".into())))
            }
            "node-6" | "node-7" => {
                let boots = fleet.host(n).map_or(0, |h| h.boots());
                let os = fleet.host(n).map(|h| h.os()).unwrap_or_default();
                let (restarts, reboots) = if n == "node-6" { (1, 0) } else { (0, 1) };
                let ok = matches!(stage, Stage::Healthy)
                    && os.restarts == restarts
                    && os.reboots == reboots
                    && boots == reboots
                    && all_resets == 0
                    && !unschedulable(n);
                (ok, format!("stage {}, restarts over SSH {}, reboots over SSH {}, boots {boots}, BMC requests {all_resets}, unschedulable {}", stage.name(), os.restarts, os.reboots, unschedulable(n)))
            }
            _ => {
                let acted = journal_entries.iter().any(|e| e.node == n);
                let ok = all_resets == 0 && !acted && !unschedulable(n);
                (
                    ok,
                    format!(
                        "stage {}, power requests {all_resets}, journaled actions {}",
                        stage.name(),
                        usize::from(acted)
                    ),
                )
            }
        };
        results.push(ScenarioResult {
            name: name.into(),
            node: n.into(),
            expected: expected.into(),
            outcome,
            passed,
            power_cycles: cycles,
            soft_reboots: soft,
        });
    }
    // The control group must be untouched.
    for h in fleet.hosts.iter().skip(SCENARIO_NODES) {
        let resets = h.bmc.mock.counters().resets.len();
        if resets > 0 || unschedulable(&h.name) {
            results.push(ScenarioResult {
                name: "healthy node left alone".into(),
                node: h.name.clone(),
                expected: "no action".into(),
                outcome: format!("{resets} power requests"),
                passed: false,
                power_cycles: count(fleet, &h.name, "ForceOff"),
                soft_reboots: count(fleet, &h.name, "GracefulRestart"),
            });
        }
    }
    Ok(DemoResult {
        scenarios: results,
        reports,
    })
}

/// Every message of the outbox arrived exactly once at the webhook (by idempotency key) and
/// at the mailbox (by Message-ID); each report mail names its node and component in the
/// subject, went to the room's technicians, and carries an HTML part.
pub(super) fn delivered(
    svc: &crate::service::Service,
    webhook: &oob_mocks::machine_room::Webhook,
    mailbox: &oob_mocks::machine_room::Mailbox,
) -> ScenarioResult {
    let rows = svc.exec.journal().deliveries(None).unwrap_or_default();
    let mut messages: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.message.clone(), r.node.clone(), r.kind.clone()))
        .collect();
    messages.sort();
    messages.dedup();
    let posts = webhook.posts();
    let mails = mailbox.mails();
    let mut problems = Vec::new();
    for (id, node, kind) in &messages {
        let hooked = posts
            .iter()
            .filter(|p| p.key.as_deref() == Some(id))
            .count();
        let mail_id = format!(
            "<{}@oob>",
            id.replace(
                |c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "."
            )
        );
        let mailed: Vec<_> = mails
            .iter()
            .filter(|m| m.header("message-id").as_deref() == Some(mail_id.as_str()))
            .collect();
        if hooked != 1 || mailed.len() != 1 {
            problems.push(format!("{id}: webhook {hooked}, mail {}", mailed.len()));
            continue;
        }
        if kind == "report" {
            let component = posts
                .iter()
                .find(|p| p.key.as_deref() == Some(id))
                .and_then(|p| p.body["component"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let mail = mailed[0];
            let subject = mail.header("subject").unwrap_or_default();
            let ok = subject.contains(node.as_str())
                && subject.contains(&component)
                && mail.to == ["hall-1-techs@demo.invalid"]
                && mail.data.contains("Content-Type: text/html");
            if !ok {
                problems.push(format!("{id}: mail {subject:?} to {:?}", mail.to));
            }
        }
    }
    let reports = messages.iter().filter(|m| m.2 == "report").count();
    let extra = posts.len() + mails.len() != 2 * messages.len();
    let passed = reports >= 3 && problems.is_empty() && !extra;
    ScenarioResult {
        name: "fault reports reach the machine room".into(),
        node: "node-2,3,5".into(),
        expected: "every report once to the webhook and once to the room's mailbox".into(),
        outcome: format!(
            "{} messages ({reports} reports), {} webhook posts, {} mails{}",
            messages.len(),
            posts.len(),
            mails.len(),
            if problems.is_empty() {
                String::new()
            } else {
                format!("; {}", problems.join("; "))
            }
        ),
        passed,
        power_cycles: 0,
        soft_reboots: 0,
    }
}
