//! Liveness reads behind one seam: ICMP echoes (where a raw or datagram ICMP socket could be
//! opened for the address family) and the SSH port. The service probes through
//! [`Liveness`]; tests substitute hosts that go dark on cue.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;

use crate::probe::ping::{PingOptions, Pinger};

#[async_trait]
pub trait Liveness: Send + Sync {
    /// Echo replies received of sent; `None` where ICMP is not available for `ip` (the SSH
    /// port is then the liveness probe).
    async fn ping(&self, ip: IpAddr, ident: u16, options: PingOptions) -> Option<(u16, u16)>;
    /// Whether the SSH port answers within `timeout`.
    async fn ssh(&self, addr: SocketAddr, timeout: Duration) -> bool;
}

/// The real probes: ICMP through `pinger` (none: SSH port only), the SSH banner.
pub struct Network {
    pub pinger: Option<Pinger>,
}

#[async_trait]
impl Liveness for Network {
    async fn ping(&self, ip: IpAddr, ident: u16, options: PingOptions) -> Option<(u16, u16)> {
        let pinger = self.pinger.as_ref().filter(|p| p.serves(ip))?;
        let stats = pinger.ping(ip, ident, options).await;
        Some((stats.received, stats.sent))
    }

    async fn ssh(&self, addr: SocketAddr, timeout: Duration) -> bool {
        crate::probe::ssh::banner(addr, timeout).await.reachable
    }
}
