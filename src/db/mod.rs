//! Persistence. Every function takes `&mut PgConnection` and never begins, commits or rolls
//! back: transactions belong to the use cases in `app/`, which decide what is atomic.

pub mod audit;
pub mod catalog;
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
