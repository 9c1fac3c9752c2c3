//! Reads for the REST API: tickets, VMs, Systems, Services, audit rows and role bindings, each
//! filtered by what the caller may see (docs/architecture.md#identity-and-permissions: without a
//! role on a System, the System and everything under it is left out; a binding counts only for the
//! environments it allows). Lists are keyset-paginated, so a page boundary never moves when rows
//! are added.

use super::AppError;
use super::access::{Caller, Check, SystemRef, Viewer};
use crate::db;
use crate::db::audit::{AuditFilter, AuditRow};
use crate::db::catalog::OrphanRow;
use crate::db::rbac::BindingListRow;
use crate::db::services::InventoryRow;
use crate::db::tickets::{TicketFilter, TicketListRow, TicketVisibility};
use crate::db::vms::{VmFilter, VmListRow, VmSummary};
use crate::domain::Environment;
use crate::domain::operation::check_admissible;
use crate::domain::permissions::{Permission, Scope};
use crate::domain::ticket::{Operation, TicketStatus};
use crate::domain::vm_state::VmState;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::future::Future;
use uuid::Uuid;

/// Page sizes a caller may ask for.
pub const MAX_PAGE: usize = 500;
pub const DEFAULT_PAGE: usize = 50;

/// One page and the key to continue after, if more rows match.
#[derive(Debug, Clone)]
pub struct Page<T, K> {
    pub items: Vec<T>,
    pub next: Option<K>,
}

/// The keyset of tickets and bindings.
pub type TimeKey = (DateTime<Utc>, Uuid);

/// Fills a page with rows `keep` accepts, fetching batches after `after` until the page
/// is full and one more row is known to exist, or the rows run out.
async fn visible_page<T, K, Fut>(
    limit: usize,
    mut after: Option<K>,
    mut fetch: impl FnMut(Option<K>, i64) -> Fut,
    keep: impl Fn(&T) -> bool,
    key: impl Fn(&T) -> K,
) -> Result<Page<T, K>, AppError>
where
    K: Clone,
    Fut: Future<Output = sqlx::Result<Vec<T>>>,
{
    let batch = (limit + 1).max(100);
    let mut items: Vec<T> = Vec::with_capacity(limit);
    loop {
        let rows = fetch(after.clone(), batch as i64).await?;
        let exhausted = rows.len() < batch;
        for row in rows {
            after = Some(key(&row));
            if keep(&row) {
                if items.len() == limit {
                    let next = items.last().map(&key);
                    return Ok(Page { items, next });
                }
                items.push(row);
            }
        }
        if exhausted {
            return Ok(Page { items, next: None });
        }
    }
}

fn system_ref(id: Uuid, name: &str) -> SystemRef {
    SystemRef {
        id,
        name: name.to_string(),
    }
}

fn env_of(s: &str) -> Option<Environment> {
    s.parse().ok()
}

/// Who sees a ticket: its requester, and whoever may view approvals, approve, or read VMs
/// for its System in its environment.
fn sees_ticket(viewer: &Viewer, t: &TicketListRow) -> bool {
    if t.requester == viewer.caller.username {
        return true;
    }
    let system = system_ref(t.system_id, &t.system_name);
    let env = env_of(&t.environment);
    [
        Permission::ApprovalView,
        Permission::ApprovalApprove,
        Permission::VmRead,
    ]
    .into_iter()
    .any(|p| viewer.allows(p, Some(&system), env))
}

/// A ticket waiting for this caller's decision: pending, not theirs, and theirs to approve.
pub fn awaits_decision_by(viewer: &Viewer, t: &TicketListRow) -> bool {
    t.status == TicketStatus::PendingApproval.as_str()
        && t.requester != viewer.caller.username
        && viewer.allows(
            Permission::ApprovalApprove,
            Some(&system_ref(t.system_id, &t.system_name)),
            env_of(&t.environment),
        )
}

