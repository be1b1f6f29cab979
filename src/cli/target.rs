//! Which machine a command acts on: an inventory name from the config file, or an ad hoc
//! `--bmc URL --user U --password-env VAR`. Resolves credentials and TLS policy and connects.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;

use crate::bmc::connect;
use crate::bmc::power::PowerTiming;
use crate::bmc::profile::{Profile, Profiles};
use crate::bmc::redfish::tls::TlsPolicy;
use crate::bmc::redfish::Credentials;
use crate::bmc::{Bmc, Endpoint};
use crate::config::{read_password, Config, TlsSettings};

use super::Format;

/// Shared by every command.
pub struct Context {
    pub config: Option<Config>,
    pub profiles: Profiles,
    pub format: Format,
    pub dry_run: bool,
}

impl Context {
    pub fn new(config: Option<&Path>, format: Format, dry_run: bool) -> anyhow::Result<Self> {
        let config = config.map(Config::load).transpose()?;
        let profiles = match config.as_ref().and_then(|c| c.profiles_dir.as_deref()) {
            Some(dir) => Profiles::with_overrides(dir)?,
            None => Profiles::embedded()?,
        };
        Ok(Self {
            config,
            profiles,
            format,
            dry_run,
        })
    }
}

/// A machine by inventory name, or an ad hoc BMC.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Machine (node) names from the config file; read commands take several. Omit when
    /// using --bmc.
    pub targets: Vec<String>,
    /// Every machine in the config file (read commands).
    #[arg(long, conflicts_with = "bmc")]
    pub all: bool,
    /// Read commands over several targets: how many BMCs at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Read commands over several targets: seconds allowed per BMC (connect, read, close).
    #[arg(long, default_value_t = 30, value_parser = crate::duration::secs)]
    pub deadline: u64,
    /// BMC address: redfish[+http|+https]://host[:port][/redfish/v1/Systems/ID], ipmi://host[:port].
    #[arg(long)]
    pub bmc: Option<String>,
    /// BMC user (with --bmc).
    #[arg(long)]
    pub user: Option<String>,
    /// Environment variable holding the BMC password.
    #[arg(long)]
    pub password_env: Option<String>,
    /// File holding the BMC password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Accept any TLS certificate (logged as a warning).
    #[arg(long, conflicts_with_all = ["ca_cert", "fingerprint"])]
    pub insecure: bool,
    /// Trust only this CA certificate (PEM) for the BMC.
    #[arg(long, conflicts_with = "fingerprint")]
    pub ca_cert: Option<PathBuf>,
    /// Pin the BMC certificate by its SHA-256 fingerprint.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// BMC profile id (see `oob profile list`); default: from the address, then detection.
    #[arg(long)]
    pub profile: Option<String>,
    /// Seconds to wait for a power action to be observed (default: the profile's).
    #[arg(long, value_parser = crate::duration::secs)]
    pub verify_timeout: Option<u64>,
    /// IPMI: RMCP+ cipher suite (3 or 17) instead of the profile's list.
    #[arg(long)]
    pub cipher_suite: Option<u8>,
    /// IPMI: session privilege (operator or administrator) instead of the profile's.
    #[arg(long)]
    pub privilege: Option<String>,
}

/// A connected BMC and what the commands need to know about it.
pub struct Connected {
    pub name: String,
    pub bmc: Box<dyn Bmc>,
    pub profile: Profile,
    pub timing: PowerTiming,
}

struct Resolved {
    name: String,
    endpoint: Endpoint,
    creds: Credentials,
    tls: TlsPolicy,
    profile: Option<String>,
}

impl TargetArgs {
    /// True when the command names more than one machine (or --all).
    pub fn is_fleet(&self) -> bool {
        self.all || self.targets.len() > 1
    }

    /// The machine names a fleet command runs over, in order.
    pub fn names(&self, ctx: &Context) -> anyhow::Result<Vec<String>> {
        if self.bmc.is_some() {
            bail!("--bmc names one BMC; use machine names from --config for several");
        }
        if self.all {
            let config = ctx.config.as_ref().context("--all needs --config FILE")?;
            return Ok(config.machines.iter().map(|m| m.name.clone()).collect());
        }
        Ok(self.targets.clone())
    }

    fn resolve(&self, ctx: &Context) -> anyhow::Result<Resolved> {
        match (self.targets.as_slice(), &self.bmc) {
            (_, Some(_)) if self.all => bail!("give --all or --bmc, not both"),
            ([], None) if self.all => bail!("--all is for read commands over the whole inventory"),
            ([_, _, ..], _) => bail!("this command takes one target"),
            ([_], Some(_)) => bail!("give a machine name or --bmc, not both"),
            ([], None) => bail!("no target: give a machine name (with --config) or --bmc URL"),
            ([], Some(address)) => {
                let endpoint = Endpoint::parse(address)?;
                let user = self.user.clone().context("--bmc needs --user")?;
                let password = read_password(
                    &endpoint.authority(),
                    self.password_env.as_deref(),
                    self.password_file.as_deref(),
                )?;
                let settings = TlsSettings {
                    insecure: self.insecure,
                    ca_cert: self.ca_cert.clone(),
                    fingerprint: self.fingerprint.clone(),
                };
                Ok(Resolved {
                    name: endpoint.authority(),
                    endpoint,
                    creds: Credentials { user, password },
                    tls: settings.policy()?,
                    profile: self.profile.clone(),
                })
            }
            ([name], None) => {
                let config = ctx
                    .config
                    .as_ref()
                    .with_context(|| format!("{name:?}: machine names need --config FILE"))?;
                let machine = config.machine(name)?;
                let endpoint = machine.bmc.clone();
                let password = machine.credentials.resolve(name)?;
                Ok(Resolved {
                    name: name.clone(),
                    endpoint,
                    creds: Credentials {
                        user: machine.credentials.user.clone(),
                        password,
                    },
                    tls: machine.tls.policy()?,
                    profile: self.profile.clone().or_else(|| machine.profile.clone()),
                })
            }
        }
    }

    /// The same arguments, aimed at one machine of the inventory.
    pub fn for_name(&self, name: &str) -> Self {
        Self {
            targets: vec![name.to_owned()],
            all: false,
            ..self.clone()
        }
    }

    /// Resolve and connect.
    pub async fn connect(&self, ctx: &Context) -> anyhow::Result<Connected> {
        let r = self.resolve(ctx)?;
        let what = match r.name == r.endpoint.authority() {
            true => format!("connecting to {}", r.endpoint),
            false => format!("{}: connecting to {}", r.name, r.endpoint),
        };
        let spec = connect::Spec {
            endpoint: r.endpoint,
            creds: r.creds,
            tls: r.tls,
            profile: r.profile,
            cipher_suite: self.cipher_suite,
            privilege: self.privilege.clone(),
            verify_timeout: self.verify_timeout.map(Duration::from_secs),
        };
        let c = connect::connect(spec, &ctx.profiles).await.context(what)?;
        Ok(Connected {
            name: r.name,
            bmc: c.bmc,
            profile: c.profile,
            timing: c.timing,
        })
    }
}
