//! `oob-mocks`: run a mock by hand, e.g. `oob-mocks redfish --port 8443 --tls`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use oob_mocks::redfish::{Config, Mock};

#[derive(Parser)]
#[command(name = "oob-mocks", about = "Stateful mocks for oob (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A stateful Redfish BMC with fault injection (POST /_mock/faults).
    Redfish {
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Loopback address to bind.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        bind: IpAddr,
        /// Serve a recorded tree (DMTF mockup layout) instead of synthetic systems.
        #[arg(long)]
        tree: Option<PathBuf>,
        /// Number of synthetic systems.
        #[arg(long, default_value_t = 1)]
        systems: usize,
        /// HTTPS with a self-signed certificate (its PEM is printed).
        #[arg(long)]
        tls: bool,
        #[arg(long, default_value = "admin")]
        user: String,
        #[arg(long, default_value = "password")]
        password: String,
        /// Milliseconds a Reset takes to show in PowerState.
        #[arg(long, default_value_t = 2000)]
        power_delay_ms: u64,
        /// Do not offer SessionService (Basic auth only).
        #[arg(long)]
        no_sessions: bool,
        /// Advertise PowerCycle in AllowableValues.
        #[arg(long)]
        power_cycle: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let Command::Redfish {
        port,
        bind,
        tree,
        systems,
        tls,
        user,
        password,
        power_delay_ms,
        no_sessions,
        power_cycle,
    } = Cli::parse().command;
    let config = Config {
        tree,
        systems,
        allow_power_cycle: power_cycle,
        user,
        password,
        sessions: !no_sessions,
        power_delay: Duration::from_millis(power_delay_ms),
        tls,
    };
    let running = Mock::start(config, SocketAddr::new(bind, port)).await?;
    if let Some(cert) = &running.cert {
        println!("{}", cert.cert_pem.trim_end());
    }
    println!(
        "mock redfish bmc on {} (systems: {})",
        running.url(),
        running.mock.systems().join(", ")
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
