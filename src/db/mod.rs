//! Persistence. Every function takes `&mut PgConnection` and never begins, commits or rolls
//! back: transactions belong to the use cases in `app/`, which decide what is atomic.

pub mod audit;
pub mod catalog;
pub mod console_sessions;
pub mod events;
pub mod policies;
pub mod rbac;
pub mod services;
pub mod snapshots;
pub mod stamps;
pub mod tickets;
pub mod vms;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, postgres::PgConnection};
use std::str::FromStr;
use std::time::Duration;

pub use sqlx::PgConnection as Connection;

/// The role the application runs as: everything but UPDATE, DELETE and TRUNCATE on the
/// audit log. `shepherd migrate` creates it (NOLOGIN) and keeps its grants current.
pub const APP_ROLE: &str = "shepherd_app";

/// Opens a pool; the URL's password never appears in errors or logs.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("kubevirt-shepherd");
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
}

/// One component's share of the database: its own connections and how long one of its
/// statements may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    pub max_connections: u32,
    pub statement_timeout: Duration,
}

/// The sizes of [`Pools`]. A component that exhausts its pool (a flood of REST calls, a
/// stuck worker) waits on its own connections; the others keep theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizes {
    /// The admission webhook: short statements, answered within the API server's timeout.
    pub webhook: PoolSize,
    pub api: PoolSize,
    /// Reconcilers and status watchers.
    pub controllers: PoolSize,
    /// River's job workers (at least their concurrency, plus River's own bookkeeping).
    pub workers: PoolSize,
}

impl PoolSizes {
    /// Defaults for a process working `worker_concurrency` jobs at once.
    pub fn for_workers(worker_concurrency: u32) -> Self {
        let size = |max_connections, seconds| PoolSize {
            max_connections,
            statement_timeout: Duration::from_secs(seconds),
        };
        Self {
            webhook: size(4, 5),
            api: size(8, 30),
            controllers: size(6, 30),
            workers: size(worker_concurrency + 4, 60),
        }
    }
}

/// A pool per component of `shepherd run` (webhook, REST API, controllers, workers), each
/// with `statement_timeout` set on its connections.
#[derive(Debug, Clone)]
pub struct Pools {
    pub webhook: PgPool,
    pub api: PgPool,
    pub controllers: PgPool,
    pub workers: PgPool,
}

impl Pools {
    /// Opens the four pools lazily: connections are made when first needed, so a component
    /// a replica does not run costs nothing.
    pub fn connect_lazy(url: &str, sizes: &PoolSizes) -> Result<Self, sqlx::Error> {
        let pool = |component: &str, size: &PoolSize| -> Result<PgPool, sqlx::Error> {
            let timeout_ms = size.statement_timeout.as_millis().to_string();
            let options = PgConnectOptions::from_str(url)?
                .application_name(&format!("kubevirt-shepherd/{component}"))
                .options([("statement_timeout", timeout_ms.as_str())]);
            Ok(PgPoolOptions::new()
                .max_connections(size.max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(options))
        };
        Ok(Self {
            webhook: pool("webhook", &sizes.webhook)?,
            api: pool("api", &sizes.api)?,
            controllers: pool("controllers", &sizes.controllers)?,
            workers: pool("workers", &sizes.workers)?,
        })
    }
}

/// True when the error is a unique violation (SQLSTATE 23505), e.g. a concurrent insert won.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// Locks serialising a critical section for the rest of the transaction.
pub async fn advisory_xact_lock(conn: &mut PgConnection, key: i64) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", key)
        .execute(conn)
        .await?;
    Ok(())
}
