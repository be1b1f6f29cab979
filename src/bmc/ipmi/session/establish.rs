//! Establishing an RMCP+ session before it exists: Get Channel Authentication Capabilities,
//! Open Session and RAKP 1–4, each exchange retransmitted on silence and matched by message
//! tag and console session id.

use rand::Rng as _;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::debug;

use super::{check, is_suite_refusal, recv_until, rmcp_plus_status, SessionConfig};
use crate::bmc::ipmi::crypto::{Keys, Suite};
use crate::bmc::ipmi::packet::{self, payload};
use crate::bmc::BmcError;

pub(super) enum Refusal {
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
pub(super) struct Established {
    pub(super) keys: Keys,
    pub(super) console_id: u32,
    pub(super) bmc_id: u32,
}

pub(super) struct PreSession<'a> {
    pub(super) socket: UdpSocket,
    pub(super) url: String,
    pub(super) cfg: &'a SessionConfig,
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
    pub(super) async fn auth_capabilities(&mut self) -> Result<(), BmcError> {
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

    pub(super) async fn handshake(
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
