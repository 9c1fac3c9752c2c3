//! Approval policies: which operations need approval in which environment
//! (docs/architecture.md#tickets-and-approval).

use sqlx::PgConnection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    pub operation: String,
    pub environment: String,
    pub requires_approval: bool,
}

/// Inserts a policy unless one exists for (operation, environment); an admin's edit stays.
pub async fn insert_if_absent(
    conn: &mut PgConnection,
    operation: &str,
    environment: &str,
    requires_approval: bool,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"INSERT INTO approval_policies (operation, environment, requires_approval)
           VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"#,
        operation,
        environment,
        requires_approval
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn all(conn: &mut PgConnection) -> sqlx::Result<Vec<PolicyRow>> {
    sqlx::query_as!(
        PolicyRow,
        "SELECT operation, environment, requires_approval FROM approval_policies ORDER BY operation, environment"
    )
    .fetch_all(conn)
    .await
}

/// Whether an operation needs approval in an environment; None when no policy row exists.
pub async fn requires_approval(
    conn: &mut PgConnection,
    operation: &str,
    environment: &str,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        "SELECT requires_approval FROM approval_policies WHERE operation = $1 AND environment = $2",
        operation,
        environment
    )
    .fetch_optional(conn)
    .await
}
