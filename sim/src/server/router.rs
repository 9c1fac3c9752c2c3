//! Request dispatch: authentication, faults, discovery, OpenAPI and the resource paths
//! `/api/v1/...` and `/apis/<group>/<version>/...`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::objects::{Core, Ctx, FieldValidation, PatchType, Written};
use crate::resources::{self, ResourceDef};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::meta_str;
use crate::watch::{self, Render, WatchParams};
use crate::{discovery, openapi, table};

/// Shared state of one cluster's server.
pub struct App {
    pub core: Arc<Core>,
    pub kubevirt: Option<Arc<crate::kubevirt::KubeVirt>>,
    pub addr: String,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(dispatch).with_state(app)
}

async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    match handle(app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response {
    let mut r = (code, serde_json::to_vec(v).unwrap_or_default()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append("warning", v);
        }
    }
    r
}

/// Parsed request context shared by the resource handlers.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub query: HashMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: bytes::Bytes,
    pub user: User,
}

impl Req<'_> {
    fn q(&self, k: &str) -> &str {
        self.query.get(k).map(String::as_str).unwrap_or_default()
    }

    fn accept(&self) -> &str {
        self.headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn render(&self) -> Render {
        let accept = self.accept();
        if accept.contains("as=Table") {
            Render::Table(
                self.query
                    .get("includeObject")
                    .cloned()
                    .unwrap_or_else(|| "PartialObjectMetadata".into()),
            )
        } else if accept.contains("as=PartialObjectMetadata") {
            Render::Metadata
        } else {
            Render::Object
        }
    }

    pub(crate) fn ctx(&self) -> ApiResult<Ctx> {
        let validation = match self.q("fieldValidation") {
            "Strict" => FieldValidation::Strict,
            "Ignore" => FieldValidation::Ignore,
            "" | "Warn" => FieldValidation::Warn,
            other => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation parameter unsupported: {other}"
                )));
            }
        };
        let dry_run = match self.q("dryRun") {
            "" => false,
            "All" => true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {other}"
                )));
            }
        };
        Ok(Ctx {
            user: self.user.clone(),
            dry_run,
            field_manager: self.query.get("fieldManager").cloned(),
            user_agent: self
                .headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            validation,
            internal: false,
        })
    }

    fn json_body(&self) -> ApiResult<Value> {
        if self.body.is_empty() {
            return Ok(json!({}));
        }
        let ct = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        if ct.contains("yaml") {
            serde_saphyr::from_slice(&self.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        } else if ct.contains("protobuf") {
            super::protobuf::decode(&self.body)
        } else {
            serde_json::from_slice(&self.body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request was in an unknown format: {e}"
                ))
            })
        }
    }
}

async fn handle(app: Arc<App>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/livez") {
        return Ok((StatusCode::OK, "ok").into_response());
    }
    let header = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let user = crate::tokens::authenticate(&app.core, header).ok_or_else(ApiError::unauthorized)?;
    app.core.faults.before_request().await?;
    let query: HashMap<String, String> =
        form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let r = Req {
        method: parts.method.clone(),
        query,
        headers: &parts.headers,
        body,
        user,
    };
    crate::rbac::authorize_request(&app.core, &r.user, &r.method, &path, &r.query)?;
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let core = &app.core;
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    match segs.as_slice() {
        ["version"] => ok(discovery::version()),
        ["api"] => ok(discovery::api_versions(&app.addr)),
        ["apis"] => ok(discovery::api_group_list(&core.registry())),
        ["openapi", "v3"] => ok(openapi::index(&core.registry())),
        ["openapi", "v2"] => Ok((
            [(
                "content-type",
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            )],
            openapi::v2_protobuf(),
        )
            .into_response()),
        ["openapi", "v3", "api", v] => {
            openapi::group_version(&core.registry(), "", v).map_or_else(|| Err(not_found()), ok)
        }
        ["openapi", "v3", "apis", g, v] => {
            openapi::group_version(&core.registry(), g, v).map_or_else(|| Err(not_found()), ok)
        }
        ["api", "v1"] => discovery::resource_list(&core.registry(), "", "v1")
            .map_or_else(|| Err(not_found()), ok),
        ["apis", g] => {
            discovery::api_group(&core.registry(), g).map_or_else(|| Err(not_found()), ok)
        }
        ["apis", g, v] => {
            discovery::resource_list(&core.registry(), g, v).map_or_else(|| Err(not_found()), ok)
        }
        ["api", "v1", rest @ ..] => resource(&app, "", "v1", rest, &r).await,
        ["apis", "subresources.kubevirt.io", "v1", rest @ ..] => match &app.kubevirt {
            Some(kv) => kv.subresource(core, rest, &r).await,
            None => Err(not_found()),
        },
        ["apis", g, v, rest @ ..] => resource(&app, g, v, rest, &r).await,
        _ => Err(not_found()),
    }
}

