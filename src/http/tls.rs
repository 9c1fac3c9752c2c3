//! The listeners the admission webhook and the REST API serve on: rustls on ring (or plain
//! HTTP behind a TLS-terminating proxy), HTTP/2 and HTTP/1.1, optional client-certificate
//! authentication, and the same [`ConnectionLimits`] for both: a handshake timeout, a
//! header-read timeout (slowloris), an idle timeout, a cap on open connections, and a
//! bounded drain on shutdown. Renewed certificate files are served without a restart
//! (`cert_reload`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};
use rustls::sign::CertifiedKey;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::cert_reload::{self, DEFAULT_CHECK_INTERVAL, ReloadingCert};

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one listener tolerates from its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's headers must have arrived this long after it started (slowloris).
    pub header_read_timeout: Duration,
    /// A connection that moved no byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_connections: 512,
        }
    }
}
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
    #[error("cannot read the client CA bundle {}: {source}", .path.display())]
    ClientCa { path: PathBuf, source: pem::Error },
    #[error("the client CA bundle {} cannot verify clients: {reason}", .path.display())]
    ClientVerifier { path: PathBuf, reason: String },
}

/// The rustls server configuration from PEM files: the certificate chain (leaf first) and
/// its private key (PKCS#8, PKCS#1 or SEC1). HTTP/2 and HTTP/1.1 are offered. The pair is
/// read once here; only a [`Listener`] re-reads it while serving.
pub fn tls_config(cert_pem: &Path, key_pem: &Path) -> Result<rustls::ServerConfig, TlsError> {
    tls_config_verifying_clients(cert_pem, key_pem, None)
}

/// As [`tls_config`]; with `client_ca`, only clients presenting a certificate signed by one
/// of its CAs complete the handshake (the API server, for the webhook).
pub fn tls_config_verifying_clients(
    cert_pem: &Path,
    key_pem: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, TlsError> {
    server_config(cert_pem, key_pem, client_ca).map(|(config, _)| config)
}

/// The server configuration and its certificate resolver, which re-reads the certificate
/// and key files when asked ([`ReloadingCert::check`], run by [`Listener::run`]) so that a
/// renewed pair is served without a restart. The client CA bundle is read once, here: a
/// new bundle still needs a restart.
fn server_config(
    cert_pem: &Path,
    key_pem: &Path,
    client_ca: Option<&Path>,
) -> Result<(rustls::ServerConfig, Arc<ReloadingCert>), TlsError> {
    // The same checks, in the same order and with the same errors, as before reloading
    // existed: certificate, key, then (after the client CA) whether they belong together.
    let cert_bytes = std::fs::read(cert_pem).map_err(|source| TlsError::Certificate {
        path: cert_pem.to_path_buf(),
        source: pem::Error::Io(source),
    })?;
    let key_bytes = std::fs::read(key_pem).map_err(|source| TlsError::PrivateKey {
        path: key_pem.to_path_buf(),
        source: pem::Error::Io(source),
    })?;
    let (certs, key) = cert_reload::parse_pair(cert_pem, &cert_bytes, key_pem, &key_bytes)?;
    let tls_error = |source| TlsError::Tls {
        cert: cert_pem.to_path_buf(),
        key: key_pem.to_path_buf(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider.clone())?),
    };
    let certified = CertifiedKey::from_der(certs, key, &provider).map_err(tls_error)?;
    let resolver = Arc::new(ReloadingCert::new(
        cert_pem,
        key_pem,
        (cert_bytes, key_bytes),
        certified,
        provider,
    ));
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, resolver))
}

