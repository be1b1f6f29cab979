//! ICMP echo to many hosts at once: count, interval and per-echo timeout, loss and RTT
//! statistics, bounded concurrency, over [`super::icmp`]'s one socket per address family
//! (raw sockets as root/CAP_NET_RAW, else datagram "ping" sockets where `ping_group_range`
//! allows).

use std::net::IpAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::Serialize;

use super::icmp::{Family, Receiving};
use super::ProbeError;

/// How to ping.
#[derive(Debug, Clone, Copy)]
pub struct PingOptions {
    pub count: u16,
    pub interval: Duration,
    /// Wait for each echo reply.
    pub timeout: Duration,
    /// Hosts pinged at once.
    pub concurrency: usize,
    /// Hosts started per second: first echoes are paced so that a burst of ARP resolutions
    /// and replies does not overflow neighbour queues and socket buffers (fping paces too).
    pub rate: u32,
}

impl Default for PingOptions {
    fn default() -> Self {
        Self {
            count: 3,
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
            concurrency: 512,
            rate: 2000,
        }
    }
}

/// What one host answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingStats {
    pub sent: u16,
    pub received: u16,
    pub loss_pct: f64,
    pub rtt_ms_avg: Option<f64>,
    pub rtt_ms_min: Option<f64>,
    pub rtt_ms_max: Option<f64>,
}

impl PingStats {
    fn from_rtts(sent: u16, rtts: &[Duration]) -> Self {
        let ms: Vec<f64> = rtts.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        let received = u16::try_from(ms.len()).unwrap_or(u16::MAX);
        let loss_pct = if sent == 0 {
            0.0
        } else {
            100.0 * f64::from(sent - received.min(sent)) / f64::from(sent)
        };
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        Self {
            sent,
            received,
            loss_pct: round(loss_pct),
            rtt_ms_avg: (!ms.is_empty()).then(|| round(ms.iter().sum::<f64>() / ms.len() as f64)),
            rtt_ms_min: ms.iter().copied().reduce(f64::min).map(round),
            rtt_ms_max: ms.iter().copied().reduce(f64::max).map(round),
        }
    }
}

/// The ICMP sockets (one per family), opened once per run and shared by every target.
pub struct Pinger {
    v4: Option<Family>,
    v6: Option<Family>,
}

impl Pinger {
    /// One family's socket.
    fn open(v6: bool, receiving: Receiving) -> Result<Family, ProbeError> {
        Family::open(v6, receiving).map_err(|e| ProbeError::IcmpPermission {
            detail: match e.kind() {
                std::io::ErrorKind::PermissionDenied => "permission denied".into(),
                _ => e.to_string(),
            },
        })
    }

    /// Open the sockets needed for `targets`, read by a task on the current runtime: for a
    /// command that only pings (see [`Receiving`]).
    pub fn new(targets: &[IpAddr]) -> Result<Self, ProbeError> {
        let family = |pred: fn(&IpAddr) -> bool, v6| {
            targets
                .iter()
                .any(pred)
                .then(|| Self::open(v6, Receiving::Task))
                .transpose()
        };
        Ok(Self {
            v4: family(IpAddr::is_ipv4, false)?,
            v6: family(IpAddr::is_ipv6, true)?,
        })
    }

    /// Open a socket for every address family this host can ping, whatever the targets are
    /// now: a fleet's addresses come and go (Node InternalIPs, annotations), and an address
    /// of a family without a socket would silently read as "every echo lost". Fails only
    /// when neither family can be opened.
    pub fn all_families() -> Result<Self, ProbeError> {
        match (
            Self::open(false, Receiving::Thread),
            Self::open(true, Receiving::Thread),
        ) {
            (Err(e), Err(_)) => Err(e),
            (v4, v6) => Ok(Self {
                v4: v4.ok(),
                v6: v6.ok(),
            }),
        }
    }

    /// Whether `target`'s address family has a socket.
    pub fn serves(&self, target: IpAddr) -> bool {
        match target {
            IpAddr::V4(_) => self.v4.is_some(),
            IpAddr::V6(_) => self.v6.is_some(),
        }
    }

    /// Ping one host `count` times: echoes go out `interval` apart without waiting for each
    /// other's replies, each with its own `timeout`, so a dark host costs
    /// `(count - 1) * interval + timeout`, not `count * timeout`.
    pub async fn ping(&self, target: IpAddr, ident: u16, o: PingOptions) -> PingStats {
        let family = match target {
            IpAddr::V4(_) => self.v4.as_ref(),
            IpAddr::V6(_) => self.v6.as_ref(),
        };
        let Some(family) = family else {
            return PingStats::from_rtts(o.count, &[]);
        };
        // One future for the whole probe (a fleet has thousands in flight): the echoes are
        // sent on their schedule, then their replies are waited for in turn, each until its
        // own deadline, which is the same as waiting for all of them at once.
        let start = tokio::time::Instant::now();
        let mut sent = Vec::with_capacity(usize::from(o.count));
        for seq in 0..o.count {
            if seq > 0 {
                tokio::time::sleep_until(start + o.interval.saturating_mul(u32::from(seq))).await;
            }
            sent.extend(family.send(target, ident, o.timeout));
        }
        let mut rtts = Vec::with_capacity(sent.len());
        for echo in sent {
            rtts.extend(echo.reply().await);
        }
        PingStats::from_rtts(o.count, &rtts)
    }

    /// Ping every target with bounded concurrency; results in input order. Hosts are taken
    /// up as slots free, whatever their place: a dark host waits out its timeout without
    /// holding up the ones after it.
    pub async fn ping_all(&self, targets: &[IpAddr], o: PingOptions) -> Vec<PingStats> {
        let start = tokio::time::Instant::now();
        let spacing = Duration::from_secs(1) / o.rate.max(1);
        let mut done: Vec<(usize, PingStats)> =
            futures_util::stream::iter(targets.iter().enumerate())
                .map(|(i, t)| async move {
                    let slot = spacing.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
                    tokio::time::sleep_until(start + slot).await;
                    let ident = u16::try_from(i % usize::from(u16::MAX)).unwrap_or(0);
                    (i, self.ping(*t, ident, o).await)
                })
                .buffer_unordered(o.concurrency.max(1))
                .collect()
                .await;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, s)| s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_from_replies() {
        let s = PingStats::from_rtts(4, &[Duration::from_millis(1), Duration::from_millis(3)]);
        assert_eq!((s.sent, s.received, s.loss_pct), (4, 2, 50.0));
        assert_eq!(
            (s.rtt_ms_avg, s.rtt_ms_min, s.rtt_ms_max),
            (Some(2.0), Some(1.0), Some(3.0))
        );
        let none = PingStats::from_rtts(3, &[]);
        assert_eq!((none.loss_pct, none.rtt_ms_avg), (100.0, None));
    }
}
