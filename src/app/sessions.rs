//! Web console sessions: a login whose token the management cluster accepted (the caller
//! comes from the TokenReview) opens a session kept in PostgreSQL until it expires or the
//! user logs out. The cookie carries a random 256-bit id; the database only its SHA-256.
//! Permissions are not cached in the session: every page and action evaluates the RBAC
//! rules of that moment, so a revoked binding takes effect at once. Logins and logouts are
//! audited (`console.login`, `console.logout`), the session named by its stored hash.

use super::AppError;
use super::access::Caller;
use crate::db;
use crate::db::audit::AuditEntry;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::time::Duration;

/// 256 random bits from the operating system, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn id_hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// An opened session: the id for the cookie (never stored) and the CSRF token of its forms.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    pub id: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// A live session: who is logged in and the token every form must carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// How long a login link of `kubectl shepherd ui` stays usable (once).
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(60);

fn chrono_ttl(ttl: Duration) -> Result<chrono::Duration, AppError> {
    chrono::Duration::from_std(ttl).map_err(|_| AppError::invalid("session ttl", "is too long"))
}

/// How a login proved who it is, as its audit row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginMethod {
    /// A bearer token, checked with TokenReview.
    Token,
    /// A one-time link of `kubectl shepherd ui`.
    Link,
}

impl LoginMethod {
    fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Token => "token",
            LoginMethod::Link => "login link",
        }
    }
}

/// The audit row of a session's start or end; the session is named by its stored hash.
fn session_audit(action: &str, username: &str, hash: &[u8; 32]) -> AuditEntry {
    AuditEntry::new(
        action,
        username,
        "console_session",
        hex::encode(hash),
        username,
    )
}

/// Opens a session for `caller` lasting `ttl` (audited), and forgets expired ones.
pub async fn open(
    pool: &PgPool,
    caller: &Caller,
    ttl: Duration,
) -> Result<OpenedSession, AppError> {
    let mut tx = pool.begin().await?;
    let opened = open_in(&mut tx, caller, ttl, LoginMethod::Token).await?;
    tx.commit().await?;
    Ok(opened)
}

/// The session's rows; its audit row is the last write, so the caller commits next.
async fn open_in(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    ttl: Duration,
    method: LoginMethod,
) -> Result<OpenedSession, AppError> {
    let opened = OpenedSession {
        id: random_token(),
        csrf_token: random_token(),
        expires_at: Utc::now() + chrono_ttl(ttl)?,
    };
    let hash = id_hash(&opened.id);
    db::console_sessions::delete_expired(conn).await?;
    db::console_sessions::insert(
        conn,
        &hash,
        &caller.username,
        &caller.groups,
        &opened.csrf_token,
        opened.expires_at,
    )
    .await?;
    db::audit::append(
        conn,
        &session_audit("console.login", &caller.username, &hash).details(serde_json::json!({
            "method": method.as_str(), "groups": caller.groups, "expiresAt": opened.expires_at,
        })),
    )
    .await?;
    Ok(opened)
}

/// A one-time login code for `caller` (already authenticated by their bearer token),
/// usable once within [`LOGIN_CODE_TTL`]; the code and when it expires.
pub async fn issue_login_code(
    pool: &PgPool,
    caller: &Caller,
) -> Result<(String, DateTime<Utc>), AppError> {
    let code = random_token();
    let expires_at = Utc::now() + chrono_ttl(LOGIN_CODE_TTL)?;
    let mut tx = pool.begin().await?;
    db::console_sessions::delete_expired_login_codes(&mut tx).await?;
    db::console_sessions::insert_login_code(
        &mut tx,
        &id_hash(&code),
        &caller.username,
        &caller.groups,
        expires_at,
    )
    .await?;
    tx.commit().await?;
    Ok((code, expires_at))
}

/// Uses a login code up and opens a session for whom it was issued; None when the code is
/// unknown, used or expired.
pub async fn open_with_code(
    pool: &PgPool,
    code: &str,
    ttl: Duration,
) -> Result<Option<(Caller, OpenedSession)>, AppError> {
    let mut tx = pool.begin().await?;
    let Some((username, groups)) =
        db::console_sessions::redeem_login_code(&mut tx, &id_hash(code)).await?
    else {
        tx.commit().await?;
        return Ok(None);
    };
    let caller = Caller { username, groups };
    let opened = open_in(&mut tx, &caller, ttl, LoginMethod::Link).await?;
    tx.commit().await?;
    Ok(Some((caller, opened)))
}

/// The session of a cookie's id, if it exists and has not expired.
pub async fn find(pool: &PgPool, id: &str) -> Result<Option<Session>, AppError> {
    let row = db::console_sessions::live(&mut *pool.acquire().await?, &id_hash(id)).await?;
    Ok(row.map(|r| Session {
        caller: Caller {
            username: r.username,
            groups: r.groups,
        },
        csrf_token: r.csrf_token,
        expires_at: r.expires_at,
    }))
}

/// Ends a session (logout), audited; ending one that is gone already is not an error.
pub async fn close(pool: &PgPool, id: &str) -> Result<(), AppError> {
    let hash = id_hash(id);
    let mut tx = pool.begin().await?;
    if let Some(username) = db::console_sessions::delete(&mut tx, &hash).await? {
        db::audit::append(&mut tx, &session_audit("console.logout", &username, &hash)).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn the_stored_hash_is_the_ids_sha256_not_the_id() {
        let id = random_token();
        assert_ne!(&id_hash(&id)[..], id.as_bytes());
        assert_eq!(id_hash(&id), id_hash(&id));
    }
}
