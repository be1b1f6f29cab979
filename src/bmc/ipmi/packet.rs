//! Wire format: RMCP (ASF/IPMI class), IPMI v1.5 and v2.0/RMCP+ session wrappers, and the
//! IPMI LAN message with its two checksums. Pure encode/decode; every decoder takes untrusted
//! bytes and returns an error, never panics (fuzzed in `fuzz/`).

use super::crypto::Keys;

/// RMCP header: version 6, reserved, sequence 0xFF (no RMCP ACK), class IPMI.
pub const RMCP: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
const AUTH_RMCP_PLUS: u8 = 0x06;

pub const BMC_ADDR: u8 = 0x20;
pub const CONSOLE_ADDR: u8 = 0x81;

/// RMCP+ payload types (§13.27.3).
pub mod payload {
    pub const IPMI: u8 = 0x00;
    pub const OPEN_SESSION_REQUEST: u8 = 0x10;
    pub const OPEN_SESSION_RESPONSE: u8 = 0x11;
    pub const RAKP1: u8 = 0x12;
    pub const RAKP2: u8 = 0x13;
    pub const RAKP3: u8 = 0x14;
    pub const RAKP4: u8 = 0x15;
}

/// Why bytes from the wire were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("not an RMCP/IPMI datagram")]
    NotIpmi,
    #[error("unsupported authentication type {0:#04x}")]
    AuthType(u8),
    #[error("length field {declared} disagrees with {actual} bytes present")]
    Length { declared: usize, actual: usize },
    #[error("authenticated packet but no session keys yet")]
    NoKeys,
    #[error("integrity check (AuthCode) failed")]
    AuthCode,
    #[error("bad integrity trailer")]
    Trailer,
    #[error("payload decryption failed")]
    Decrypt,
    #[error("IPMI message checksum mismatch")]
    Checksum,
}

fn need(bytes: &[u8], n: usize) -> Result<(), DecodeError> {
    if bytes.len() < n {
        Err(DecodeError::Truncated {
            need: n,
            have: bytes.len(),
        })
    } else {
        Ok(())
    }
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A decoded session packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// `None` for IPMI v1.5 packets.
    pub payload_type: Option<u8>,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub seq: u32,
    /// Decrypted payload.
    pub payload: Vec<u8>,
}

