//! How oob reaches a machine: SSH to the host, the BMC's credentials (by reference, never by
//! value) and its TLS stance.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::bmc::redfish::tls::parse_fingerprint;
use crate::bmc::redfish::tls::TlsPolicy;
use crate::bmc::BmcError;
use crate::secret::Secret;

/// How to reach a host over SSH. The host key is always checked: a known_hosts file or a
/// pinned key, exactly one of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSettings {
    pub user: String,
    /// Private key file (OpenSSH format).
    pub key: PathBuf,
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// `ssh-ed25519 AAAA…` (the key type and base64, as in a .pub file).
    #[serde(default)]
    pub host_key: Option<String>,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// How to run smartctl (e.g. `sudo -n smartctl` for a non-root user).
    #[serde(default = "default_smartctl")]
    pub smartctl: String,
    /// `oob serve` polls SMART and NIC counters over SSH every `hardware_interval_ms`;
    /// `false` leaves the host's hardware to `oob smart|nic NODE` by hand.
    #[serde(default = "default_true")]
    pub poll_hardware: bool,
    /// Where the runbook's host checks look (`oob diagnose NODE`).
    #[serde(default)]
    pub checks: crate::health::host::Paths,
}

fn default_true() -> bool {
    true
}

fn default_ssh_port() -> u16 {
    22
}

fn default_smartctl() -> String {
    "smartctl".to_owned()
}

/// Where a BMC's user and password come from. Exactly one password source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRef {
    pub user: String,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// A Kubernetes Secret `namespace/name` holding `password` (read by the service when it
    /// is used, never stored).
    #[serde(default)]
    pub password_secret: Option<String>,
    /// The Secret was named by a Node annotation: it must carry [`super::CREDENTIAL_LABEL`].
    #[serde(skip)]
    pub labelled_secret: bool,
}

/// TLS stance for a Redfish BMC.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// SHA-256 of the BMC's certificate.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

impl TlsSettings {
    /// The TLS policy this section asks for; the three stances exclude each other.
    pub fn policy(&self) -> Result<TlsPolicy, BmcError> {
        Ok(match (self.insecure, &self.ca_cert, &self.fingerprint) {
            (true, None, None) => TlsPolicy::Insecure,
            (false, Some(path), None) => TlsPolicy::CaFile(path.clone()),
            (false, None, Some(fp)) => TlsPolicy::Fingerprint(parse_fingerprint(fp)?),
            (false, None, None) => TlsPolicy::SystemRoots,
            _ => {
                return Err(BmcError::InvalidAddress {
                    address: "tls settings".into(),
                    reason: "insecure, ca_cert and fingerprint exclude each other".into(),
                })
            }
        })
    }
}

impl CredentialRef {
    /// Exactly one password source.
    pub fn check(&self) -> Result<(), String> {
        let sources = usize::from(self.password_env.is_some())
            + usize::from(self.password_file.is_some())
            + usize::from(self.password_secret.is_some());
        if sources != 1 {
            return Err(
                "set exactly one of credentials.password_env, password_file, password_secret"
                    .into(),
            );
        }
        if let Some(s) = &self.password_secret {
            if s.split('/').filter(|p| !p.is_empty()).count() != 2 {
                return Err(format!(
                    "credentials.password_secret {s:?} must be namespace/name"
                ));
            }
        }
        Ok(())
    }

    /// Read the password from its source. `what` names the machine for messages. A Secret
    /// reference needs the cluster: the executor resolves those.
    pub fn resolve(&self, what: &str) -> Result<Secret, ConfigError> {
        if let Some(secret) = &self.password_secret {
            return Err(ConfigError::Credential {
                what: what.to_owned(),
                detail: format!(
                    "the password is in the Kubernetes Secret {secret}, which needs cluster access"
                ),
            });
        }
        read_password(
            what,
            self.password_env.as_deref(),
            self.password_file.as_deref(),
        )
    }
}

/// Read a password from an environment variable or a file (one trailing newline dropped).
pub fn read_password(
    what: &str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Secret, ConfigError> {
    let err = |detail: String| ConfigError::Credential {
        what: what.to_owned(),
        detail,
    };
    let value = match (env, file) {
        (Some(var), None) => std::env::var(var).map_err(|_| {
            err(format!(
                "environment variable {var} is not set (or not UTF-8)"
            ))
        })?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
            text.strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text)
                .to_owned()
        }
        (None, None) => return Err(err("no password source given".into())),
        (Some(_), Some(_)) => {
            return Err(err(
                "give an environment variable or a file, not both".into()
            ))
        }
    };
    if value.is_empty() {
        return Err(err("the password is empty".into()));
    }
    Ok(Secret::new(value))
}
