//! One-time identity stamps and recorded deletions (docs/architecture.md#identity-and-permissions).
//!
//! The webhook [`issue`]s a nonce before it signs it; the reconciler [`claim`]s it for the
//! object's uid the first time it sees the object. A stamp copied onto another object (say
//! one recreated under a deleted object's name while the webhook was bypassed) verifies
//! cryptographically but finds its nonce claimed, and is refused.

use super::AppError;
use crate::db;
use crate::db::stamps::ObjectRef;
use sqlx::PgPool;

/// Records a nonce the webhook is about to sign for `object`, created by `username`.
pub async fn issue(
    pool: &PgPool,
    nonce: &str,
    object: ObjectRef<'_>,
    username: &str,
) -> Result<(), AppError> {
    db::stamps::issue(&mut *pool.acquire().await?, nonce, object, username).await?;
    Ok(())
}

/// Why a stamp that verified is still refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampRefusal {
    #[error(
        "the identity stamp's nonce was never issued by Shepherd's webhook: the annotations \
         were written by hand; delete the object and create it again through the API server"
    )]
    NeverIssued,
    #[error(
        "the identity stamp was already used by another object (uid {other_uid}): stamps are \
         single-use, so one copied from an earlier object is refused; delete this object and \
         create it again through the API server"
    )]
    Reused { other_uid: String },
}

/// Claims `nonce` for the object `uid`: Ok the first time and every later time for the same
/// uid; refused when another uid claimed it first or it was never issued.
pub async fn claim(
    pool: &PgPool,
    nonce: &str,
    uid: &str,
) -> Result<Result<(), StampRefusal>, AppError> {
    let issued = db::stamps::claim(&mut *pool.acquire().await?, nonce, uid).await?;
    Ok(match issued {
        None => Err(StampRefusal::NeverIssued),
        Some(row) if row.object_uid.as_deref() == Some(uid) => Ok(()),
        Some(row) => Err(StampRefusal::Reused {
            other_uid: row.object_uid.unwrap_or_default(),
        }),
    })
}

/// Records who asked to delete the object `uid` (the first request counts).
pub async fn record_deletion(
    pool: &PgPool,
    uid: &str,
    object: ObjectRef<'_>,
    deleted_by: &str,
) -> Result<(), AppError> {
    db::stamps::record_deletion(&mut *pool.acquire().await?, uid, object, deleted_by).await?;
    Ok(())
}

/// The actor of a deletion's audit rows: who asked the API server, or `fallback` (the
/// controller) when admission recorded nobody.
pub async fn deletion_actor(pool: &PgPool, uid: &str, fallback: &str) -> Result<String, AppError> {
    Ok(db::stamps::deleted_by(&mut *pool.acquire().await?, uid)
        .await?
        .unwrap_or_else(|| fallback.to_string()))
}
