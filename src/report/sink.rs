//! The sinks a message is delivered to: a webhook (POST, TLS verified, bearer token by
//! reference) and mail (SMTP with STARTTLS or TLS, AUTH, text and HTML parts). Each call
//! has its own deadline; credentials are read when used and never appear in errors.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::message::Message;
use crate::bmc::redfish::chain;
use crate::config::{
    SecretSource, SinkSettings, SmtpSettings, SmtpTls, WebhookFormat, WebhookSettings,
};
use crate::secret::Secret;

/// Longest a delivery may take (connect, TLS, request, answer).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink {sink}: no such sink is configured")]
    Unknown { sink: String },
    #[error("sink {sink}: credential: {detail}")]
    Credential { sink: String, detail: String },
    #[error("sink {sink}: {detail}")]
    Setup { sink: String, detail: String },
    #[error("sink {sink}: POST {url}: {detail}")]
    Http {
        sink: String,
        url: String,
        detail: String,
    },
    #[error("sink {sink}: {url} answered {status}: {excerpt}")]
    Refused {
        sink: String,
        url: String,
        status: u16,
        excerpt: String,
    },
    #[error("sink {sink}: mail via {server}: {detail}")]
    Mail {
        sink: String,
        server: String,
        detail: String,
    },
}

/// The configured sinks, ready to deliver.
pub struct Sinks {
    settings: Vec<SinkSettings>,
    client: Option<kube::Client>,
    status_url: Option<String>,
    /// How long a firing Alertmanager alert holds without being repeated: until the next
    /// "still down" (or the messages' expiry), plus an hour.
    firing_for_ms: u64,
}

impl Sinks {
    /// `client` reads credentials kept in Kubernetes Secrets.
    pub fn new(settings: &crate::config::ReportSettings, client: Option<kube::Client>) -> Self {
        Self {
            settings: settings.sinks.clone(),
            client,
            status_url: settings.status_url.clone(),
            firing_for_ms: (if settings.still_down_after_s > 0 {
                settings.still_down_after_s
            } else {
                settings.expire_after_s
            })
            .saturating_add(3600)
            .saturating_mul(1000),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.settings.iter().map(SinkSettings::name).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// Deliver `message` to the sink named `sink`.
    pub async fn deliver(&self, sink: &str, message: &Message) -> Result<(), SinkError> {
        let settings = self
            .settings
            .iter()
            .find(|s| s.name() == sink)
            .ok_or_else(|| SinkError::Unknown {
                sink: sink.to_owned(),
            })?;
        match settings {
            SinkSettings::Webhook(w) => self.webhook(w, message).await,
            SinkSettings::Smtp(s) => self.mail(s, message).await,
        }
    }

    async fn secret(
        &self,
        sink: &str,
        source: &SecretSource,
        default_key: &str,
    ) -> Result<Secret, SinkError> {
        let err = |detail: String| SinkError::Credential {
            sink: sink.to_owned(),
            detail,
        };
        if let Some(local) = source.local(sink) {
            return local.map_err(|e| err(e.to_string()));
        }
        let reference = source.secret.as_deref().unwrap_or_default();
        let Some(client) = &self.client else {
            return Err(err(format!(
                "the credential is in the Kubernetes Secret {reference}, which needs cluster access"
            )));
        };
        let key = source.key.as_deref().unwrap_or(default_key);
        crate::k8s::secret_value(client, reference, key)
            .await
            .map_err(|e| err(e.to_string()))
    }

    async fn webhook(&self, w: &WebhookSettings, m: &Message) -> Result<(), SinkError> {
        let setup = |detail: String| SinkError::Setup {
            sink: w.name.clone(),
            detail,
        };
        let builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("oob/", env!("CARGO_PKG_VERSION")));
        let builder = match &w.ca_cert {
            Some(path) => crate::bmc::redfish::tls::apply(
                builder,
                &crate::bmc::redfish::tls::TlsPolicy::CaFile(path.clone()),
                &w.name,
            )
            .map_err(|e| setup(e.to_string()))?,
            None => builder,
        };
        let http = builder.build().map_err(|e| setup(chain(&e)))?;
        let body = match w.format {
            WebhookFormat::Json => m.document.clone(),
            WebhookFormat::Alertmanager => {
                let until = crate::clock::rfc3339(
                    crate::clock::now_ms().saturating_add(self.firing_for_ms),
                );
                m.alertmanager(self.status_url.as_deref(), Some(&until))
            }
        };
        let mut req = http
            .post(&w.url)
            .header("Idempotency-Key", &m.id)
            .header("X-Oob-Message", &m.id)
            .header("X-Oob-Kind", m.kind.name())
            .json(&body);
        for (k, v) in &w.headers {
            req = req.header(k, v);
        }
        if let Some(source) = &w.token {
            let token = self.secret(&w.name, source, "token").await?;
            req = req.bearer_auth(token.expose());
        }
        // The URL's path and query may be the credential (chat webhooks): errors name the
        // host only.
        let resp = req.send().await.map_err(|e| SinkError::Http {
            sink: w.name.clone(),
            url: crate::config::shown_url(&w.url),
            detail: chain(&e.without_url()),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = tokio::time::timeout(Duration::from_secs(5), resp.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Err(SinkError::Refused {
            sink: w.name.clone(),
            url: crate::config::shown_url(&w.url),
            status: status.as_u16(),
            excerpt: text.chars().take(200).collect(),
        })
    }

    async fn mail(&self, s: &SmtpSettings, m: &Message) -> Result<(), SinkError> {
        let server = format!("{}:{}", s.host, s.port());
        let fail = |detail: String| SinkError::Mail {
            sink: s.name.clone(),
            server: server.clone(),
            detail,
        };
        let email = mail_message(s, m).map_err(&fail)?;
        let tls = match s.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                let mut params = TlsParameters::builder(s.host.clone());
                if let Some(path) = &s.ca_cert {
                    let pem = std::fs::read(path)
                        .map_err(|e| fail(format!("ca_cert {}: {e}", path.display())))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| fail(format!("ca_cert {}: {e}", path.display())))?;
                    params = params
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(cert);
                }
                let params = params.build_rustls().map_err(|e| fail(chain(&e)))?;
                if s.tls == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port())
            .tls(tls)
            .timeout(Some(DELIVERY_TIMEOUT))
            .hello_name(ClientId::Domain(hello_name()));
        if let (Some(user), Some(source)) = (&s.user, &s.password) {
            let password = self.secret(&s.name, source, "password").await?;
            transport =
                transport.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let transport = transport.build();
        // The whole exchange under one deadline (lettre's is per command).
        tokio::time::timeout(DELIVERY_TIMEOUT * 2, transport.send(email))
            .await
            .map_err(|_| fail("timed out".into()))?
            .map(|_| ())
            .map_err(|e| fail(chain(&e)))
    }
}

/// This host's name for EHLO (relays refuse a bare `localhost` less often than a made-up
/// name, but a real name is best).
fn hello_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The mail: to the recipients of the machine's room, text and HTML alternatives, a stable
/// Message-ID (a resend after a crash is the same message), follow-ups threaded on the
/// report.
fn mail_message(s: &SmtpSettings, m: &Message) -> Result<lettre::Message, String> {
    let from: Mailbox = s
        .from
        .parse()
        .map_err(|e| format!("from {:?}: {e}", s.from))?;
    let mut b = lettre::Message::builder()
        .from(from)
        .subject(&m.subject)
        .message_id(Some(message_id(&m.id)));
    for to in s.recipients(&m.location) {
        b = b.to(to
            .parse::<Mailbox>()
            .map_err(|e| format!("to {to:?}: {e}"))?);
    }
    if let Some(parent) = &m.in_reply_to {
        b = b
            .in_reply_to(message_id(parent))
            .references(message_id(parent));
    }
    b.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(m.text.clone()),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(m.html.clone()),
            ),
    )
    .map_err(|e| e.to_string())
}

/// `<id@oob>` with the id's `/` as `.` (a Message-ID's left part is a dot-atom).
fn message_id(id: &str) -> String {
    let local: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{local}@oob>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Location, MailRoute};

