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
    pub service: ServiceSettings,
    #[serde(default)]
    pub policy: PolicySettings,
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
    /// The chassis serial number the BMC must report (identity check), when known.
    #[serde(default)]
    pub serial: Option<String>,
    /// Where the machine is, for the technician's report.
    #[serde(default)]
    pub location: Location,
}

/// Where a machine stands in the datacenter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub room: Option<String>,
    #[serde(default)]
    pub rack: Option<String>,
    /// Rack unit (e.g. `U12`).
    #[serde(default)]
    pub unit: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("site", &self.site),
            ("room", &self.room),
            ("rack", &self.rack),
            ("unit", &self.unit),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
        .collect();
        if parts.is_empty() {
            f.write_str("unknown location")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// How the host's liveness is probed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// ICMP echo (needs CAP_NET_RAW or ping_group_range) and the SSH banner.
    #[default]
    Icmp,
    /// The SSH banner only (TCP): for unprivileged runs and the demo's TCP-only fleet.
    SshPort,
}

/// `[service]`: how `oob serve` runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceSettings {
    /// One probe round (ping, SSH banner, Node Ready) per machine this often.
    #[serde(deserialize_with = "crate::duration::de_millis")]
    pub probe_interval_ms: u64,
    /// BMC health and new SEL entries this often (and at once when a machine is suspect).
    #[serde(deserialize_with = "crate::duration::de_millis")]
    pub hardware_interval_ms: u64,
    /// Echo requests per round and how long to wait for each round.
    pub ping_count: u16,
    #[serde(deserialize_with = "crate::duration::de_millis")]
    pub probe_timeout_ms: u64,
    pub liveness: Liveness,
    /// Machines probed at once.
    pub concurrency: usize,
    /// Namespace of the leader and per-node leases, and of Events' reporting instance.
    pub namespace: String,
    /// The journal (SQLite): intents and outcomes of every action, ladder positions.
    pub journal: PathBuf,
    /// Fault reports (text, JSON, Markdown) are written here.
    pub reports_dir: PathBuf,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub listen: String,
    /// Leader election through a Lease; off for a single instance outside a cluster.
    pub leader_election: bool,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            probe_interval_ms: 2000,
            hardware_interval_ms: 60_000,
            ping_count: 3,
            probe_timeout_ms: 1000,
            liveness: Liveness::Icmp,
            concurrency: 64,
            namespace: "oob-system".into(),
            journal: PathBuf::from("/var/lib/oob/journal.sqlite"),
            reports_dir: PathBuf::from("/var/lib/oob/reports"),
            listen: "0.0.0.0:9464".into(),
            leader_election: true,
        }
    }
}

/// `[policy]`: thresholds, a timeout per ladder step, and the storm guard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// Consecutive failed probe rounds before asking the BMC.
    pub suspect_after: u32,
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub confirm_timeout_s: u64,
    /// Wait for the node's bootID to change and Ready after a soft reboot.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub soft_reboot_timeout_s: u64,
    /// Wait for the node after a verified hard power cycle, before fencing.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub hard_reboot_timeout_s: u64,
    /// Longest wait for a power action to be observed.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub power_verify_timeout_s: u64,
    /// Drain after fencing: how long evictions are retried.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub drain_timeout_s: u64,
    /// Storm guard: remediations (soft/hard reboot, fence) in flight at once.
    pub max_concurrent: usize,
    /// Storm guard: no remediation while more than this share of the fleet is unhealthy;
    /// crossing it trips the breaker, which stays open until `oob breaker reset`.
    pub max_unhealthy_percent: u8,
    /// Per node: no new remediation this long after the last one ended.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub cooldown_s: u64,
    /// Per BMC: at least this long between two mutating calls.
    #[serde(deserialize_with = "crate::duration::de_millis")]
    pub bmc_min_interval_ms: u64,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            suspect_after: 3,
            confirm_timeout_s: 60,
            soft_reboot_timeout_s: 300,
            hard_reboot_timeout_s: 600,
            power_verify_timeout_s: 120,
            drain_timeout_s: 300,
            max_concurrent: 2,
            max_unhealthy_percent: 30,
            cooldown_s: 3600,
            bmc_min_interval_ms: 2000,
        }
    }
}

