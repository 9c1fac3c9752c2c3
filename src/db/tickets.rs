//! Tickets: a request for an operation and its decision
//! (docs/architecture.md#tickets-and-approval).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    pub operation: &'a str,
    pub requester: &'a str,
    pub request_uid: Option<&'a str>,
    pub service_id: Uuid,
    pub namespace_id: Uuid,
    pub environment: &'a str,
    pub vm_id: Option<Uuid>,
    pub vm_count: i32,
    pub reason: &'a str,
    pub request: &'a Value,
    pub status: &'a str,
}

pub async fn insert(conn: &mut PgConnection, t: &NewTicket<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO tickets (operation, requester, request_uid, service_id, namespace_id, environment,
                                vm_id, vm_count, reason, request, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id"#,
        t.operation,
        t.requester,
        t.request_uid,
        t.service_id,
        t.namespace_id,
        t.environment,
        t.vm_id,
        t.vm_count,
        t.reason,
        t.request,
        t.status
    )
    .fetch_one(conn)
    .await
}

#[derive(Debug, Clone)]
pub struct TicketRow {
    pub id: Uuid,
    pub operation: String,
    pub status: String,
    pub requester: String,
    pub environment: String,
    pub service_id: Uuid,
    pub approver: Option<String>,
    pub decision_reason: Option<String>,
    pub vm_id: Option<Uuid>,
    pub error_message: Option<String>,
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<TicketRow>> {
    sqlx::query_as!(
        TicketRow,
        r#"SELECT id, operation, status, requester, environment, service_id, approver, decision_reason, vm_id, error_message
           FROM tickets WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Moves a ticket from `from` to `to`, recording who decided and why. Returns None when the
/// ticket is not in `from` any more: a concurrent decision won. The UPDATE's row lock makes a
/// second decider wait for the first to commit and then find the state changed.
pub async fn decide(
    conn: &mut PgConnection,
    id: Uuid,
    from: &str,
    to: &str,
    approver: &str,
    reason: &str,
) -> sqlx::Result<Option<TicketRow>> {
    let decided = sqlx::query_as!(
        TicketRow,
        r#"UPDATE tickets
           SET status = $3, approver = $4, decision_reason = $5, decided_at = now(), updated_at = now()
           WHERE id = $1 AND status = $2
           RETURNING id, operation, status, requester, environment, service_id, approver, decision_reason, vm_id, error_message"#,
        id,
        from,
        to,
        approver,
        reason
    )
    .fetch_optional(&mut *conn)
    .await?;
    if decided.is_some() {
        notify_changed(conn, id).await?;
    }
    Ok(decided)
}

/// The ticket a Kubernetes object (VmRequest, VmOperation) opened, if any.
pub async fn by_request_uid(
    conn: &mut PgConnection,
    request_uid: &str,
) -> sqlx::Result<Option<TicketRow>> {
    sqlx::query_as!(
        TicketRow,
        r#"SELECT id, operation, status, requester, environment, service_id, approver, decision_reason, vm_id, error_message
           FROM tickets WHERE request_uid = $1"#,
        request_uid
    )
    .fetch_optional(conn)
    .await
}

/// A pending ticket of the same requester asking for exactly the same thing.
pub async fn pending_duplicate(
    conn: &mut PgConnection,
    operation: &str,
    requester: &str,
    service_id: Uuid,
    namespace_id: Uuid,
    request: &Value,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"SELECT id FROM tickets
           WHERE status = 'PendingApproval' AND operation = $1 AND requester = $2 AND service_id = $3
             AND namespace_id = $4 AND request = $5
           LIMIT 1"#,
        operation,
        requester,
        service_id,
        namespace_id,
        request
    )
    .fetch_optional(conn)
    .await
}

/// Cancels a pending ticket; None when it is not pending any more.
pub async fn cancel(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
) -> sqlx::Result<Option<TicketRow>> {
    sqlx::query_as!(
        TicketRow,
        r#"UPDATE tickets SET status = 'Cancelled', decision_reason = $2, decided_at = now(), updated_at = now()
           WHERE id = $1 AND status = 'PendingApproval'
           RETURNING id, operation, status, requester, environment, service_id, approver, decision_reason, vm_id, error_message"#,
        id,
        reason
    )
    .fetch_optional(conn)
    .await
}

/// Everything the approval transaction needs about a ticket.
#[derive(Debug, Clone)]
pub struct TicketDetail {
    pub id: Uuid,
    pub operation: String,
    pub status: String,
    pub requester: String,
    pub environment: String,
    pub service_id: Uuid,
    pub service_name: String,
    pub system_id: Uuid,
    pub system_name: String,
    pub namespace_id: Uuid,
    pub namespace_name: String,
    pub vm_count: i32,
    pub request: Value,
    /// The VM a day-2 operation targets; None for create.
    pub vm_id: Option<Uuid>,
}

pub async fn detail(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<TicketDetail>> {
    sqlx::query_as!(
        TicketDetail,
        r#"SELECT t.id, t.operation, t.status, t.requester, t.environment, t.service_id, s.name AS service_name,
                  sys.id AS system_id, sys.name AS system_name, t.namespace_id, n.name AS namespace_name,
                  t.vm_count, t.request, t.vm_id
           FROM tickets t
           JOIN services s ON s.id = t.service_id
           JOIN systems sys ON sys.id = s.system_id
           JOIN namespaces n ON n.id = t.namespace_id
           WHERE t.id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// What approval fixed, stored with the decision.
#[derive(Debug, Clone)]
pub struct ApprovalRecord<'a> {
    pub cluster_id: Uuid,
    pub template_version_id: Uuid,
    pub template_snapshot: &'a Value,
    pub instance_size_snapshot: &'a Value,
    pub final_resources: &'a Value,
    pub overrides: &'a Value,
}

pub async fn record_approval(
    conn: &mut PgConnection,
    id: Uuid,
    r: &ApprovalRecord<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE tickets SET cluster_id = $2, template_version_id = $3, template_snapshot = $4,
                  instance_size_snapshot = $5, final_resources = $6, overrides = $7, updated_at = now()
           WHERE id = $1"#,
        id,
        r.cluster_id,
        r.template_version_id,
        r.template_snapshot,
        r.instance_size_snapshot,
        r.final_resources,
        r.overrides
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A ticket as the REST API shows it.
#[derive(Debug, Clone)]
pub struct TicketListRow {
    pub id: Uuid,
    pub operation: String,
    pub status: String,
    pub requester: String,
    pub environment: String,
    pub system_id: Uuid,
    pub system_name: String,
    pub service_name: String,
    pub namespace_name: String,
    pub vm_count: i32,
    pub reason: String,
    pub request: Value,
    pub approver: Option<String>,
    pub decision_reason: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub cluster: Option<String>,
    /// The VM a day-2 operation targets.
    pub vm_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Filters of a ticket listing; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub id: Option<Uuid>,
    pub status: Option<String>,
    pub system: Option<String>,
    pub environment: Option<String>,
    pub requester: Option<String>,
    pub operation: Option<String>,
    /// Only tickets this caller may see; None: all (for callers that checked already).
    pub visible_to: Option<TicketVisibility>,
}

/// Which tickets a caller sees, as the database can filter them: their own (when
/// `requester` is set, not `excluded_requester`) and those of the (System, environment)
/// pairs listed.
#[derive(Debug, Clone, Default)]
pub struct TicketVisibility {
    pub requester: Option<String>,
    pub excluded_requester: Option<String>,
    pub system_ids: Vec<Uuid>,
    pub environments: Vec<String>,
}

/// Up to `limit` tickets after the key `(created_at, id)`, oldest first. Keyset order keeps
/// pages stable while tickets are added.
pub async fn list(
    conn: &mut PgConnection,
    filter: &TicketFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<TicketListRow>> {
    let (after_at, after_id) = after.unzip();
    let visibility = filter.visible_to.as_ref();
    sqlx::query_as!(
        TicketListRow,
        r#"SELECT t.id, t.operation, t.status, t.requester, t.environment, sys.id AS system_id,
                  sys.name AS system_name, s.name AS service_name, n.name AS namespace_name,
                  t.vm_count, t.reason, t.request, t.approver, t.decision_reason, t.decided_at,
                  COALESCE(c.name, vc.name) AS "cluster?", v.name AS "vm_name?", t.created_at
           FROM tickets t
           JOIN services s ON s.id = t.service_id
           JOIN systems sys ON sys.id = s.system_id
           JOIN namespaces n ON n.id = t.namespace_id
           LEFT JOIN clusters c ON c.id = t.cluster_id
           LEFT JOIN vms v ON v.id = t.vm_id
           LEFT JOIN clusters vc ON vc.id = v.cluster_id
           WHERE ($1::text IS NULL OR t.status = $1)
             AND ($2::text IS NULL OR sys.name = $2)
             AND ($3::text IS NULL OR t.environment = $3)
             AND ($4::text IS NULL OR t.requester = $4)
             AND ($5::text IS NULL OR t.operation = $5)
             AND ($6::timestamptz IS NULL OR (t.created_at, t.id) > ($6, $7::uuid))
             AND ($9::uuid IS NULL OR t.id = $9)
             AND (NOT $10::bool OR t.requester = $11::text
                  OR EXISTS (SELECT 1 FROM unnest($12::uuid[], $13::text[]) AS v(system_id, environment)
                             WHERE v.system_id = sys.id AND v.environment = t.environment))
             AND ($14::text IS NULL OR t.requester <> $14)
           ORDER BY t.created_at, t.id
           LIMIT $8"#,
        filter.status,
        filter.system,
        filter.environment,
        filter.requester,
        filter.operation,
        after_at,
        after_id,
        limit,
        filter.id,
        visibility.is_some(),
        visibility.and_then(|v| v.requester.as_deref()),
        visibility.map_or(&[][..], |v| &v.system_ids[..]),
        visibility.map_or(&[][..], |v| &v.environments[..]),
        visibility.and_then(|v| v.excluded_requester.as_deref()),
    )
    .fetch_all(conn)
    .await
}

pub async fn list_row(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<TicketListRow>> {
    let filter = TicketFilter {
        id: Some(id),
        ..TicketFilter::default()
    };
    Ok(list(conn, &filter, None, 1).await?.pop())
}

/// Moves a ticket from `from` to `to` as work progresses (no decision is recorded). False
/// when it was not in `from`.
pub async fn advance(
    conn: &mut PgConnection,
    id: Uuid,
    from: &str,
    to: &str,
    error_message: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE tickets SET status = $3, error_message = COALESCE($4, error_message), updated_at = now(),
                  started_at = CASE WHEN $3 = 'Executing' THEN now() ELSE started_at END
           WHERE id = $1 AND status = $2"#,
        id,
        from,
        to,
        error_message
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The channel on which a changed ticket's id is announced when the transaction commits, so
/// the reconciler of the object that asked for it reports the change without polling.
pub const CHANGED_CHANNEL: &str = "shepherd_ticket_changed";

pub async fn notify_changed(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_notify($1, $2)", CHANGED_CHANNEL, id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The uid of the Kubernetes object that opened the ticket.
pub async fn request_uid(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<String>> {
    Ok(
        sqlx::query_scalar!("SELECT request_uid FROM tickets WHERE id = $1", id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}

/// A ticket's status, its row locked for the rest of the transaction.
pub async fn lock_status(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT status FROM tickets WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(conn)
        .await
}

/// Everything carrying out one day-2 operation needs: its ticket, the VM it acts on and
/// where that VM lives.
#[derive(Debug, Clone)]
pub struct OperationTarget {
    pub ticket_id: Uuid,
    pub operation: String,
    pub ticket_status: String,
    pub requester: String,
    pub approver: Option<String>,
    pub environment: String,
    pub request: Value,
    pub result: Option<Value>,
    pub started_at: Option<DateTime<Utc>>,
    pub vm_id: Uuid,
    pub vm_name: String,
    pub vm_status: String,
    pub desired_power_state: String,
    pub service_id: Uuid,
    pub namespace: String,
    pub cluster_id: Option<Uuid>,
    pub cluster: Option<String>,
    /// The cluster's capabilities from its last probe (`domain::cluster_probe`).
    pub capabilities: Option<Value>,
}

pub async fn operation_target(
    conn: &mut PgConnection,
    ticket_id: Uuid,
) -> sqlx::Result<Option<OperationTarget>> {
    sqlx::query_as!(
        OperationTarget,
        r#"SELECT t.id AS ticket_id, t.operation, t.status AS ticket_status, t.requester, t.approver,
                  t.environment, t.request, t.result, t.started_at, v.id AS vm_id, v.name AS vm_name,
                  v.status AS vm_status, v.desired_power_state, v.service_id, n.name AS namespace,
                  v.cluster_id, (SELECT c.name FROM clusters c WHERE c.id = v.cluster_id) AS "cluster?",
                  (SELECT c.capabilities FROM clusters c WHERE c.id = v.cluster_id) AS "capabilities?"
           FROM tickets t
           JOIN vms v ON v.id = t.vm_id
           JOIN namespaces n ON n.id = v.namespace_id
           WHERE t.id = $1"#,
        ticket_id
    )
    .fetch_optional(conn)
    .await
}

/// Another operation ticket of the VM that is executing now, if any.
pub async fn other_executing_on_vm(
    conn: &mut PgConnection,
    vm_id: Uuid,
    ticket_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM tickets WHERE vm_id = $1 AND id <> $2 AND status = 'Executing' LIMIT 1",
        vm_id,
        ticket_id
    )
    .fetch_optional(conn)
    .await
}

/// Merges `fields` into the ticket's result (what the operation produced, progress markers).
pub async fn merge_result(conn: &mut PgConnection, id: Uuid, fields: &Value) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE tickets SET result = COALESCE(result, '{}'::jsonb) || $2, updated_at = now()
         WHERE id = $1 AND COALESCE(result, '{}'::jsonb) || $2 IS DISTINCT FROM result",
        id,
        fields
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The result an operation ticket recorded.
pub async fn result(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Value>> {
    Ok(
        sqlx::query_scalar!("SELECT result FROM tickets WHERE id = $1", id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}

/// A ticket's operation.
pub async fn operation(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT operation FROM tickets WHERE id = $1", id)
        .fetch_optional(conn)
        .await
}