    fn smtp() -> SmtpSettings {
        SmtpSettings {
            name: "mail".into(),
            host: "127.0.0.1".into(),
            port: Some(2525),
            tls: SmtpTls::None,
            user: None,
            password: None,
            from: "oob <oob@example.net>".into(),
            to: vec!["noc@example.net".into()],
            routes: vec![
                MailRoute {
                    site: Some("fra1".into()),
                    room: None,
                    to: vec!["fra1@example.net".into()],
                },
                MailRoute {
                    site: Some("fra1".into()),
                    room: Some("hall-1".into()),
                    to: vec!["fra1-hall1@example.net".into()],
                },
            ],
            ca_cert: None,
        }
    }

    #[test]
    fn errors_show_a_webhooks_host_not_its_path() {
        assert_eq!(
            crate::config::shown_url(
                "https://hooks.example.net:8443/services/T0/B1/s3cr3t?token=x"
            ),
            "https://hooks.example.net:8443/…"
        );
    }

    #[test]
    fn the_machines_room_picks_the_recipients() {
        let s = smtp();
        let at = |site: Option<&str>, room: Option<&str>| Location {
            site: site.map(Into::into),
            room: room.map(Into::into),
            ..Location::default()
        };
        assert_eq!(
            s.recipients(&at(Some("fra1"), Some("hall-1"))),
            ["fra1-hall1@example.net"]
        );
        assert_eq!(
            s.recipients(&at(Some("fra1"), Some("hall-2"))),
            ["fra1@example.net"]
        );
        assert_eq!(
            s.recipients(&at(Some("ams1"), Some("hall-1"))),
            ["noc@example.net"]
        );
        assert_eq!(s.recipients(&at(None, None)), ["noc@example.net"]);
    }

    #[test]
    fn the_mail_has_both_parts_a_stable_id_and_threads_follow_ups() {
        let report = super::super::message::tests::report();
        let m = Message::report("node-2/4/report", &report).unwrap();
        let raw = String::from_utf8(mail_message(&smtp(), &m).unwrap().formatted()).unwrap();
        assert!(raw.contains("Message-ID: <node-2.4.report@oob>"), "{raw}");
        assert!(raw.contains("To: fra1-hall1@example.net"), "{raw}");
        assert!(raw.contains("Content-Type: text/plain"), "{raw}");
        assert!(raw.contains("Content-Type: text/html"), "{raw}");
        let f = Message::follow_up(
            super::super::message::Kind::Recovered,
            "node-2/4/recovered",
            "node-2",
            "2026-11-22T12:00:00Z",
            "back",
            &[],
            Some(&m),
        );
        let raw = String::from_utf8(mail_message(&smtp(), &f).unwrap().formatted()).unwrap();
        assert!(raw.contains("In-Reply-To: <node-2.4.report@oob>"), "{raw}");
        assert!(
            raw.contains("Message-ID: <node-2.4.recovered@oob>"),
            "{raw}"
        );
    }
}
