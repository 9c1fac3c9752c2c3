//! `/api/v1/whoami`, `/systems`, `/services`, `/vms`: what the caller is and may see.

use super::auth::Authenticated;
use super::error::{ApiError, ApiPath, ApiQuery};
use super::{ApiState, Paging};
use crate::app::access::Viewer;
use crate::app::listings;
use crate::db::vms::VmFilter;
use crate::domain::Environment;
use crate::domain::permissions::Scope;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use shepherd_types::api::paths;
use shepherd_types::api::{
    ConsoleLoginLink, EffectiveBinding, ErrorBody, Orphan, ServiceItem, ServicePage, Snapshot,
    SystemItem, SystemPage, SystemRole, Vm, VmPage, Whoami,
};
use utoipa::IntoParams;

/// The caller as the management cluster authenticated them, with their bindings and
/// resource roles: their effective permissions.
#[utoipa::path(get, path = paths::WHOAMI, tag = "identity",
    responses((status = 200, body = Whoami), (status = "4XX", body = ErrorBody)))]
pub async fn whoami(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Whoami>, ApiError> {
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(crate::app::AppError::from)?;
    let viewer = Viewer::load(&mut conn, &caller).await?;
    Ok(Json(Whoami {
        bindings: viewer
            .bindings()
            .iter()
            .map(|b| EffectiveBinding {
                role: b.role.clone(),
                system: match &b.scope {
                    Scope::Global => None,
                    Scope::System(name) => Some(name.clone()),
                },
                allowed_environments: b
                    .allowed_environments
                    .iter()
                    .map(|e| e.as_str().to_string())
                    .collect(),
                permissions: b.permissions.iter().map(|p| p.to_string()).collect(),
            })
            .collect(),
        system_roles: viewer
            .system_role_rows
            .iter()
            .map(|r| SystemRole {
                system: r.system_name.clone(),
                role: r.role.clone(),
            })
            .collect(),
        username: caller.username,
        groups: caller.groups,
    }))
}

/// A one-time link that logs the caller into the web console (`kubectl shepherd ui`):
/// usable once, within a minute.
#[utoipa::path(post, path = paths::CONSOLE_LOGIN_LINKS, tag = "identity",
    responses((status = 201, body = ConsoleLoginLink), (status = "4XX", body = ErrorBody)))]
pub async fn console_login_link(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
) -> Result<(axum::http::StatusCode, Json<ConsoleLoginLink>), ApiError> {
    let (code, expires_at) = crate::app::sessions::issue_login_code(&state.pool, &caller).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(ConsoleLoginLink {
            path: format!("/ui/login?code={code}"),
            expires_at,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Systems the caller may see, by name.
#[utoipa::path(get, path = paths::SYSTEMS, tag = "inventory", params(PageQuery),
    responses((status = 200, body = SystemPage), (status = "4XX", body = ErrorBody)))]
pub async fn systems(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<SystemPage>, ApiError> {
    let paging = Paging::parse(q.limit, q.cursor.as_deref())?;
    let page = listings::systems(&state.pool, &caller, paging.after, paging.limit).await?;
    Ok(Json(SystemPage {
        next_cursor: Paging::cursor(page.next.as_ref()),
        items: page
            .items
            .into_iter()
            .map(|s| SystemItem {
                name: s.name,
                description: s.description,
                created_by: s.created_by,
                created_at: s.created_at,
            })
            .collect(),
    }))
}

fn service_page(
    page: listings::Page<crate::db::services::InventoryRow, (String, String)>,
) -> ServicePage {
    ServicePage {
        next_cursor: Paging::cursor(page.next.as_ref()),
        items: page
            .items
            .into_iter()
            .map(|s| ServiceItem {
                system: s.system_name,
                name: s.name,
                description: s.description,
                created_by: s.created_by,
                created_at: s.created_at,
            })
            .collect(),
    }
}

/// Services of every System the caller may see.
#[utoipa::path(get, path = paths::SERVICES, tag = "inventory", params(PageQuery),
    responses((status = 200, body = ServicePage), (status = "4XX", body = ErrorBody)))]
