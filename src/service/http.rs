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
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
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
