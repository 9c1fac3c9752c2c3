//! `/api/v1/audit`: query the audit log, or export it as streamed JSON lines.

use super::auth::Authenticated;
use super::error::{ApiError, ApiQuery};
use super::{ApiState, Paging};
use crate::app::listings;
use crate::db::audit::{AuditFilter, AuditRow};
use crate::domain::Environment;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use shepherd_types::api::paths;
use shepherd_types::api::{AuditPage, AuditRecord, ErrorBody};
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// ticket, vm, system, service, role_binding, ...
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// Actions starting with this, e.g. `approval.` or `vm.create`.
    pub action: Option<String>,
    /// test or prod; rows without an environment (platform actions) are left out then.
    pub environment: Option<String>,
    /// From this time on (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1 to 500 (default 50); ignored by the export.
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page; ignored by the export.
    pub cursor: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        if let Some(env) = &self.environment {
            env.parse::<Environment>()
                .map_err(|e| ApiError::invalid("environment", e.to_string()))?;
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err(ApiError::invalid("until", "must be after since"));
        }
        Ok(AuditFilter {
            actor: self.actor.clone(),
            resource_type: self.resource_type.clone(),
            resource_id: self.resource_id.clone(),
            action_prefix: self.action.clone(),
            environment: self.environment.clone(),
            readable_environments: vec![],
            since: self.since,
            until: self.until,
        })
    }
}

fn record(r: AuditRow) -> AuditRecord {
    AuditRecord {
        id: r.id,
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
    }
}

/// Audit rows in order, for environments the caller may read (audit:read).
#[utoipa::path(get, path = paths::AUDIT, tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = "4XX", body = ErrorBody)))]
pub async fn query(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let paging = Paging::<i64>::parse(q.limit, q.cursor.as_deref())?;
    let page = listings::audit(
        &state.pool,
        &caller,
        q.filter()?,
        paging.after.unwrap_or(0),
        paging.limit,
    )
    .await?;
    Ok(Json(AuditPage {
        next_cursor: Paging::cursor(page.next.as_ref()),
        items: page.items.into_iter().map(record).collect(),
    }))
}

/// Rows per database round trip of the export.
const EXPORT_BATCH: usize = 500;

/// Every matching audit row as one JSON object per line, streamed.
#[utoipa::path(get, path = paths::AUDIT_EXPORT, tag = "audit", params(AuditQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = AuditRecord,
               description = "one AuditRecord per line"),
              (status = "4XX", body = ErrorBody)))]
pub async fn export(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    export_response(state.pool, caller, q.filter()?).await
}

/// The NDJSON export of `filter` for `caller` (the REST API's and the console's).
pub async fn export_response(
    pool: sqlx::PgPool,
    caller: crate::app::access::Caller,
    filter: AuditFilter,
) -> Result<Response, ApiError> {
    // Refuse before the 200 goes out; the stream re-checks on every batch.
    listings::audit_environments(&pool, &caller).await?;
    let stream = futures::stream::try_unfold(Some(0i64), move |after| {
        let (pool, caller, filter) = (pool.clone(), caller.clone(), filter.clone());
        async move {
            let Some(after) = after else {
                return Ok(None);
            };
            let page = listings::audit(&pool, &caller, filter, after, EXPORT_BATCH).await?;
            let mut chunk = Vec::new();
            for row in page.items {
                serde_json::to_writer(&mut chunk, &record(row)).map_err(|e| {
                    crate::app::AppError::Invalid {
                        field: "audit_log.details".into(),
                        rule: e.to_string(),
                    }
                })?;
                chunk.push(b'\n');
            }
            Ok::<_, crate::app::AppError>(Some((chunk, page.next)))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}
