//! Domain events: machine-readable state transitions, written with the change they describe.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

pub async fn insert(
    conn: &mut PgConnection,
    aggregate_type: &str,
    aggregate_id: Uuid,
    event_type: &str,
    status: &str,
    payload: &Value,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"INSERT INTO domain_events (aggregate_type, aggregate_id, event_type, status, payload)
           VALUES ($1, $2, $3, $4, $5) RETURNING id"#,
        aggregate_type,
        aggregate_id,
        event_type,
        status,
        payload
    )
    .fetch_one(conn)
    .await
}

/// Event types recorded for one aggregate, oldest first.
pub async fn types_for(conn: &mut PgConnection, aggregate_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT event_type FROM domain_events WHERE aggregate_id = $1 ORDER BY id",
        aggregate_id
    )
    .fetch_all(conn)
    .await
}

/// Deletes up to `batch` domain events created more than `days` days ago; how many.
pub async fn prune_older_than(conn: &mut PgConnection, days: i32, batch: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        "DELETE FROM domain_events WHERE id IN (
             SELECT id FROM domain_events WHERE created_at < now() - make_interval(days => $1)
             ORDER BY created_at LIMIT $2)",
        days,
        batch
    )
    .execute(conn)
    .await?
    .rows_affected())
}
