//! `/metrics` (OpenMetrics), `/healthz` (the scheduler ticked recently), `/readyz`
//! (initialised: journal open, configuration loaded), and the read-only status page
//! ([`super::status`]: `/`, `/node/NAME`, `/report/FILE`).

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

/// The HTTP server's limits. Reached from the management network (and by the kubelet's
/// probes), so a client that sends its request a byte at a time (or never) must not hold
/// the server: hyper reads headers under a deadline, connections are capped, and each ends
/// gracefully (after the request in progress) past its lifetime.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub connections: usize,
    pub header_read: std::time::Duration,
    pub lifetime: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: 512,
            header_read: std::time::Duration::from_secs(10),
            lifetime: std::time::Duration::from_secs(300),
        }
    }
}

/// Serve until `stop` turns true; returns the bound address once listening.
pub async fn serve_http(
    svc: Arc<Service>,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(super::status::fleet))
        .route("/node/{name}", get(super::status::node))
        .route("/report/{file}", get(super::status::report))
        .with_state(svc);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(serve_with(listener, app, Limits::default(), stop));
    Ok((bound, task))
}

/// Accept and serve HTTP/1.1 connections under `limits` until `stop` turns true.
pub(crate) async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    let mut stopped = std::pin::pin!(async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    });
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut stopped => return,
        };
        let Ok(slot) = slot else { return };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stopped => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: wait instead of spinning.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = tokio::time::sleep(limits.lifetime) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.header_read, conn).await;
                }
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering `/` under tight limits; keep the sender to keep it running.
    async fn start(connections: usize) -> (SocketAddr, Limits, watch::Sender<bool>) {
        let limits = Limits {
            connections,
            header_read: std::time::Duration::from_millis(300),
            lifetime: std::time::Duration::from_secs(30),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let (tx, stop) = watch::channel(false);
        tokio::spawn(serve_with(listener, app, limits, stop));
        (addr, limits, tx)
    }

    /// A client that starts a request and never finishes it is cut at the header deadline
    /// (hyper as `axum::serve` starts it has none); whole requests are served meanwhile.
    #[tokio::test]
    async fn a_half_sent_request_is_cut_at_the_header_deadline() {
        let (addr, limits, _stop) = start(4).await;

        let started = std::time::Instant::now();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost:").await.unwrap();

        let mut whole = tokio::net::TcpStream::connect(addr).await.unwrap();
        whole
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        whole.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            slow.read_to_end(&mut rest),
        )
        .await;
        assert!(read.is_ok(), "the half-sent request was still held");
        assert!(started.elapsed() >= limits.header_read);
    }

    /// More clients than slots: the extra ones wait, and are served once a slot is free.
    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_slot() {
        let (addr, _, _stop) = start(1).await;
        // Holds the only slot until the header deadline cuts it.
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET").await.unwrap();
        let started = std::time::Instant::now();
        let mut next = tokio::net::TcpStream::connect(addr).await.unwrap();
        next.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        next.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    }
}
