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

/// The SHA-256 of a spec as its typed value serializes (maps sorted): the same for the
/// object admission saw and the one the reconciler reads.
pub fn spec_sha256<T: serde::Serialize>(spec: &T) -> String {
    use sha2::{Digest, Sha256};
    let canonical = serde_json::to_value(spec)
        .map(|v| v.to_string())
        .unwrap_or_default();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Records who created or changed a catalog object's spec.
pub async fn record_catalog_change(
    pool: &PgPool,
    kind: &str,
    name: &str,
    spec_sha256: &str,
    changed_by: &str,
) -> Result<(), AppError> {
    let mut conn = pool.acquire().await?;
    db::stamps::record_catalog_change(&mut conn, kind, name, spec_sha256, changed_by).await?;
    Ok(())
}

/// The actor of a catalog change's audit rows: who admission saw making the spec what it
/// is, or `fallback` (the controller) when nobody was recorded.
pub async fn catalog_change_actor<T: serde::Serialize>(
    pool: &PgPool,
    kind: &str,
    name: &str,
    spec: &T,
    fallback: &str,
) -> Result<String, AppError> {
    let mut conn = pool.acquire().await?;
    let author =
        db::stamps::catalog_change_author(&mut conn, kind, name, &spec_sha256(spec)).await?;
    Ok(author.unwrap_or_else(|| {
        tracing::warn!(
            kind,
            name,
            "no admission record of who made this spec; audited as the controller"
        );
        fallback.to_string()
    }))
}
