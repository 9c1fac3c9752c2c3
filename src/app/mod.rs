//! Use cases. Each owns its transaction: it begins, calls `db` functions with the one
//! connection, and commits, so what must be atomic is decided in one visible place. No
//! Kubernetes call is made while a transaction is open. Its audit rows are appended last,
//! after every other write and right before commit, because `db::audit::append` locks the
//! chain head every writer shares: one lock order everywhere, the head held briefly.

pub mod access;
pub mod admission;
pub mod approvals;
pub mod audit;
pub mod catalog;
pub mod cluster_probe;
pub mod drift;
pub mod inventory;
pub mod job_args;
pub mod listings;
pub mod migrate;
pub mod operate;
pub mod operations;
pub mod provisioning;
pub mod rbac;
pub mod requests;
pub mod seed;
pub mod sessions;
pub mod stamps;
pub mod submission;
pub mod systems;
pub mod tickets;

/// A value stored in the database (`field` names its column) parsed into its type; a value
/// the code does not know is an invalid field, not a panic.
pub(crate) fn parse_stored<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, AppError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| AppError::invalid(field, e))
}

/// SQLSTATEs of input PostgreSQL cannot store: 22021 character_not_in_repertoire (NUL in
/// text), 22P05 untranslatable_character, 22008 datetime_field_overflow, 22007
/// invalid_datetime_format.
const UNSTORABLE_VALUE: [&str; 4] = ["22021", "22P05", "22008", "22007"];

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

/// What kind of failure an [`AppError`] is, for every surface that answers it: the REST
/// API's status, the webhook's denial and the reconcilers' `Denied` reason all map from
/// this one classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A named object does not exist (404).
    NotFound,
    /// The request conflicts with the current state (409).
    Conflict,
    /// A field breaks a rule (422).
    Invalid,
    /// The caller may not do this (403).
    Forbidden,
    /// The database cannot be reached now; retrying later may succeed (503).
    Unavailable,
    /// Anything else: not the caller's fault, details only in the log (500).
    Internal,
}

impl ErrorKind {
    /// The caller's own error (their input or their rights), as opposed to the platform's.
    pub fn is_callers(self) -> bool {
        matches!(
            self,
            ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::Invalid | ErrorKind::Forbidden
        )
    }
}

impl AppError {
    /// A field that breaks a rule.
    pub fn invalid(field: &str, rule: impl ToString) -> Self {
        AppError::Invalid {
            field: field.into(),
            rule: rule.to_string(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::NotFound { .. } => ErrorKind::NotFound,
            AppError::Conflict(_) => ErrorKind::Conflict,
            AppError::Invalid { .. } => ErrorKind::Invalid,
            AppError::Forbidden(_) => ErrorKind::Forbidden,
            AppError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_),
            ) => ErrorKind::Unavailable,
            // Values PostgreSQL cannot store (text with NUL, dates beyond its range) are the
            // caller's input, not the platform's failure.
            AppError::Database(sqlx::Error::Database(e))
                if e.code()
                    .is_some_and(|c| UNSTORABLE_VALUE.contains(&c.as_ref())) =>
            {
                ErrorKind::Invalid
            }
            _ => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_has_its_kind_and_only_rule_breaks_are_the_callers() {
        let cases = [
            (
                AppError::NotFound {
                    what: "ticket",
                    id: "x".into(),
                },
                ErrorKind::NotFound,
                true,
            ),
            (AppError::Conflict("c".into()), ErrorKind::Conflict, true),
            (
                AppError::Invalid {
                    field: "f".into(),
                    rule: "r".into(),
                },
                ErrorKind::Invalid,
                true,
            ),
            (AppError::Forbidden("no".into()), ErrorKind::Forbidden, true),
            (
                AppError::Database(sqlx::Error::PoolTimedOut),
                ErrorKind::Unavailable,
                false,
            ),
            (
                AppError::Database(sqlx::Error::PoolClosed),
                ErrorKind::Unavailable,
                false,
            ),
            (
                AppError::Database(sqlx::Error::RowNotFound),
                ErrorKind::Internal,
                false,
            ),
        ];
        for (err, kind, callers) in cases {
            assert_eq!(err.kind(), kind, "{err}");
            assert_eq!(kind.is_callers(), callers, "{err}");
        }
    }
}
