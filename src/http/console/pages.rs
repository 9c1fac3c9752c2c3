//! The console's pages and the actions their forms post: each calls the same use case or
//! listing as the REST API, as the logged-in user.

use super::ConsoleError;
use super::session::{Console, CsrfForm};
use super::view::{Section, age, is_stale, page, status_badge, timestamp};
use crate::app::AppError;
use crate::app::listings::{self, DEFAULT_PAGE};
use crate::app::operations::{VmOperationInput, submit_vm_operation};
use crate::app::sessions::{Session, random_token};
use crate::app::{approvals, tickets};
use crate::crd::VmOperationSpec;
use crate::crd::approval::Overrides;
use crate::db::audit::AuditFilter;
use crate::db::tickets::{TicketFilter, TicketListRow};
use crate::db::vms::{VmFilter, VmSummary};
use crate::domain::Environment;
use crate::domain::ticket::{Operation, TicketStatus};
use crate::http::api::{ApiState, Paging};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

/// A query or form value; an empty field (an "All" choice) is no filter.
fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn environment(value: &Option<String>) -> Result<Option<String>, ConsoleError> {
    match given(value) {
        Some(env) => env
            .parse::<Environment>()
            .map(|e| Some(e.as_str().to_string()))
            .map_err(|e| AppError::invalid("environment", e).into()),
        None => Ok(None),
    }
}

fn paging<K: serde::de::DeserializeOwned>(
    cursor: &Option<String>,
) -> Result<Paging<K>, ConsoleError> {
    Ok(Paging::parse(Some(DEFAULT_PAGE), given(cursor).as_deref())?)
}

/// The link to the next page: this page's query with the cursor replaced.
fn next_page_link(path: &str, query: &[(&str, Option<String>)], cursor: Option<String>) -> Markup {
    let Some(cursor) = cursor else {
        return html! {};
    };
    let mut pairs: Vec<(&str, String)> = query
        .iter()
        .filter_map(|(k, v)| given(v).map(|v| (*k, v)))
        .collect();
    pairs.push(("cursor", cursor));
    let href = format!(
        "{path}?{}",
        serde_urlencoded::to_string(&pairs).expect("strings encode")
    );
    html! { p.pager { a href=(href) { "Next page" } } }
}

fn environment_select(current: &Option<String>) -> Markup {
    let current = given(current);
    html! {
        div {
            label for="environment" { "Environment" }
            select #environment name="environment" {
                option value="" { "All" }
                @for env in Environment::ALL {
                    option value=(env.as_str()) selected[current.as_deref() == Some(env.as_str())] { (env.as_str()) }
                }
            }
        }
    }
}

async fn system_select(
    state: &ApiState,
    session: &Session,
    current: &Option<String>,
) -> Result<Markup, ConsoleError> {
    let systems = listings::systems(&state.pool, &session.caller, None, listings::MAX_PAGE).await?;
    let current = given(current);
    Ok(html! {
        div {
            label for="system" { "System" }
            select #system name="system" {
                option value="" { "All" }
                @for s in &systems.items {
                    option value=(s.name) selected[current.as_deref() == Some(s.name.as_str())] { (s.name) }
                }
            }
        }
    })
}

fn ticket_title(t: &TicketListRow) -> String {
    match (&t.vm_name, t.operation.as_str()) {
        (Some(vm), op) => format!("{op} {vm}"),
        (None, "create") => format!(
            "create {} VM{} in {}/{}",
            t.vm_count,
            if t.vm_count == 1 { "" } else { "s" },
            t.system_name,
            t.service_name
        ),
        (None, op) => op.to_string(),
    }
}

