//! `[report]` and `[[report.sinks]]`: where fault reports and their follow-ups are delivered
//! besides the reports directory (webhooks, mail), and how long the outbox keeps trying.
//! Credentials are references (environment, file, Kubernetes Secret), resolved when used.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// `[report]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSettings {
    /// Where every report and follow-up goes (each sink gets each message once).
    pub sinks: Vec<SinkSettings>,
    /// A failed delivery is tried again after this, doubling up to `retry_max_s`.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub retry_min_s: u64,
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub retry_max_s: u64,
    /// A message not delivered this long after it was written is given up (counted and
    /// shown by `oob report status`, the files stay).
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub expire_after_s: u64,
    /// While a reported machine still waits for hands, a follow-up says so every this
    /// long ("still down after 4 hours"); 0 turns it off.
    #[serde(deserialize_with = "crate::duration::de_secs")]
    pub still_down_after_s: u64,
    /// The status page as people reach it (`https://oob.example.net/`), for links in
    /// messages; none when unset.
    pub status_url: Option<String>,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            sinks: Vec::new(),
            retry_min_s: 10,
            retry_max_s: 900,
            // A long weekend with the mail relay down loses nothing.
            expire_after_s: 4 * 24 * 3600,
            still_down_after_s: 4 * 3600,
            status_url: None,
        }
    }
}

/// One `[[report.sinks]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SinkSettings {
    Webhook(WebhookSettings),
    Smtp(SmtpSettings),
}

impl SinkSettings {
    pub fn name(&self) -> &str {
        match self {
            Self::Webhook(w) => &w.name,
            Self::Smtp(s) => &s.name,
        }
    }
}

/// The document a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookFormat {
    /// The report's JSON document (the `.json` file), or the follow-up's.
    #[default]
    Json,
    /// An Alertmanager `POST /api/v2/alerts` body: a list of one alert, resolved
    /// (`endsAt`) by the follow-up that says the machine is back.
    Alertmanager,
}

/// A webhook: POST, TLS verified (system roots or `ca_cert`). The URL's path and query and
/// the headers' values may be credentials (chat webhooks, API keys): `Debug` and
/// [`WebhookSettings::redacted`] hide them.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Extra request headers (not for credentials: those go in `token`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub token: Option<SecretSource>,
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

impl WebhookSettings {
    /// A copy fit to print: the URL cut to scheme, host and port, header values hidden.
    pub fn redacted(&self) -> Self {
        Self {
            url: shown_url(&self.url),
            headers: self
                .headers
                .keys()
                .map(|k| (k.clone(), "(hidden)".to_owned()))
                .collect(),
            ..self.clone()
        }
    }
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.redacted();
        f.debug_struct("WebhookSettings")
            .field("name", &r.name)
            .field("url", &r.url)
            .field("format", &r.format)
            .field("headers", &r.headers)
            .field("token", &r.token)
            .field("ca_cert", &r.ca_cert)
            .finish()
    }
}

/// A webhook URL as messages show it: scheme, host and port (the path may be a secret).
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(webhook url)".to_owned(),
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only without credentials (a relay on the same host).
    None,
}

/// Mail through an SMTP relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub name: String,
    pub host: String,
    /// Default: 587 (STARTTLS), 465 (TLS), 25 (none).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<SecretSource>,
    pub from: String,
    /// Recipients when no route matches the machine's location.
    pub to: Vec<String>,
    /// Recipients by site and room: the most specific route that matches wins.
    #[serde(default)]
    pub routes: Vec<MailRoute>,
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

impl SmtpSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }

    /// The recipients for a machine at `location`: the route naming its site and room,
    /// else its site, else the default list.
    pub fn recipients(&self, location: &super::Location) -> &[String] {
        let matches = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        self.routes
            .iter()
            .filter(|r| matches(&r.site, &location.site) && matches(&r.room, &location.room))
            .max_by_key(|r| usize::from(r.site.is_some()) + usize::from(r.room.is_some()))
            .map_or(self.to.as_slice(), |r| r.to.as_slice())
    }
}

/// Recipients for the machines of one site and/or room.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailRoute {
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub room: Option<String>,
    pub to: Vec<String>,
}