/// [`sees_ticket`] (or, `awaiting`, [`awaits_decision_by`]) as a filter the database applies:
/// the (System, environment) pairs the caller may see or decide, worked out from the rules
/// for every System, so a listing reads only visible rows.
fn ticket_visibility(
    viewer: &Viewer,
    systems: &[(Uuid, String)],
    awaiting: bool,
) -> TicketVisibility {
    let permissions: &[Permission] = if awaiting {
        &[Permission::ApprovalApprove]
    } else {
        &[
            Permission::ApprovalView,
            Permission::ApprovalApprove,
            Permission::VmRead,
        ]
    };
    let mut visibility = TicketVisibility {
        requester: (!awaiting).then(|| viewer.caller.username.clone()),
        excluded_requester: awaiting.then(|| viewer.caller.username.clone()),
        ..TicketVisibility::default()
    };
    for (id, name) in systems {
        let system = system_ref(*id, name);
        for env in Environment::ALL {
            if permissions
                .iter()
                .any(|p| viewer.allows(*p, Some(&system), Some(env)))
            {
                visibility.system_ids.push(*id);
                visibility.environments.push(env.as_str().to_string());
            }
        }
    }
    visibility
}

pub async fn tickets(
    pool: &PgPool,
    caller: &Caller,
    filter: TicketFilter,
    awaiting_me: bool,
    after: Option<TimeKey>,
    limit: usize,
) -> Result<Page<TicketListRow, TimeKey>, AppError> {
    let mut conn = pool.acquire().await?;
    let viewer = Viewer::load(&mut conn, caller).await?;
    let systems = db::services::all_system_names(&mut conn).await?;
    drop(conn);
    let filter = TicketFilter {
        visible_to: Some(ticket_visibility(&viewer, &systems, awaiting_me)),
        ..filter
    };
    visible_page(
        limit,
        after,
        |after, n| {
            let (pool, filter) = (pool.clone(), filter.clone());
            async move { db::tickets::list(&mut *pool.acquire().await?, &filter, after, n).await }
        },
        |t| sees_ticket(&viewer, t) && (!awaiting_me || awaits_decision_by(&viewer, t)),
        |t| (t.created_at, t.id),
    )
    .await
}

/// One ticket and its VMs; `NotFound` also when the caller may not see it.
pub async fn ticket(
    pool: &PgPool,
    caller: &Caller,
    id: Uuid,
) -> Result<(TicketListRow, Vec<VmSummary>), AppError> {
    let (row, vms, _) = ticket_with_rights(pool, caller, id).await?;
    Ok((row, vms))
}

/// What the caller may do with a ticket they see, by the same rules the use cases apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketRights {
    /// Approve or reject: pending, not theirs, and theirs to approve.
    pub decide: bool,
    /// Withdraw: pending, and theirs (or they are a platform admin).
    pub cancel: bool,
}

/// [`ticket`], with what the caller may do with it.
pub async fn ticket_with_rights(
    pool: &PgPool,
    caller: &Caller,
    id: Uuid,
) -> Result<(TicketListRow, Vec<VmSummary>, TicketRights), AppError> {
    let mut conn = pool.acquire().await?;
    let viewer = Viewer::load(&mut conn, caller).await?;
    let not_found = || AppError::NotFound {
        what: "ticket",
        id: id.to_string(),
    };
    let row = db::tickets::list_row(&mut conn, id)
        .await?
        .ok_or_else(not_found)?;
    if !sees_ticket(&viewer, &row) {
        return Err(not_found());
    }
    let vms = db::vms::for_ticket(&mut conn, id).await?;
    let pending = row.status == TicketStatus::PendingApproval.as_str();
    let rights = TicketRights {
        decide: awaits_decision_by(&viewer, &row),
        cancel: pending
            && (row.requester == caller.username
                || viewer.allows(Permission::PlatformAdmin, None, env_of(&row.environment))),
    };
    Ok((row, vms, rights))
}

pub async fn vms(
    pool: &PgPool,
    caller: &Caller,
    filter: VmFilter,
    after: Option<(DateTime<Utc>, String)>,
    limit: usize,
) -> Result<Page<VmListRow, (DateTime<Utc>, String)>, AppError> {
    let viewer = Viewer::load(&mut *pool.acquire().await?, caller).await?;
    visible_vms(pool, &viewer, filter, after, limit).await
}

