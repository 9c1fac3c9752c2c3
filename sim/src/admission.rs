//! Admission webhooks: the server calls HTTPS webhooks from Mutating- and
//! ValidatingWebhookConfigurations with `AdmissionReview` v1, like the real one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceDef;
use crate::selectors::LabelSelector;

/// Where webhook Services are served: there are no pods or kube-proxy, so tests map
/// `(namespace, name, port)` of a Service to a local address
/// (`SimCluster::route_service`). The server still verifies the webhook's certificate for
/// `<name>.<namespace>.svc` against `caBundle`, like kube-apiserver.
#[derive(Debug, Default)]
pub struct ServiceRoutes(RwLock<HashMap<(String, String, u16), SocketAddr>>);

impl ServiceRoutes {
    pub fn set(&self, namespace: &str, name: &str, port: u16, addr: Option<SocketAddr>) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_string(), name.to_string(), port);
        match addr {
            Some(a) => m.insert(key, a),
            None => m.remove(&key),
        };
    }

    pub fn get(&self, namespace: &str, name: &str, port: u16) -> Option<SocketAddr> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(namespace.to_string(), name.to_string(), port))
            .copied()
    }
}

/// The request being admitted.
pub struct Attributes<'a> {
    pub operation: &'a str,
    pub def: &'a ResourceDef,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub old: Option<&'a Value>,
    pub user: &'a User,
    pub dry_run: bool,
    /// Labels of the request's namespace (for `namespaceSelector`).
    pub namespace_labels: Value,
    /// Where `clientConfig.service` webhooks are served.
    pub routes: &'a ServiceRoutes,
}

fn str_in(list: &Value, want: &str) -> bool {
    list.as_array().is_some_and(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .any(|x| x == "*" || x == want)
    })
}

fn resource_matches(list: &Value, plural: &str, sub: &str) -> bool {
    let full = if sub.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}/{sub}")
    };
    list.as_array().is_some_and(|a| {
        a.iter().filter_map(Value::as_str).any(|r| {
            r == full
                || r == "*/*"
                || (r == "*" && sub.is_empty())
                || (sub.is_empty() && r == plural)
                || r.strip_suffix("/*")
                    .is_some_and(|p| p == plural && !sub.is_empty())
                || r.strip_prefix("*/").is_some_and(|s| s == sub)
        })
    })
}

/// Whether a webhook's rules and selectors select this request.
fn matches(hook: &Value, a: &Attributes<'_>, object: Option<&Value>) -> bool {
    let rules_ok = hook["rules"].as_array().is_some_and(|rules| {
        rules.iter().any(|r| {
            str_in(&r["operations"], a.operation)
                && str_in(&r["apiGroups"], &a.def.group)
                && str_in(&r["apiVersions"], &a.def.version)
                && resource_matches(&r["resources"], &a.def.plural, a.subresource)
                && match r["scope"].as_str().unwrap_or("*") {
                    "Cluster" => !a.def.namespaced,
                    "Namespaced" => a.def.namespaced,
                    _ => true,
                }
        })
    });
    if !rules_ok {
        return false;
    }
    let labels_of = |o: Option<&Value>| {
        o.map(|o| o["metadata"]["labels"].clone())
            .unwrap_or(Value::Null)
    };
    if let Ok(sel) = LabelSelector::from_object(&hook["objectSelector"]) {
        let new_ok = object.is_some_and(|o| sel.matches(&labels_of(Some(o))));
        let old_ok = a.old.is_some_and(|o| sel.matches(&labels_of(Some(o))));
        if !(new_ok || old_ok) {
            return false;
        }
    }
    // A Namespace itself is matched by its own labels (the new ones on create/update).
    let is_namespace = a.def.group.is_empty() && a.def.plural == "namespaces";
    let ns_labels = match (is_namespace, object) {
        (true, Some(o)) if a.subresource.is_empty() => labels_of(Some(o)),
        (true, _) => labels_of(a.old),
        (false, _) => a.namespace_labels.clone(),
    };
    if (a.def.namespaced || is_namespace)
        && let Ok(sel) = LabelSelector::from_object(&hook["namespaceSelector"])
        && !sel.matches(&ns_labels)
    {
        return false;
    }
    true
}

