//! `oob probe TARGET…`: ICMP echo and the SSH banner for many hosts at once.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use futures_util::StreamExt as _;
use serde::Serialize;

use super::output::emit;
use super::target::Context;
use super::Status;
use crate::probe::ping::{PingOptions, PingStats, Pinger};
use crate::probe::ssh::{self, SshBanner};

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Machine names from the config (their `host`), IP addresses or host names.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Echo requests per host.
    #[arg(long, default_value_t = 3)]
    pub count: u16,
    /// Milliseconds between echo requests to one host.
    #[arg(long, default_value_t = 200, value_parser = crate::duration::millis)]
    pub interval_ms: u64,
    /// Milliseconds to wait for each echo reply, and for the SSH banner.
    #[arg(long, default_value_t = 1000, value_parser = crate::duration::millis)]
    pub timeout_ms: u64,
    /// Hosts probed at once.
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Hosts started per second (pacing, like fping's interval).
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    #[arg(long, default_value_t = 22)]
    pub ssh_port: u16,
    /// ICMP only.
    #[arg(long)]
    pub no_ssh: bool,
}

#[derive(Serialize)]
struct TargetJson {
    target: String,
    address: IpAddr,
    ping: PingStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh: Option<SshBanner>,
}

async fn resolve(ctx: &Context, target: &str) -> anyhow::Result<IpAddr> {
    let host = ctx
        .config
        .as_ref()
        .and_then(|c| c.machines.iter().find(|m| m.name == target))
        .map(|m| m.host.clone().unwrap_or_else(|| m.name.clone()))
        .unwrap_or_else(|| target.to_owned());
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut addrs = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.as_str(), 0)),
    )
    .await
    .with_context(|| format!("resolving {host}: no answer within 5 s"))?
    .with_context(|| format!("resolving {host}"))?;
    addrs
        .next()
        .map(|a| a.ip())
        .with_context(|| format!("{host} has no address"))
}

pub async fn run(ctx: &Context, args: ProbeArgs) -> anyhow::Result<Status> {
    let mut addrs = Vec::with_capacity(args.targets.len());
    for t in &args.targets {
        addrs.push(resolve(ctx, t).await?);
    }
    let options = PingOptions {
        count: args.count,
        interval: Duration::from_millis(args.interval_ms),
        timeout: Duration::from_millis(args.timeout_ms),
        concurrency: args.concurrency,
        rate: args.rate,
    };
    let pinger = Pinger::new(&addrs)?;
    let deadline = Duration::from_millis(args.timeout_ms);
    let ssh_port = args.ssh_port;
    let (pings, banners) = tokio::join!(pinger.ping_all(&addrs, options), async {
        if args.no_ssh {
            return Vec::new();
        }
        futures_util::stream::iter(addrs.iter())
            .map(|ip| ssh::banner(SocketAddr::new(*ip, ssh_port), deadline))
            .buffered(args.concurrency.max(1))
            .collect::<Vec<_>>()
            .await
    });
    let mut banners = banners.into_iter();
    let results: Vec<TargetJson> = args
        .targets
        .iter()
        .zip(addrs)
        .zip(pings)
        .map(|((target, address), ping)| TargetJson {
            target: target.clone(),
            address,
            ping,
            ssh: banners.next(),
        })
        .collect();
    let mut rows = vec![["TARGET", "ADDRESS", "PING", "LOSS", "RTT", "SSH"]
        .map(String::from)
        .to_vec()];
    for r in &results {
        rows.push(vec![
            r.target.clone(),
            r.address.to_string(),
            format!("{}/{}", r.ping.received, r.ping.sent),
            format!("{}%", r.ping.loss_pct),
            r.ping
                .rtt_ms_avg
                .map_or("-".into(), |v| format!("{v:.2} ms")),
            match &r.ssh {
                None => "-".into(),
                Some(s) if s.reachable => s.banner.clone().unwrap_or_default(),
                Some(s) => format!("down ({})", s.error.clone().unwrap_or_default()),
            },
        ]);
    }
    let problems = results
        .iter()
        .any(|r| r.ping.received == 0 || r.ssh.as_ref().is_some_and(|s| !s.reachable));
    emit(
        ctx.format,
        &serde_json::json!({ "targets": results }),
        &rows,
    )?;
    Ok(Status::problems_if(problems))
}
