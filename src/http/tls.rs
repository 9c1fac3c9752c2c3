//! The TLS listener the admission webhook and the REST API both serve on: rustls on ring,
//! HTTP/2 and HTTP/1.1, a handshake timeout, and a bounded drain on shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, connections get this long to finish the requests they are serving.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate {}: {source}", .path.display())]
    Certificate { path: PathBuf, source: pem::Error },
    #[error("the certificate file {} holds no CERTIFICATE block", .path.display())]
    NoCertificate { path: PathBuf },
    #[error("cannot read the private key {}: {source}", .path.display())]
    PrivateKey { path: PathBuf, source: pem::Error },
    #[error(
        "the certificate {} and private key {} cannot be used together: {source}",
        .cert.display(), .key.display()
    )]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// The rustls server configuration from PEM files: the certificate chain (leaf first) and
/// its private key (PKCS#8, PKCS#1 or SEC1). HTTP/2 and HTTP/1.1 are offered.
pub fn tls_config(cert_pem: &Path, key_pem: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_pem)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificate {
            path: cert_pem.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_pem.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|source| TlsError::PrivateKey {
        path: key_pem.to_path_buf(),
        source,
    })?;
    let tls_error = |source| TlsError::Tls {
        cert: cert_pem.to_path_buf(),
        key: key_pem.to_path_buf(),
        source,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_error)?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(tls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A bound TLS listener: [`TlsListener::bind`] reads the certificate and key first, so a
/// bad file is reported before the port is taken.
pub struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub async fn bind(
        addr: SocketAddr,
        cert_pem: impl AsRef<Path>,
        key_pem: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let config = tls_config(cert_pem.as_ref(), key_pem.as_ref())?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| TlsError::Bind { addr, source })?;
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` completes, then lets open connections finish
    /// their requests (for a bounded time).
    /// `name` says what is served, for the logs (e.g. "admission webhook", "REST API").
    pub async fn run(self, name: &'static str, router: Router, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, server = name, "listening (TLS)");
        }
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(server = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let acceptor = self.acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let builder = auto::Builder::new(TokioExecutor::new());
                let connection = builder.serve_connection(TokioIo::new(tls), service);
                if let Err(e) = watcher.watch(connection).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(DRAIN_TIMEOUT) => {
                tracing::warn!(server = name, "connections still open after {DRAIN_TIMEOUT:?}; stopping");
            }
        }
    }
}

/// Serves `router` over TLS on `addr` until `shutdown` completes. The certificate and key
/// are PEM files (e.g. a mounted `kubernetes.io/tls` Secret).
pub async fn serve(
    name: &'static str,
    addr: SocketAddr,
    cert_pem: impl AsRef<Path>,
    key_pem: impl AsRef<Path>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TlsError> {
    TlsListener::bind(addr, cert_pem, key_pem)
        .await?
        .run(name, router, shutdown)
        .await;
    Ok(())
}