fn field_allowed(def: &ResourceDef, path: &str) -> bool {
    if matches!(path, "metadata.name" | "metadata.namespace") {
        return true;
    }
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "events") => {
            path.starts_with("involvedObject.")
                || matches!(path, "reason" | "type" | "source" | "reportingComponent")
        }
        ("events.k8s.io", "events") => {
            path.starts_with("regarding.")
                || matches!(path, "reason" | "type" | "reportingController")
        }
        ("", "secrets") => path == "type",
        ("", "namespaces") => path == "status.phase",
        ("", "nodes") => path == "spec.unschedulable",
        ("kubevirt.io", "virtualmachineinstances") => {
            matches!(path, "status.nodeName" | "status.phase")
        }
        _ => false,
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    start: String,
}

async fn resource(
    app: &App,
    group: &str,
    version: &str,
    rest: &[&str],
    r: &Req<'_>,
) -> ApiResult<Response> {
    let core = &app.core;
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let (ns, rest) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"))
    {
        (Some(rest[1]), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.is_empty() || rest.len() > 3 {
        return Err(not_found());
    }
    let def = core.find(group, version, rest[0])?;
    let name = rest.get(1).copied();
    let sub = rest.get(2).copied().unwrap_or_default();
    if (!def.namespaced && ns.is_some()) || (def.namespaced && ns.is_none() && name.is_some()) {
        return Err(not_found());
    }
    if let (&Method::POST, Some(name), "token", "serviceaccounts", "") = (
        &r.method,
        name,
        sub,
        def.plural.as_str(),
        def.group.as_str(),
    ) {
        let out =
            crate::tokens::token_request(core, ns.unwrap_or_default(), name, &r.json_body()?)?;
        return Ok(json_response(StatusCode::CREATED, &out));
    }
    if !sub.is_empty()
        && !(def.status_subresource
            && (sub == "status" || (sub == "finalize" && def.plural == "namespaces")))
    {
        return Err(not_found());
    }
    let sub = if sub == "finalize" { "" } else { sub };
    let ns_str = ns.unwrap_or_default();
    match (r.method.clone(), name) {
        (Method::GET, None) => {
            if matches!(r.q("watch"), "true" | "1") {
                watch_response(app, def, ns, r)
            } else {
                list(app, &def, ns, r)
            }
        }
        (Method::GET, Some(name)) => {
            let obj = core
                .store
                .get(&def.key(), ns_str, name)
                .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
            let out = match r.render() {
                Render::Table(inc) => table::table(
                    &def,
                    &[watch::render(&def, &obj, &Render::Object)],
                    json!({"resourceVersion": meta_str(&obj, "resourceVersion")}),
                    &inc,
                ),
                how => watch::render(&def, &obj, &how),
            };
            Ok(json_response(StatusCode::OK, &out))
        }
        (Method::POST, None) if resources::is_virtual(&def) => {
            let body = r.json_body()?;
            let out = match def.plural.as_str() {
                "tokenreviews" => crate::tokens::token_review(core, &body),
                _ => crate::rbac::access_review(core, &r.user, &def, ns_str, &body)?,
            };
            Ok(json_response(StatusCode::CREATED, &out))
        }
        (Method::POST, None) => {
            let ctx = r.ctx()?;
            let w = core.create(&ctx, &def, ns_str, r.json_body()?).await?;
            Ok(written(&def, w, StatusCode::CREATED))
        }
        (Method::PUT, Some(name)) => {
            let ctx = r.ctx()?;
            let w = core
                .replace(&ctx, &def, ns_str, name, r.json_body()?, sub)
                .await?;
            Ok(written(&def, w, StatusCode::OK))
        }
        (Method::PATCH, Some(name)) => {
            let ct = r
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let ptype = match ct.split(';').next().unwrap_or_default().trim() {
                "application/json-patch+json" => PatchType::Json,
                "application/merge-patch+json" => PatchType::Merge,
                "application/strategic-merge-patch+json" if !def.from_crd => PatchType::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchType::Apply,
                other => {
                    return Err(ApiError::unsupported_media(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                    )));
                }
            };
            let force = matches!(r.q("force"), "true" | "1");
            if force && ptype != PatchType::Apply {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    vec![crate::error::FieldError::new(
                        crate::error::FieldErrorKind::Forbidden,
                        "force",
                        None,
                        "may not be specified for non-apply patch",
                    )],
                ));
            }
            let ctx = r.ctx()?;
            let w = core
                .patch(&ctx, &def, ns_str, name, ptype, &r.body, sub, force)
                .await?;
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(written(&def, w, code))
        }
        (Method::DELETE, Some(name)) => {
            let ctx = r.ctx()?;
            let mut opts = r.json_body()?;
            if let Some(p) = r.query.get("propagationPolicy") {
                opts["propagationPolicy"] = json!(p);
            }
            let out = core.delete(&ctx, &def, ns_str, name, &opts).await?;
            Ok(json_response(
                StatusCode::OK,
                &watch::render(&def, &out, &Render::Object),
            ))
        }
        (Method::DELETE, None) => {
            let ctx = r.ctx()?;
            let labels = LabelSelector::parse(r.q("labelSelector"))?;
            let fields = FieldSelector::parse(r.q("fieldSelector"), |p| field_allowed(&def, p))?;
            let opts = r.json_body()?;
            let mut out = vec![];
            for o in core.store.list(&def.key(), ns).0 {
                if labels.matches(&o["metadata"]["labels"]) && fields.matches(&o) {
                    match core
                        .delete(
                            &ctx,
                            &def,
                            meta_str(&o, "namespace"),
                            meta_str(&o, "name"),
                            &opts,
                        )
                        .await
                    {
                        Ok(v) => out.push(watch::render(&def, &v, &Render::Object)),
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"apiVersion": def.api_version(), "kind": def.list_kind, "metadata": {"resourceVersion": core.store.current_rv().to_string()}, "items": out}),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            r.method
        ))),
    }
}

