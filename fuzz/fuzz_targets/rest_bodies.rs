//! REST JSON bodies and queries: any bytes through the REST API's own extractors
//! (`ApiJson`, `ApiQuery`, `ApiPath` of `shepherd::http::api::error`) into the request types
//! of the POST endpoints (`shepherd_types::api`: NewRoleBinding, ApproveRequest,
//! PreviewRequest, ReasonRequest) and the query types of the GET endpoints, then through the
//! pure checks the handlers make before they reach PostgreSQL (subject kind, environments,
//! reason, paging cursor, the approver's resource overrides). The real router needs a
//! database and a cluster; `make api-fuzz` covers it end to end.
//!
//! Input: the first byte picks the endpoint (and bit 7 drops the Content-Type); the rest is
//! the body, query string or path segment. Checked on every input:
//! - no panic, and no status is 5xx (rejections answer 400, 415 or 422);
//! - every accepted body serializes and parses back to itself;
//! - a path segment that `paths::fill` encoded (as the plugin does) arrives unchanged;
//! - a paging cursor that parses is re-made by `Paging::cursor` into one that parses alike;
//! - resources that `final_resources` accepts never have a request above its limit.
#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shepherd::app::listings::TimeKey;
use shepherd::domain::resources::{ResourceOverrides, SizeShape, final_resources};
use shepherd::domain::{Environment, Operation, SubjectKind, TicketStatus};
use shepherd::http::api::Paging;
use shepherd::http::api::audit::AuditQuery;
use shepherd::http::api::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use shepherd::http::api::inventory::{PageQuery, VmQuery};
use shepherd::http::api::tickets::TicketQuery;
use shepherd_fuzz::call;
use shepherd_types::api::{ApproveRequest, NewRoleBinding, PreviewRequest, ReasonRequest, paths};
use shepherd_types::crd::approval::Overrides;

type Answer = Result<StatusCode, ApiError>;

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        Router::new()
            .route(
                "/bindings",
                post(|ApiJson(b): ApiJson<NewRoleBinding>| async move { reply(new_binding(b)) }),
            )
            .route(
                "/approve",
                post(|ApiJson(b): ApiJson<ApproveRequest>| async move {
                    round_trip(&b);
                    reply(overrides(&b.overrides).map(|()| StatusCode::ACCEPTED))
                }),
            )
            .route(
                "/preview",
                post(|ApiJson(b): ApiJson<PreviewRequest>| async move {
                    round_trip(&b);
                    reply(overrides(&b.overrides).map(|()| StatusCode::OK))
                }),
            )
            .route(
                "/reject",
                post(|ApiJson(b): ApiJson<ReasonRequest>| async move {
                    round_trip(&b);
                    reply(if b.reason.trim().is_empty() {
                        Err(ApiError::invalid("reason", "must not be empty"))
                    } else {
                        Ok(StatusCode::OK)
                    })
                }),
            )
            .route(
                "/tickets",
                get(|ApiQuery(q): ApiQuery<TicketQuery>| async move { reply(tickets(q)) }),
            )
            .route(
                "/systems",
                get(|ApiQuery(q): ApiQuery<PageQuery>| async move {
                    reply(
                        paging::<String>(q.limit, q.cursor.as_deref())
                            .and(paging::<(String, String)>(q.limit, q.cursor.as_deref()))
                            .and(paging::<TimeKey>(q.limit, q.cursor.as_deref())),
                    )
                }),
            )
            .route(
                "/vms",
                get(|ApiQuery(q): ApiQuery<VmQuery>| async move {
                    reply(
                        paging::<(DateTime<Utc>, String)>(q.limit, q.cursor.as_deref()).and(
                            known::<Environment>("environment", q.environment.as_deref()),
                        ),
                    )
                }),
            )
            .route(
                "/audit",
                get(|ApiQuery(q): ApiQuery<AuditQuery>| async move {
                    reply(
                        paging::<i64>(q.limit, q.cursor.as_deref()).and(known::<Environment>(
                            "environment",
                            q.environment.as_deref(),
                        )),
                    )
                }),
            )
            .route(
                "/tickets/{id}",
                get(|ApiPath(id): ApiPath<uuid::Uuid>| async move {
                    assert_eq!(id.to_string().parse::<uuid::Uuid>().ok(), Some(id));
                    StatusCode::OK
                }),
            )
            // Echoes the decoded segment: what the plugin encodes must arrive unchanged.
            .route(
                "/systems/{system}/services",
                get(|ApiPath(s): ApiPath<String>| async move { s }),
            )
    })
}

fn reply(answer: Answer) -> axum::response::Response {
    match answer {
        Ok(status) => status.into_response(),
        Err(e) => {
            assert!(!e.status.is_server_error(), "{e:?}");
            e.into_response()
        }
    }
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = serde_json::to_string(value).expect("a parsed body serializes");
    let again: T =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text} does not parse back: {e}"));
    assert_eq!(&again, value, "{text}");
}

/// The checks of `POST /api/v1/rbac/bindings` before the database.
fn new_binding(body: NewRoleBinding) -> Answer {
    round_trip(&body);
    body.subject
        .kind
        .parse::<SubjectKind>()
        .map_err(|e| ApiError::invalid("subject.kind", e.to_string()))?;
    if body.subject.name.trim().is_empty() {
        return Err(ApiError::invalid("subject.name", "must not be empty"));
    }
    for env in body.allowed_environments.as_deref().unwrap_or(&[]) {
        known::<Environment>("allowedEnvironments", Some(env))?;
    }
    Ok(StatusCode::CREATED)
}