pub async fn services(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<ServicePage>, ApiError> {
    let paging = Paging::parse(q.limit, q.cursor.as_deref())?;
    let page = listings::services(&state.pool, &caller, None, paging.after, paging.limit).await?;
    Ok(Json(service_page(page)))
}

/// Services of one System (404 when the caller cannot see it).
#[utoipa::path(get, path = paths::SYSTEM_SERVICES, tag = "inventory",
    params(("system" = String, Path, description = "System name"), PageQuery),
    responses((status = 200, body = ServicePage), (status = "4XX", body = ErrorBody)))]
pub async fn system_services(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiPath(system): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<ServicePage>, ApiError> {
    let paging = Paging::parse(q.limit, q.cursor.as_deref())?;
    let page = listings::services(
        &state.pool,
        &caller,
        Some(system),
        paging.after,
        paging.limit,
    )
    .await?;
    Ok(Json(service_page(page)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VmQuery {
    pub system: Option<String>,
    pub service: Option<String>,
    /// test or prod.
    pub environment: Option<String>,
    /// Creating, Running, Stopped, ...
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// VMs the caller may see (vm:read for their System and environment), oldest first.
#[utoipa::path(get, path = paths::VMS, tag = "inventory", params(VmQuery),
    responses((status = 200, body = VmPage), (status = "4XX", body = ErrorBody)))]
pub async fn vms(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<VmQuery>,
) -> Result<Json<VmPage>, ApiError> {
    let paging = Paging::parse(q.limit, q.cursor.as_deref())?;
    if let Some(env) = &q.environment {
        env.parse::<Environment>()
            .map_err(|e| ApiError::invalid("environment", e.to_string()))?;
    }
    let filter = VmFilter {
        system: q.system,
        service: q.service,
        environment: q.environment,
        status: q.status,
    };
    let page = listings::vms(&state.pool, &caller, filter, paging.after, paging.limit).await?;
    Ok(Json(VmPage {
        next_cursor: Paging::cursor(page.next.as_ref()),
        items: page
            .items
            .into_iter()
            .map(|v| Vm {
                id: v.id,
                name: v.name,
                status: v.status,
                status_reason: v.status_reason,
                desired_power_state: v.desired_power_state,
                ip: v.ip_address,
                node: v.node,
                ticket_id: v.ticket_id,
                system: v.system_name,
                service: v.service_name,
                namespace: v.namespace_name,
                environment: v.environment,
                cluster: v.cluster,
                created_by: v.created_by,
                created_at: v.created_at,
            })
            .collect(),
    }))
}

/// VirtualMachines with the platform's label that no VM record knows, by cluster, as the
/// last drift scans found them. Needs `cluster:manage`.
#[utoipa::path(get, path = paths::ORPHANS, tag = "inventory",
    responses((status = 200, body = Vec<Orphan>), (status = "4XX", body = ErrorBody)))]
pub async fn orphans(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<Orphan>>, ApiError> {
    let rows = listings::orphans(&state.pool, &caller).await?;
    Ok(Json(
        rows.into_iter()
            .map(|o| Orphan {
                cluster: o.cluster,
                environment: o.environment,
                namespace: o.namespace,
                name: o.name,
                first_seen_at: o.first_seen_at,
            })
            .collect(),
    ))
}

/// The snapshots of one live VM, oldest first (what a `restore` can name). Needs `vm:read`
/// for the VM's System and environment; a VM the caller may not read is not found.
#[utoipa::path(get, path = paths::VM_SNAPSHOTS, tag = "inventory",
    params(("name" = String, Path, description = "the VM's name")),
    responses((status = 200, body = Vec<Snapshot>), (status = "4XX", body = ErrorBody)))]
pub async fn vm_snapshots(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<Snapshot>>, ApiError> {
    let rows = listings::vm_snapshots(&state.pool, &caller, &name).await?;
    Ok(Json(
        rows.into_iter()
            .map(|s| Snapshot {
                name: s.name,
                vm: s.vm,
                cluster: s.cluster,
                namespace: s.namespace,
                ticket_id: s.ticket_id,
                created_at: s.created_at,
                ready: s.ready_at.is_some(),
                ready_at: s.ready_at,
            })
            .collect(),
    ))
}
