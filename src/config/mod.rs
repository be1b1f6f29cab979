//! The configuration file (TOML) and the machine inventory. Credentials are held by
//! reference (an environment variable or a file) and resolved only when a machine is used;
//! their values never appear in errors or `Debug` output. Talks to nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Errors reading the configuration or resolving a credential.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{path}: {detail}")]
    Parse { path: String, detail: String },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
    #[error("no machine named {name:?} in {path} (known: {known})")]
    UnknownMachine {
        name: String,
        path: String,
        known: String,
    },
    #[error("credential for {what}: {detail}")]
    Credential { what: String, detail: String },
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Extra or overriding BMC profiles (`*.toml`).
    #[serde(default)]
    pub profiles_dir: Option<PathBuf>,
    #[serde(default)]
    pub machines: Vec<Machine>,
    /// Where the file was read from, for messages.
    #[serde(skip)]
    pub path: String,
}

/// One machine of the inventory; `name` is the Kubernetes node name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub name: String,
    /// The host's own address (for ping and SSH), when it differs from the node name.
    #[serde(default)]
    pub host: Option<String>,
    /// BMC address, e.g. `redfish://10.0.0.5/redfish/v1/Systems/1` or `ipmi://10.0.0.6`.
    pub bmc: String,
    #[serde(default)]
    pub profile: Option<String>,
    pub credentials: CredentialRef,
    #[serde(default)]
    pub tls: TlsSettings,
    /// SSH access to the host itself (smartctl, NIC counters, soft reboot).
    #[serde(default)]
    pub ssh: Option<SshSettings>,
}

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

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        Self::parse(&shown, &text)
    }

    pub fn parse(path: &str, text: &str) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        config.path = path.to_owned();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |detail: String| ConfigError::Invalid {
            path: self.path.clone(),
            detail,
        };
        let mut names = std::collections::BTreeSet::new();
        for m in &self.machines {
            if !names.insert(m.name.as_str()) {
                return Err(invalid(format!("machine {:?} is listed twice", m.name)));
            }
            let sources = usize::from(m.credentials.password_env.is_some())
                + usize::from(m.credentials.password_file.is_some());
            if sources != 1 {
                return Err(invalid(format!(
                    "machine {:?}: set exactly one of credentials.password_env, credentials.password_file",
                    m.name
                )));
            }
            if let Some(ssh) = &m.ssh {
                if ssh.known_hosts.is_some() == ssh.host_key.is_some() {
                    return Err(invalid(format!(
                        "machine {:?}: ssh needs exactly one of known_hosts, host_key",
                        m.name
                    )));
                }
            }
            let tls = usize::from(m.tls.insecure)
                + usize::from(m.tls.ca_cert.is_some())
                + usize::from(m.tls.fingerprint.is_some());
            if tls > 1 {
                return Err(invalid(format!(
                    "machine {:?}: tls.insecure, tls.ca_cert and tls.fingerprint exclude each other",
                    m.name
                )));
            }
        }
        Ok(())
    }

    pub fn machine(&self, name: &str) -> Result<&Machine, ConfigError> {
        self.machines
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ConfigError::UnknownMachine {
                name: name.to_owned(),
                path: self.path.clone(),
                known: self
                    .machines
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl CredentialRef {
    /// Read the password from its source. `what` names the machine for messages.
    pub fn resolve(&self, what: &str) -> Result<Secret, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[machines]]
name = "node-1"
bmc = "redfish+http://127.0.0.1:8000/redfish/v1/Systems/1"
credentials = { user = "admin", password_env = "OOB_TEST_PW_UNSET_1" }
"#;

    #[test]
    fn a_machine_is_found_by_name_and_unknown_names_list_the_known() {
        let c = Config::parse("t.toml", SAMPLE).unwrap();
        assert_eq!(c.machine("node-1").unwrap().credentials.user, "admin");
        let err = c.machine("node-9").unwrap_err().to_string();
        assert!(err.contains("node-1"), "{err}");
    }

    #[test]
    fn two_password_sources_or_none_are_refused() {
        let both = SAMPLE.replace(
            "password_env = \"OOB_TEST_PW_UNSET_1\"",
            "password_env = \"X\", password_file = \"/f\"",
        );
        assert!(Config::parse("t", &both).is_err());
        let none = SAMPLE.replace(", password_env = \"OOB_TEST_PW_UNSET_1\"", "");
        assert!(Config::parse("t", &none).is_err());
        let typo = SAMPLE.replace("bmc =", "bcm =");
        assert!(matches!(
            Config::parse("t", &typo),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn a_missing_env_password_names_the_variable_not_a_value() {
        let c = Config::parse("t.toml", SAMPLE).unwrap();
        let err = c.machines[0]
            .credentials
            .resolve("node-1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("OOB_TEST_PW_UNSET_1"), "{err}");
    }

    #[test]
    fn a_password_file_loses_its_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, " s3cret \n").unwrap();
        let s = read_password("m", None, Some(&path)).unwrap();
        assert_eq!(s.expose(), " s3cret ");
    }
}
