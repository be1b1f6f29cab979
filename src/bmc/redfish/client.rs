//! The Redfish HTTP transport: authentication (session or Basic), deadlines, bounded retries,
//! `Retry-After`, body size cap, JSON decoding with clear errors. Knows nothing of vendors or
//! of which resources exist; `mod.rs` and `logs.rs` walk the tree.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::tls::{self, TlsPolicy};
use crate::bmc::{BmcError, Endpoint};
use crate::secret::Secret;
use crate::timeouts;

mod errors;

pub(crate) use errors::chain;
use errors::{backoff, retry_after, s_u16, transport_error};

/// User name and password for a BMC. `Debug` hides the password.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

/// Transport settings; defaults come from [`crate::timeouts`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub tls: TlsPolicy,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub attempts: u32,
    pub body_max: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            tls: TlsPolicy::default(),
            connect_timeout: timeouts::BMC_CONNECT,
            request_timeout: timeouts::BMC_REQUEST,
            attempts: timeouts::BMC_ATTEMPTS,
            body_max: timeouts::BODY_MAX_BYTES,
        }
    }
}

#[derive(Debug)]
enum Auth {
    /// No credentials sent (service root only).
    Basic,
    Session {
        token: Secret,
        /// The session resource, for logout.
        location: Option<String>,
        /// Where to log in again after a 401.
        login_path: String,
    },
}

/// An answer that is not an error by transport standards.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// One BMC's HTTP client.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    creds: Credentials,
    options: ClientOptions,
    auth: Mutex<Auth>,
    /// The session tokens this client was given, to scrub from what the BMC says (a copy
    /// beside `auth`, readable without waiting on a request in flight).
    tokens: std::sync::Mutex<Vec<Secret>>,
}

/// What a shared HTTP client is built from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Recipe {
    tls: Option<TlsPolicy>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

/// HTTP clients shared by every BMC connection built from the same recipe. Building one
/// loads and parses the system's trust store from disk (hundreds of certificates): once per
/// BMC look, that was a fifth of the service's CPU at 5,000 machines. Idle connections are
/// kept for a few seconds only, so that a look's requests share one connection but a fleet
/// does not hold one open per BMC. A CA file is read when its first client is built.
fn shared(endpoint: &Endpoint, options: &ClientOptions) -> Result<reqwest::Client, BmcError> {
    static CLIENTS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<Recipe, reqwest::Client>>,
    > = std::sync::OnceLock::new();
    let recipe = Recipe {
        tls: endpoint.tls.then(|| options.tls.clone()),
        connect_timeout: options.connect_timeout,
        request_timeout: options.request_timeout,
    };
    let clients = CLIENTS.get_or_init(Default::default);
    if let Some(c) = clients
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&recipe)
    {
        return Ok(c.clone());
    }
    let builder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(recipe.connect_timeout)
        .timeout(recipe.request_timeout)
        .redirect(same_host_redirects())
        .http1_only()
        .pool_idle_timeout(timeouts::BMC_IDLE)
        .pool_max_idle_per_host(1)
        .user_agent(concat!("oob/", env!("CARGO_PKG_VERSION")));
    let builder = match &recipe.tls {
        Some(policy) => tls::apply(builder, policy, &endpoint.authority())?,
        None => builder,
    };
    let http = builder.build().map_err(|e| BmcError::Client {
        bmc: endpoint.authority(),
        reason: chain(&e),
    })?;
    clients
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(recipe, http.clone());
    Ok(http)
}

/// Redirects are followed (some BMCs move `/redfish/v1` or upgrade http to https) only on the
/// same host and port, or from http to https on port 443 of the same host, at most 5: reqwest keeps custom
/// headers such as `X-Auth-Token` across a redirect and re-sends a 307's body (the login's
/// password), so a redirect elsewhere would hand them to another host.
fn same_host_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        let next = attempt.url();
        let upgrade = first.scheme() == "http"
            && next.scheme() == "https"
            && next.port_or_known_default() == Some(443);
        let same =
            first.host_str() == next.host_str() && (first.origin() == next.origin() || upgrade);
        if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else if !same {
            attempt.error("redirect to another host refused")
        } else {
            attempt.follow()
        }
    })
}

impl Client {
    pub fn new(
        endpoint: &Endpoint,
        creds: Credentials,
        options: ClientOptions,
    ) -> Result<Self, BmcError> {
        if endpoint.tls && options.tls == TlsPolicy::Insecure {
            warn!(
                bmc = %endpoint.authority(),
                "tls verification disabled by request (--insecure)"
            );
        }
        let http = shared(endpoint, &options)?;
        Ok(Self {
            http,
            base: endpoint.base_url(),
            creds,
            options,
            auth: Mutex::new(Auth::Basic),
            tokens: std::sync::Mutex::default(),
        })
    }

