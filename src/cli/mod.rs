//! The ops CLI: argument parsing (clap), logging setup, exit codes, and one file per command
//! group. Results go to stdout through [`output`]; logs go to stderr. No business logic here:
//! commands call the library and print what it returns.
//!
//! Exit codes: 0 ok, 1 done but problems found (an action not verified, critical log
//! entries), 2 error.

mod bmc_cmds;
#[cfg(feature = "demo")]
mod demo_cmds;
mod fleet;
mod health_cmds;
mod host;
mod ladder;
mod node;
mod output;
mod person;
mod power;
mod probe;
mod profile;
mod report_cmds;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use output::Format;

/// Out-of-band power and hardware manager for bare-metal Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "oob", version, about, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (TOML) with the machine inventory.
    #[arg(long, global = true, env = "OOB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format on stdout.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Show what would be done; change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// More logging on stderr (-v info, -vv debug, -vvv trace). `OOB_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Power status and verified power actions through the BMC.
    Power(power::PowerArgs),
    /// Who the BMC says the machine is (UUID, serial, model, firmware).
    Identity(target::TargetArgs),
    /// The system event log (`--clear` prints it, then clears it).
    Sel(bmc_cmds::SelArgs),
    /// BMC vendor profiles.
    Profile(profile::ProfileArgs),
    /// Kubernetes node actions: cordon, uncordon, PDB-aware drain.
    Node(node::NodeArgs),
    /// A fresh bootstrap token and the `kubeadm join` command for a replacement node.
    JoinCommand(node::JoinArgs),
    /// Liveness of hosts: ICMP echo (loss, RTT) and the SSH banner.
    Probe(probe::ProbeArgs),
    /// SMART findings from smartctl output (JSON or text).
    Smart(health_cmds::SmartArgs),
    /// NIC error-counter findings from `ethtool -S` output.
    Nic(health_cmds::NicArgs),
    /// The runbook's host checks over SSH (kubelet, runtime, disks, PIDs, memory, time, OOM
    /// kills, read-only mounts, certificate, PLEG): findings and fixes; read-only.
    Diagnose(health_cmds::DiagnoseArgs),
    /// Run the remediation ladder over the inventory (leader-elected; /metrics, /healthz).
    Serve(ladder::ServeArgs),
    /// The ladder on a simulated fleet: five scripted faults, a timeline, a summary.
    #[cfg(feature = "demo")]
    Demo(demo_cmds::DemoArgs),
    /// All evidence about a machine and the verdict, with the BMC identity check; no action.
    Check(person::NodeTarget),
    /// What the service would do now for every machine of the inventory; no action.
    Plan,
    /// The guarded hard power cycle: per-node lock, identity check, journal, verified.
    Cycle(person::NodeTarget),
    /// Soft reboot verified by bootID and Ready; the guarded hard cycle when it is not.
    Reboot(person::RebootArgs),
    /// The locator (identify) LED that leads a technician to the box: on, off, status.
    Led(bmc_cmds::LedArgs),
    /// End the hands-off of a node awaiting replacement (the technicians are done):
    /// `--repaired` lets the service replace and rejoin it when `[replacement] enabled`.
    Release(person::ReleaseArgs),
    /// Fault reports and follow-ups in the outbox: where each delivery stands (`status`),
    /// or deliver what is due now (`deliver`).
    Report(report_cmds::ReportArgs),
    /// The storm breaker: status, or reset by a person.
    Breaker(ladder::BreakerArgs),
    /// Validate the configuration and print it with defaults filled in (no secrets).
    Config(ladder::ConfigArgs),
    /// The demo's simulated fleet on its own, until Ctrl-C (what `oob-mocks fleet` runs);
    /// for trying `oob serve` by hand and for the crash-safety tests.
    #[cfg(feature = "demo")]
    #[command(hide = true)]
    SimFleet(demo_cmds::SimFleetArgs),
}

/// What a command reports back to `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Problems,
}

impl Status {
    /// `Problems` when `found`, else `Ok`.
    pub fn problems_if(found: bool) -> Self {
        if found {
            Self::Problems
        } else {
            Self::Ok
        }
    }
}

/// Parse, run, and map the result to an exit code. The only place that prints errors.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_format);
    // `oob probe` is one socket's worth of I/O: one thread does it with half the wake-ups
    // (no hand-offs between workers), which is most of its CPU time.
    let mut builder = if matches!(cli.command, Command::Probe(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::Problems) => ExitCode::from(1),
        Err(e) => {
            if output::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Status> {
    let ctx = target::Context::new(cli.config.as_deref(), cli.output, cli.dry_run)?;
    match cli.command {
        Command::Power(args) => power::run(&ctx, args).await,
        Command::Identity(args) => bmc_cmds::identity(&ctx, args).await,
        Command::Sel(args) => bmc_cmds::sel(&ctx, args).await,
        Command::Profile(args) => profile::run(&ctx, args),
        Command::Probe(args) => probe::run(&ctx, args).await,
        Command::Node(args) => node::run(&ctx, args).await,
        Command::JoinCommand(args) => node::join(&ctx, args).await,
        Command::Smart(args) => health_cmds::smart(&ctx, args).await,
        Command::Nic(args) => health_cmds::nic(&ctx, args).await,
        Command::Diagnose(args) => health_cmds::diagnose(&ctx, args).await,
        Command::Serve(args) => ladder::serve(ctx, args).await,
        Command::Check(args) => person::check(&ctx, args).await,
        Command::Plan => person::plan(&ctx).await,
        Command::Cycle(args) => person::cycle(&ctx, args).await,
        Command::Release(args) => person::release(&ctx, args).await,
        Command::Led(args) => bmc_cmds::led(&ctx, args).await,
        Command::Reboot(args) => person::reboot(&ctx, args).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo_cmds::demo(&ctx, args).await,
        Command::Breaker(args) => ladder::breaker(&ctx, args),
        Command::Report(args) => report_cmds::run(&ctx, args).await,
        Command::Config(args) => ladder::config_check(&ctx, args),
        #[cfg(feature = "demo")]
        Command::SimFleet(a) => demo_cmds::sim_fleet(a).await,
    }
}

fn init_logging(verbose: u8, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // rustls-platform-verifier logs every refused certificate at ERROR; oob reports the
    // same failure itself, with the BMC's address, so that echo is silenced by default.
    let filter = EnvFilter::try_from_env("OOB_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},rustls_platform_verifier=off")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // A second initialisation (never in the binary) is harmless; ignore it.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
