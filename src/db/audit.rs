//! The audit log's single append function and the reads verification needs.

use crate::domain::audit_chain::{AuditContent, StoredRow, row_hash};
use crate::domain::redact::redact;
use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use std::future::Future;

/// The key under which [`append`] records the id of the request being served.
pub const REQUEST_ID_KEY: &str = "requestId";

tokio::task_local! {
    /// The `x-request-id` of the REST request this task is serving, if any.
    static REQUEST_ID: String;
}

/// Runs `f` with `id` as the current request id: every audit row appended while it runs
/// (on this task) carries `"requestId": id` in its details, so a row can be matched with
/// the request and its log lines. The REST API scopes each request with it.
pub async fn with_request_id<F: Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The request id set by [`with_request_id`] for this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// `details` with the current request id added, when one is set, `details` is an object
/// and it names no request id of its own.
fn with_current_request_id(details: &Value) -> Value {
    let mut details = details.clone();
    if let Value::Object(map) = &mut details
        && !map.contains_key(REQUEST_ID_KEY)
        && let Some(id) = current_request_id()
    {
        map.insert(REQUEST_ID_KEY.to_string(), Value::String(id));
    }
    details
}

/// One audit record as a writer describes it.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub action: String,
    pub actor: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    pub parent: Option<(String, String)>,
    pub environment: Option<String>,
    pub details: Value,
}

impl AuditEntry {
    pub fn new(
        action: &str,
        actor: &str,
        resource_type: &str,
        resource_id: impl ToString,
        resource_name: &str,
    ) -> Self {
        Self {
            action: action.to_string(),
            actor: actor.to_string(),
            resource_type: resource_type.to_string(),
            resource_id: resource_id.to_string(),
            resource_name: resource_name.to_string(),
            parent: None,
            environment: None,
            details: Value::Object(Default::default()),
        }
    }

    pub fn parent(mut self, kind: &str, id: impl ToString) -> Self {
        self.parent = Some((kind.to_string(), id.to_string()));
        self
    }

