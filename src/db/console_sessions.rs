//! Server-side sessions of the web console, by the SHA-256 of their cookie's id.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// A live session as the console needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub username: String,
    pub groups: Vec<String>,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(
    conn: &mut PgConnection,
    id_sha256: &[u8],
    username: &str,
    groups: &[String],
    csrf_token: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO console_sessions (id_sha256, username, groups, csrf_token, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        id_sha256,
        username,
        groups,
        csrf_token,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The session if it exists and has not expired.
pub async fn live(conn: &mut PgConnection, id_sha256: &[u8]) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as!(
        SessionRow,
        "SELECT username, groups, csrf_token, expires_at FROM console_sessions
         WHERE id_sha256 = $1 AND expires_at > now()",
        id_sha256
    )
    .fetch_optional(conn)
    .await
}

/// Ends a session; whose it was, if it existed.
pub async fn delete(conn: &mut PgConnection, id_sha256: &[u8]) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "DELETE FROM console_sessions WHERE id_sha256 = $1 RETURNING username",
        id_sha256
    )
    .fetch_optional(conn)
    .await
}

/// Forgets expired sessions; how many went.
pub async fn delete_expired(conn: &mut PgConnection) -> sqlx::Result<u64> {
    Ok(
        sqlx::query!("DELETE FROM console_sessions WHERE expires_at <= now()")
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

pub async fn insert_login_code(
    conn: &mut PgConnection,
    code_sha256: &[u8],
    username: &str,
    groups: &[String],
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO console_login_codes (code_sha256, username, groups, expires_at)
         VALUES ($1, $2, $3, $4)",
        code_sha256,
        username,
        groups,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Uses a login code up: who it was issued to, if it exists and has not expired. A second
/// redemption finds nothing.
pub async fn redeem_login_code(
    conn: &mut PgConnection,
    code_sha256: &[u8],
) -> sqlx::Result<Option<(String, Vec<String>)>> {
    let row = sqlx::query!(
        r#"DELETE FROM console_login_codes WHERE code_sha256 = $1
           RETURNING username, groups, expires_at > now() AS "live!""#,
        code_sha256
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.filter(|r| r.live).map(|r| (r.username, r.groups)))
}

/// Forgets expired login codes.
pub async fn delete_expired_login_codes(conn: &mut PgConnection) -> sqlx::Result<u64> {
    Ok(
        sqlx::query!("DELETE FROM console_login_codes WHERE expires_at <= now()")
            .execute(conn)
            .await?
            .rows_affected(),
    )
}