fn review(a: &Attributes<'_>, object: Option<&Value>) -> Value {
    let kind = json!({"group": a.def.group, "version": a.def.version, "kind": a.def.kind});
    let resource =
        json!({"group": a.def.group, "version": a.def.version, "resource": a.def.plural});
    let options_kind = match a.operation {
        "CREATE" => "CreateOptions",
        "UPDATE" => "UpdateOptions",
        _ => "DeleteOptions",
    };
    let mut req = json!({
        "uid": uuid::Uuid::new_v4().to_string(),
        "kind": kind, "resource": resource, "requestKind": kind, "requestResource": resource,
        "name": a.name, "operation": a.operation, "userInfo": a.user.user_info(),
        "object": object.cloned().unwrap_or(Value::Null),
        "oldObject": a.old.cloned().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
        "options": {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"},
    });
    if a.def.namespaced {
        req["namespace"] = json!(a.namespace);
    }
    if !a.subresource.is_empty() {
        req["subResource"] = json!(a.subresource);
        req["requestSubResource"] = json!(a.subresource);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
}

/// Where to send a webhook request: the TLS server name and Host, the address to dial,
/// the request path and the URL for messages.
struct Target {
    host: String,
    port: u16,
    dial: Option<SocketAddr>,
    path: String,
    url: String,
}

fn target(hook: &Value, routes: &ServiceRoutes, secs: u64) -> Result<Target, String> {
    let svc = &hook["clientConfig"]["service"];
    if svc.is_object() {
        let ns = svc["namespace"].as_str().unwrap_or_default();
        let name = svc["name"].as_str().unwrap_or_default();
        let port = svc["port"].as_u64().unwrap_or(443) as u16;
        let mut path = svc["path"].as_str().unwrap_or("/").to_string();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        // The real server adds the timeout as a query parameter.
        let path = format!("{path}?timeout={secs}s");
        let host = format!("{name}.{ns}.svc");
        let url = format!("https://{host}:{port}{path}");
        let dial = routes.get(ns, name, port).ok_or_else(|| {
            format!("failed to call webhook: Post \"{url}\": no endpoints available for service \"{name}\"")
        })?;
        return Ok(Target {
            host,
            port,
            dial: Some(dial),
            path,
            url,
        });
    }
    let url = hook["clientConfig"]["url"]
        .as_str()
        .ok_or_else(|| "webhook clientConfig needs a url or a service".to_string())?;
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("invalid webhook url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("webhook url {url:?} must use https"));
    }
    let host = uri
        .host()
        .ok_or("webhook url has no host")?
        .trim_matches(['[', ']'])
        .to_string();
    Ok(Target {
        host,
        port: uri.port_u16().unwrap_or(443),
        dial: None,
        path: uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string(),
        url: url.to_string(),
    })
}

async fn call(
    hook: &Value,
    body: &Value,
    routes: &ServiceRoutes,
    secs: u64,
) -> Result<Value, String> {
    let Target {
        host,
        port,
        dial,
        path,
        url,
    } = target(hook, routes, secs)?;
    let ca = hook["clientConfig"]["caBundle"]
        .as_str()
        .unwrap_or_default();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(ca)
        .map_err(|e| format!("invalid caBundle: {e}"))?;
    let roots = crate::tls::root_store_from_pem(&pem)?;
    let cfg = crate::tls::client_config(roots).map_err(|e| e.to_string())?;
    let connected = match dial {
        Some(addr) => tokio::net::TcpStream::connect(addr).await,
        None => tokio::net::TcpStream::connect((host.as_str(), port)).await,
    };
    let tcp = connected.map_err(|e| {
        let to = dial.map_or_else(|| format!("{host}:{port}"), |a| a.to_string());
        format!("failed to call webhook: Post \"{url}\": dial tcp {to}: {e}")
    })?;
    let server_name =
        rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("failed to call webhook: Post \"{url}\": tls: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", format!("{host}:{port}"))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(body).map_err(|e| e.to_string())?,
        )))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("failed to call webhook: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "failed to call webhook: the server responded with status {}",
            status.as_u16()
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("failed to decode webhook response: {e}"))
}

