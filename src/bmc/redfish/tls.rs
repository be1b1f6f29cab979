//! TLS policy for Redfish: verification on by default (system roots), or a per-BMC CA file,
//! or a SHA-256 certificate fingerprint pin, or (only when asked for, with a warning)
//! no verification. Builds the rustls configuration handed to reqwest; connects to nothing.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::bmc::BmcError;

/// How the BMC's certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum TlsPolicy {
    /// The system's trust store and the host name (reqwest's default).
    #[default]
    SystemRoots,
    /// Only the CA certificate(s) in this PEM file, and the host name.
    CaFile(PathBuf),
    /// The leaf certificate's SHA-256 must equal this; host name and expiry are not checked
    /// (a pin is stronger than both, and BMC certificates rarely name their IP).
    Fingerprint([u8; 32]),
    /// Accept any certificate. Logged as a warning on every connection to a BMC.
    Insecure,
}

/// Parse `SHA256:AB:CD:…`, `ab:cd:…` or 64 hex digits.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], BmcError> {
    let bad = |reason: &str| BmcError::InvalidAddress {
        address: format!("fingerprint {text:?}"),
        reason: reason.to_owned(),
    };
    let body = text
        .strip_prefix("SHA256:")
        .or_else(|| text.strip_prefix("sha256:"))
        .unwrap_or(text);
    let hex: String = body.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return Err(bad("a SHA-256 fingerprint has 64 hex digits"));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2).ok_or_else(|| bad("not hex"))?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad("not hex"))?;
    }
    Ok(out)
}

/// SHA-256 of a DER certificate, as `AB:CD:…` (what `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Apply the policy to a reqwest builder.
pub fn apply(
    builder: reqwest::ClientBuilder,
    policy: &TlsPolicy,
    bmc: &str,
) -> Result<reqwest::ClientBuilder, BmcError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_err = |reason: String| BmcError::Client {
        bmc: bmc.to_owned(),
        reason,
    };
    let config_builder = || {
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| client_err(e.to_string()))
    };
    let config = match policy {
        TlsPolicy::SystemRoots => return Ok(builder),
        TlsPolicy::CaFile(path) => {
            let local = |detail: String| BmcError::Local {
                path: path.display().to_string(),
                detail,
            };
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| local(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| local(e.to_string()))?;
            if certs.is_empty() {
                return Err(local("no PEM certificate in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| local(e.to_string()))?;
            }
            config_builder()?
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
        TlsPolicy::Fingerprint(pin) => config_builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                pin: Some(*pin),
                provider: provider.clone(),
            }))
            .with_no_client_auth(),
        TlsPolicy::Insecure => config_builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                pin: None,
                provider: provider.clone(),
            }))
            .with_no_client_auth(),
    };
    Ok(builder.tls_backend_preconfigured(config))
}

/// Pin check (or, with no pin, acceptance) of the leaf certificate. Handshake signatures are
/// still verified, so the peer must hold the certificate's private key.
#[derive(Debug)]
struct Verifier {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) if Sha256::digest(end_entity.as_ref()).as_slice() == pin => {
                Ok(ServerCertVerified::assertion())
            }
            Some(_) => Err(rustls::Error::General(format!(
                "certificate fingerprint {} does not match the pinned one",
                fingerprint_of(end_entity.as_ref())
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_the_usual_spellings() {
        let hex = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{colons}")).unwrap(),
            [0xab; 32]
        );
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
        assert_eq!(fingerprint_of(b"").len(), 32 * 3 - 1);
    }
}