/// [`vms`], each with the day-2 operations the caller may start on it now: those their
/// bindings allow in its System and environment and its state accepts (the use case checks
/// both again when the operation is submitted).
pub async fn vms_with_operations(
    pool: &PgPool,
    caller: &Caller,
    filter: VmFilter,
    after: Option<(DateTime<Utc>, String)>,
    limit: usize,
) -> Result<Page<(VmListRow, Vec<Operation>), (DateTime<Utc>, String)>, AppError> {
    let viewer = Viewer::load(&mut *pool.acquire().await?, caller).await?;
    let page = visible_vms(pool, &viewer, filter, after, limit).await?;
    let items = page
        .items
        .into_iter()
        .map(|vm| {
            let system = system_ref(vm.system_id, &vm.system_name);
            let state = vm.status.parse::<VmState>().ok();
            let operations = Operation::ALL
                .into_iter()
                .filter(|op| {
                    state.is_some_and(|s| check_admissible(&vm.name, s, None, *op).is_ok())
                        && viewer.allows(
                            Permission::for_operation(*op),
                            Some(&system),
                            env_of(&vm.environment),
                        )
                })
                .collect();
            (vm, operations)
        })
        .collect();
    Ok(Page {
        items,
        next: page.next,
    })
}

async fn visible_vms(
    pool: &PgPool,
    viewer: &Viewer,
    filter: VmFilter,
    after: Option<(DateTime<Utc>, String)>,
    limit: usize,
) -> Result<Page<VmListRow, (DateTime<Utc>, String)>, AppError> {
    visible_page(
        limit,
        after,
        |after, n| {
            let (pool, filter) = (pool.clone(), filter.clone());
            async move { db::vms::list(&mut *pool.acquire().await?, &filter, after, n).await }
        },
        |v| {
            viewer.allows(
                Permission::VmRead,
                Some(&system_ref(v.system_id, &v.system_name)),
                env_of(&v.environment),
            )
        },
        |v| (v.created_at, v.name.clone()),
    )
    .await
}

pub async fn systems(
    pool: &PgPool,
    caller: &Caller,
    after: Option<String>,
    limit: usize,
) -> Result<Page<InventoryRow, String>, AppError> {
    let viewer = Viewer::load(&mut *pool.acquire().await?, caller).await?;
    visible_page(
        limit,
        after,
        |after, n| {
            let pool = pool.clone();
            async move {
                db::services::list_systems(&mut *pool.acquire().await?, after.as_deref(), n).await
            }
        },
        |s| {
            viewer.allows(
                Permission::SystemRead,
                Some(&system_ref(s.id, &s.name)),
                None,
            )
        },
        |s| s.name.clone(),
    )
    .await
}

/// Services of one System (`NotFound` when the System is invisible), or of every visible one.
pub async fn services(
    pool: &PgPool,
    caller: &Caller,
    system: Option<String>,
    after: Option<(String, String)>,
    limit: usize,
) -> Result<Page<InventoryRow, (String, String)>, AppError> {
    let mut conn = pool.acquire().await?;
    let viewer = Viewer::load(&mut conn, caller).await?;
    if let Some(name) = &system {
        let found = db::services::live_system_by_name(&mut conn, name)
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "system",
                id: name.clone(),
            })?;
        viewer.check(&Check {
            permission: Permission::ServiceRead,
            action: "list services",
            system: Some(&system_ref(found.id, name)),
            environment: None,
        })?;
    }
    drop(conn);
    visible_page(
        limit,
        after,
        |after, n| {
            let (pool, system) = (pool.clone(), system.clone());
            async move {
                let after = after.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
                db::services::list_services(
                    &mut *pool.acquire().await?,
                    system.as_deref(),
                    after,
                    n,
                )
                .await
            }
        },
        |s| {
            viewer.allows(
                Permission::ServiceRead,
                Some(&system_ref(s.system_id, &s.system_name)),
                None,
            )
        },
        |s| (s.system_name.clone(), s.name.clone()),
    )
    .await
}