    pub fn environment(mut self, env: impl ToString) -> Self {
        self.environment = Some(env.to_string());
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Appends one row to the chain. Must run inside the caller's transaction: the chain head's
/// row lock, held until commit, orders concurrent appends so the chain never forks; a rolled
/// back transaction takes its row and the head update with it. Secret-like keys in the
/// details are redacted before anything is hashed or stored. Inside [`with_request_id`],
/// the details (an object) also get the request id, before hashing: it is part of the row.
///
/// Call it last in the transaction, after every other write (domain events included), right
/// before commit: it locks the chain head, which every writer shares. A transaction that
/// appended and then wrote another row could wait for that row while holding the head, and
/// deadlock with one holding the row and waiting for the head; appending last also holds
/// the head for the shortest time. Several appends in a row at the end are fine
/// ([`append_all`]); a helper that writes collects its entries for the caller to append.
pub async fn append(conn: &mut PgConnection, entry: &AuditEntry) -> sqlx::Result<i64> {
    let head = sqlx::query!("SELECT last_hash FROM audit_chain_head WHERE singleton FOR UPDATE")
        .fetch_one(&mut *conn)
        .await?;
    let content = AuditContent {
        // PostgreSQL keeps microseconds; hash exactly what will be read back.
        occurred_at: Utc::now()
            .duration_trunc(TimeDelta::microseconds(1))
            .expect("microsecond truncation cannot overflow"),
        action: entry.action.clone(),
        actor: entry.actor.clone(),
        resource_type: entry.resource_type.clone(),
        resource_id: entry.resource_id.clone(),
        resource_name: entry.resource_name.clone(),
        parent_type: entry.parent.as_ref().map(|p| p.0.clone()),
        parent_id: entry.parent.as_ref().map(|p| p.1.clone()),
        environment: entry.environment.clone(),
        details: redact(&with_current_request_id(&entry.details)),
    };
    let hash = row_hash(&head.last_hash, &content);
    let id = sqlx::query_scalar!(
        r#"INSERT INTO audit_log (occurred_at, action, actor, resource_type, resource_id, resource_name,
                                  parent_type, parent_id, environment, details, prev_hash, hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           RETURNING id"#,
        content.occurred_at,
        content.action,
        content.actor,
        content.resource_type,
        content.resource_id,
        content.resource_name,
        content.parent_type,
        content.parent_id,
        content.environment,
        content.details,
        head.last_hash,
        hash,
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE audit_chain_head SET last_id = $1, last_hash = $2, row_count = row_count + 1 WHERE singleton",
        id,
        hash
    )
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Appends `entries` in order, each as [`append`] does: the audit rows a transaction
/// collected while it wrote everything else, appended last.
pub async fn append_all(conn: &mut PgConnection, entries: &[AuditEntry]) -> sqlx::Result<()> {
    for entry in entries {
        append(conn, entry).await?;
    }
    Ok(())
}

/// The recorded head of the chain: (newest id, its hash, row count).
pub async fn head(conn: &mut PgConnection) -> sqlx::Result<(i64, String, i64)> {
    let row =
        sqlx::query!("SELECT last_id, last_hash, row_count FROM audit_chain_head WHERE singleton")
            .fetch_one(conn)
            .await?;
    Ok((row.last_id, row.last_hash, row.row_count))
}

/// Up to `limit` rows with an id above `after_id`, in id order.
pub async fn rows_after(
    conn: &mut PgConnection,
    after_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<StoredRow>> {
    let rows = sqlx::query!(
        r#"SELECT id, occurred_at, action, actor, resource_type, resource_id, resource_name,
                  parent_type, parent_id, environment, details, prev_hash, hash
           FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"#,
        after_id,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| StoredRow {
            id: r.id,
            content: AuditContent {
                occurred_at: r.occurred_at,
                action: r.action,
                actor: r.actor,
                resource_type: r.resource_type,
                resource_id: r.resource_id,
                resource_name: r.resource_name,
                parent_type: r.parent_type,
                parent_id: r.parent_id,
                environment: r.environment,
                details: r.details,
            },
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
        .collect())
}

/// Rows for one actor, newest first (for inspection and tests).
pub async fn actions_by_actor(conn: &mut PgConnection, actor: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT action FROM audit_log WHERE actor = $1 ORDER BY id",
        actor
    )
    .fetch_all(conn)
    .await
}

/// Filters of an audit query; `None` matches everything. Rows whose environment is set
/// must be one of `readable_environments`; rows without one (platform actions) match
/// unless `environment` asks for one.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub action_prefix: Option<String>,
    pub environment: Option<String>,
    pub readable_environments: Vec<String>,
    pub since: Option<chrono::DateTime<Utc>>,
    pub until: Option<chrono::DateTime<Utc>>,
}

/// A stored audit row without its chain fields.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub occurred_at: chrono::DateTime<Utc>,
    pub action: String,
    pub actor: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    pub parent_type: Option<String>,
    pub parent_id: Option<String>,
    pub environment: Option<String>,
    pub details: Value,
}

/// Up to `limit` matching rows with an id above `after_id`, in id order.
pub async fn query(
    conn: &mut PgConnection,
    filter: &AuditFilter,
    after_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as!(
        AuditRow,
        r#"SELECT id, occurred_at, action, actor, resource_type, resource_id, resource_name,
                  parent_type, parent_id, environment, details
           FROM audit_log
           WHERE id > $1
             AND ($2::text IS NULL OR actor = $2)
             AND ($3::text IS NULL OR resource_type = $3)
             AND ($4::text IS NULL OR resource_id = $4)
             AND ($5::text IS NULL OR starts_with(action, $5))
             AND CASE WHEN environment IS NULL THEN $10::text IS NULL
                      ELSE environment = ANY($6) AND ($10::text IS NULL OR environment = $10) END
             AND ($7::timestamptz IS NULL OR occurred_at >= $7)
             AND ($8::timestamptz IS NULL OR occurred_at < $8)
           ORDER BY id LIMIT $9"#,
        after_id,
        filter.actor,
        filter.resource_type,
        filter.resource_id,
        filter.action_prefix,
        &filter.readable_environments,
        filter.since,
        filter.until,
        limit,
        filter.environment
    )
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn the_request_id_goes_into_object_details_only_inside_its_scope() {
        assert_eq!(with_current_request_id(&json!({"a": 1})), json!({"a": 1}));
        let inside = with_request_id("req-1".into(), async {
            (
                with_current_request_id(&json!({"a": 1})),
                with_current_request_id(&json!({"requestId": "mine"})),
                with_current_request_id(&json!(["not", "an", "object"])),
            )
        })
        .await;
        assert_eq!(
            inside,
            (
                json!({"a": 1, "requestId": "req-1"}),
                json!({"requestId": "mine"}),
                json!(["not", "an", "object"]),
            )
        );
    }
}
