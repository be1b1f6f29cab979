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

enum Refusal {
    /// The BMC refused this cipher suite: try the next one.
    Suite(u8),
    /// RAKP 3/4 did not verify although RAKP 2 did: both sides hold the password, so the
    /// random numbers crossed (a late reply to a retransmission). Worth one more handshake.
    Race,
    Error(BmcError),
}

impl From<BmcError> for Refusal {
    fn from(e: BmcError) -> Self {
        Self::Error(e)
    }
}

/// What RAKP establishes.
struct Established {
    keys: Keys,
    console_id: u32,
    bmc_id: u32,
}

struct PreSession<'a> {
    socket: UdpSocket,
    url: String,
    cfg: &'a SessionConfig,
}

impl PreSession<'_> {
    /// Send `datagram` and wait for a reply `pick` accepts, retransmitting on silence.
    async fn exchange<T>(
        &self,
        datagram: &[u8],
        what: &str,
        pick: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<T, BmcError> {
        self.exchange_n(datagram, what, self.cfg.attempts, pick)
            .await
    }

    async fn exchange_n<T>(
        &self,
        datagram: &[u8],
        what: &str,
        attempts: u32,
        mut pick: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<T, BmcError> {
        for attempt in 1..=attempts {
            self.socket
                .send(datagram)
                .await
                .map_err(|e| BmcError::Transport {
                    url: self.url.clone(),
                    detail: e.to_string(),
                })?;
            let deadline = Instant::now() + self.cfg.attempt_timeout;
            while let Some(bytes) = recv_until(&self.socket, deadline).await {
                if let Some(v) = pick(&bytes) {
                    return Ok(v);
                }
            }
            debug!(bmc = %self.url, what, attempt, "no reply, retransmitting");
        }
        Err(BmcError::Timeout {
            url: self.url.clone(),
            after: self.cfg.attempt_timeout * attempts,
        })
    }

    /// Get Channel Authentication Capabilities (v1.5 framing): is RMCP+ supported?
    async fn auth_capabilities(&mut self) -> Result<(), BmcError> {
        let message = packet::encode_request(0x06, 0x38, 0, &[0x8E, self.cfg.privilege as u8]);
        let datagram = packet::encode_v15(&message);
        let r = self
            .exchange(&datagram, "auth capabilities", |b| {
                let p = packet::decode(b, None).ok()?;
                let r = packet::decode_response(&p.payload).ok()?;
                (r.cmd == 0x38).then_some(r)
            })
            .await?;
        check(&self.url, "Get Channel Authentication Capabilities", &r)?;
        let v2 = r.data.get(3).is_some_and(|b| b & 0x02 != 0)
            && r.data.get(1).is_some_and(|b| b & 0x80 != 0);
        if !v2 {
            return Err(BmcError::Unsupported {
                bmc: self.url.clone(),
                what: "IPMI v2.0 / RMCP+ (lanplus)".into(),
            });
        }
        Ok(())
    }

    async fn handshake(
        &mut self,
        suite: Suite,
        open_attempts: u32,
    ) -> Result<Established, Refusal> {
        let console_id: u32 = rand::rng().random_range(1..u32::MAX);
        let tag: u8 = rand::rng().random();
        let (auth, integrity, conf) = suite.algorithms();
        let role = self.cfg.privilege as u8 | 0x10; // name-only lookup
        let mut open = vec![tag, self.cfg.privilege as u8, 0, 0];
        open.extend_from_slice(&console_id.to_le_bytes());
        for (kind, alg) in [(0u8, auth), (1, integrity), (2, conf)] {
            open.extend_from_slice(&[kind, 0, 0, 8, alg, 0, 0, 0]);
        }
        let datagram = packet::encode_v2(payload::OPEN_SESSION_REQUEST, 0, 0, &open, None, [0; 16]);
        let reply = match self
            .exchange_n(&datagram, "open session", open_attempts, |b| {
                reply_to(b, payload::OPEN_SESSION_RESPONSE, tag, console_id)
            })
            .await
        {
            Ok(r) => r,
            Err(BmcError::Timeout { .. }) if open_attempts < self.cfg.attempts => {
                return Err(Refusal::Suite(0))
            }
            Err(e) => return Err(e.into()),
        };
        let status = reply[1];
        if is_suite_refusal(status) {
            return Err(Refusal::Suite(status));
        }
        self.refused(status)?;
        let bmc_id = u32::from_le_bytes(
            reply
                .get(8..12)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| self.malformed("open session response"))?,
        );

        let rm: [u8; 16] = rand::rng().random();
        let user = self.cfg.user.as_bytes();
        if user.len() > 16 {
            return Err(BmcError::Unsupported {
                bmc: self.url.clone(),
                what: "user names longer than 16 bytes".into(),
            }
            .into());
        }
        let ulen = u8::try_from(user.len()).unwrap_or(16);
        let mut rakp1 = vec![tag, 0, 0, 0];
        rakp1.extend_from_slice(&bmc_id.to_le_bytes());
        rakp1.extend_from_slice(&rm);
        rakp1.extend_from_slice(&[role, 0, 0, ulen]);
        rakp1.extend_from_slice(user);
        let datagram = packet::encode_v2(payload::RAKP1, 0, 0, &rakp1, None, [0; 16]);
        let rakp2 = self
            .exchange(&datagram, "rakp 1", |b| {
                reply_to(b, payload::RAKP2, tag, console_id)
            })
            .await?;
        self.refused(rakp2[1])?;
        let n = suite.kex_len();
        if rakp2.len() < 40 + n {
            return Err(self.malformed("rakp 2").into());
        }
        let rc: [u8; 16] = rakp2[8..24]
            .try_into()
            .map_err(|_| self.malformed("rakp 2"))?;
        let guid = &rakp2[24..40];
        let kuid = self.cfg.password.expose().as_bytes();
        let expect = suite.hmac(
            kuid,
            &[
                &console_id.to_le_bytes(),
                &bmc_id.to_le_bytes(),
                &rm,
                &rc,
                guid,
                &[role, ulen],
                user,
            ],
        );
        if expect != rakp2[40..40 + n] {
            // The BMC proved knowledge of a different password: ours is wrong.
            return Err(BmcError::Auth {
                url: self.url.clone(),
                detail: "RAKP 2: the BMC holds a different password for this user".into(),
            }
            .into());
        }
        let keys = Keys::derive(suite, kuid, &rm, &rc, role, user);
        let mut rakp3 = vec![tag, 0, 0, 0];
        rakp3.extend_from_slice(&bmc_id.to_le_bytes());
        rakp3.extend_from_slice(
            &suite.hmac(kuid, &[&rc, &console_id.to_le_bytes(), &[role, ulen], user]),
        );
        let datagram = packet::encode_v2(payload::RAKP3, 0, 0, &rakp3, None, [0; 16]);
        let rakp4 = self
            .exchange(&datagram, "rakp 3", |b| {
                reply_to(b, payload::RAKP4, tag, console_id)
            })
            .await?;
        if rakp4[1] == 0x0F {
            return Err(Refusal::Race);
        }
        self.refused(rakp4[1])?;
        let mut icv = suite.hmac(&keys.sik, &[&rm, &bmc_id.to_le_bytes(), guid]);
        icv.truncate(suite.icv_len());
        if rakp4.get(8..8 + icv.len()) != Some(&icv[..]) {
            return Err(Refusal::Race);
        }
        Ok(Established {
            keys,
            console_id,
            bmc_id,
        })
    }

    fn malformed(&self, what: &str) -> BmcError {
        BmcError::Malformed {
            url: self.url.clone(),
            detail: format!("short {what}"),
        }
    }

    fn refused(&self, status: u8) -> Result<(), BmcError> {
        match status {
            0 => Ok(()),
            0x0D | 0x0F | 0x0A | 0x09 => Err(BmcError::Auth {
                url: self.url.clone(),
                detail: format!("{} (RMCP+ status {status:#04x})", rmcp_plus_status(status)),
            }),
            s => Err(BmcError::Refused {
                url: self.url.clone(),
                detail: format!("{} (RMCP+ status {s:#04x})", rmcp_plus_status(s)),
            }),
        }
    }
}

/// The payload of a pre-session reply of `ptype` carrying our tag and console id.
fn reply_to(bytes: &[u8], ptype: u8, tag: u8, console_id: u32) -> Option<Vec<u8>> {
    let p = packet::decode(bytes, None).ok()?;
    if p.payload_type != Some(ptype) || p.payload.len() < 8 || p.payload[0] != tag {
        return None;
    }
    // Errors may carry no session id; successful replies must carry ours.
    let id = u32::from_le_bytes(p.payload[4..8].try_into().ok()?);
    (p.payload[1] != 0 || id == console_id).then_some(p.payload)
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
