//! The machine room's inboxes for the demo: a webhook receiver (HTTP POST of JSON) and a
//! mailbox (an SMTP server). Both keep what they received, in order, so that the demo can
//! check that every report arrived exactly once. As strict as the real ones where it
//! matters: the webhook wants `application/json` that parses; the mailbox speaks RFC 5321
//! in order (EHLO before MAIL, RCPT before DATA), wants CRLF line ends and undoes
//! dot-stuffing. Loopback only; stopped when dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

use crate::serve::{self, Running};

/// One POST the webhook took.
#[derive(Debug, Clone)]
pub struct Posted {
    pub path: String,
    /// The `Idempotency-Key` header.
    pub key: Option<String>,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Inbox {
    posts: Arc<Mutex<Vec<Posted>>>,
}

/// A webhook receiver on loopback.
pub struct Webhook {
    inbox: Inbox,
    pub addr: SocketAddr,
    _server: Running,
}

async fn receive(
    State(inbox): State<Inbox>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "want application/json\n",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON\n");
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    inbox
        .posts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Posted {
            path: uri.path().to_owned(),
            key,
            body,
        });
    (StatusCode::OK, "ok\n")
}

impl Webhook {
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        anyhow::ensure!(serve::may_bind(addr.ip()), "mocks listen on loopback only");
        let inbox = Inbox::default();
        let router = Router::new()
            .route("/{*path}", post(receive))
            .with_state(inbox.clone());
        let server = serve::serve(addr, router, None).await?;
        Ok(Self {
            inbox,
            addr: server.addr,
            _server: server,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything received, in order.
    pub fn posts(&self) -> Vec<Posted> {
        self.inbox
            .posts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One mail the mailbox took.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body), dot-stuffing undone.
    pub data: String,
}

impl Mail {
    /// A header's value (the first, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_owned());
                }
            }
        }
        value
    }
}

/// An SMTP server on loopback (no TLS, no AUTH: the demo's relay on the same host).
pub struct Mailbox {
    mails: Arc<Mutex<Vec<Mail>>>,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Longest line (RFC 5321: 1000 octets with CRLF) and message this mailbox takes.
const LINE_MAX: usize = 1000;
const MESSAGE_MAX: usize = 10 * 1024 * 1024;
/// A client silent this long is dropped.
const IDLE: Duration = Duration::from_secs(30);

impl Mailbox {
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        anyhow::ensure!(serve::may_bind(addr.ip()), "mocks listen on loopback only");
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let kept = mails.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let _ = session(stream, &kept).await;
                });
            }
        });
        Ok(Self { mails, addr, task })
    }

    /// Everything received, in order.
    pub fn mails(&self) -> Vec<Mail> {
        lock(&self.mails).clone()
    }
}

fn lock(m: &Mutex<Vec<Mail>>) -> MutexGuard<'_, Vec<Mail>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read one CRLF-terminated line; `None` at EOF or idle timeout, `Err` for a bare LF or an
/// overlong line.
async fn line(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> anyhow::Result<Option<Result<String, &'static str>>> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(
        IDLE,
        r.take(LINE_MAX as u64 + 1).read_until(b'\n', &mut buf),
    )
    .await
    .map_err(|_| anyhow::anyhow!("idle"))??;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        return Ok(Some(Err("500 5.5.6 line too long")));
    }
    if !buf.ends_with(b"\r\n") {
        return Ok(Some(Err("500 5.5.2 lines end with CRLF")));
    }
    buf.truncate(buf.len() - 2);
    Ok(Some(Ok(String::from_utf8_lossy(&buf).into_owned())))
}

fn path_arg(rest: &str) -> Option<String> {
    let rest = rest.trim();
    let start = rest.find('<')?;
    let end = rest[start..].find('>')? + start;
    Some(rest[start + 1..end].to_owned())
}

