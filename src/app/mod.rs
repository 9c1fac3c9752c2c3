//! Use cases. Each owns its transaction: it begins, calls `db` functions with the one
//! connection, and commits, so what must be atomic is decided in one visible place. No
//! Kubernetes call is made while a transaction is open.

pub mod access;
pub mod admission;
pub mod approvals;
pub mod audit;
pub mod catalog;
pub mod inventory;
pub mod listings;
pub mod migrate;
pub mod operations;
pub mod provisioning;
pub mod rbac;
pub mod requests;
pub mod seed;
pub mod systems;
pub mod tickets;

/// Errors at the use-case boundary. Variants map to API answers (404, 409, 400/422, 403).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid {field}: {rule}")]
    Invalid { field: String, rule: String },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("job queue error: {0}")]
    Queue(#[from] riverqueue::Error),
    #[error("schema migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("River migration failed: {0}")]
    RiverMigration(#[from] riverqueue::migrate::Error),
}