/// The environments whose audit rows the caller may read; `Forbidden` when none.
pub async fn audit_environments(pool: &PgPool, caller: &Caller) -> Result<Vec<String>, AppError> {
    let viewer = Viewer::load(&mut *pool.acquire().await?, caller).await?;
    let allowed: Vec<String> = Environment::ALL
        .into_iter()
        .filter(|env| viewer.allows(Permission::AuditRead, None, Some(*env)))
        .map(|env| env.as_str().to_string())
        .collect();
    if allowed.is_empty() {
        viewer.check(&Check {
            permission: Permission::AuditRead,
            action: "read the audit log",
            system: None,
            environment: None,
        })?;
    }
    Ok(allowed)
}

/// Audit rows matching `filter`, narrowed to the environments the caller may read.
pub async fn audit(
    pool: &PgPool,
    caller: &Caller,
    mut filter: AuditFilter,
    after: i64,
    limit: usize,
) -> Result<Page<AuditRow, i64>, AppError> {
    filter.readable_environments = audit_environments(pool, caller).await?;
    let mut rows = db::audit::query(
        &mut *pool.acquire().await?,
        &filter,
        after,
        limit as i64 + 1,
    )
    .await?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Page { items: rows, next })
}

/// Role administration needs `rbac:manage` platform-wide.
/// The scopes in which the caller holds `rbac:manage` (from bindings, in any environment);
/// refused when there are none.
pub async fn rbac_manager_scopes(pool: &PgPool, caller: &Caller) -> Result<Vec<Scope>, AppError> {
    let viewer = Viewer::load(&mut *pool.acquire().await?, caller).await?;
    let scopes: Vec<Scope> = viewer
        .bindings()
        .iter()
        .filter(|b| b.grants(Permission::RbacManage))
        .map(|b| b.scope.clone())
        .collect();
    if scopes.is_empty() {
        return Err(AppError::Forbidden(format!(
            "user {:?} may not administer roles and bindings: missing permission rbac:manage",
            caller.username
        )));
    }
    Ok(scopes)
}

/// Role bindings in the scopes the caller manages (a scoped system-admin sees its System's).
pub async fn role_bindings(
    pool: &PgPool,
    caller: &Caller,
    after: Option<TimeKey>,
    limit: usize,
) -> Result<Page<BindingListRow, TimeKey>, AppError> {
    let scopes = rbac_manager_scopes(pool, caller).await?;
    visible_page(
        limit,
        after,
        |after, n| {
            let pool = pool.clone();
            async move { db::rbac::list_bindings(&mut *pool.acquire().await?, None, after, n).await }
        },
        |b| {
            let scope = b
                .scope_system
                .clone()
                .map_or(Scope::Global, Scope::System);
            scopes.iter().any(|s| s.includes(&scope))
        },
        |b| (b.created_at, b.id),
    )
    .await
}

/// VMs with the platform's label that no VM record knows, per cluster (the drift scans'
/// findings): for callers allowed `cluster:manage`.
pub async fn orphans(pool: &PgPool, caller: &Caller) -> Result<Vec<OrphanRow>, AppError> {
    let mut conn = pool.acquire().await?;
    Viewer::load(&mut conn, caller).await?.check(&Check {
        permission: Permission::ClusterManage,
        action: "list orphaned VMs of the clusters",
        system: None,
        environment: None,
    })?;
    Ok(db::catalog::orphans(&mut conn).await?)
}

/// The snapshots of the live VM `name`, for callers who may read that VM (`vm:read` in its
/// System and environment). A VM the caller may not read is reported as not found.
pub async fn vm_snapshots(
    pool: &PgPool,
    caller: &Caller,
    name: &str,
) -> Result<Vec<db::snapshots::SnapshotRow>, AppError> {
    let mut conn = pool.acquire().await?;
    let not_found = || AppError::NotFound {
        what: "vm",
        id: name.to_string(),
    };
    let vm = db::vms::live_by_name(&mut conn, name)
        .await?
        .ok_or_else(not_found)?;
    let viewer = Viewer::load(&mut conn, caller).await?;
    if !viewer.allows(
        Permission::VmRead,
        Some(&system_ref(vm.system_id, &vm.system_name)),
        env_of(&vm.environment),
    ) {
        return Err(not_found());
    }
    Ok(db::snapshots::for_vm(&mut conn, vm.id).await?)
}
