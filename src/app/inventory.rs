//! What exists: a read-only overview for operators and the demo.

use super::AppError;
use crate::db;
use crate::db::policies::PolicyRow;
use crate::db::rbac::{RoleBindingRow, RoleSummary};
use crate::db::services::InventoryCounts;
use sqlx::PgPool;

#[derive(Debug, Clone)]
pub struct Inventory {
    pub counts: InventoryCounts,
    pub roles: Vec<RoleSummary>,
    pub policies: Vec<PolicyRow>,
    pub bootstrap_admins: Vec<RoleBindingRow>,
    pub audit_rows: i64,
}

pub async fn load(pool: &PgPool) -> Result<Inventory, AppError> {
    let mut conn = pool.acquire().await?;
    Ok(Inventory {
        counts: db::services::counts(&mut conn).await?,
        roles: db::rbac::roles(&mut conn).await?,
        policies: db::policies::all(&mut conn).await?,
        bootstrap_admins: db::rbac::role_bindings_by_source(&mut conn, "config").await?,
        audit_rows: db::audit::head(&mut conn).await?.2,
    })
}
