//! The configuration file (TOML) and the machine inventory. Credentials are held by
//! reference (an environment variable or a file) and resolved only when a machine is used;
//! their values never appear in errors or `Debug` output. Talks to nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod access;
mod report;
mod service;

pub use access::{read_password, CredentialRef, SshSettings, TlsSettings};
pub use report::{
    shown_url, MailRoute, ReportSettings, SecretSource, SinkSettings, SmtpSettings, SmtpTls,
    WebhookFormat, WebhookSettings,
};
pub use service::{Liveness, PolicySettings, ReplacementSettings, ServiceSettings};

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
    pub replacement: ReplacementSettings,
    /// Report delivery: `[[report.sinks]]` (webhooks, mail) and the outbox's retries.
    #[serde(default)]
    pub report: ReportSettings,
    /// Which Nodes may describe their own BMC (annotations).
    #[serde(default)]
    pub inventory: InventorySettings,
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
    /// BMC address, e.g. `redfish://10.0.0.5/redfish/v1/Systems/1` or `ipmi://10.0.0.6`
    /// (parsed when the settings load).
    pub bmc: crate::bmc::Endpoint,
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
        // The parser's own message quotes the offending source line; that line may hold a
        // secret (a password typed into a BMC address), so only its number is said.
        let mut config: Self = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text.get(..s.start).unwrap_or(text).lines().count().max(1));
            ConfigError::Parse {
                path: path.to_owned(),
                detail: match line {
                    Some(n) => format!("line {n}: {}", e.message().trim()),
                    None => e.message().trim().to_owned(),
                },
            }
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
        let percent = |v: f64| v > 0.0 && v <= 100.0;
        if !percent(p.dark_loss_percent) || !percent(p.nic_loss_percent_max) {
            return Err(invalid(
                "policy.dark_loss_percent and policy.nic_loss_percent_max are percentages above 0, at most 100".into(),
            ));
        }
        if !(p.nic_error_rate_max >= 0.0 && p.nic_error_rate_max.is_finite()) {
            return Err(invalid(
                "policy.nic_error_rate_max is a rate per second, 0 or more".into(),
            ));
        }
        if self.service.probe_interval_ms < 100 || self.service.probe_timeout_ms == 0 {
            return Err(invalid(
                "service.probe_interval_ms must be at least 100 and probe_timeout_ms above 0"
                    .into(),
            ));
        }
        let sv = &self.service;
        if sv.retry_period_ms == 0
            || sv.retry_period_ms >= sv.renew_deadline_s.saturating_mul(1000)
            || sv.renew_deadline_s >= sv.lease_duration_s
        {
            return Err(invalid(
                "service: retry_period_ms < renew_deadline_s < lease_duration_s (like Kubernetes' leader election: 2s, 10s, 15s)".into(),
            ));
        }
        if sv.node_lock_s < 3 {
            return Err(invalid(
                "service.node_lock_s must be at least 3 s (it is renewed every third)".into(),
            ));
        }
        if self.service.concurrency == 0 {
            return Err(invalid("service.concurrency must be at least 1".into()));
        }
        self.report.check().map_err(invalid)?;
        let mut names = std::collections::BTreeSet::new();
        for m in &self.machines {
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

    /// A copy fit to print (`oob config check`): webhook URLs cut to their host, header
    /// values hidden. The rest holds references (variable names, files, Secrets), not values.
    pub fn redacted(&self) -> Self {
        let mut c = self.clone();
        for sink in &mut c.report.sinks {
            if let SinkSettings::Webhook(w) = sink {
                *w = w.redacted();
            }
        }
        c
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

/// `[inventory]`: machines from Node annotations. Whoever may annotate a Node (a kubelet may
/// annotate its own) chooses where oob sends a BMC password: so an annotation may only point
/// at an IP address inside `bmc_networks` (none until listed), and name only a Secret in
/// oob's namespace that is labelled `oob.dev/bmc-credentials: "true"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventorySettings {
    /// Read `oob.dev/bmc` annotations at all.
    pub from_node_annotations: bool,
    /// The networks BMCs named by annotations must be in, e.g. `["10.1.0.0/16"]`.
    pub bmc_networks: Vec<ipnet::IpNet>,
}

impl Default for InventorySettings {
    fn default() -> Self {
        Self {
            from_node_annotations: true,
            bmc_networks: Vec::new(),
        }
    }
}

/// The label a Secret must carry to be named by a Node annotation.
pub const CREDENTIAL_LABEL: (&str, &str) = ("oob.dev/bmc-credentials", "true");

/// Annotations that make a Node part of the inventory without a config entry.
pub mod annotations {
    pub const BMC: &str = "oob.dev/bmc";
    /// `user:secret:name` or `user:secret:namespace/name` (oob's namespace only; the Secret
    /// labelled `oob.dev/bmc-credentials: "true"`).
    pub const CREDENTIALS: &str = "oob.dev/bmc-credentials";
    pub const PROFILE: &str = "oob.dev/bmc-profile";
    pub const SERIAL: &str = "oob.dev/serial";
    /// `site/room/rack/unit` (empty parts allowed).
    pub const LOCATION: &str = "oob.dev/location";
}

impl Machine {
    /// A machine described by a Node's annotations; `None` when it has no `oob.dev/bmc`.
    /// `namespace` is oob's own (the only one an annotation may name a Secret in).
    pub fn from_annotations(
        node: &str,
        a: &std::collections::BTreeMap<String, String>,
        inventory: &InventorySettings,
        namespace: &str,
    ) -> Option<Result<Self, String>> {
        let bmc = a.get(annotations::BMC)?;
        Some((|| {
            let bmc = crate::bmc::Endpoint::parse(bmc).map_err(|e| e.to_string())?;
            let host = bmc.host.trim_start_matches('[').trim_end_matches(']');
            let address: std::net::IpAddr = host.parse().map_err(|_| {
                format!(
                    "{} names the host {host:?}: an annotation must give the BMC's IP address",
                    annotations::BMC
                )
            })?;
            if inventory.bmc_networks.is_empty() {
                return Err(format!(
                    "{} is refused until [inventory] bmc_networks lists the BMC networks",
                    annotations::BMC
                ));
            }
            if !inventory.bmc_networks.iter().any(|n| n.contains(&address)) {
                return Err(format!(
                    "{} {address} is outside [inventory] bmc_networks",
                    annotations::BMC
                ));
            }
            let creds = a
                .get(annotations::CREDENTIALS)
                .ok_or_else(|| format!("{} is missing", annotations::CREDENTIALS))?;
            let mut parts = creds.splitn(3, ':');
            let (user, kind, value) = match (parts.next(), parts.next(), parts.next()) {
                (Some(u), Some(k), Some(v)) if !u.is_empty() && !v.is_empty() => (u, k, v),
                _ => {
                    return Err(format!(
                        "{} {creds:?} is not user:secret:name",
                        annotations::CREDENTIALS
                    ))
                }
            };
            if kind != "secret" {
                return Err(format!(
                    "{}: credential source {kind:?} refused: an annotation may only name a \
                     Secret (env and file sources belong in the config file)",
                    annotations::CREDENTIALS
                ));
            }
            let reference = match value.split_once('/') {
                None => format!("{namespace}/{value}"),
                Some((ns, _)) if ns == namespace => value.to_owned(),
                Some((ns, _)) => {
                    return Err(format!(
                        "{}: the Secret must be in oob's namespace {namespace:?}, not {ns:?}",
                        annotations::CREDENTIALS
                    ))
                }
            };
            let credentials = CredentialRef {
                user: user.to_owned(),
                password_env: None,
                password_file: None,
                password_secret: Some(reference),
                labelled_secret: true,
            };
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
                bmc,
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
        if !self.inventory.from_node_annotations {
            return problems;
        }
        for (name, a) in nodes {
            if self.machines.iter().any(|m| &m.name == name) {
                continue;
            }
            match Machine::from_annotations(name, a, &self.inventory, &self.service.namespace) {
                None => {}
                Some(Ok(m)) => self.machines.push(m),
                Some(Err(e)) => problems.push(format!("node {name}: {e}")),
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests;
