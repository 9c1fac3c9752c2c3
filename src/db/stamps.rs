//! What admission records for the reconcilers: the nonces of identity stamps (one-time,
//! claimed by the first object uid), who asked to delete an object, and who changed a
//! catalog object's spec.

use sqlx::PgConnection;

/// The object a stamp or a deletion is about.
#[derive(Debug, Clone, Copy)]
pub struct ObjectRef<'a> {
    pub kind: &'a str,
    /// Empty for cluster-scoped kinds.
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Records a nonce the webhook is about to sign.
pub async fn issue(
    conn: &mut PgConnection,
    nonce: &str,
    object: ObjectRef<'_>,
    username: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO identity_stamps (nonce, kind, namespace, name, username)
         VALUES ($1, $2, $3, $4, $5)",
        nonce,
        object.kind,
        object.namespace,
        object.name,
        username
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A recorded nonce as the claim found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedStamp {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub username: String,
    pub object_uid: Option<String>,
}

/// Claims `nonce` for `uid` if unclaimed (claiming again for the same uid is a no-op), and
/// returns the row as it is afterwards; None when the nonce was never issued.
pub async fn claim(
    conn: &mut PgConnection,
    nonce: &str,
    uid: &str,
) -> sqlx::Result<Option<IssuedStamp>> {
    sqlx::query_as!(
        IssuedStamp,
        r#"WITH claimed AS (
               UPDATE identity_stamps SET object_uid = $2, claimed_at = now()
               WHERE nonce = $1 AND object_uid IS NULL
                 AND NOT EXISTS (SELECT 1 FROM identity_stamps WHERE object_uid = $2)
               RETURNING kind, namespace, name, username, object_uid)
           SELECT kind AS "kind!", namespace AS "namespace!", name AS "name!",
                  username AS "username!", object_uid
           FROM claimed
           UNION ALL
           SELECT kind, namespace, name, username, object_uid
           FROM identity_stamps WHERE nonce = $1 AND NOT EXISTS (SELECT 1 FROM claimed)"#,
        nonce,
        uid
    )
    .fetch_optional(conn)
    .await
}

/// Records who asked to delete the object `uid`; the first request counts (later ones find
/// the object already being deleted).
pub async fn record_deletion(
    conn: &mut PgConnection,
    uid: &str,
    object: ObjectRef<'_>,
    deleted_by: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO object_deletions (object_uid, kind, namespace, name, deleted_by)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (object_uid) DO NOTHING",
        uid,
        object.kind,
        object.namespace,
        object.name,
        deleted_by
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Who asked to delete the object `uid`, if admission recorded it.
pub async fn deleted_by(conn: &mut PgConnection, uid: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT deleted_by FROM object_deletions WHERE object_uid = $1",
        uid
    )
    .fetch_optional(conn)
    .await
}

/// Records that `changed_by` created or changed the spec (by its SHA-256) of a catalog object.
pub async fn record_catalog_change(
    conn: &mut PgConnection,
    kind: &str,
    name: &str,
    spec_sha256: &str,
    changed_by: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO catalog_changes (kind, name, spec_sha256, changed_by) VALUES ($1, $2, $3, $4)",
        kind,
        name,
        spec_sha256,
        changed_by
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Who most recently made a catalog object's spec what it is now, if admission recorded it.
pub async fn catalog_change_author(
    conn: &mut PgConnection,
    kind: &str,
    name: &str,
    spec_sha256: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT changed_by FROM catalog_changes
         WHERE kind = $1 AND name = $2 AND spec_sha256 = $3 ORDER BY id DESC LIMIT 1",
        kind,
        name,
        spec_sha256
    )
    .fetch_optional(conn)
    .await
}

/// Deletes what admission recorded that no reconcile will ask for any more: nonces never
/// claimed within a day (their create was refused after the webhook stamped it) and
/// deletion records older than `days`. Claimed nonces stay: they are what refuses a stamp
/// copied onto a recreated object. Returns the number of rows deleted.
pub async fn prune(conn: &mut PgConnection, days: i32) -> sqlx::Result<u64> {
    let stamps = sqlx::query!(
        "DELETE FROM identity_stamps WHERE object_uid IS NULL AND issued_at < now() - interval '1 day'"
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let deletions = sqlx::query!(
        "DELETE FROM object_deletions WHERE requested_at < now() - make_interval(days => $1)",
        days
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(stamps + deletions)
}
