//! `shepherd run`: the long-running process. It hosts the admission webhook (TLS), health
//! endpoints, and the reconcilers under a Lease. Components are chosen by options so that
//! replicas can be split (docs/architecture.md#processes-and-interfaces).

use crate::app::admission::ShepherdPolicy;
use crate::clusters::ClusterClients;
use crate::controller::lease::{LeaseConfig, run_as_leader};
use crate::controller::{self, Context};
use crate::db::Pools;
use crate::domain::identity::{KeyError, KeyRing};
use crate::http::api::{self, ApiConfig, ApiState};
use crate::http::tls::{Listener, TlsError};
use crate::http::webhook::{self, WebhookState};
use crate::jobs::WorkerOptions;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Where the webhook's TLS material lives.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Only clients with a certificate this CA bundle signed (the API server) are served.
    pub client_ca: Option<PathBuf>,
}

/// Where the REST API listens; TLS from a certificate and key unless `tls` is None.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub addr: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub config: ApiConfig,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub webhook: Option<WebhookOptions>,
    pub api: Option<ApiOptions>,
    pub health_addr: Option<SocketAddr>,
    /// Run the reconcilers and the target clusters' status watchers (under the Lease).
    pub controllers: bool,
    pub lease: LeaseConfig,
    /// Work River jobs (vm_provision); None leaves this replica without workers.
    pub workers: Option<WorkerOptions>,
    /// Concurrent writes to one target cluster from this process.
    pub cluster_write_concurrency: usize,
    /// How often the controllers export the audit chain's head (when it moved).
    pub audit_anchor_interval: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("reading the identity key from Secret {secret}: {source}")]
    KeySecret { secret: String, source: kube::Error },
    #[error("Secret {secret} has no data key {key:?}")]
    KeyMissing { secret: String, key: String },
    #[error("identity key: {0}")]
    Key(#[from] KeyError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("job queue: {0}")]
    Queue(#[from] crate::jobs::QueueSetupError),
    #[error("starting the job workers: {0}")]
    Workers(#[from] riverqueue::Error),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Reads the identity keys from Secret `namespace/name`: data key `key` signs, the optional
/// `previous` (the key before the last rotation) still verifies.
pub async fn identity_keys_from_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<KeyRing, RunError> {
    let secret_name = format!("{namespace}/{name}");
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|source| RunError::KeySecret {
            secret: secret_name.clone(),
            source,
        })?;
    let mut data = secret.data.unwrap_or_default();
    let current = data
        .remove("key")
        .map(|b| b.0)
        .ok_or(RunError::KeyMissing {
            secret: secret_name,
            key: "key".into(),
        })?;
    let previous = data.remove("previous").map(|b| b.0).into_iter().collect();
    Ok(KeyRing::new(current, previous)?)
}

/// A started process: its bound addresses and a way to stop it.
pub struct Running {
    pub webhook_addr: Option<SocketAddr>,
    pub api_addr: Option<SocketAddr>,
    pub health_addr: Option<SocketAddr>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops every component and waits for them.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until a component ends on its own (or `stop` is cancelled elsewhere).
    pub async fn wait(mut self) {
        self.tasks.join_next().await;
        self.stop().await;
    }

    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(pool): State<PgPool>) -> (StatusCode, &'static str) {
    match sqlx::query("SELECT 1").execute(&pool).await {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}

/// `/healthz`, `/readyz` and `/metrics` (Prometheus text; installs the recorder if needed).
pub fn health_router(pool: PgPool) -> Router {
    crate::http::metrics::install();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::http::metrics::scrape))
        .with_state(pool)
}

/// Starts the selected components and returns once they are listening.
pub async fn start(
    opts: RunOptions,
    pools: Pools,
    client: Client,
    identity_keys: KeyRing,
) -> Result<Running, RunError> {
    crate::http::metrics::install();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    // The one client that inserts jobs in the use cases' transactions (REST and reconcilers);
    // the workers' client below works the queues.
    let river = Arc::new(crate::jobs::inserter(&pools.controllers)?);

    let mut webhook_addr = None;
    if let Some(w) = &opts.webhook {
        let state = WebhookState::new(
            identity_keys.clone(),
            Arc::new(ShepherdPolicy {
                pool: pools.webhook.clone(),
                client: Some(client.clone()),
            }),
        );
        let listener =
            Listener::tls_verifying_clients(w.addr, &w.cert, &w.key, w.client_ca.as_deref())
                .await?;
        webhook_addr = Some(listener.local_addr().map_err(|source| RunError::Bind {
            addr: w.addr,
            source,
        })?);
        let stop = stop.clone();
        tasks.spawn(async move {
            listener
                .run(
                    "admission webhook",
                    webhook::router(state),
                    stop.cancelled_owned(),
                )
                .await
        });
    }

    let mut api_addr = None;
    if let Some(a) = &opts.api {
        let state = ApiState::new(
            pools.api.clone(),
            river.clone(),
            client.clone(),
            a.config.clone(),
        );
        // The web console shares the listener, the token checks and the rate limits.
        let router = api::router(state.clone()).merge(crate::http::console::router(state));
        api_addr = Some(match &a.tls {
            Some((cert, key)) => {
                let listener = Listener::tls(a.addr, cert, key).await?;
                let bound = listener.local_addr().map_err(|source| RunError::Bind {
                    addr: a.addr,
                    source,
                })?;
                let stop = stop.clone();
                tasks.spawn(async move {
                    listener
                        .run("REST API", router, stop.cancelled_owned())
                        .await
                });
                bound
            }
            None => serve_plain(a.addr, router, "REST API", &stop, &mut tasks).await?,
        });
    }

    let mut health_addr = None;
    if let Some(addr) = opts.health_addr {
        health_addr = Some(
            serve_plain(
                addr,
                health_router(pools.controllers.clone()),
                "health",
                &stop,
                &mut tasks,
            )
            .await?,
        );
    }

    let clusters = Arc::new(ClusterClients::new(
        client.clone(),
        opts.cluster_write_concurrency,
    ));
    if let Some(workers) = &opts.workers {
        let worker_client = crate::jobs::worker_client(&pools.workers, clusters.clone(), workers)?;
        let mut handle = worker_client.start_with_graceful_stop(stop.clone().cancelled_owned())?;
        tasks.spawn(async move {
            if let Err(err) = handle.wait().await {
                tracing::error!(error = %err, "the job workers stopped");
            }
        });
    }

    if opts.controllers {
        let mut ctx = Context::new(
            client.clone(),
            pools.controllers,
            identity_keys,
            &opts.lease.identity,
            river,
            clusters,
        );
        ctx.audit_anchor = Some(crate::controller::audit_anchor::AnchorExport {
            namespace: opts.lease.namespace.clone(),
            interval: opts.audit_anchor_interval,
        });
        let ctx = Arc::new(ctx);
        let stop = stop.clone();
        tasks.spawn(async move {
            run_as_leader(client, opts.lease, stop, move |lost| {
                controller::run(ctx.clone(), lost)
            })
            .await
        });
    }
    Ok(Running {
        webhook_addr,
        api_addr,
        health_addr,
        stop,
        tasks,
    })
}

/// Serves `router` over plain HTTP until `stop`, with the same connection limits as the TLS
/// listeners; returns the bound address.
async fn serve_plain(
    addr: SocketAddr,
    router: Router,
    what: &'static str,
    stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<SocketAddr, RunError> {
    let listener = Listener::plain(addr).await?;
    let bound = listener
        .local_addr()
        .map_err(|source| RunError::Bind { addr, source })?;
    let stop = stop.clone();
    tasks.spawn(async move { listener.run(what, router, stop.cancelled_owned()).await });
    Ok(bound)
}