/// Encode an IPMI v1.5 packet without authentication (only pre-session commands use it).
pub fn encode_v15(message: &[u8]) -> Vec<u8> {
    let mut out = RMCP.to_vec();
    out.push(0x00); // auth type none
    out.extend_from_slice(&0u32.to_le_bytes()); // session seq
    out.extend_from_slice(&0u32.to_le_bytes()); // session id
    out.push(u8::try_from(message.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(message);
    out
}

/// Encode an RMCP+ packet. With `keys`, the payload is encrypted (AES-CBC-128 with `iv`) and
/// the packet authenticated (integrity pad, pad length, next header, AuthCode).
pub fn encode_v2(
    payload_type: u8,
    session_id: u32,
    seq: u32,
    payload: &[u8],
    keys: Option<&Keys>,
    iv: [u8; 16],
) -> Vec<u8> {
    let body = match keys {
        Some(k) => k.encrypt(payload, iv),
        None => payload.to_vec(),
    };
    let flags = if keys.is_some() { 0xC0 } else { 0x00 };
    let mut session = vec![AUTH_RMCP_PLUS, flags | (payload_type & 0x3F)];
    session.extend_from_slice(&session_id.to_le_bytes());
    session.extend_from_slice(&seq.to_le_bytes());
    session.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_le_bytes());
    session.extend_from_slice(&body);
    if let Some(k) = keys {
        let pad = (4 - (session.len() + 2) % 4) % 4;
        session.extend(std::iter::repeat_n(0xFF, pad));
        session.push(u8::try_from(pad).unwrap_or(0));
        session.push(0x07);
        let code = k.auth_code(&session);
        session.extend_from_slice(&code);
    }
    let mut out = RMCP.to_vec();
    out.extend_from_slice(&session);
    out
}

/// Decode a datagram. Authenticated packets need `keys`; their AuthCode is verified and the
/// payload decrypted.
pub fn decode(datagram: &[u8], keys: Option<&Keys>) -> Result<Packet, DecodeError> {
    need(datagram, 5)?;
    if datagram[0] != 0x06 || datagram[3] != 0x07 {
        return Err(DecodeError::NotIpmi);
    }
    let session = &datagram[4..];
    match session[0] {
        0x00 => decode_v15(session),
        AUTH_RMCP_PLUS => decode_v2(session, keys),
        other => Err(DecodeError::AuthType(other)),
    }
}

fn decode_v15(s: &[u8]) -> Result<Packet, DecodeError> {
    need(s, 10)?;
    let seq = u32_le(&s[1..5]);
    let session_id = u32_le(&s[5..9]);
    let len = usize::from(s[9]);
    let body = &s[10..];
    if body.len() < len {
        return Err(DecodeError::Length {
            declared: len,
            actual: body.len(),
        });
    }
    Ok(Packet {
        payload_type: None,
        encrypted: false,
        authenticated: false,
        session_id,
        seq,
        payload: body[..len].to_vec(),
    })
}

fn decode_v2(s: &[u8], keys: Option<&Keys>) -> Result<Packet, DecodeError> {
    need(s, 12)?;
    let flags = s[1];
    let encrypted = flags & 0x80 != 0;
    let authenticated = flags & 0x40 != 0;
    let session_id = u32_le(&s[2..6]);
    let seq = u32_le(&s[6..10]);
    let len = usize::from(u16::from_le_bytes([s[10], s[11]]));
    let rest = &s[12..];
    if rest.len() < len {
        return Err(DecodeError::Length {
            declared: len,
            actual: rest.len(),
        });
    }
    let body = &rest[..len];
    if authenticated {
        let k = keys.ok_or(DecodeError::NoKeys)?;
        let icv = k.suite.icv_len();
        let trailer = &rest[len..];
        need(trailer, icv + 2)?;
        let next_header = trailer[trailer.len() - icv - 1];
        let pad_len = usize::from(trailer[trailer.len() - icv - 2]);
        if next_header != 0x07 || pad_len + 2 + icv != trailer.len() {
            return Err(DecodeError::Trailer);
        }
        let covered = &s[..s.len() - icv];
        if k.auth_code(covered) != s[s.len() - icv..] {
            return Err(DecodeError::AuthCode);
        }
    }
    let payload = if encrypted {
        keys.ok_or(DecodeError::NoKeys)?
            .decrypt(body)
            .ok_or(DecodeError::Decrypt)?
    } else {
        body.to_vec()
    };
    Ok(Packet {
        payload_type: Some(flags & 0x3F),
        encrypted,
        authenticated,
        session_id,
        seq,
        payload,
    })
}

/// Two's-complement checksum: the bytes plus it sum to 0 mod 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

/// An IPMI request message (to the BMC, LUN 0).
pub fn encode_request(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    let head = [BMC_ADDR, netfn << 2];
    let mut out = head.to_vec();
    out.push(checksum(&head));
    let start = out.len();
    out.extend_from_slice(&[CONSOLE_ADDR, (rq_seq & 0x3F) << 2, cmd]);
    out.extend_from_slice(data);
    let sum = checksum(&out[start..]);
    out.push(sum);
    out
}

/// An IPMI response message from the BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub netfn: u8,
    pub cmd: u8,
    pub rq_seq: u8,
    pub completion: u8,
    pub data: Vec<u8>,
}

/// Decode a response message, checking both checksums.
pub fn decode_response(m: &[u8]) -> Result<Response, DecodeError> {
    need(m, 8)?;
    if checksum(&m[..2]) != m[2] || checksum(&m[3..m.len() - 1]) != m[m.len() - 1] {
        return Err(DecodeError::Checksum);
    }
    Ok(Response {
        netfn: m[1] >> 2,
        rq_seq: m[4] >> 2,
        cmd: m[5],
        completion: m[6],
        data: m[7..m.len() - 1].to_vec(),
    })
}

#[cfg(test)]
mod tests;
