//! `oob report status|deliver`: the outbox of fault reports and follow-ups, read from the
//! journal (`status`), or one delivery pass by hand (`deliver`, what the service does every
//! few seconds).

use clap::{Args, Subcommand};
use serde_json::json;

use super::ladder::config;
use super::output::{cell, emit};
use super::target::Context;
use super::Status;
use crate::clock::{now_ms, rfc3339};
use crate::remedy::journal::Journal;
use crate::report::outbox::{deliver_due, Outcome};
use crate::report::sink::Sinks;

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    verb: ReportVerb,
}

#[derive(Debug, Subcommand)]
enum ReportVerb {
    /// Every report and follow-up in the outbox and where each delivery stands.
    Status {
        /// Only this node's.
        node: Option<String>,
    },
    /// Deliver what is due now, once (the service does it every 2 s).
    Deliver,
}

pub async fn run(ctx: &Context, args: ReportArgs) -> anyhow::Result<Status> {
    let config = config(ctx)?;
    let journal = Journal::open(&config.service.journal)?;
    match args.verb {
        ReportVerb::Status { node } => {
            let rows = journal.deliveries(node.as_deref())?;
            let pending = rows.iter().filter(|r| r.state == "pending").count();
            let mut table = vec![vec![
                "MESSAGE".to_owned(),
                "KIND".to_owned(),
                "SINK".to_owned(),
                "STATE".to_owned(),
                "TRIES".to_owned(),
                "WHEN".to_owned(),
                "LAST ERROR".to_owned(),
            ]];
            for r in &rows {
                table.push(vec![
                    r.message.clone(),
                    r.kind.clone(),
                    r.sink.clone(),
                    r.state.to_owned(),
                    r.attempts.to_string(),
                    format!(
                        "{}{}",
                        if r.state == "pending" { "next " } else { "" },
                        rfc3339(r.at_ms)
                    ),
                    cell(r.last_error.as_deref()),
                ]);
            }
            if rows.is_empty() {
                table.push(vec!["(no reports in the outbox)".to_owned()]);
            }
            emit(
                ctx.format,
                &json!({"pending": pending, "deliveries": rows}),
                &table,
            )?;
            Ok(Status::Ok)
        }
        ReportVerb::Deliver => {
            // Secrets in Kubernetes need the cluster; without one, env and file work.
            let client = super::node::client().await.ok();
            let sinks = Sinks::new(&config.report, client);
            if sinks.is_empty() {
                anyhow::bail!("no [[report.sinks]] in {}", config.path);
            }
            let attempts = deliver_due(&journal, &sinks, &config.report, now_ms).await?;
            let failed = attempts
                .iter()
                .filter(|a| a.outcome != Outcome::Delivered)
                .count();
            let mut table = vec![vec![
                "MESSAGE".to_owned(),
                "SINK".to_owned(),
                "OUTCOME".to_owned(),
                "ERROR".to_owned(),
            ]];
            for a in &attempts {
                table.push(vec![
                    a.message.clone(),
                    a.sink.clone(),
                    a.outcome.name().to_owned(),
                    cell(a.error.as_deref()),
                ]);
            }
            if attempts.is_empty() {
                table.push(vec!["(nothing due)".to_owned()]);
            }
            let value: Vec<_> = attempts
                .iter()
                .map(|a| json!({"message": a.message, "sink": a.sink, "outcome": a.outcome.name(), "error": a.error}))
                .collect();
            emit(ctx.format, &value, &table)?;
            Ok(Status::problems_if(failed > 0))
        }
    }
}
