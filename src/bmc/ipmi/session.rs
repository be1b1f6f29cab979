//! One RMCP+ session over UDP: Get Channel Authentication Capabilities, Open Session,
//! RAKP 1–4, Set Session Privilege Level, authenticated and encrypted requests with
//! retransmission, and Close Session.
//!
//! Replies are matched to requests by session id, RMCP+ message tag or IPMI rqSeq, netFn and
//! command; stale, duplicate and forged datagrams are discarded (never matched to the wrong
//! request), and inbound session sequence numbers are checked against a sliding window.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng as _;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::crypto::{Keys, Suite};
use super::packet::{self, payload, Response};
use crate::bmc::BmcError;
use crate::secret::Secret;

mod establish;

use establish::{PreSession, Refusal};

/// Session privilege levels (§6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    User = 2,
    Operator = 3,
    Administrator = 4,
}

/// What opening a session needs.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub addr: SocketAddr,
    pub user: String,
    pub password: Secret,
    /// Suites to try in order (negotiation falls back when the BMC refuses one).
    pub suites: Vec<u8>,
    pub privilege: Privilege,
    /// Wait for one reply before retransmitting.
    pub attempt_timeout: Duration,
    /// Sends per request, retransmissions included.
    pub attempts: u32,
}

/// Replay window over inbound session sequence numbers (like IPsec's).
#[derive(Debug, Default)]
struct Window {
    highest: u32,
    seen: u64,
}

impl Window {
    /// Accept a sequence number once, within 64 of the highest seen.
    fn accept(&mut self, seq: u32) -> bool {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = seq;
            return true;
        }
        let back = self.highest - seq;
        if back >= 64 || self.seen & (1 << back) != 0 {
            return false;
        }
        self.seen |= 1 << back;
        true
    }
}

/// An active session.
pub struct Session {
    socket: UdpSocket,
    url: String,
    keys: Keys,
    /// Our id (SIDm): the BMC addresses replies with it.
    console_id: u32,
    /// The BMC's id (SIDc): we address requests with it.
    bmc_id: u32,
    out_seq: u32,
    rq_seq: u8,
    window: Window,
    attempt_timeout: Duration,
    attempts: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.url)
            .field("suite", &self.keys.suite)
            .finish_non_exhaustive()
    }
}

fn rmcp_plus_status(code: u8) -> &'static str {
    match code {
        0x01 => "insufficient resources to create a session (session table full)",
        0x02 => "invalid session id",
        0x04..=0x07 | 0x10 | 0x11 => "cipher suite not supported",
        0x09 => "invalid role",
        0x0A => "unauthorized role or privilege level requested",
        0x0B => "insufficient resources at the requested role",
        0x0C => "invalid user name length",
        0x0D => "unauthorized name (unknown user)",
        0x0F => "invalid integrity check value",
        _ => "session establishment refused",
    }
}

fn is_suite_refusal(code: u8) -> bool {
    matches!(code, 0x04..=0x07 | 0x10 | 0x11)
}

impl Session {
    /// Open a session, trying the configured suites in order.
    pub async fn open(cfg: &SessionConfig) -> Result<Self, BmcError> {
        let url = format!("ipmi://{}", cfg.addr);
        let local: SocketAddr = if cfg.addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let io = |e: std::io::Error| BmcError::Transport {
            url: url.clone(),
            detail: e.to_string(),
        };
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(cfg.addr).await.map_err(io)?;
        let mut pre = PreSession {
            socket,
            url: url.clone(),
            cfg,
        };
        pre.auth_capabilities().await?;
        let mut last = None;
        for (i, id) in cfg.suites.iter().enumerate() {
            let Some(suite) = Suite::from_id(*id) else {
                return Err(BmcError::Unsupported {
                    bmc: url,
                    what: format!("cipher suite {id} (only 3 and 17)"),
                });
            };
            // Some BMCs (ipmi_sim among them) ignore an Open Session for a suite they lack
            // instead of refusing it: while other suites remain, one silent wait is a refusal.
            let last_choice = i + 1 == cfg.suites.len();
            let attempts = if last_choice { cfg.attempts } else { 1 };
            let mut tries = 0;
            let outcome = loop {
                tries += 1;
                match pre.handshake(suite, attempts).await {
                    // A retransmitted RAKP 1 can make the BMC pick a new random number after
                    // we used the first: the keys disagree. Start over once.
                    Err(Refusal::Race) if tries < 2 => {
                        debug!(bmc = %url, "rakp keys disagreed after a retransmission, retrying the handshake");
                    }
                    other => break other,
                }
            };
            match outcome {
                Ok(done) => {
                    let mut session = Session {
                        socket: pre.socket,
                        url: url.clone(),
                        keys: done.keys,
                        console_id: done.console_id,
                        bmc_id: done.bmc_id,
                        out_seq: 0,
                        rq_seq: 0,
                        window: Window::default(),
                        attempt_timeout: cfg.attempt_timeout,
                        attempts: cfg.attempts,
                    };
                    session.set_privilege(cfg.privilege).await?;
                    if i > 0 && suite == Suite::Three {
                        warn!(bmc = %url, "bmc refused cipher suite 17, using 3 (hmac-sha1)");
                    }
                    info!(bmc = %url, suite = suite.id(), "ipmi session open");
                    return Ok(session);
                }
                Err(Refusal::Suite(code)) => {
                    info!(bmc = %url, suite = suite.id(), status = code, "cipher suite refused, trying the next");
                    last = Some(code);
                }
                Err(Refusal::Error(e)) => return Err(e),
                Err(Refusal::Race) => {
                    return Err(BmcError::Auth {
                        url,
                        detail: "RAKP 3/4 integrity check failed twice".into(),
                    })
                }
            }
        }
        Err(BmcError::Unsupported {
            bmc: url,
            what: format!(
                "none of the cipher suites {:?} (last status {:#04x})",
                cfg.suites,
                last.unwrap_or(0)
            ),
        })
    }