async fn call_with_policy(
    hook: &Value,
    body: &Value,
    routes: &ServiceRoutes,
) -> ApiResult<Option<Value>> {
    let name = hook["name"].as_str().unwrap_or_default();
    let secs = hook["timeoutSeconds"].as_u64().unwrap_or(10).clamp(1, 30);
    let call = call(hook, body, routes, secs);
    let result = match tokio::time::timeout(Duration::from_secs(secs), call).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "failed to call webhook: context deadline exceeded (timeout {secs}s)"
        )),
    };
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if hook["failurePolicy"].as_str() == Some("Ignore") => {
            tracing::warn!(webhook = name, error = %e, "webhook failed, ignored by failurePolicy");
            Ok(None)
        }
        Err(e) => Err(ApiError::internal(format!(
            "Internal error occurred: failed calling webhook \"{name}\": {e}"
        ))),
    }
}

fn denial(name: &str, resp: &Value) -> ApiError {
    let st = &resp["status"];
    let code = st["code"]
        .as_u64()
        .map(|c| c as u16)
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let msg = st["message"].as_str().filter(|s| !s.is_empty());
    let reason = st["reason"].as_str().unwrap_or_default();
    let denied = format!("admission webhook \"{name}\" denied the request");
    let message = match (msg, reason.is_empty()) {
        (Some(m), _) => format!("{denied}: {m}"),
        (None, false) => format!("{denied}: {reason}"),
        _ => format!("{denied} without explanation"),
    };
    ApiError::new(code, reason.to_string(), message)
}

fn hooks_of(configs: &[std::sync::Arc<Value>]) -> Vec<Value> {
    let mut sorted: Vec<&std::sync::Arc<Value>> = configs.iter().collect();
    // The real server calls configurations in name order.
    sorted.sort_by_key(|c| {
        c["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    sorted
        .iter()
        .flat_map(|c| c["webhooks"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Runs the mutating webhooks in order, applying each one's JSON patch to `object`.
pub async fn mutate(
    configs: &[std::sync::Arc<Value>],
    a: &Attributes<'_>,
    object: &mut Value,
) -> ApiResult<()> {
    for hook in hooks_of(configs) {
        if !matches(&hook, a, Some(object)) {
            continue;
        }
        let name = hook["name"].as_str().unwrap_or_default().to_string();
        let Some(reply) = call_with_policy(&hook, &review(a, Some(object)), a.routes).await? else {
            continue;
        };
        let resp = &reply["response"];
        if resp["allowed"].as_bool() != Some(true) {
            return Err(denial(&name, resp));
        }
        // Go decodes a `[]byte` from a base64 string or from an array of numbers
        // (which is how kube-rs serializes it), so both are accepted.
        let raw: Option<Vec<u8>> = match &resp["patch"] {
            Value::String(p) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .map_err(|e| ApiError::internal(format!("Internal error occurred: webhook \"{name}\" returned an invalid patch: {e}")))?,
            ),
            Value::Array(a) => Some(a.iter().map(|b| b.as_u64().unwrap_or_default() as u8).collect()),
            _ => None,
        };
        if let Some(raw) = raw {
            let patch: json_patch::Patch = serde_json::from_slice(&raw).map_err(|e| {
                ApiError::internal(format!(
                    "Internal error occurred: webhook \"{name}\" returned an invalid patch: {e}"
                ))
            })?;
            json_patch::patch(object, &patch).map_err(|e| {
                ApiError::internal(format!(
                    "Internal error occurred: failed to apply patch from webhook \"{name}\": {e}"
                ))
            })?;
        }
    }
    Ok(())
}

/// Runs the validating webhooks; any denial fails the request.
pub async fn validate(
    configs: &[std::sync::Arc<Value>],
    a: &Attributes<'_>,
    object: Option<&Value>,
) -> ApiResult<()> {
    for hook in hooks_of(configs) {
        if !matches(&hook, a, object) {
            continue;
        }
        let name = hook["name"].as_str().unwrap_or_default().to_string();
        let Some(reply) = call_with_policy(&hook, &review(a, object), a.routes).await? else {
            continue;
        };
        if reply["response"]["allowed"].as_bool() != Some(true) {
            return Err(denial(&name, &reply["response"]));
        }
    }
    Ok(())
}
