//! `oob demo` and the hidden `oob sim-fleet`: the simulated fleet from `mocks/` (only in a
//! build with the default `demo` feature).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::output::emit;
use super::target::Context;
use super::{Format, Status};
use crate::clock::rfc3339;
use crate::demo::{self, DemoOptions};
use crate::remedy::executor::Line;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Journal and fault reports go here.
    #[arg(long, default_value = "oob-demo")]
    pub dir: PathBuf,
    /// Longest run in seconds (the demo ends when every scenario has settled).
    #[arg(long, default_value_t = 90, value_parser = crate::duration::secs)]
    pub deadline: u64,
    /// Healthy nodes besides the five scenario nodes.
    #[arg(long, default_value_t = 4)]
    pub healthy: usize,
    /// The status page while the demo runs (another free port when this one is taken).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct SimFleetArgs {
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, value_delimiter = ',')]
    pub hang: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    pub fail_disk: Vec<String>,
    #[arg(long, default_value_t = 1000, value_parser = crate::duration::millis)]
    pub fault_after_ms: u64,
}

pub async fn demo(ctx: &Context, args: DemoArgs) -> anyhow::Result<Status> {
    let o = DemoOptions {
        dir: args.dir,
        deadline: Duration::from_secs(args.deadline),
        healthy: args.healthy,
        listen: args.listen,
    };
    let format = ctx.format;
    if matches!(format, Format::Table) {
        println!(
            "oob demo: {} simulated machines (mock Redfish BMCs, hosts answering SSH on loopback, fake API server); faults start in 1 s\n",
            demo::SCENARIO_NODES + o.healthy
        );
    }
    let result = demo::run(&o, move |l| print_line(format, l)).await?;
    let rows: Vec<Vec<String>> = std::iter::once(vec![
        "".into(),
        "SCENARIO".into(),
        "NODE".into(),
        "SOFT".into(),
        "CYCLES".into(),
        "OUTCOME".into(),
    ])
    .chain(result.scenarios.iter().map(|s| {
        vec![
            if s.passed { "PASS" } else { "FAIL" }.into(),
            s.name.clone(),
            s.node.clone(),
            s.soft_reboots.to_string(),
            s.power_cycles.to_string(),
            s.outcome.clone(),
        ]
    }))
    .collect();
    if matches!(format, Format::Table) {
        println!();
    }
    emit(format, &result, &rows)?;
    if matches!(format, Format::Table) {
        println!("\nreports: {}", o.dir.join("reports").display());
    }
    Ok(Status::problems_if(!result.passed()))
}

/// The demo's simulated fleet on its own, until Ctrl-C.
pub async fn sim_fleet(a: SimFleetArgs) -> anyhow::Result<Status> {
    oob_mocks::sim::run_fleet(
        a.nodes,
        &a.dir,
        &oob_mocks::sim::Addresses::default(),
        &a.hang,
        &a.fail_disk,
        a.fault_after_ms,
    )
    .await?;
    Ok(Status::Ok)
}

fn print_line(format: Format, line: &Line) {
    if matches!(format, Format::Json) {
        return;
    }
    let t = rfc3339(line.at_ms);
    let clock = t.get(11..19).unwrap_or(&t);
    println!("{clock} {} {}", line.node, line.text);
}
