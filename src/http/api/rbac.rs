//! `/api/v1/rbac`: roles and role bindings, for callers allowed `rbac:manage`.

use super::auth::Authenticated;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::inventory::PageQuery;
use super::{ApiState, Paging};
use crate::app::{AppError, listings, rbac};
use crate::db;
use crate::db::rbac::BindingListRow;
use crate::domain::{Environment, Subject, SubjectKind};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use shepherd_types::api::paths;
use shepherd_types::api::{
    ErrorBody, NewRoleBinding, Role, RoleBinding, RoleBindingPage, SubjectRef,
};
use uuid::Uuid;

fn binding_dto(b: BindingListRow) -> RoleBinding {
    RoleBinding {
        id: b.id,
        subject: SubjectRef {
            kind: b.subject_kind,
            name: b.subject_name,
        },
        role: b.role_name,
        system: b.scope_system,
        allowed_environments: b.allowed_environments,
        source: b.source,
        created_by: b.created_by,
        created_at: b.created_at,
    }
}

/// Roles and their permissions.
#[utoipa::path(get, path = paths::RBAC_ROLES, tag = "rbac",
    responses((status = 200, body = Vec<Role>), (status = "4XX", body = ErrorBody)))]
pub async fn roles(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<Role>>, ApiError> {
    listings::rbac_manager_scopes(&state.pool, &caller).await?;
    let mut conn = state.pool.acquire().await.map_err(AppError::from)?;
    let roles = db::rbac::roles(&mut conn).await.map_err(AppError::from)?;
    Ok(Json(
        roles
            .into_iter()
            .map(|r| Role {
                name: r.name,
                builtin: r.builtin,
                permissions: r.permissions,
            })
            .collect(),
    ))
}

/// Role bindings, oldest first.
#[utoipa::path(get, path = paths::RBAC_BINDINGS, tag = "rbac", params(PageQuery),
    responses((status = 200, body = RoleBindingPage), (status = "4XX", body = ErrorBody)))]
pub async fn bindings(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<RoleBindingPage>, ApiError> {
    let paging = Paging::parse(q.limit, q.cursor.as_deref())?;
    let page = listings::role_bindings(&state.pool, &caller, paging.after, paging.limit).await?;
    Ok(Json(RoleBindingPage {
        next_cursor: Paging::cursor(page.next.as_ref()),
        items: page.items.into_iter().map(binding_dto).collect(),
    }))
}

/// Binds a role to a user, group or service account, globally or on one System. The caller
/// needs `rbac:manage` and every permission of the role, in the binding's scope and in each
/// of its environments.
#[utoipa::path(post, path = paths::RBAC_BINDINGS, tag = "rbac", request_body = NewRoleBinding,
    responses((status = 201, body = RoleBinding), (status = "4XX", body = ErrorBody)))]
pub async fn create_binding(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiJson(body): ApiJson<NewRoleBinding>,
) -> Result<impl IntoResponse, ApiError> {
    let kind: SubjectKind =
        body.subject
            .kind
            .parse()
            .map_err(|e: crate::domain::subject::SubjectError| {
                ApiError::invalid("subject.kind", e.to_string())
            })?;
    if body.subject.name.trim().is_empty() {
        return Err(ApiError::invalid("subject.name", "must not be empty"));
    }
    let environments = body
        .allowed_environments
        .unwrap_or_else(|| vec![Environment::Test.as_str().into()])
        .iter()
        .map(|e| e.parse::<Environment>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid("allowedEnvironments", e.to_string()))?;
    let subject = Subject {
        kind,
        name: body.subject.name,
    };
    let id = rbac::bind(
        &state.pool,
        rbac::Granter::Caller(&caller),
        &subject,
        &body.role,
        body.system.as_deref(),
        &environments,
    )
    .await?
    .ok_or_else(|| {
        ApiError::from(AppError::Conflict(format!(
            "{} {} already holds role {:?} in that scope",
            subject.kind.as_str(),
            subject.name,
            body.role
        )))
    })?;
    let mut conn = state.pool.acquire().await.map_err(AppError::from)?;
    let created = db::rbac::list_bindings(&mut conn, Some(id), None, 1)
        .await
        .map_err(AppError::from)?
        .pop()
        .ok_or_else(|| AppError::Conflict(format!("role binding {id} was removed meanwhile")))?;
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            paths::fill(paths::RBAC_BINDING, &[("id", &id.to_string())]),
        )],
        Json(binding_dto(created)),
    ))
}

/// Removes a binding made through the API (seeded and configured ones are refused, 409); the
/// caller must be allowed to grant it.
#[utoipa::path(delete, path = paths::RBAC_BINDING, tag = "rbac",
    params(("id" = Uuid, Path, description = "binding id")),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn delete_binding(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    rbac::unbind(&state.pool, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
