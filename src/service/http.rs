//! `/metrics` (OpenMetrics), `/healthz` (the scheduler ticked recently), `/readyz`
//! (initialised: journal open, configuration loaded), and the read-only status page
//! ([`super::status`]: `/`, `/node/NAME`, `/report/FILE`).

use std::future::Future as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use super::Service;
use crate::clock::now_ms;

async fn metrics(State(svc): State<Arc<Service>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        svc.metrics.encode(),
    )
}

async fn healthz(State(svc): State<Arc<Service>>) -> impl IntoResponse {
    let last = svc.heartbeat.load(Ordering::Relaxed);
    // Three missed ticks (at least 10 s) mean the scheduler is stuck.
    let limit = (svc.config.service.probe_interval_ms * 3).max(10_000);
    if last != 0 && now_ms().saturating_sub(last) <= limit {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "scheduler not ticking\n")
    }
}

async fn readyz(State(svc): State<Arc<Service>>) -> impl IntoResponse {
    if svc.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// Connections served at once; one more waits in the kernel's backlog.
const CONNECTIONS_MAX: usize = 128;
/// How long one connection may live: a client that sends its request a byte at a time (or
/// never) holds a slot this long at most; a scraper reconnects.
const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);

/// The TCP listener with a bound on connections and on each connection's lifetime (hyper, as
/// axum starts it, has no header-read timeout).
struct Guarded {
    inner: tokio::net::TcpListener,
    slots: Arc<tokio::sync::Semaphore>,
}

impl axum::serve::Listener for Guarded {
    type Io = GuardedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                // Never closed; stay bounded anyway.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            match self.inner.accept().await {
                Ok((stream, from)) => {
                    let io = GuardedIo {
                        stream,
                        deadline: Box::pin(tokio::time::sleep(CONNECTION_LIFETIME)),
                        _permit: permit,
                    };
                    return (io, from);
                }
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that ends at its deadline; holds its slot until dropped.
struct GuardedIo {
    stream: tokio::net::TcpStream,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl GuardedIo {
    fn expired(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn lifetime_over() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection lifetime over")
}

impl tokio::io::AsyncRead for GuardedIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.expired(cx) {
            return std::task::Poll::Ready(Err(lifetime_over()));
        }
        std::pin::Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for GuardedIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.expired(cx) {
            return std::task::Poll::Ready(Err(lifetime_over()));
        }
        std::pin::Pin::new(&mut this.stream).poll_write(cx, data)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Serve until `stop` turns true; returns the bound address once listening.
pub async fn serve_http(
    svc: Arc<Service>,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(super::status::fleet))
        .route("/node/{name}", get(super::status::node))
        .route("/report/{file}", get(super::status::report))
        .with_state(svc);
    let listener = Guarded {
        inner: tokio::net::TcpListener::bind(addr).await?,
        slots: Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX)),
    };
    let bound = listener.inner.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                while !*stop.borrow() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client that starts a request and never finishes it loses the connection at the
    /// lifetime's end (hyper as axum starts it would wait for ever); a whole request is served.
    #[tokio::test(start_paused = true)]
    async fn a_half_sent_request_is_cut_at_the_connection_lifetime() {
        let listener = Guarded {
            inner: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            slots: Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX)),
        };
        let addr = listener.inner.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });

        let mut whole = tokio::net::TcpStream::connect(addr).await.unwrap();
        whole
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        whole.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        let started = tokio::time::Instant::now();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost:").await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(CONNECTION_LIFETIME * 2, slow.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the half-sent request was still held");
        assert!(started.elapsed() >= CONNECTION_LIFETIME);
    }
}
