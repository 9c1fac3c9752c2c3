//! HTTPS serving: an accept loop over rustls, one hyper HTTP/1.1 connection per client,
//! with the fault switches able to drop connections.

pub mod protobuf;
mod router;

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::faults::Faults;

pub use router::{App, router};
pub(crate) use router::{Req, json_response};

/// Serves `router` over TLS on `listener` until `shutdown` turns true. With `faults`,
/// connections are refused (closed at once) while the cluster is unreachable, and open
/// ones are dropped when it becomes so. Public so tests can serve webhooks the same way.
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    faults: Option<Arc<Faults>>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        if faults.as_ref().is_some_and(|f| f.is_unreachable()) {
            drop(tcp);
            continue;
        }
        let acceptor = acceptor.clone();
        let svc = TowerToHyperService::new(router.clone());
        let mut shutdown = shutdown.clone();
        let faults = faults.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
            tokio::pin!(conn);
            // Without faults the sender must outlive the connection, or `changed()`
            // would fail at once.
            let (_keep, idle) = watch::channel(0u64);
            let mut cut = match &faults {
                Some(f) => f.cut_signal(),
                None => idle,
            };
            cut.borrow_and_update();
            loop {
                tokio::select! {
                    _ = &mut conn => return,
                    _ = shutdown.changed() => return,
                    r = cut.changed() => {
                        if r.is_err() || faults.as_ref().is_some_and(|f| f.is_unreachable()) {
                            return;
                        }
                    }
                }
            }
        });
    }
}