fn written(def: &ResourceDef, w: Written, code: StatusCode) -> Response {
    let body = watch::render(def, &w.object, &Render::Object);
    with_warnings(json_response(code, &body), &w.warnings)
}

fn list(app: &App, def: &Arc<ResourceDef>, ns: Option<&str>, r: &Req<'_>) -> ApiResult<Response> {
    let labels = LabelSelector::parse(r.q("labelSelector"))?;
    let fields = FieldSelector::parse(r.q("fieldSelector"), |p| field_allowed(def, p))?;
    let (items, rv) = app.core.store.list(&def.key(), ns);
    let limit: usize = r.q("limit").parse().unwrap_or(0);
    let (list_rv, start) = if r.q("continue").is_empty() {
        (rv, String::new())
    } else {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(r.q("continue"))
            .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
        let t: ContinueToken = serde_json::from_slice(&raw)
            .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
        (t.rv, t.start)
    };
    let key_of = |o: &Value| format!("{}/{}", meta_str(o, "namespace"), meta_str(o, "name"));
    let matching: Vec<&Arc<Value>> = items
        .iter()
        .filter(|o| labels.matches(&o["metadata"]["labels"]) && fields.matches(o))
        .filter(|o| start.is_empty() || key_of(o) > start)
        .collect();
    let take = if limit > 0 {
        limit.min(matching.len())
    } else {
        matching.len()
    };
    let page: Vec<Value> = matching[..take]
        .iter()
        .map(|o| watch::render(def, o, &Render::Object))
        .collect();
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if take < matching.len() {
        let token = ContinueToken {
            rv: list_rv,
            start: key_of(&page[take - 1]),
        };
        meta["continue"] = json!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&token).unwrap_or_default())
        );
        meta["remainingItemCount"] = json!(matching.len() - take);
    }
    let out = match r.render() {
        Render::Table(inc) => table::table(def, &page, meta, &inc),
        Render::Metadata => json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": meta,
            "items": page.iter().map(|o| watch::render(def, o, &Render::Metadata)).collect::<Vec<_>>(),
        }),
        Render::Object => {
            json!({"apiVersion": def.api_version(), "kind": def.list_kind, "metadata": meta, "items": page})
        }
    };
    Ok(json_response(StatusCode::OK, &out))
}

fn watch_response(
    app: &App,
    def: Arc<ResourceDef>,
    ns: Option<&str>,
    r: &Req<'_>,
) -> ApiResult<Response> {
    let timeout = r
        .q("timeoutSeconds")
        .parse::<u64>()
        .ok()
        .filter(|t| *t > 0)
        .unwrap_or(1800)
        .min(3600);
    let p = WatchParams {
        resource_version: r.q("resourceVersion").to_string(),
        send_initial_events: match r.q("sendInitialEvents") {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        bookmarks: r.q("allowWatchBookmarks") == "true",
        timeout: Duration::from_secs(timeout),
        labels: LabelSelector::parse(r.q("labelSelector"))?,
        fields: FieldSelector::parse(r.q("fieldSelector"), |p| field_allowed(&def, p))?,
        namespace: ns.map(str::to_string),
        render: r.render(),
    };
    let rx = watch::start(app.core.clone(), def, p)?;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