impl PolicySettings {
    /// The ladder's deadlines, in the stage machine's unit (milliseconds).
    pub fn stages(&self) -> crate::remedy::stage::Policy {
        crate::remedy::stage::Policy {
            suspect_after: self.suspect_after,
            confirm_timeout: self.confirm_timeout_s.saturating_mul(1000),
            soft_reboot_timeout: self.soft_reboot_timeout_s.saturating_mul(1000),
            hard_reboot_timeout: self.hard_reboot_timeout_s.saturating_mul(1000),
        }
    }
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
    /// `oob serve` polls SMART and NIC counters over SSH every `hardware_interval_ms`;
    /// `false` leaves the host's hardware to `oob smart|nic NODE` by hand.
    #[serde(default = "default_true")]
    pub poll_hardware: bool,
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
        let p = &self.policy;
        if p.suspect_after == 0 {
            return Err(invalid("policy.suspect_after must be at least 1".into()));
        }
        if p.max_unhealthy_percent > 100 {
            return Err(invalid(
                "policy.max_unhealthy_percent is a percentage (0-100)".into(),
            ));
        }
        if self.service.probe_interval_ms < 100 || self.service.probe_timeout_ms == 0 {
            return Err(invalid(
                "service.probe_interval_ms must be at least 100 and probe_timeout_ms above 0"
                    .into(),
            ));
        }
        if self.service.concurrency == 0 {
            return Err(invalid("service.concurrency must be at least 1".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        for m in &self.machines {
            crate::bmc::Endpoint::parse(&m.bmc)
                .map_err(|e| invalid(format!("machine {:?}: bmc: {e}", m.name)))?;
            if !names.insert(m.name.as_str()) {
                return Err(invalid(format!("machine {:?} is listed twice", m.name)));
            }
            m.credentials
                .check()
                .map_err(|e| invalid(format!("machine {:?}: {e}", m.name)))?;
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

/// Annotations that make a Node part of the inventory without a config entry.
pub mod annotations {
    pub const BMC: &str = "oob.dev/bmc";
    /// `user:env:VAR`, `user:file:/path` or `user:secret:namespace/name`.
    pub const CREDENTIALS: &str = "oob.dev/bmc-credentials";
    pub const PROFILE: &str = "oob.dev/bmc-profile";
    pub const SERIAL: &str = "oob.dev/serial";
    /// `site/room/rack/unit` (empty parts allowed).
    pub const LOCATION: &str = "oob.dev/location";
}

impl Machine {
    /// A machine described by a Node's annotations; `None` when it has no `oob.dev/bmc`.
    pub fn from_annotations(
        node: &str,
        a: &std::collections::BTreeMap<String, String>,
    ) -> Option<Result<Self, String>> {
        let bmc = a.get(annotations::BMC)?;
        Some((|| {
            crate::bmc::Endpoint::parse(bmc).map_err(|e| e.to_string())?;
            let creds = a
                .get(annotations::CREDENTIALS)
                .ok_or_else(|| format!("{} is missing", annotations::CREDENTIALS))?;
            let mut parts = creds.splitn(3, ':');
            let (user, kind, value) = match (parts.next(), parts.next(), parts.next()) {
                (Some(u), Some(k), Some(v)) if !u.is_empty() && !v.is_empty() => (u, k, v),
                _ => {
                    return Err(format!(
                        "{} {creds:?} is not user:env|file|secret:value",
                        annotations::CREDENTIALS
                    ))
                }
            };
            let mut credentials = CredentialRef {
                user: user.to_owned(),
                password_env: None,
                password_file: None,
                password_secret: None,
            };
            match kind {
                "env" => credentials.password_env = Some(value.to_owned()),
                "file" => credentials.password_file = Some(PathBuf::from(value)),
                "secret" => credentials.password_secret = Some(value.to_owned()),
                other => {
                    return Err(format!(
                        "unknown credential source {other:?} (env, file, secret)"
                    ))
                }
            }
            credentials.check()?;
            let loc: Vec<Option<String>> = a
                .get(annotations::LOCATION)
                .map(|l| {
                    l.split('/')
                        .map(|p| (!p.is_empty()).then(|| p.to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let part = |i: usize| loc.get(i).cloned().flatten();
            Ok(Self {
                name: node.to_owned(),
                host: None,
                bmc: bmc.clone(),
                profile: a.get(annotations::PROFILE).cloned(),
                credentials,
                tls: TlsSettings::default(),
                ssh: None,
                serial: a.get(annotations::SERIAL).cloned(),
                location: Location {
                    site: part(0),
                    room: part(1),
                    rack: part(2),
                    unit: part(3),
                },
            })
        })())
    }
}

impl Config {
    /// Add machines described by Node annotations; the file's entries win on a name clash.
    /// Returns the problems with annotated nodes that were skipped.
    pub fn add_annotated(
        &mut self,
        nodes: &[(String, std::collections::BTreeMap<String, String>)],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, a) in nodes {
            if self.machines.iter().any(|m| &m.name == name) {
                continue;
            }
            match Machine::from_annotations(name, a) {
                None => {}
                Some(Ok(m)) => self.machines.push(m),
                Some(Err(e)) => problems.push(format!("node {name}: {e}")),
            }
        }
        problems
    }
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
    fn nodes_join_the_inventory_by_annotation_and_the_file_wins() {
        let mut c = Config::parse("t.toml", SAMPLE).unwrap();
        let ann = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let good = ann(&[
            (annotations::BMC, "redfish://10.0.0.9/redfish/v1/Systems/1"),
            (
                annotations::CREDENTIALS,
                "admin:secret:oob-system/bmc-node-9",
            ),
            (annotations::SERIAL, "SN9"),
            (annotations::LOCATION, "fra1//r12/U7"),
        ]);
        let nodes = vec![
            ("node-9".to_owned(), good.clone()),
            ("node-1".to_owned(), good.clone()),
            ("plain".to_owned(), ann(&[])),
            (
                "bad".to_owned(),
                ann(&[
                    (annotations::BMC, "redfish://h"),
                    (annotations::CREDENTIALS, "admin:vault:x"),
                ]),
            ),
        ];
        let problems = c.add_annotated(&nodes);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("vault"));
        assert_eq!(
            c.machines.len(),
            2,
            "node-1 stays the file's, plain is not inventory"
        );
        let m = c.machine("node-9").unwrap();
        assert_eq!(
            m.credentials.password_secret.as_deref(),
            Some("oob-system/bmc-node-9")
        );
        assert_eq!(m.location.rack.as_deref(), Some("r12"));
        assert_eq!(m.location.room, None);
        assert_eq!(
            c.machine("node-1").unwrap().bmc,
            "redfish+http://127.0.0.1:8000/redfish/v1/Systems/1"
        );
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