fn client_verifier(
    path: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|source| TlsError::ClientCa {
        path: path.to_path_buf(),
        source,
    })? {
        let cert = cert.map_err(|source| TlsError::ClientCa {
            path: path.to_path_buf(),
            source,
        })?;
        roots.add(cert).map_err(|e| TlsError::ClientVerifier {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::ClientVerifier {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// A bound listener, TLS or plain HTTP (the REST API behind a TLS-terminating proxy, the
/// health endpoints), with the same [`ConnectionLimits`]. [`Listener::tls`] reads the
/// certificate and key first, so a bad file is reported before the port is taken. While it
/// runs, a TLS listener re-reads them every 10 s and serves a renewed pair to new
/// handshakes; a pair that cannot be used is ignored with a warning.
pub struct Listener {
    listener: TcpListener,
    /// None: plain HTTP.
    tls: Option<(TlsAcceptor, Arc<ReloadingCert>)>,
    limits: ConnectionLimits,
    cert_check_interval: Duration,
}

impl Listener {
    pub async fn tls(
        addr: SocketAddr,
        cert_pem: impl AsRef<Path>,
        key_pem: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        Self::tls_verifying_clients(addr, cert_pem, key_pem, None).await
    }

    /// As [`Listener::tls`]; with `client_ca`, clients must present a certificate it signed.
    pub async fn tls_verifying_clients(
        addr: SocketAddr,
        cert_pem: impl AsRef<Path>,
        key_pem: impl AsRef<Path>,
        client_ca: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let (config, certs) = server_config(cert_pem.as_ref(), key_pem.as_ref(), client_ca)?;
        let mut listener = Self::plain(addr).await?;
        listener.tls = Some((TlsAcceptor::from(Arc::new(config)), certs));
        Ok(listener)
    }

    pub async fn plain(addr: SocketAddr) -> Result<Self, TlsError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| TlsError::Bind { addr, source })?;
        Ok(Self {
            listener,
            tls: None,
            limits: ConnectionLimits::default(),
            cert_check_interval: DEFAULT_CHECK_INTERVAL,
        })
    }

    /// Replaces the default [`ConnectionLimits`].
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How often a TLS listener re-reads its certificate and key files (default 10 s).
    pub fn with_cert_check_interval(mut self, every: Duration) -> Self {
        self.cert_check_interval = every;
        self
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` completes, then lets open connections finish
    /// their requests (for a bounded time).
    /// `name` says what is served, for the logs (e.g. "admission webhook", "REST API").
    pub async fn run(self, name: &'static str, router: Router, shutdown: impl Future<Output = ()>) {
        let Some((acceptor, certs)) = self.tls else {
            let handshake = |tcp: TcpStream, _peer: SocketAddr| async move { Some(tcp) };
            let (transport, limits) = ("plain HTTP", self.limits);
            return serve_connections(
                self.listener,
                transport,
                name,
                router,
                shutdown,
                limits,
                handshake,
            )
            .await;
        };
        let handshake = move |tcp: TcpStream, peer: SocketAddr| {
            let acceptor = acceptor.clone();
            async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => Some(tls),
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        None
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        None
                    }
                }
            }
        };
        let reload = tokio::spawn(ReloadingCert::watch(
            Arc::downgrade(&certs),
            self.cert_check_interval,
        ));
        serve_connections(
            self.listener,
            "TLS",
            name,
            router,
            shutdown,
            self.limits,
            handshake,
        )
        .await;
        reload.abort();
    }
}

/// The accept loop both listeners share: at most `limits.max_connections` connections at
/// once, each set up by `handshake` and then served with the header-read and idle timeouts.
async fn serve_connections<IO, H, HF>(
    listener: TcpListener,
    transport: &'static str,
    name: &'static str,
    router: Router,
    shutdown: impl Future<Output = ()>,
    limits: ConnectionLimits,
    handshake: H,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(TcpStream, SocketAddr) -> HF,
    HF: Future<Output = Option<IO>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, server = name, transport, max_connections = limits.max_connections, "listening");
    }
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
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
        let set_up = handshake(tcp, peer);
        // Handlers see the peer's address (per-address limits) as axum's ConnectInfo.
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let Some(io) = set_up.await else { return };
            let activity = Activity::new();
            let io = Tracked {
                io,
                activity: activity.clone(),
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            builder.http2().timer(TokioTimer::new());
            let connection = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
            tokio::select! {
                served = connection => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                () = activity.idle_for(limits.idle_timeout) => {
                    tracing::debug!(%peer, timeout = ?limits.idle_timeout, "idle connection closed");
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!(server = name, "connections still open after {DRAIN_TIMEOUT:?}; stopping");
        }
    }
}

/// When a connection last moved a byte, in milliseconds since it opened.
#[derive(Clone)]
struct Activity {
    opened: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Completes once no byte moved for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// An IO stream that records its activity.
struct Tracked<IO> {
    io: IO,
    activity: Activity,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
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
    Listener::tls(addr, cert_pem, key_pem)
        .await?
        .run(name, router, shutdown)
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::cert_reload::tests::pair;
    use rustls::pki_types::ServerName;

    /// The certificate the listener at `addr` presents in a TLS handshake.
    async fn presented(
        addr: SocketAddr,
        connector: &tokio_rustls::TlsConnector,
    ) -> CertificateDer<'static> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("the handshake completes");
        tls.get_ref().1.peer_certificates().unwrap()[0].clone()
    }

    /// cert-manager renews the Secret, the kubelet rewrites the mounted files: new
    /// handshakes get the new certificate without a restart, and a broken renewal leaves
    /// the last good one in service.
    #[tokio::test]
    async fn a_running_listener_serves_the_renewed_certificate() {
        let dir = std::env::temp_dir().join(format!("shepherd-tls-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        let (a_cert, a_key, a_der) = pair();
        let (b_cert, b_key, b_der) = pair();
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, &a_key).unwrap();

        let listener = Listener::tls("127.0.0.1:0".parse().unwrap(), &cert, &key)
            .await
            .unwrap()
            .with_cert_check_interval(Duration::from_millis(20));
        let addr = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let server =
            tokio::spawn(listener.run("test", Router::new(), stop.clone().cancelled_owned()));

        let mut roots = rustls::RootCertStore::empty();
        roots.add(a_der.clone()).unwrap();
        roots.add(b_der.clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        assert_eq!(presented(addr, &connector).await, a_der);

        std::fs::write(&cert, &b_cert).unwrap();
        std::fs::write(&key, &b_key).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while presented(addr, &connector).await != b_der {
            assert!(
                Instant::now() < deadline,
                "the renewed certificate is not served"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A key that is not a key: several check intervals later, B is still served.
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nbroken\n").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(presented(addr, &connector).await, b_der);

        stop.cancel();
        server.await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
