//! RMCP+ cipher suites 3 and 17 (IPMI v2.0 §13.28–13.33): RAKP key-exchange HMACs, session
//! key derivation, integrity AuthCodes and AES-CBC-128 confidentiality. Pure functions.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The two suites `oob` speaks. Suites 0–2 (no or MD5 integrity) are never used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
    Three,
    /// RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128.
    Seventeen,
}

impl Suite {
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            3 => Some(Self::Three),
            17 => Some(Self::Seventeen),
            _ => None,
        }
    }

    pub fn id(self) -> u8 {
        match self {
            Self::Three => 3,
            Self::Seventeen => 17,
        }
    }

    /// (authentication, integrity, confidentiality) algorithm numbers for Open Session.
    pub fn algorithms(self) -> (u8, u8, u8) {
        match self {
            Self::Three => (0x01, 0x01, 0x01),
            Self::Seventeen => (0x03, 0x04, 0x01),
        }
    }

    /// Length of the RAKP 2/3 key-exchange auth code (full HMAC).
    pub fn kex_len(self) -> usize {
        match self {
            Self::Three => 20,
            Self::Seventeen => 32,
        }
    }

    /// Length of the RAKP 4 integrity check value and of session AuthCodes.
    pub fn icv_len(self) -> usize {
        match self {
            Self::Three => 12,
            Self::Seventeen => 16,
        }
    }

    /// HMAC with this suite's hash.
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Self::Three => mac::<Hmac<Sha1>>(key, parts),
            Self::Seventeen => mac::<Hmac<Sha256>>(key, parts),
        }
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length; new_from_slice cannot fail for Hmac.
    let Ok(mut m) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// Session keys derived after RAKP.
#[derive(Clone)]
pub struct Keys {
    pub suite: Suite,
    /// Session Integrity Key.
    pub sik: Vec<u8>,
    /// Integrity key (AuthCodes).
    pub k1: Vec<u8>,
    /// First 16 bytes are the AES-128 key.
    pub k2: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// SIK = HMAC(Kg, Rm | Rc | RoleM | ULenM | UNameM); K1/K2 = HMAC(SIK, 20 × 0x01/0x02).
    /// Kg is the BMC key; when none is set, the user's password (Kuid) is used.
    pub fn derive(
        suite: Suite,
        kg: &[u8],
        rm: &[u8; 16],
        rc: &[u8; 16],
        role: u8,
        user: &[u8],
    ) -> Self {
        let ulen = [u8::try_from(user.len()).unwrap_or(u8::MAX)];
        let sik = suite.hmac(kg, &[rm, rc, &[role], &ulen, user]);
        // const1/const2 are 20 bytes for every suite (§13.32), also with SHA-256: ipmitool
        // and BMCs agree on this, and a 32-byte constant would interoperate with nobody.
        let k1 = suite.hmac(&sik, &[&[1u8; 20]]);
        let k2 = suite.hmac(&sik, &[&[2u8; 20]]);
        Self { suite, sik, k1, k2 }
    }

    /// The truncated integrity AuthCode over `data`.
    pub fn auth_code(&self, data: &[u8]) -> Vec<u8> {
        let mut code = self.suite.hmac(&self.k1, &[data]);
        code.truncate(self.suite.icv_len());
        code
    }

    fn aes_key(&self) -> [u8; 16] {
        let mut key = [0u8; 16];
        for (k, v) in key.iter_mut().zip(&self.k2) {
            *k = *v;
        }
        key
    }

    /// AES-CBC-128 payload: IV ‖ E(data ‖ 1,2,…,n ‖ n) (§13.29).
    pub fn encrypt(&self, data: &[u8], iv: [u8; 16]) -> Vec<u8> {
        let pad = (16 - (data.len() + 1) % 16) % 16;
        let mut buf = Vec::with_capacity(16 + data.len() + pad + 1);
        buf.extend_from_slice(data);
        buf.extend((1..=pad).map(|i| u8::try_from(i).unwrap_or(0)));
        buf.push(u8::try_from(pad).unwrap_or(0));
        let len = buf.len();
        let enc = cbc::Encryptor::<aes::Aes128>::new(&self.aes_key().into(), &iv.into());
        // `len` is a multiple of 16 by construction, so NoPadding cannot fail.
        let cipher = enc
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let mut out = iv.to_vec();
        out.extend_from_slice(&cipher);
        out
    }

    /// Inverse of [`Keys::encrypt`]; `None` for a malformed or badly padded payload.
    pub fn decrypt(&self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() < 32 || payload.len() % 16 != 0 {
            return None;
        }
        let (iv, body) = payload.split_at(16);
        let iv: [u8; 16] = iv.try_into().ok()?;
        let mut buf = body.to_vec();
        let dec = cbc::Decryptor::<aes::Aes128>::new(&self.aes_key().into(), &iv.into());
        let plain = dec.decrypt_padded_mut::<NoPadding>(&mut buf).ok()?;
        let pad = usize::from(*plain.last()?);
        if pad + 1 > plain.len() || pad > 15 {
            return None;
        }
        let data_len = plain.len() - pad - 1;
        let pad_bytes = &plain[data_len..plain.len() - 1];
        if pad_bytes
            .iter()
            .enumerate()
            .any(|(i, b)| usize::from(*b) != i + 1)
        {
            return None;
        }
        Some(plain[..data_len].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_then_decrypt_round_trips_every_length() {
        let keys = Keys::derive(
            Suite::Seventeen,
            b"password",
            &[1; 16],
            &[2; 16],
            0x14,
            b"admin",
        );
        for len in 0..70 {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let enc = keys.encrypt(&data, [7; 16]);
            assert_eq!(enc.len() % 16, 0);
            assert_eq!(keys.decrypt(&enc).as_deref(), Some(&data[..]), "len {len}");
        }
        assert!(keys.decrypt(&[0; 20]).is_none());
    }

    #[test]
    fn hmac_sha1_matches_rfc2202_case_2() {
        let mac = Suite::Three.hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        let mac = Suite::Seventeen.hmac(b"Jefe", &[b"what do ya want for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