async fn session(stream: tokio::net::TcpStream, mails: &Mutex<Vec<Mail>>) -> anyhow::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 mailbox.oob-mocks ESMTP ready\r\n")
        .await?;
    let mut greeted = false;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    loop {
        let Some(got) = line(&mut r).await? else {
            return Ok(());
        };
        let cmd = match got {
            Ok(c) => c,
            Err(reply) => {
                w.write_all(format!("{reply}\r\n").as_bytes()).await?;
                continue;
            }
        };
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO ") || upper.starts_with("HELO ") {
            greeted = true;
            from = None;
            to.clear();
            if upper.starts_with("EHLO") {
                "250-mailbox.oob-mocks\r\n250-8BITMIME\r\n250 SIZE 10485760".into()
            } else {
                "250 mailbox.oob-mocks".into()
            }
        } else if upper.starts_with("MAIL FROM:") {
            if !greeted {
                "503 5.5.1 EHLO first".into()
            } else if from.is_some() {
                "503 5.5.1 nested MAIL".into()
            } else if let Some(addr) = path_arg(&cmd[10..]) {
                from = Some(addr);
                "250 2.1.0 ok".into()
            } else {
                "501 5.1.7 bad sender".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            if from.is_none() {
                "503 5.5.1 MAIL first".into()
            } else if let Some(addr) = path_arg(&cmd[8..]).filter(|a| a.contains('@')) {
                to.push(addr);
                "250 2.1.5 ok".into()
            } else {
                "501 5.1.3 bad recipient".into()
            }
        } else if upper == "DATA" {
            if to.is_empty() {
                "503 5.5.1 RCPT first".into()
            } else {
                w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                let mut too_big = false;
                loop {
                    let Some(got) = line(&mut r).await? else {
                        return Ok(());
                    };
                    let Ok(l) = got else {
                        too_big = true;
                        continue;
                    };
                    if l == "." {
                        break;
                    }
                    let l = l.strip_prefix('.').unwrap_or(&l);
                    if data.len() + l.len() > MESSAGE_MAX {
                        too_big = true;
                    } else {
                        data.push_str(l);
                        data.push_str("\r\n");
                    }
                }
                let reply = if too_big {
                    "552 5.3.4 message refused (size or line length)"
                } else {
                    lock(mails).push(Mail {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut to),
                        data,
                    });
                    "250 2.0.0 queued"
                };
                from = None;
                to.clear();
                reply.into()
            }
        } else if upper == "RSET" {
            from = None;
            to.clear();
            "250 2.0.0 ok".into()
        } else if upper == "NOOP" {
            "250 2.0.0 ok".into()
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "500 5.5.1 command not recognised".into()
        };
        w.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn talk(addr: SocketAddr, script: &[&str]) -> Vec<String> {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        let mut replies = Vec::new();
        let mut l = String::new();
        r.read_line(&mut l).await.unwrap();
        for cmd in script {
            w.write_all(cmd.as_bytes()).await.unwrap();
            if cmd.ends_with("\r\n") && !cmd.starts_with("body") {
                loop {
                    l.clear();
                    r.read_line(&mut l).await.unwrap();
                    replies.push(l.trim_end().to_owned());
                    if l.as_bytes().get(3) != Some(&b'-') {
                        break;
                    }
                }
            }
        }
        replies
    }

    #[tokio::test]
    async fn the_mailbox_keeps_the_order_of_the_protocol_and_undoes_dot_stuffing() {
        let mb = Mailbox::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let replies = talk(
            mb.addr,
            &[
                "MAIL FROM:<a@example.net>\r\n",
                "EHLO test\r\n",
                "DATA\r\n",
                "MAIL FROM:<a@example.net>\r\n",
                "RCPT TO:<b@example.net>\r\n",
                "DATA\r\n",
                "Subject: hi\r\n\r\n..dotted\r\nline\n",
                ".\r\n",
                "QUIT\r\n",
            ],
        )
        .await;
        assert!(replies[0].starts_with("503"), "{replies:?}");
        assert!(
            !replies.iter().any(|r| r.starts_with("250 2.0.0 queued")),
            "{replies:?}"
        );
        assert!(replies.iter().any(|r| r.starts_with("552")), "{replies:?}");
        let mails = mb.mails();
        assert!(
            mails.is_empty(),
            "a bare LF inside DATA refuses the message"
        );
        let replies = talk(
            mb.addr,
            &[
                "EHLO test\r\n",
                "MAIL FROM:<a@example.net>\r\n",
                "RCPT TO:<b@example.net>\r\n",
                "DATA\r\n",
                "Subject: hi\r\n\r\n..dotted\r\n.\r\n",
                "QUIT\r\n",
            ],
        )
        .await;
        assert!(
            replies.iter().any(|r| r == "250 2.0.0 queued"),
            "{replies:?}"
        );
        let mails = mb.mails();
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].to, ["b@example.net"]);
        assert_eq!(mails[0].header("subject").as_deref(), Some("hi"));
        assert!(
            mails[0].data.ends_with("\r\n.dotted\r\n"),
            "{:?}",
            mails[0].data
        );
    }
}