fn ticket_table(caption: &str, rows: &[TicketListRow], empty: &str) -> Markup {
    let now = Utc::now();
    html! {
        @if rows.is_empty() {
            p { (empty) }
        } @else {
            div.table-wrap role="region" aria-label=(caption) tabindex="0" {
                table {
                    caption { (caption) }
                    thead { tr {
                        th scope="col" { "Ticket" } th scope="col" { "Requester" }
                        th scope="col" { "System / Service" } th scope="col" { "Environment" }
                        th scope="col" { "Status" } th scope="col" { "Requested" }
                    } }
                    tbody {
                        @for t in rows {
                            @let stale = t.status == TicketStatus::PendingApproval.as_str() && is_stale(t.created_at, now);
                            tr.stale[stale] {
                                td { a href={ "/ui/tickets/" (t.id) } { (ticket_title(t)) } }
                                td { (t.requester) }
                                td { (t.system_name) " / " (t.service_name) }
                                td { (t.environment) }
                                td { (status_badge(&t.status)) }
                                td.age {
                                    (age(t.created_at, now))
                                    @if stale { span.visually-hidden { " (over a day)" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct InboxQuery {
    environment: Option<String>,
    system: Option<String>,
    cursor: Option<String>,
}

/// GET /ui/: tickets waiting for my decision, oldest first.
pub async fn inbox(
    State(state): State<ApiState>,
    Console { session }: Console,
    Query(q): Query<InboxQuery>,
) -> Result<Markup, ConsoleError> {
    let filter = TicketFilter {
        environment: environment(&q.environment)?,
        system: given(&q.system),
        status: Some(TicketStatus::PendingApproval.as_str().into()),
        ..TicketFilter::default()
    };
    let paging = paging(&q.cursor)?;
    let found = listings::tickets(
        &state.pool,
        &session.caller,
        filter,
        true,
        paging.after,
        paging.limit,
    )
    .await?;
    let systems = system_select(&state, &session, &q.system).await?;
    let next = next_page_link(
        "/ui/",
        &[
            ("environment", q.environment.clone()),
            ("system", q.system.clone()),
        ],
        Paging::cursor(found.next.as_ref()),
    );
    Ok(page(
        &session,
        Section::Inbox,
        "Inbox",
        html! {
            h1 { "Awaiting my decision" }
            form.filters method="get" action="/ui/" {
                (environment_select(&q.environment))
                (systems)
                button.secondary type="submit" { "Filter" }
            }
            (ticket_table("Tickets awaiting my decision, oldest first", &found.items,
                "Nothing is waiting for your decision."))
            (next)
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct RequestsQuery {
    status: Option<String>,
    cursor: Option<String>,
}

/// GET /ui/requests: the tickets I asked for.
pub async fn my_requests(
    State(state): State<ApiState>,
    Console { session }: Console,
    Query(q): Query<RequestsQuery>,
) -> Result<Markup, ConsoleError> {
    let status = match given(&q.status) {
        Some(s) => Some(
            s.parse::<TicketStatus>()
                .map_err(|e| AppError::invalid("status", e))?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    let filter = TicketFilter {
        requester: Some(session.caller.username.clone()),
        status: status.clone(),
        ..TicketFilter::default()
    };
    let paging = paging(&q.cursor)?;
    let found = listings::tickets(
        &state.pool,
        &session.caller,
        filter,
        false,
        paging.after,
        paging.limit,
    )
    .await?;
    let next = next_page_link(
        "/ui/requests",
        &[("status", q.status.clone())],
        Paging::cursor(found.next.as_ref()),
    );
    Ok(page(
        &session,
        Section::Requests,
        "My requests",
        html! {
            h1 { "My requests" }
            form.filters method="get" action="/ui/requests" {
                div {
                    label for="status" { "Status" }
                    select #status name="status" {
                        option value="" { "All" }
                        @for s in TicketStatus::ALL {
                            option value=(s.as_str()) selected[status.as_deref() == Some(s.as_str())] { (s.as_str()) }
                        }
                    }
                }
                button.secondary type="submit" { "Filter" }
            }
            (ticket_table("My requests, oldest first", &found.items, "You have no requests here."))
            (next)
        },
    ))
}

/// The approval overrides as form fields (all optional text, so a bad number can be named).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideFields {
    cluster: Option<String>,
    storage_class: Option<String>,
    template_version: Option<String>,
    cpu_request_millis: Option<String>,
    cpu_limit_millis: Option<String>,
    memory_request_mib: Option<String>,
    memory_limit_mib: Option<String>,
    disk_gib: Option<String>,
    /// Set on the ticket page after a decision: what was done.
    done: Option<String>,
}

fn positive<T: std::str::FromStr + PartialOrd + From<u8>>(
    field: &str,
    value: &Option<String>,
) -> Result<Option<T>, AppError> {
    match given(value) {
        None => Ok(None),
        Some(v) => match v.parse::<T>() {
            Ok(n) if n >= T::from(1) => Ok(Some(n)),
            _ => Err(AppError::invalid(
                &format!("overrides.{field}"),
                "must be a whole number of at least 1",
            )),
        },
    }
}

impl OverrideFields {
    fn overrides(&self) -> Result<Overrides, AppError> {
        Ok(Overrides {
            cluster: given(&self.cluster),
            storage_class: given(&self.storage_class),
            template_version: positive("templateVersion", &self.template_version)?,
            cpu_request_millis: positive("cpuRequestMillis", &self.cpu_request_millis)?,
            cpu_limit_millis: positive("cpuLimitMillis", &self.cpu_limit_millis)?,
            memory_request_mib: positive("memoryRequestMib", &self.memory_request_mib)?,
            memory_limit_mib: positive("memoryLimitMib", &self.memory_limit_mib)?,
            disk_gib: positive::<i32>("diskGib", &self.disk_gib)?
                .map(|d| {
                    if d > 65536 {
                        Err(AppError::invalid(
                            "overrides.diskGib",
                            "must be at most 65536",
                        ))
                    } else {
                        Ok(d)
                    }
                })
                .transpose()?,
        })
    }

    /// The numeric overrides as (field, label, value), for the forms.
    fn numbers(&self) -> [(&'static str, &'static str, Option<String>); 6] {
        [
            (
                "templateVersion",
                "Template version",
                given(&self.template_version),
            ),
            (
                "cpuRequestMillis",
                "CPU request (millicores)",
                given(&self.cpu_request_millis),
            ),
            (
                "cpuLimitMillis",
                "CPU limit (millicores)",
                given(&self.cpu_limit_millis),
            ),
            (
                "memoryRequestMib",
                "Memory request (MiB)",
                given(&self.memory_request_mib),
            ),
            (
                "memoryLimitMib",
                "Memory limit (MiB)",
                given(&self.memory_limit_mib),
            ),
            ("diskGib", "Disk (GiB)", given(&self.disk_gib)),
        ]
    }

    /// The overrides previewed, repeated as hidden fields of the approve form: what is
    /// approved is what was shown.
    fn hidden(&self) -> Markup {
        html! {
            @if let Some(c) = given(&self.cluster) { input type="hidden" name="cluster" value=(c); }
            @if let Some(s) = given(&self.storage_class) { input type="hidden" name="storageClass" value=(s); }
            @for (name, _, value) in self.numbers() {
                @if let Some(v) = value { input type="hidden" name=(name) value=(v); }
            }
        }
    }
}

/// GET /ui/tickets/{id}: the ticket, its preview and decision forms (for who may decide),
/// and its VMs' progress.
pub async fn ticket(
    State(state): State<ApiState>,
    Console { session }: Console,
    Path(id): Path<String>,
    Query(fields): Query<OverrideFields>,
) -> Response {
    ticket_page(&state, &session, &id, &fields, None).await
}

/// The ticket page, with `failure` (an action's refusal) above it and as its status.
async fn ticket_page(
    state: &ApiState,
    session: &Session,
    id: &str,
    fields: &OverrideFields,
    failure: Option<ConsoleError>,
) -> Response {
    match render_ticket(state, session, id, fields, failure.as_ref()).await {
        Ok(markup) => {
            let status = failure.map_or(StatusCode::OK, |f| f.status());
            (status, markup).into_response()
        }
        Err(e) => failure.unwrap_or(e).into_response(),
    }
}

fn ticket_id(id: &str) -> Result<Uuid, ConsoleError> {
    id.parse()
        .map_err(|_| ConsoleError::NotFound("No such ticket.".into()))
}

async fn render_ticket(
    state: &ApiState,
    session: &Session,
    id: &str,
    fields: &OverrideFields,
    failure: Option<&ConsoleError>,
) -> Result<Markup, ConsoleError> {
    let id = ticket_id(id)?;
    let (t, vms, rights) = listings::ticket_with_rights(&state.pool, &session.caller, id).await?;
    let preview = if rights.decide {
        Some(match fields.overrides() {
            Ok(overrides) => approvals::preview(&state.pool, &session.caller, id, &overrides).await,
            Err(e) => Err(e),
        })
    } else {
        None
    };
    let now = Utc::now();
    let title = ticket_title(&t);
    Ok(page(
        session,
        Section::Inbox,
        &format!("Ticket: {title}"),
        html! {
            h1 { "Ticket: " (title) " " (status_badge(&t.status)) }
            @if let Some(f) = failure {
                p.error role="alert" { (f.message()) }
            }
            @match given(&fields.done).as_deref() {
                Some("approved") => p.notice role="status" { "Approved: the VMs are being created." },
                Some("rejected") => p.notice role="status" { "Rejected; the requester sees your reason." },
                Some("cancelled") => p.notice role="status" { "Cancelled." },
                _ => {},
            }
            div.columns {
                section.panel aria-labelledby="request-h" {
                    h2 #request-h { "Request" }
                    dl.facts {
                        dt { "Requester" } dd { (t.requester) }
                        dt { "Reason" } dd { (t.reason) }
                        dt { "Operation" } dd { (t.operation) }
                        dt { "System / Service" } dd { (t.system_name) " / " (t.service_name) }
                        dt { "Namespace" } dd { (t.namespace_name) }
                        dt { "Environment" } dd { (t.environment) }
                        @if let Some(vm) = &t.vm_name { dt { "VM" } dd { (vm) } }
                        @else { dt { "VMs" } dd { (t.vm_count) } }
                        @for (label, value) in request_facts(&t.request) {
                            dt { (label) } dd { (value) }
                        }
                        dt { "Requested" } dd { (timestamp(t.created_at)) " (" (age(t.created_at, now)) ")" }
                        @if let Some(approver) = &t.approver {
                            dt { "Decided by" } dd { (approver) }
                        }
                        @if let Some(reason) = &t.decision_reason {
                            dt { "Decision reason" } dd { (reason) }
                        }
                        @if let Some(cluster) = &t.cluster {
                            dt { "Cluster" } dd { (cluster) }
                        }
                    }
                }
                @if let Some(preview) = &preview {
                    (preview_panel(id, fields, preview, &session.csrf_token))
                }
            }
            @if rights.decide {
                section.panel aria-labelledby="reject-h" {
                    h2 #reject-h { "Reject" }
                    form method="post" action={ "/ui/tickets/" (id) "/reject" } {
                        input type="hidden" name="csrf" value=(session.csrf_token);
                        label for="reject-reason" { "Reason (shown to the requester)" }
                        textarea #reject-reason name="reason" rows="2" required {}
                        div.actions { button.danger #reject type="submit" { "Reject" } }
                    }
                }
            }
            @if rights.cancel {
                section.panel aria-labelledby="cancel-h" {
                    h2 #cancel-h { "Withdraw" }
                    form method="post" action={ "/ui/tickets/" (id) "/cancel" } {
                        input type="hidden" name="csrf" value=(session.csrf_token);
                        label for="cancel-reason" { "Reason" }
                        textarea #cancel-reason name="reason" rows="2" required {}
                        div.actions { button.secondary #cancel type="submit" { "Cancel this request" } }
                    }
                }
            }
            (progress(&t, &vms))
        },
    ))
}

/// What a request asked for beyond the ticket's own columns, labelled for people.
fn request_facts(request: &serde_json::Value) -> Vec<(&'static str, String)> {
    const LABELS: [(&str, &str); 6] = [
        ("template", "Template"),
        ("instanceSize", "Instance size"),
        ("diskGib", "Disk (GiB)"),
        ("snapshot", "Snapshot"),
        ("confirmName", "Confirmed name"),
        ("storageClass", "Storage class"),
    ];
    LABELS
        .iter()
        .filter_map(|(key, label)| {
            let value = request.get(key).filter(|v| !v.is_null())?;
            Some((
                *label,
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string),
            ))
        })
        .collect()
}

/// Why there is no preview: the caller's problem (a bad override, no eligible cluster) in
/// full; the platform's only named (the log has it).
fn preview_failure(e: &AppError) -> String {
    if e.kind().is_callers() {
        e.to_string()
    } else {
        tracing::error!(error = %e, "console preview failed");
        "The preview could not be computed right now; try again shortly.".into()
    }
}

fn preview_panel(
    id: Uuid,
    fields: &OverrideFields,
    preview: &Result<approvals::PreviewResult, AppError>,
    csrf: &str,
) -> Markup {
    html! {
        section.panel #preview aria-labelledby="preview-h" {
            h2 #preview-h { "Preview" }
            @match preview {
                Err(e) => p.error role="alert" { (preview_failure(e)) },
                Ok(p) => {
                    dl.facts {
                        dt { "Cluster" } dd #preview-cluster { (p.plan.cluster.name) }
                        dt { "Eligible clusters" } dd { (p.plan.eligible_clusters.join(", ")) }
                        @if !p.plan.not_eligible.is_empty() {
                            dt { "Not eligible" } dd { ul { @for why in &p.plan.not_eligible { li { (why) } } } }
                        }
                        dt { "Template" } dd { "version " (p.plan.template.version) }
                        dt { "Instance size" } dd { (p.plan.size.name) }
                        dt { "CPU" } dd { (p.plan.resources.cpu_request_millis) "m request, " (p.plan.resources.cpu_limit_millis) "m limit" }
                        dt { "Memory" } dd { (p.plan.resources.memory_request_mib) " MiB request, " (p.plan.resources.memory_limit_mib) " MiB limit" }
                        dt { "Disk" } dd { (p.plan.resources.disk_gib) " GiB" }
                        dt { "Storage class" } dd { (p.plan.storage_class.as_deref().unwrap_or("the cluster's default")) }
                        dt { "VM names" } dd #preview-names { (p.vm_names.join(", ")) }
                    }
                    @for warning in &p.plan.warnings { p.warning role="note" { (warning) } }
                    h3 { "Choices" }
                    form method="get" action={ "/ui/tickets/" (id) } {
                        div.grid-fields {
                            div {
                                label for="cluster" { "Cluster" }
                                select #cluster name="cluster" {
                                    option value="" { "Best by placement" }
                                    @for c in &p.plan.eligible_clusters {
                                        option value=(c) selected[given(&fields.cluster).as_deref() == Some(c.as_str())] { (c) }
                                    }
                                }
                            }
                            div {
                                label for="storageClass" { "Storage class" }
                                input #storageClass type="text" name="storageClass" value=[given(&fields.storage_class)];
                            }
                            @for (name, label, value) in fields.numbers() {
                                div {
                                    label for=(name) { (label) }
                                    input id=(name) type="number" min="1" inputmode="numeric" name=(name) value=[value];
                                }
                            }
                        }
                        div.actions { button.secondary #update-preview type="submit" { "Update preview" } }
                    }
                    h3 { "Approve" }
                    form method="post" action={ "/ui/tickets/" (id) "/approve" } {
                        input type="hidden" name="csrf" value=(csrf);
                        (fields.hidden())
                        label for="approve-reason" { "Reason (optional)" }
                        textarea #approve-reason name="reason" rows="2" {}
                        div.actions {
                            button #approve type="submit" { "Approve on " (p.plan.cluster.name) }
                        }
                    }
                },
            }
        }
    }
}

/// The VMs of a ticket; refreshed by the page's script while they are on their way.
fn progress(t: &TicketListRow, vms: &[VmSummary]) -> Markup {
    let moving = matches!(t.status.as_str(), "Approved" | "Executing");
    html! {
        section #progress aria-labelledby="progress-h" aria-live="polite" data-refresh[moving] {
            h2 #progress-h { "VMs" }
            @if vms.is_empty() {
                p { "No VMs yet: they are named and placed when the ticket is approved." }
            } @else {
                div.table-wrap role="region" aria-label="VMs of this ticket" tabindex="0" {
                    table {
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Cluster" }
                            th scope="col" { "Namespace" } th scope="col" { "IP" } th scope="col" { "Node" }
                        } }
                        tbody {
                            @for vm in vms {
                                tr {
                                    td { (vm.name) }
                                    td.vm-status {
                                        (status_badge(&vm.status))
                                        @if let Some(reason) = &vm.status_reason { " " span.hint { (reason) } }
                                    }
                                    td { (vm.cluster.as_deref().unwrap_or("")) }
                                    td { (vm.namespace) }
                                    td { (vm.ip_address.as_deref().unwrap_or("")) }
                                    td { (vm.node.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
            @if moving { p.hint { "This list updates by itself until the VMs settle." } }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproveForm {
    #[serde(default)]
    reason: String,
    #[serde(flatten)]
    overrides: OverrideFields,
}

/// Runs a decision on ticket `id`, then shows the ticket: with `done` noted, or with the
/// refusal (and its status) above it.
async fn decide<Fut>(
    state: &ApiState,
    session: &Session,
    id: &str,
    fields: &OverrideFields,
    done: &str,
    decision: impl FnOnce(Uuid) -> Fut,
) -> Response
where
    Fut: std::future::Future<Output = Result<(), ConsoleError>>,
{
    let result = match ticket_id(id) {
        Ok(ticket) => decision(ticket).await.map(|()| ticket),
        Err(e) => Err(e),
    };
    match result {
        Ok(ticket) => Redirect::to(&format!("/ui/tickets/{ticket}?done={done}")).into_response(),
        Err(e) => ticket_page(state, session, id, fields, Some(e)).await,
    }
}

/// POST /ui/tickets/{id}/approve: approves with the previewed overrides.
pub async fn approve(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    CsrfForm { console, form }: CsrfForm<ApproveForm>,
) -> Response {
    let (session, state, form) = (&console.session, &state, &form);
    decide(
        state,
        session,
        &id,
        &form.overrides,
        "approved",
        |ticket| async move {
            let overrides = form.overrides.overrides()?;
            let reason = form.reason.trim();
            approvals::approve(
                &state.pool,
                &state.river,
                &session.caller,
                ticket,
                reason,
                &overrides,
            )
            .await?;
            Ok(())
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    reason: String,
}

fn required_reason(form: &ReasonForm) -> Result<&str, ConsoleError> {
    let reason = form.reason.trim();
    if reason.is_empty() {
        return Err(AppError::invalid("reason", "must not be empty").into());
    }
    Ok(reason)
}

/// POST /ui/tickets/{id}/reject.
pub async fn reject(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    CsrfForm { console, form }: CsrfForm<ReasonForm>,
) -> Response {
    let (session, state, form) = (&console.session, &state, &form);
    let fields = OverrideFields::default();
    decide(
        state,
        session,
        &id,
        &fields,
        "rejected",
        |ticket| async move {
            approvals::reject(&state.pool, &session.caller, ticket, required_reason(form)?).await?;
            Ok(())
        },
    )
    .await
}

/// POST /ui/tickets/{id}/cancel: the requester withdraws.
pub async fn cancel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    CsrfForm { console, form }: CsrfForm<ReasonForm>,
) -> Response {
    let (session, state, form) = (&console.session, &state, &form);
    let fields = OverrideFields::default();
    decide(
        state,
        session,
        &id,
        &fields,
        "cancelled",
        |ticket| async move {
            tickets::cancel(&state.pool, &session.caller, ticket, required_reason(form)?).await?;
            Ok(())
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct VmsQuery {
    system: Option<String>,
    environment: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

/// GET /ui/vms: the VMs I may see, with the day-2 operations I may start on each.
pub async fn vms(
    State(state): State<ApiState>,
    Console { session }: Console,
    Query(q): Query<VmsQuery>,
) -> Result<Markup, ConsoleError> {
    let filter = VmFilter {
        system: given(&q.system),
        service: None,
        environment: environment(&q.environment)?,
        status: given(&q.status),
    };
    let paging = paging(&q.cursor)?;
    let found = listings::vms_with_operations(
        &state.pool,
        &session.caller,
        filter,
        paging.after,
        paging.limit,
    )
    .await?;
    let systems = system_select(&state, &session, &q.system).await?;
    let next = next_page_link(
        "/ui/vms",
        &[
            ("system", q.system.clone()),
            ("environment", q.environment.clone()),
            ("status", q.status.clone()),
        ],
        Paging::cursor(found.next.as_ref()),
    );
    Ok(page(
        &session,
        Section::Vms,
        "VMs",
        html! {
            h1 { "VMs" }
            form.filters method="get" action="/ui/vms" {
                (systems)
                (environment_select(&q.environment))
                div {
                    label for="vm-status" { "Status" }
                    input #vm-status type="text" name="status" value=[given(&q.status)] placeholder="Running";
                }
                button.secondary type="submit" { "Filter" }
            }
            @if found.items.is_empty() {
                p { "No VMs to show." }
            } @else {
                div.table-wrap role="region" aria-label="VMs" tabindex="0" {
                    table {
                        caption { "VMs you may see, oldest first" }
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Cluster" }
                            th scope="col" { "IP" } th scope="col" { "Node" } th scope="col" { "System / Service" }
                            th scope="col" { "Environment" } th scope="col" { "Operations" }
                        } }
                        tbody {
                            @for (vm, operations) in &found.items {
                                tr {
                                    td { a href={ "/ui/tickets/" (vm.ticket_id) } { (vm.name) } }
                                    td {
                                        (status_badge(&vm.status))
                                        @if let Some(reason) = &vm.status_reason { " " span.hint { (reason) } }
                                    }
                                    td { (vm.cluster.as_deref().unwrap_or("")) }
                                    td { (vm.ip_address.as_deref().unwrap_or("")) }
                                    td { (vm.node.as_deref().unwrap_or("")) }
                                    td { (vm.system_name) " / " (vm.service_name) }
                                    td { (vm.environment) }
                                    td { (operation_form(&vm.name, operations, &session.csrf_token)) }
                                }
                            }
                        }
                    }
                }
            }
            (next)
        },
    ))
}

fn operation_form(vm: &str, operations: &[Operation], csrf: &str) -> Markup {
    if operations.is_empty() {
        return html! { span.hint { "none available" } };
    }
    let field = |name: &str| format!("{name}-{vm}");
    html! {
        details {
            summary { "Start an operation" }
            form method="post" action={ "/ui/vms/" (vm) "/operations" } {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="key" value=(random_token());
                label for=(field("op")) { "Operation" }
                select id=(field("op")) name="operation" {
                    @for op in operations { option value=(op.as_str()) { (op.as_str()) } }
                }
                label for=(field("reason")) { "Reason" }
                input id=(field("reason")) type="text" name="reason" required maxlength="1024";
                label for=(field("snapshot")) { "Snapshot name (snapshot, restore)" }
                input id=(field("snapshot")) type="text" name="snapshot" maxlength="63";
                label for=(field("confirm")) { "Repeat the VM's name (delete)" }
                input id=(field("confirm")) type="text" name="confirmName" maxlength="63";
                div.actions { button type="submit" { "Submit for approval" } }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationForm {
    #[serde(default)]
    operation: String,
    #[serde(default)]
    reason: String,
    snapshot: Option<String>,
    confirm_name: Option<String>,
    /// A random key rendered into the form: the same form posted twice records one ticket.
    #[serde(default)]
    key: String,
}

impl OperationForm {
    /// The fields as a VmOperation's spec, with the rules its CRD enforces at the API server.
    fn spec(&self, vm: &str) -> Result<VmOperationSpec, AppError> {
        let operation: Operation = self
            .operation
            .parse()
            .map_err(|e| AppError::invalid("operation", e))?;
        let reason = self.reason.trim();
        if reason.is_empty() || reason.chars().count() > 1024 {
            return Err(AppError::invalid("reason", "must be 1 to 1024 characters"));
        }
        let snapshot = given(&self.snapshot);
        if let Some(name) = &snapshot {
            if !matches!(operation, Operation::Snapshot | Operation::Restore) {
                return Err(AppError::invalid(
                    "snapshot",
                    "applies only to snapshot and restore",
                ));
            }
            let label = name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with('-')
                && !name.ends_with('-');
            if !label {
                return Err(AppError::invalid(
                    "snapshot",
                    "must be at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
                ));
            }
        }
        let confirm_name = given(&self.confirm_name);
        if confirm_name.is_some() && operation != Operation::Delete {
            return Err(AppError::invalid("confirmName", "only a delete takes it"));
        }
        Ok(VmOperationSpec {
            vm: vm.to_string(),
            operation,
            reason: reason.to_string(),
            snapshot,
            confirm_name,
        })
    }

    fn uid(&self) -> Result<String, AppError> {
        let well_formed = self.key.len() == 43
            && self
                .key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(AppError::invalid(
                "key",
                "reload the page: the form is incomplete",
            ));
        }
        Ok(format!("console:{}", self.key))
    }
}

/// POST /ui/vms/{name}/operations: opens the operation's ticket through the same use case
/// a `VmOperation` takes.
pub async fn start_operation(
    State(state): State<ApiState>,
    Path(vm): Path<String>,
    CsrfForm { console, form }: CsrfForm<OperationForm>,
) -> Result<Response, ConsoleError> {
    let input = VmOperationInput {
        uid: form.uid()?,
        object_namespace: "console".into(),
        object_name: vm.clone(),
        spec: form.spec(&vm)?,
    };
    let submission =
        submit_vm_operation(&state.pool, &state.river, &console.session.caller, &input).await?;
    Ok(Redirect::to(&format!("/ui/tickets/{}", submission.ticket_id)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    resource_type: Option<String>,
    environment: Option<String>,
    cursor: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ConsoleError> {
        Ok(AuditFilter {
            actor: given(&self.actor),
            resource_type: given(&self.resource_type),
            resource_id: None,
            action_prefix: given(&self.action),
            environment: environment(&self.environment)?,
            readable_environments: vec![],
            since: None,
            until: None,
        })
    }

    fn pairs(&self) -> [(&'static str, Option<String>); 4] {
        [
            ("actor", self.actor.clone()),
            ("action", self.action.clone()),
            ("resourceType", self.resource_type.clone()),
            ("environment", self.environment.clone()),
        ]
    }
}

/// GET /ui/audit: the audit log of the environments I may read.
pub async fn audit(
    State(state): State<ApiState>,
    Console { session }: Console,
    Query(q): Query<AuditQuery>,
) -> Result<Markup, ConsoleError> {
    let paging = paging::<i64>(&q.cursor)?;
    let found = listings::audit(
        &state.pool,
        &session.caller,
        q.filter()?,
        paging.after.unwrap_or(0),
        paging.limit,
    )
    .await?;
    let export = format!(
        "/ui/audit/export?{}",
        serde_urlencoded::to_string(
            q.pairs()
                .iter()
                .filter_map(|(k, v)| given(v).map(|v| (*k, v)))
                .collect::<Vec<_>>()
        )
        .expect("strings encode")
    );
    let text_field = |id: &str, label: &str, value: &Option<String>| {
        html! {
            div {
                label for=(id) { (label) }
                input id=(id) type="text" name=(id) value=[given(value)];
            }
        }
    };
    Ok(page(
        &session,
        Section::Audit,
        "Audit",
        html! {
            h1 { "Audit log" }
            form.filters method="get" action="/ui/audit" {
                (text_field("actor", "Actor", &q.actor))
                (text_field("action", "Action starts with", &q.action))
                (text_field("resourceType", "Resource type", &q.resource_type))
                (environment_select(&q.environment))
                button.secondary type="submit" { "Filter" }
            }
            p { a href=(export) download="audit.ndjson" { "Export these rows (JSON lines)" } }
            div.table-wrap role="region" aria-label="Audit rows" tabindex="0" {
                table {
                    caption { "Audit rows, oldest first" }
                    thead { tr {
                        th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" }
                        th scope="col" { "Action" } th scope="col" { "Resource" } th scope="col" { "Environment" }
                        th scope="col" { "Details" }
                    } }
                    tbody {
                        @for r in &found.items {
                            tr {
                                td { (r.id) }
                                td { (timestamp(r.occurred_at)) }
                                td { (r.actor) }
                                td { code { (r.action) } }
                                td { (r.resource_type) " " (r.resource_name) }
                                td { (r.environment.as_deref().unwrap_or("")) }
                                td { pre { (r.details.to_string()) } }
                            }
                        }
                    }
                }
            }
            (next_page_link("/ui/audit", &q.pairs(), Paging::cursor(found.next.as_ref())))
        },
    ))
}

/// GET /ui/audit/export: the filtered rows as JSON lines, as the REST API exports them.
pub async fn audit_export(
    State(state): State<ApiState>,
    Console { session }: Console,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ConsoleError> {
    let mut response =
        crate::http::api::audit::export_response(state.pool, session.caller, q.filter()?).await?;
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        header::HeaderValue::from_static("attachment; filename=\"audit.ndjson\""),
    );
    Ok(response)
}