    /// The service's base address (`https://host:port`), for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The address of a path on this BMC, for a request that carries credentials. Paths come
    /// from the BMC itself (`@odata.id`, action targets, `Location`, next links): one that is
    /// not origin-relative (`@evil.example/x` would make `https://bmc:443@evil.example/x`)
    /// would send the password or the session token to another host. Refused.
    fn target(&self, path: &str) -> Result<String, BmcError> {
        let refused = |why: &str| BmcError::Malformed {
            url: self.base.clone(),
            detail: format!(
                "refused the link {:?} the BMC gave: {why}",
                path.chars().take(120).collect::<String>()
            ),
        };
        if !path.starts_with('/') || path.starts_with("//") || path.contains('\\') {
            return Err(refused("not a path on this BMC"));
        }
        let url = self.url(path);
        let (Ok(ours), Ok(theirs)) = (url::Url::parse(&self.base), url::Url::parse(&url)) else {
            return Err(refused("not a valid address"));
        };
        if ours.origin() != theirs.origin() {
            return Err(refused("it points to another host"));
        }
        Ok(url)
    }

    /// First 240 characters of a body, for error messages, with the password and every
    /// session token this client was given scrubbed (a BMC may echo either back).
    fn excerpt(&self, body: &[u8]) -> String {
        // Scrubbed before it is cut: a secret across the cut would leave its first half.
        let head = &body[..body.len().min(64 * 1024)];
        let mut text = self.creds.password.scrub(&String::from_utf8_lossy(head));
        if let Ok(tokens) = self.tokens.lock() {
            for token in tokens.iter() {
                text = token.scrub(&text);
            }
        }
        text.chars().take(240).collect()
    }

