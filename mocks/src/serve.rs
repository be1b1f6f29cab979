//! A small HTTP(S) server loop shared by the mocks: plain TCP or TLS with a freshly generated
//! self-signed certificate, one task per connection, stopped when the handle is dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// A self-signed certificate for `127.0.0.1`, `::1` and `localhost`.
#[derive(Clone)]
pub struct SelfSigned {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned").finish_non_exhaustive()
    }
}

impl SelfSigned {
    pub fn generate() -> anyhow::Result<Self> {
        let names = vec!["127.0.0.1".into(), "::1".into(), "localhost".into()];
        let certified = rcgen::generate_simple_self_signed(names)?;
        Ok(Self {
            cert_pem: certified.cert.pem(),
            cert_der: certified.cert.der().to_vec(),
            key_der: certified.signing_key.serialize_der(),
        })
    }

    fn acceptor(&self) -> anyhow::Result<TlsAcceptor> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into());
        let cert = rustls::pki_types::CertificateDer::from(self.cert_der.clone());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Whether a mock may listen on `ip`: loopback always; any other address only inside a
/// network namespace other than the host's (one a test or benchmark created), where it can
/// reach nothing else.
pub fn may_bind(ip: std::net::IpAddr) -> bool {
    ip.is_loopback() || in_private_netns()
}

/// Whether this process runs in a named network namespace (`ip netns add`, the way the
/// tests and benchmarks make theirs): its inode is one of `/run/netns/*`.
fn in_private_netns() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(me) = std::fs::metadata("/proc/self/ns/net") else {
        return false;
    };
    std::fs::read_dir("/run/netns").is_ok_and(|d| {
        d.flatten().any(|e| {
            std::fs::metadata(e.path()).is_ok_and(|m| m.ino() == me.ino() && m.dev() == me.dev())
        })
    })
}

/// A running server; dropping it stops accepting and closes the listener.
pub struct Running {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve `router` on `addr` (use port 0 for a free port), over TLS when `tls` is given.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    tls: Option<&SelfSigned>,
) -> anyhow::Result<Running> {
    anyhow::ensure!(
        may_bind(addr.ip()),
        "mocks bind to loopback only (or inside a network namespace of their own), not {addr}"
    );
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let acceptor = tls.map(SelfSigned::acceptor).transpose()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(router.clone());
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let builder = Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    Ok(Running { addr, task })
}
