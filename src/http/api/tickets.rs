//! `/api/v1/tickets`: list, get, preview, approve, reject, cancel.

use super::auth::Authenticated;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::{ApiState, Paging};
use crate::app::{approvals, listings, tickets};
use crate::db::tickets::{TicketFilter, TicketListRow};
use crate::db::vms::VmSummary;
use crate::domain::Environment;
use crate::domain::ticket::{Operation, TicketStatus};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use shepherd_types::api::paths;
use shepherd_types::api::{
    ApproveRequest, ErrorBody, Preview, PreviewRequest, ReasonRequest, Resources, Ticket,
    TicketPage, TicketVm,
};
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct TicketQuery {
    /// PendingApproval, Approved, Rejected, Cancelled, Executing, Succeeded, Failed, PartiallySucceeded.
    pub status: Option<String>,
    pub system: Option<String>,
    /// test or prod.
    pub environment: Option<String>,
    pub requester: Option<String>,
    /// The operation: create, delete, start, stop, restart, migrate, snapshot, restore, clone.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub operation: Option<String>,
    /// Only tickets waiting for the caller's decision (pending, not theirs, theirs to approve).
    #[serde(default)]
    pub awaiting_me: bool,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

pub(super) fn ticket_dto(row: TicketListRow, vms: Vec<VmSummary>) -> Ticket {
    Ticket {
        id: row.id,
        operation: row.operation,
        status: row.status,
        requester: row.requester,
        environment: row.environment,
        system: row.system_name,
        service: row.service_name,
        namespace: row.namespace_name,
        vm_count: row.vm_count,
        reason: row.reason,
        request: row.request,
        approver: row.approver,
        decision_reason: row.decision_reason,
        decided_at: row.decided_at,
        cluster: row.cluster,
        vm: row.vm_name,
        created_at: row.created_at,
        vms: vms
            .into_iter()
            .map(|v| TicketVm {
                id: v.id,
                name: v.name,
                cluster: v.cluster,
                status: v.status,
            })
            .collect(),
    }
}

fn known<T: std::str::FromStr>(
    field: &str,
    value: Option<String>,
) -> Result<Option<String>, ApiError>
where
    T::Err: std::fmt::Display,
{
    match value {
        Some(v) => match v.parse::<T>() {
            Ok(_) => Ok(Some(v)),
            Err(e) => Err(ApiError::invalid(field, e.to_string())),
        },
        None => Ok(None),
    }
}

/// Tickets the caller may see, oldest first.
#[utoipa::path(get, path = paths::TICKETS, tag = "tickets", params(TicketQuery),
    responses((status = 200, body = TicketPage), (status = "4XX", body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<TicketQuery>,
) -> Result<Json<TicketPage>, ApiError> {
    let paging = Paging::parse(q.limit, q.cursor.as_deref())?;
    let filter = TicketFilter {
        id: None,
        status: known::<TicketStatus>("status", q.status)?,
        system: q.system,
        environment: known::<Environment>("environment", q.environment)?,
        requester: q.requester,
        operation: known::<Operation>("type", q.operation)?,
        visible_to: None,
    };
    let page = listings::tickets(
        &state.pool,
        &caller,
        filter,
        q.awaiting_me,
        paging.after,
        paging.limit,
    )
    .await?;
    Ok(Json(TicketPage {
        next_cursor: Paging::cursor(page.next.as_ref()),
        items: page
            .items
            .into_iter()
            .map(|t| ticket_dto(t, vec![]))
            .collect(),
    }))
}

async fn fetch(
    state: &ApiState,
    caller: &crate::app::access::Caller,
    id: Uuid,
) -> Result<Ticket, ApiError> {
    let (row, vms) = listings::ticket(&state.pool, caller, id).await?;
    Ok(ticket_dto(row, vms))
}

/// One ticket with its VMs.
#[utoipa::path(get, path = paths::TICKET, tag = "tickets",
    params(("id" = Uuid, Path, description = "ticket id")),
    responses((status = 200, body = Ticket), (status = "4XX", body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Ticket>, ApiError> {
    Ok(Json(fetch(&state, &caller, id).await?))
}

/// What approving would create (eligible clusters, final resources, names, warnings);
/// writes nothing.
#[utoipa::path(post, path = paths::TICKET_PREVIEW, tag = "tickets",
    params(("id" = Uuid, Path, description = "ticket id")), request_body = PreviewRequest,
    responses((status = 200, body = Preview), (status = "4XX", body = ErrorBody)))]
pub async fn preview(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PreviewRequest>,
) -> Result<Json<Preview>, ApiError> {
    let result = approvals::preview(&state.pool, &caller, id, &body.overrides).await?;
    let plan = result.plan;
    let r = plan.resources;
    Ok(Json(Preview {
        ticket_id: id,
        eligible_clusters: plan.eligible_clusters,
        not_eligible: plan.not_eligible,
        cluster: plan.cluster.name,
        storage_class: plan.storage_class,
        template_version: plan.template.version,
        instance_size: plan.size.name,
        resources: Resources {
            cpu_request_millis: r.cpu_request_millis,
            cpu_limit_millis: r.cpu_limit_millis,
            memory_request_mib: r.memory_request_mib,
            memory_limit_mib: r.memory_limit_mib,
            disk_gib: r.disk_gib,
        },
        vm_names: result.vm_names,
        warnings: plan.warnings,
    }))
}

/// Approves: VMs are named and placed and their creation is queued. Answers 202 with the
/// ticket to poll in `Location`.
#[utoipa::path(post, path = paths::TICKET_APPROVE, tag = "tickets",
    params(("id" = Uuid, Path, description = "ticket id")), request_body = ApproveRequest,
    responses((status = 202, body = Ticket, headers(("Location" = String, description = "the ticket to poll"))),
              (status = "4XX", body = ErrorBody)))]
pub async fn approve(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<impl IntoResponse, ApiError> {
    approvals::approve(
        &state.pool,
        &state.river,
        &caller,
        id,
        &body.reason,
        &body.overrides,
    )
    .await?;
    let ticket = fetch(&state, &caller, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        [(
            header::LOCATION,
            paths::fill(paths::TICKET, &[("id", &id.to_string())]),
        )],
        Json(ticket),
    ))
}

fn required_reason(body: &ReasonRequest) -> Result<&str, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid("reason", "must not be empty"));
    }
    Ok(reason)
}

/// Rejects; the reason is required and shown to the requester.
#[utoipa::path(post, path = paths::TICKET_REJECT, tag = "tickets",
    params(("id" = Uuid, Path, description = "ticket id")), request_body = ReasonRequest,
    responses((status = 200, body = Ticket), (status = "4XX", body = ErrorBody)))]
pub async fn reject(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> Result<Json<Ticket>, ApiError> {
    approvals::reject(&state.pool, &caller, id, required_reason(&body)?).await?;
    Ok(Json(fetch(&state, &caller, id).await?))
}

/// Withdraws a pending ticket (its requester, or a platform admin).
#[utoipa::path(post, path = paths::TICKET_CANCEL, tag = "tickets",
    params(("id" = Uuid, Path, description = "ticket id")), request_body = ReasonRequest,
    responses((status = 200, body = Ticket), (status = "4XX", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> Result<Json<Ticket>, ApiError> {
    tickets::cancel(&state.pool, &caller, id, required_reason(&body)?).await?;
    Ok(Json(fetch(&state, &caller, id).await?))
}