    /// GET a resource and decode it.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, BmcError> {
        let reply = self.send(Method::GET, path, None, None).await?;
        self.decode(path, reply)
    }

    /// Decode a successful reply, or turn an unsuccessful one into an error.
    pub fn decode<T: DeserializeOwned>(&self, path: &str, reply: Reply) -> Result<T, BmcError> {
        let reply = self.expect_success(path, reply)?;
        serde_json::from_slice(&reply.body).map_err(|e| BmcError::Malformed {
            url: self.url(path),
            detail: format!("{e} (body starts: {:?})", self.excerpt(&reply.body)),
        })
    }

    /// Error out on a non-2xx reply.
    pub fn expect_success(&self, path: &str, reply: Reply) -> Result<Reply, BmcError> {
        if reply.status.is_success() {
            return Ok(reply);
        }
        let url = self.url(path);
        Err(match reply.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => BmcError::Auth {
                url,
                detail: format!("HTTP {}", reply.status.as_u16()),
            },
            status => BmcError::Http {
                url,
                status: status.as_u16(),
                body: self.excerpt(&reply.body),
            },
        })
    }

    /// POST a JSON body. Never retried once it may have reached the BMC (only a refused
    /// connection or a 503, which means "not processed", is tried again).
    pub async fn post(&self, path: &str, body: Value) -> Result<Reply, BmcError> {
        self.send(Method::POST, path, Some(body), None).await
    }

    /// PATCH properties of a resource, with `If-Match` when the resource carried an ETag
    /// (`@odata.etag`): services may refuse an unconditional update (428). Not retried once
    /// it may have reached the BMC, like a POST.
    pub async fn patch(
        &self,
        path: &str,
        body: Value,
        if_match: Option<&str>,
    ) -> Result<Reply, BmcError> {
        self.send(Method::PATCH, path, Some(body), if_match).await
    }

    /// Log in with a session at `sessions_path`. `Ok(false)` when the service has no working
    /// session endpoint (404/405/501): the caller stays on Basic auth.
    pub async fn login(&self, sessions_path: &str) -> Result<bool, BmcError> {
        let mut auth = self.auth.lock().await;
        self.login_locked(&mut auth, sessions_path).await
    }

    async fn login_locked(&self, auth: &mut Auth, sessions_path: &str) -> Result<bool, BmcError> {
        let url = self.target(sessions_path)?;
        let body = serde_json::json!({
            "UserName": self.creds.user,
            "Password": self.creds.password.expose(),
        });
        // A lost login answer is retried: the worst case is one orphan session, which the
        // BMC expires; failing the whole command would be worse.
        let mut attempt = 0;
        let (status, headers, raw) = loop {
            attempt += 1;
            let result = match self.http.post(&url).json(&body).send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    self.read_body(&url, response)
                        .await
                        .map(|raw| (status, headers, raw))
                }
                Err(e) => Err(transport_error(&url, &e, self.options.request_timeout)),
            };
            match result {
                Ok(done) => break done,
                Err(e) if e.is_retriable() && attempt < self.options.attempts => {
                    warn!(url = %url, attempt, error = %e, "session login failed, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        };
        match status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => {
                debug!(bmc = %self.base, status = s_u16(status), "no session service, using basic auth");
                return Ok(false);
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST => {
                return Err(BmcError::Auth {
                    url,
                    detail: format!("HTTP {} to the session login", status.as_u16()),
                })
            }
            _ => {
                return Err(BmcError::Http {
                    url,
                    status: status.as_u16(),
                    body: self.excerpt(&raw),
                })
            }
        }
        let Some(token) = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
        else {
            // Seen on static mockup servers that answer every POST with 204: no session was
            // made, so stay on Basic auth rather than fail.
            warn!(bmc = %self.base, status = status.as_u16(), "session login returned no token, using basic auth");
            return Ok(false);
        };
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| self.relative(l))
            .or_else(|| {
                serde_json::from_slice::<Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("@odata.id")?.as_str().map(str::to_owned))
            });
        if let Ok(mut tokens) = self.tokens.lock() {
            // Bounded: a BMC that drops sessions all day keeps the last few.
            if tokens.len() >= 4 {
                tokens.remove(0);
            }
            tokens.push(Secret::new(token));
        }
        *auth = Auth::Session {
            token: Secret::new(token),
            location,
            login_path: sessions_path.to_owned(),
        };
        debug!(bmc = %self.base, "session opened");
        Ok(true)
    }

    /// End the session, if any. Best effort.
    pub async fn logout(&self) {
        let mut auth = self.auth.lock().await;
        if let Auth::Session {
            location: Some(location),
            ..
        } = &*auth
        {
            let Ok(url) = self.target(location) else {
                warn!(bmc = %self.base, "session location not on this bmc, not closed");
                *auth = Auth::Basic;
                return;
            };
            let request = self.http.delete(&url).headers(self.auth_headers(&auth));
            match request.send().await {
                Ok(r) => debug!(bmc = %self.base, status = s_u16(r.status()), "session closed"),
                Err(e) => debug!(bmc = %self.base, error = %chain(&e), "session close failed"),
            }
        }
        *auth = Auth::Basic;
    }

    /// Strip scheme and authority from an absolute URL the BMC handed us.
    fn relative(&self, link: &str) -> String {
        match link.strip_prefix(&self.base) {
            Some(rest) => rest.to_owned(),
            None => match link.split_once("://") {
                Some((_, rest)) => rest.find('/').map_or("/".into(), |i| rest[i..].to_owned()),
                None => link.to_owned(),
            },
        }
    }

    fn auth_headers(&self, auth: &Auth) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Auth::Session { token, .. } = auth {
            if let Ok(mut value) = HeaderValue::from_str(token.expose()) {
                value.set_sensitive(true);
                headers.insert("x-auth-token", value);
            }
        }
        headers
    }

    /// Send with retries: transport errors on idempotent requests, refused connections,
    /// 503 honouring `Retry-After` up to [`timeouts::RETRY_AFTER_MAX`], and one re-login on
    /// a 401 when a session expired.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, BmcError> {
        let url = self.target(path)?;
        let idempotent = method == Method::GET || method == Method::DELETE;
        let mut relogged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (request, session) = {
                let auth = self.auth.lock().await;
                let mut request = self
                    .http
                    .request(method.clone(), &url)
                    .headers(self.auth_headers(&auth));
                if matches!(*auth, Auth::Basic) {
                    request =
                        request.basic_auth(&self.creds.user, Some(self.creds.password.expose()));
                }
                if let Some(body) = &body {
                    request = request.json(body);
                }
                if let Some(tag) = if_match {
                    request = request.header(reqwest::header::IF_MATCH, tag);
                }
                let session = match &*auth {
                    Auth::Session { login_path, .. } => Some(login_path.clone()),
                    Auth::Basic => None,
                };
                (request, session)
            };
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = transport_error(&url, &e, self.options.request_timeout);
                    let safe = idempotent || e.is_connect();
                    if safe && err.is_retriable() && attempt < self.options.attempts {
                        warn!(url = %url, attempt, error = %err, "bmc request failed, retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = response.status();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                let wait = retry_after(response.headers());
                if attempt >= self.options.attempts
                    || wait.is_none_or(|w| w > timeouts::RETRY_AFTER_MAX)
                {
                    return Err(BmcError::Unavailable {
                        url,
                        attempts: attempt,
                    });
                }
                let wait = wait.unwrap_or_else(|| backoff(attempt));
                warn!(url = %url, attempt, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(0), "bmc busy (503), waiting");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                if let (Some(login_path), false) = (session, relogged) {
                    relogged = true;
                    attempt -= 1;
                    warn!(bmc = %self.base, "session expired (401), logging in again");
                    let mut auth = self.auth.lock().await;
                    self.login_locked(&mut auth, &login_path).await?;
                    continue;
                }
            }
            let body = match self.read_body(&url, response).await {
                Ok(body) => body,
                // The connection dropped mid-response: only an idempotent request is re-sent.
                Err(e) if idempotent && e.is_retriable() && attempt < self.options.attempts => {
                    warn!(url = %url, attempt, error = %e, "bmc response cut off, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            debug!(method = %method, url = %url, status = status.as_u16(), bytes = body.len(), "bmc replied");
            return Ok(Reply { status, body });
        }
    }

    /// Read a body up to the cap.
    async fn read_body(
        &self,
        url: &str,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, BmcError> {
        let limit = self.options.body_max;
        let too_large = || BmcError::BodyTooLarge {
            url: url.to_owned(),
            limit,
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(url, &e, self.options.request_timeout))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn client(base: &str) -> Client {
        let endpoint = Endpoint::parse(base).unwrap();
        let creds = Credentials {
            user: "root".into(),
            password: Secret::new("hunter22"),
        };
        Client::new(&endpoint, creds, ClientOptions::default()).unwrap()
    }

    #[test]
    fn links_the_bmc_gives_must_stay_on_the_bmc() {
        let c = client("redfish+http://127.0.0.1:8000");
        assert_eq!(
            c.target("/redfish/v1/Systems/1").unwrap(),
            "http://127.0.0.1:8000/redfish/v1/Systems/1"
        );
        for hostile in [
            "@127.0.0.2/redfish/v1",
            ".example.net/x",
            ":9000/x",
            "//127.0.0.2/x",
            "/\\127.0.0.2/x",
            "redfish/v1",
            "",
        ] {
            let e = c.target(hostile).unwrap_err().to_string();
            assert!(e.contains("refused the link"), "{hostile}: {e}");
            assert!(!e.contains("hunter22"));
        }
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";

    /// An HTTP server that answers `GET /redfish/v1` with a redirect to `location` (when
    /// given) and anything else with `{}`, and counts requests.
    async fn server(
        addr: &str,
        location: Option<String>,
    ) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind(addr).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let first = String::from_utf8_lossy(&buf[..n]).to_string();
                let reply = match &location {
                    Some(l) if first.starts_with("GET /redfish/v1 ") => format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {l}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    ),
                    _ => OK.to_owned(),
                };
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn redirects_are_followed_only_on_the_same_origin() {
        use std::sync::atomic::Ordering::SeqCst;
        let (elsewhere, elsewhere_seen) = server("127.0.0.2:0", None).await;
        let (port, _) = server(
            "127.0.0.1:0",
            Some(format!("http://127.0.0.2:{elsewhere}/redfish/v1/")),
        )
        .await;
        let c = client(&format!("redfish+http://127.0.0.1:{port}"));
        let e = c.get::<Value>("/redfish/v1").await.unwrap_err().to_string();
        assert!(e.contains("another host"), "{e}");
        assert!(!e.contains("hunter22"));
        assert_eq!(elsewhere_seen.load(SeqCst), 0, "credentials sent elsewhere");

        // Another port on the same address is another service: refused as well.
        let (other_port, other_seen) = server("127.0.0.1:0", None).await;
        let (port, _) = server(
            "127.0.0.1:0",
            Some(format!("http://127.0.0.1:{other_port}/redfish/v1/")),
        )
        .await;
        let c = client(&format!("redfish+http://127.0.0.1:{port}"));
        assert!(c.get::<Value>("/redfish/v1").await.is_err());
        assert_eq!(other_seen.load(SeqCst), 0);

        // The same service moving the resource is followed.
        let (first, _) = server("127.0.0.1:0", Some("/redfish/v1/".to_owned())).await;
        let c = client(&format!("redfish+http://127.0.0.1:{first}"));
        let v: Value = c.get("/redfish/v1").await.unwrap();
        assert_eq!(v, serde_json::json!({}));
    }
}
