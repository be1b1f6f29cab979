//! The BMC side of RMCP+: parse requests, build replies, the suite-specific crypto. Written
//! from the IPMI v2.0 spec independently of the client in `oob`, and checked with ipmitool.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};

/// Cipher suites the mock accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Sha1 = 3,
    Sha256 = 17,
}

impl Suite {
    /// From the (auth, integrity, confidentiality) algorithms of an Open Session Request.
    pub fn from_algorithms(auth: u8, integrity: u8, conf: u8) -> Option<Self> {
        match (auth, integrity, conf) {
            (1, 1, 1) => Some(Self::Sha1),
            (3, 4, 1) => Some(Self::Sha256),
            _ => None,
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => {
                let mut m =
                    <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).expect("hmac takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Self::Sha256 => {
                let mut m =
                    <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("hmac takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub fn auth_code_len(self) -> usize {
        if self == Self::Sha1 {
            12
        } else {
            16
        }
    }
}

/// Keys of an established session.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    pub suite: Suite,
    pub k1: Vec<u8>,
    pub aes: [u8; 16],
}

impl SessionKeys {
    pub fn new(suite: Suite, sik: &[u8]) -> Self {
        // The key constants are 20 bytes whatever the hash (IPMI v2.0 §13.32).
        let k1 = suite.hmac(sik, &[0x01; 20]);
        let k2 = suite.hmac(sik, &[0x02; 20]);
        let mut aes = [0u8; 16];
        aes.copy_from_slice(&k2[..16]);
        Self { suite, k1, aes }
    }
}

/// A parsed inbound datagram.
#[derive(Debug)]
pub enum Inbound {
    /// IPMI v1.5, unauthenticated: the IPMI message.
    V15(Vec<u8>),
    /// RMCP+: payload type, session id, raw (still encrypted) payload,
    /// the bytes the AuthCode covers and the AuthCode (when authenticated).
    V2 {
        ptype: u8,
        encrypted: bool,
        session: u32,
        payload: Vec<u8>,
        signed: Vec<u8>,
        auth_code: Option<Vec<u8>>,
    },
}

/// Parse a datagram; `auth_len` is the AuthCode length of the session it claims (if any).
pub fn parse(d: &[u8], auth_len: impl Fn(u32) -> Option<usize>) -> Option<Inbound> {
    if d.len() < 5 || d[0] != 6 || d[3] != 7 {
        return None;
    }
    let s = &d[4..];
    match s[0] {
        0x00 => {
            let len = usize::from(*s.get(9)?);
            Some(Inbound::V15(s.get(10..10 + len)?.to_vec()))
        }
        0x06 => {
            let head = s.get(..12)?;
            let ptype = head[1] & 0x3F;
            let session = u32::from_le_bytes(head[2..6].try_into().ok()?);
            let len = usize::from(u16::from_le_bytes([head[10], head[11]]));
            let payload = s.get(12..12 + len)?.to_vec();
            let auth_code = if head[1] & 0x40 != 0 {
                let n = auth_len(session)?;
                if s.len() < 12 + len + 2 + n {
                    return None;
                }
                Some(s[s.len() - n..].to_vec())
            } else {
                None
            };
            let signed = match &auth_code {
                Some(code) => s[..s.len() - code.len()].to_vec(),
                None => Vec::new(),
            };
            Some(Inbound::V2 {
                ptype,
                encrypted: head[1] & 0x80 != 0,
                session,
                payload,
                signed,
                auth_code,
            })
        }
        _ => None,
    }
}

pub fn decrypt(keys: &SessionKeys, payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() < 32 || payload.len() % 16 != 0 {
        return None;
    }
    let mut buf = payload[16..].to_vec();
    let iv: [u8; 16] = payload[..16].try_into().ok()?;
    let plain = cbc::Decryptor::<aes::Aes128>::new(&keys.aes.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .ok()?;
    let pad = usize::from(*plain.last()?);
    plain
        .len()
        .checked_sub(pad + 1)
        .map(|n| plain[..n].to_vec())
}

fn encrypt(keys: &SessionKeys, data: &[u8]) -> Vec<u8> {
    let iv: [u8; 16] = rand::random();
    let mut buf = data.to_vec();
    let pad = (16 - (buf.len() + 1) % 16) % 16;
    buf.extend((1..=pad as u8).collect::<Vec<_>>());
    buf.push(pad as u8);
    let n = buf.len();
    cbc::Encryptor::<aes::Aes128>::new(&keys.aes.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, n)
        .expect("block multiple");
    let mut out = iv.to_vec();
    out.extend_from_slice(&buf);
    out
}

/// An RMCP+ reply; authenticated and encrypted when `keys` are given.
pub fn reply_v2(
    ptype: u8,
    session: u32,
    seq: u32,
    payload: &[u8],
    keys: Option<&SessionKeys>,
) -> Vec<u8> {
    let body = keys.map_or_else(|| payload.to_vec(), |k| encrypt(k, payload));
    let mut s = vec![0x06, ptype | if keys.is_some() { 0xC0 } else { 0 }];
    s.extend_from_slice(&session.to_le_bytes());
    s.extend_from_slice(&seq.to_le_bytes());
    s.extend_from_slice(&(body.len() as u16).to_le_bytes());
    s.extend_from_slice(&body);
    if let Some(k) = keys {
        while (s.len() + 2) % 4 != 0 {
            s.push(0xFF);
        }
        let pad = (s.len() - 12 - body.len()) as u8;
        s.push(pad);
        s.push(0x07);
        let code = k.suite.hmac(&k.k1, &s);
        s.extend_from_slice(&code[..k.suite.auth_code_len()]);
    }
    let mut out = vec![0x06, 0x00, 0xFF, 0x07];
    out.extend_from_slice(&s);
    out
}

/// An IPMI v1.5 unauthenticated reply.
pub fn reply_v15(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0x06, 0x00, 0xFF, 0x07, 0x00];
    out.extend_from_slice(&[0; 8]);
    out.push(message.len() as u8);
    out.extend_from_slice(message);
    out
}

fn sum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// A request: (netfn, rqSeq byte, cmd, data), checksums verified.
pub fn request(m: &[u8]) -> Option<(u8, u8, u8, Vec<u8>)> {
    if m.len() < 7 || sum(&m[..2]) != m[2] || sum(&m[3..m.len() - 1]) != m[m.len() - 1] {
        return None;
    }
    Some((m[1] >> 2, m[4], m[5], m[6..m.len() - 1].to_vec()))
}

/// The response message to a request.
pub fn response(netfn: u8, seq_byte: u8, cmd: u8, cc: u8, data: &[u8]) -> Vec<u8> {
    let head = [0x81, (netfn + 1) << 2];
    let mut m = head.to_vec();
    m.push(sum(&head));
    let start = m.len();
    m.extend_from_slice(&[0x20, seq_byte, cmd, cc]);
    m.extend_from_slice(data);
    let s = sum(&m[start..]);
    m.push(s);
    m
}