/// The checks of `GET /api/v1/tickets` before the database.
fn tickets(q: TicketQuery) -> Answer {
    paging::<TimeKey>(q.limit, q.cursor.as_deref())?;
    known::<TicketStatus>("status", q.status.as_deref())?;
    known::<Environment>("environment", q.environment.as_deref())?;
    known::<Operation>("type", q.operation.as_deref())
}

fn known<T: std::str::FromStr>(field: &str, value: Option<&str>) -> Answer
where
    T::Err: std::fmt::Display,
{
    match value.map(str::parse::<T>) {
        Some(Err(e)) => Err(ApiError::invalid(field, e.to_string())),
        _ => Ok(StatusCode::OK),
    }
}

/// `Paging::parse`, and the cursor it accepted made again by `Paging::cursor`.
fn paging<K>(limit: Option<usize>, cursor: Option<&str>) -> Answer
where
    K: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let page = Paging::<K>::parse(limit, cursor)?;
    assert!(page.limit >= 1, "a page of {}", page.limit);
    if let Some(after) = &page.after {
        let again = Paging::cursor(Some(after)).expect("a key makes a cursor");
        let reparsed = Paging::<K>::parse(Some(1), Some(&again)).expect("our own cursor parses");
        assert_eq!(reparsed.after.as_ref(), Some(after), "{again}");
    }
    Ok(StatusCode::OK)
}

/// The approver's overrides through `final_resources`, for a few instance sizes.
fn overrides(o: &Overrides) -> Result<(), ApiError> {
    let overrides = ResourceOverrides {
        cpu_request_millis: o.cpu_request_millis,
        cpu_limit_millis: o.cpu_limit_millis,
        memory_request_mib: o.memory_request_mib,
        memory_limit_mib: o.memory_limit_mib,
    };
    let sizes = [
        (2, 4096, 1.0, 1.0, false),
        (4, 8192, 4.0, 1.5, false),
        (8, 32768, 1.0, 1.0, true),
        (i32::MAX, i64::MAX, 0.5, f64::NAN, false),
    ];
    let mut refused = None;
    for (cpu_cores, memory_mib, cpu_overcommit, memory_overcommit, dedicated_cpu) in sizes {
        let size = SizeShape {
            cpu_cores,
            memory_mib,
            cpu_overcommit,
            memory_overcommit,
            dedicated_cpu,
        };
        for env in Environment::ALL {
            match final_resources(&size, &overrides, o.disk_gib.unwrap_or(20), env) {
                Ok((r, _warnings)) => {
                    assert!(r.cpu_request_millis <= r.cpu_limit_millis, "{r:?}");
                    assert!(r.memory_request_mib <= r.memory_limit_mib, "{r:?}");
                    if dedicated_cpu {
                        assert_eq!(r.cpu_request_millis, r.cpu_limit_millis, "{r:?}");
                    }
                }
                Err(e) => refused = Some(e),
            }
        }
    }
    match refused {
        Some(e) => Err(ApiError::invalid("overrides", e.to_string())),
        None => Ok(()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let with_content_type = selector & 0x80 == 0;
    let text = String::from_utf8_lossy(rest);
    let request = match selector & 0x0f {
        0 => post_json("/bindings", rest, with_content_type),
        1 => post_json("/approve", rest, with_content_type),
        2 => post_json("/preview", rest, with_content_type),
        3 => post_json("/reject", rest, with_content_type),
        4 => get_uri(format!("/tickets?{text}")),
        5 => get_uri(format!("/systems?{text}")),
        6 => get_uri(format!("/vms?{text}")),
        7 => get_uri(format!("/audit?{text}")),
        8 => get_uri(format!("/tickets/{text}")),
        9 => get_uri(format!("/systems/{text}/services")),
        10 => {
            // As the plugin builds it: `paths::fill` percent-encodes the value as one segment.
            let uri = paths::fill("/systems/{system}/services", &[("system", &text)]);
            let request = get_uri(uri).expect("paths::fill makes a valid URI");
            let (status, body) = call(router(), request);
            if !text.is_empty() {
                assert_eq!(status, StatusCode::OK);
                assert_eq!(
                    String::from_utf8_lossy(&body),
                    text,
                    "the segment changed on its way"
                );
            }
            return;
        }
        _ => return,
    };
    let Some(request) = request else {
        return;
    };
    let (status, body) = call(router(), request);
    if !status.is_success()
        && status != StatusCode::NOT_FOUND
        && status != StatusCode::METHOD_NOT_ALLOWED
    {
        // The REST API's error shape, for its own rejections (not axum's 404/405).
        if status == StatusCode::UNSUPPORTED_MEDIA_TYPE || !body.is_empty() {
            let error: shepherd_types::api::ErrorBody = serde_json::from_slice(&body)
                .unwrap_or_else(|e| {
                    panic!(
                        "a {status} answer that is not an ErrorBody ({e}): {}",
                        String::from_utf8_lossy(&body)
                    )
                });
            assert_eq!(error.code, shepherd::http::api::error::code_for(status));
        }
    }
});

fn post_json(path: &str, body: &[u8], with_content_type: bool) -> Option<Request<Body>> {
    let mut request = Request::post(path);
    if with_content_type {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    request.body(Body::from(body.to_vec())).ok()
}

/// Only what an HTTP client can send: a URI that parses.
fn get_uri(uri: String) -> Option<Request<Body>> {
    let uri: Uri = uri.parse().ok()?;
    Request::get(uri).body(Body::empty()).ok()
}
