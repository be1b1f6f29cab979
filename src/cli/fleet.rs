//! Read commands over many machines: bounded concurrency, a deadline per BMC, one result per
//! target in input order, errors included (a dead BMC is a row, not an abort).

use std::time::Duration;

use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::Value;

use super::output::emit;
use super::target::{Connected, Context, TargetArgs};
use super::Status;

/// One target's outcome.
pub struct Outcome<T> {
    pub name: String,
    pub result: Result<T, String>,
}

/// Run `op` against every named machine; each gets `--deadline` for connect, op and close.
pub async fn each<T>(
    ctx: &Context,
    args: &TargetArgs,
    op: impl AsyncFn(&Connected) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<Outcome<T>>> {
    let names = args.names(ctx)?;
    let deadline = Duration::from_secs(args.deadline);
    let op = &op;
    let outcomes = futures_util::stream::iter(names)
        .map(|name| {
            let one = args.for_name(&name);
            async move {
                let work = async {
                    let c = one.connect(ctx).await?;
                    let out = op(&c).await;
                    c.bmc.close().await;
                    out
                };
                let result = match tokio::time::timeout(deadline, work).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(format!("{e:#}")),
                    Err(_) => Err(format!("no result within {}s", deadline.as_secs())),
                };
                Outcome { name, result }
            }
        })
        .buffered(args.concurrency.max(1))
        .collect()
        .await;
    Ok(outcomes)
}

#[derive(Serialize)]
struct Fleet {
    targets: Vec<Value>,
}

/// Print `{"targets":[…]}` (each a command's own document, or `{"target","error"}`) or a
/// table; exit status Problems when any target failed.
pub fn print<T>(
    ctx: &Context,
    outcomes: &[Outcome<T>],
    header: Vec<String>,
    doc: impl Fn(&str, &T) -> Value,
    rows: impl Fn(&str, &T) -> Vec<Vec<String>>,
) -> anyhow::Result<Status> {
    let mut table = vec![header.clone()];
    let mut docs = Vec::new();
    for o in outcomes {
        match &o.result {
            Ok(v) => {
                docs.push(doc(&o.name, v));
                table.extend(rows(&o.name, v));
            }
            Err(e) => {
                docs.push(serde_json::json!({ "target": o.name, "error": e }));
                let mut row = vec![o.name.clone(), "ERROR".into()];
                row.resize(header.len().max(2) - 1, String::new());
                row.push(e.clone());
                table.push(row);
            }
        }
    }
    emit(ctx.format, &Fleet { targets: docs }, &table)?;
    Ok(Status::problems_if(
        outcomes.iter().any(|o| o.result.is_err()),
    ))
}
