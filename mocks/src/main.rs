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
        /// No SEL LogService (like sushy-emulator and many real BMCs).
        #[arg(long)]
        no_sel: bool,
        /// The older `IndicatorLED` instead of `LocationIndicatorActive`.
        #[arg(long)]
        indicator_led: bool,
    },
    /// A stateful IPMI v2.0 (RMCP+, suites 3 and 17) BMC on UDP; users admin/password,
    /// operator/oppass, viewer/viewpass.
    Ipmi {
        #[arg(long, default_value_t = 9643)]
        port: u16,
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        bind: IpAddr,
        /// Refuse cipher suite 3 (17 only).
        #[arg(long)]
        no_suite3: bool,
        /// Start this many BMCs on consecutive ports from --port (a simulated fleet).
        #[arg(long, default_value_t = 1)]
        count: u16,
    },
    /// A simulated fleet (mock BMC + host on a loopback TCP port + Node per machine, and
    /// the fake API server), described in DIR/fleet.json with DIR/kubeconfig.
    Fleet {
        /// Machines node-1 … node-N.
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        #[arg(long)]
        dir: PathBuf,
        /// Nodes whose OS hangs (ignores soft reboots), after --fault-after-ms.
        #[arg(long, value_delimiter = ',')]
        hang: Vec<String>,
        /// Nodes whose BMC logs a drive fault, after --fault-after-ms.
        #[arg(long, value_delimiter = ',')]
        fail_disk: Vec<String>,
        #[arg(long, default_value_t = 1000)]
        fault_after_ms: u64,
        /// Address of the BMCs and the API server.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        bind: IpAddr,
        /// One address per line: host i's SSH port is on port 22 of line i (the addresses
        /// must be local, e.g. inside a network namespace); default: ephemeral ports on
        /// --bind.
        #[arg(long)]
        host_addresses: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let command = Cli::parse().command;
    if let Command::Fleet {
        nodes,
        dir,
        hang,
        fail_disk,
        fault_after_ms,
        bind,
        host_addresses,
    } = command
    {
        let hosts = match host_addresses {
            Some(file) => Some(
                std::fs::read_to_string(&file)?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.trim().parse())
                    .collect::<Result<Vec<IpAddr>, _>>()?,
            ),
            None => None,
        };
        let at = oob_mocks::sim::Addresses {
            services: bind,
            hosts,
        };
        return oob_mocks::sim::run_fleet(nodes, &dir, &at, &hang, &fail_disk, fault_after_ms)
            .await;
    }
    if let Command::Ipmi {
        port,
        bind,
        no_suite3,
        count,
    } = command
    {
        let mut running = Vec::new();
        for i in 0..count {
            let config = oob_mocks::ipmi::Config {
                suite3: !no_suite3,
                ..Default::default()
            };
            let addr = SocketAddr::new(bind, port + i);
            running.push(oob_mocks::ipmi::MockIpmi::start(config, addr).await?);
        }
        for r in &running {
            println!("mock ipmi bmc on {}", r.url());
        }
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }
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
        no_sel,
        indicator_led,
    } = command
    else {
        return Ok(());
    };
    let config = Config {
        tree,
        systems,
        allow_power_cycle: power_cycle,
        user,
        password,
        sessions: !no_sessions,
        power_delay: Duration::from_millis(power_delay_ms),
        tls,
        page_size: None,
        sel: !no_sel,
        indicator_led,
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