    async fn set_privilege(&mut self, privilege: Privilege) -> Result<(), BmcError> {
        let r = self.call(0x06, 0x3B, &[privilege as u8], true).await?;
        check(&self.url, "Set Session Privilege Level", &r)
    }

    fn next_rq_seq(&mut self) -> u8 {
        self.rq_seq = (self.rq_seq + 1) & 0x3F;
        self.rq_seq
    }

    /// Send an IPMI request in the session and wait for its reply. With `retransmit`, a
    /// missing reply is re-sent (same rqSeq, new session sequence) up to the attempt limit;
    /// without, it is sent once (for commands that must not run twice).
    pub async fn call(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        retransmit: bool,
    ) -> Result<Response, BmcError> {
        let rq_seq = self.next_rq_seq();
        let message = packet::encode_request(netfn, cmd, rq_seq, data);
        let attempts = if retransmit { self.attempts } else { 1 };
        for attempt in 1..=attempts {
            self.out_seq = self.out_seq.wrapping_add(1).max(1);
            let iv: [u8; 16] = rand::rng().random();
            let datagram = packet::encode_v2(
                payload::IPMI,
                self.bmc_id,
                self.out_seq,
                &message,
                Some(&self.keys),
                iv,
            );
            self.socket
                .send(&datagram)
                .await
                .map_err(|e| BmcError::Transport {
                    url: self.url.clone(),
                    detail: e.to_string(),
                })?;
            let deadline = Instant::now() + self.attempt_timeout;
            while let Some(bytes) = recv_until(&self.socket, deadline).await {
                match self.accept(&bytes, netfn, cmd, rq_seq) {
                    Some(r) => return Ok(r),
                    None => continue,
                }
            }
            debug!(bmc = %self.url, netfn, cmd, attempt, "no reply, retransmitting");
        }
        Err(BmcError::Timeout {
            url: self.url.clone(),
            after: self.attempt_timeout * attempts,
        })
    }

    /// The reply to (netfn, cmd, rq_seq), or `None` for anything else.
    fn accept(&mut self, bytes: &[u8], netfn: u8, cmd: u8, rq_seq: u8) -> Option<Response> {
        let p = match packet::decode(bytes, Some(&self.keys)) {
            Ok(p) => p,
            Err(e) => {
                debug!(bmc = %self.url, error = %e, "datagram discarded");
                return None;
            }
        };
        if p.payload_type != Some(payload::IPMI)
            || p.session_id != self.console_id
            || !p.authenticated
        {
            debug!(bmc = %self.url, "datagram for another session or unauthenticated, discarded");
            return None;
        }
        if !self.window.accept(p.seq) {
            debug!(bmc = %self.url, seq = p.seq, "stale or duplicate datagram, discarded");
            return None;
        }
        let r = packet::decode_response(&p.payload).ok()?;
        if r.netfn != netfn + 1 || r.cmd != cmd || r.rq_seq != rq_seq {
            debug!(bmc = %self.url, rq_seq = r.rq_seq, want = rq_seq, "late reply to an earlier request, discarded");
            return None;
        }
        Some(r)
    }

    /// Close the session (best effort, one short try: the BMC may already be gone).
    pub async fn close(mut self) {
        let id = self.bmc_id.to_le_bytes();
        self.attempts = 1;
        match self.call(0x06, 0x3C, &id, false).await {
            Ok(_) => debug!(bmc = %self.url, "ipmi session closed"),
            Err(e) => debug!(bmc = %self.url, error = %e, "ipmi session close failed"),
        }
    }
}

/// Completion code 0 or an error naming the command.
pub fn check(url: &str, command: &str, r: &Response) -> Result<(), BmcError> {
    if r.completion == 0 {
        return Ok(());
    }
    Err(BmcError::Completion {
        url: url.to_owned(),
        command: command.to_owned(),
        code: r.completion,
    })
}

async fn recv_until(socket: &UdpSocket, deadline: Instant) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => {
            buf.truncate(n);
            Some(buf)
        }
        // ICMP port unreachable surfaces as a recv error on a connected socket: keep waiting
        // until the deadline rather than spin.
        Ok(Err(_)) => {
            tokio::time::sleep_until(deadline).await;
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn the_window_accepts_each_sequence_once_and_drops_stale_ones() {
        let mut w = Window::default();
        assert!(w.accept(1));
        assert!(w.accept(3));
        assert!(!w.accept(3), "duplicate");
        assert!(w.accept(2), "late but new");
        assert!(!w.accept(2));
        assert!(w.accept(100));
        assert!(!w.accept(30), "older than the window");
    }
}