/// Where a credential comes from: exactly one of an environment variable, a file, or a
/// key of a Kubernetes Secret (`namespace/name`, key `key`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub secret: Option<String>,
    /// The Secret's key (default `token` for a webhook, `password` for mail).
    #[serde(default)]
    pub key: Option<String>,
}

impl SecretSource {
    fn check(&self, what: &str) -> Result<(), String> {
        let n = usize::from(self.env.is_some())
            + usize::from(self.file.is_some())
            + usize::from(self.secret.is_some());
        if n != 1 {
            return Err(format!("{what}: set exactly one of env, file, secret"));
        }
        if let Some(s) = &self.secret {
            if s.split('/').filter(|p| !p.is_empty()).count() != 2 {
                return Err(format!("{what}: secret {s:?} must be namespace/name"));
            }
        } else if self.key.is_some() {
            return Err(format!("{what}: key is for a Kubernetes Secret only"));
        }
        Ok(())
    }

    /// The value from the environment or a file; `None` for a Kubernetes Secret (the
    /// caller reads that one with its client).
    pub fn local(&self, what: &str) -> Option<Result<Secret, super::ConfigError>> {
        if self.secret.is_some() {
            return None;
        }
        Some(super::read_password(
            what,
            self.env.as_deref(),
            self.file.as_deref(),
        ))
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl ReportSettings {
    /// The sinks' names, in order.
    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.name().to_owned()).collect()
    }

    /// Names unique, addresses well-formed, credentials never over a plain connection.
    pub fn check(&self) -> Result<(), String> {
        if self.retry_min_s == 0 || self.retry_max_s < self.retry_min_s {
            return Err("report.retry_min_s must be above 0 and at most report.retry_max_s".into());
        }
        if self.expire_after_s == 0 {
            return Err("report.expire_after_s must be above 0".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for sink in &self.sinks {
            let name = sink.name();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(format!(
                    "report sink name {name:?}: letters, digits, '-', '_' and '.' only"
                ));
            }
            if !names.insert(name) {
                return Err(format!("report sink {name:?} is listed twice"));
            }
            let what = format!("report sink {name:?}");
            match sink {
                SinkSettings::Webhook(w) => {
                    let url = url::Url::parse(&w.url).map_err(|e| format!("{what}: url: {e}"))?;
                    let host = url.host_str().unwrap_or_default();
                    match url.scheme() {
                        "https" => {}
                        // Plain HTTP only to this host (a local relay, the demo).
                        "http" if is_loopback_host(host) => {}
                        "http" => {
                            return Err(format!(
                                "{what}: plain http only to a loopback address; use https"
                            ))
                        }
                        other => return Err(format!("{what}: unsupported scheme {other:?}")),
                    }
                    if !url.username().is_empty() || url.password().is_some() {
                        return Err(format!(
                            "{what}: no credentials in the url; use token = {{ env | file | secret }}"
                        ));
                    }
                    for header in w.headers.keys() {
                        if header.eq_ignore_ascii_case("authorization") {
                            return Err(format!(
                                "{what}: the Authorization header comes from token, not headers"
                            ));
                        }
                    }
                    if let Some(t) = &w.token {
                        t.check(&format!("{what}: token"))?;
                        if url.scheme() == "http" {
                            return Err(format!("{what}: a token only over https"));
                        }
                    }
                }
                SinkSettings::Smtp(s) => {
                    if s.host.is_empty() {
                        return Err(format!("{what}: host is empty"));
                    }
                    if s.to.is_empty() {
                        return Err(format!(
                            "{what}: to needs at least one address (the fallback of routes)"
                        ));
                    }
                    for addr in std::iter::once(&s.from)
                        .chain(&s.to)
                        .chain(s.routes.iter().flat_map(|r| &r.to))
                    {
                        addr.parse::<lettre::message::Mailbox>()
                            .map_err(|e| format!("{what}: address {addr:?}: {e}"))?;
                    }
                    if s.routes.iter().any(|r| r.to.is_empty()) {
                        return Err(format!(
                            "{what}: every route needs at least one address in to"
                        ));
                    }
                    if s.user.is_some() != s.password.is_some() {
                        return Err(format!("{what}: user and password go together"));
                    }
                    if let Some(p) = &s.password {
                        p.check(&format!("{what}: password"))?;
                        if s.tls == SmtpTls::None {
                            return Err(format!(
                                "{what}: credentials are never sent without TLS (tls = \"starttls\" or \"tls\")"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
