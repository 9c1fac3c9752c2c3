//! Admission review parsing: any bytes as the body of `POST /mutate` or `POST /validate` of
//! the webhook router (`shepherd::http::webhook::router`, allow-all policy).
//!
//! Input: the first byte picks the endpoint (bit 0) and the Content-Type (bits 1-2); the
//! rest is the body. Checked on every input:
//! - no panic, and the HTTP status is never 5xx;
//! - a 200 answer is an AdmissionReview of the request's apiVersion whose `response.uid` is
//!   the request's and whose denial code (if any) is not 5xx: with a policy that allows
//!   everything, an internal error is a webhook bug;
//! - a `/mutate` patch is base64 JSON Patch that applies to the request's object (as the
//!   API server applies it) and, on a CREATE of a stamped kind, leaves a stamp that
//!   `identity::verify` accepts for the reviewer's user.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shepherd::domain::identity::{self, ObjectKey};
use shepherd::http::webhook::STAMPED_KINDS;
use shepherd_fuzz::{call, ring, webhook};

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(webhook)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let path = if selector & 1 == 0 {
        "/mutate"
    } else {
        "/validate"
    };
    let content_type = match (selector >> 1) & 3 {
        0 | 1 => Some("application/json"),
        2 => Some("application/json; charset=utf-8"),
        _ => None,
    };
    let mut request = Request::post(path);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let request = request.body(Body::from(body.to_vec())).unwrap();
    let (status, answer) = call(router(), request);
    if status != StatusCode::OK {
        return;
    }
    // serde skips unknown fields without checking their strings' UTF-8, so a body the
    // webhook answered may still not parse as a `Value`: then there is nothing to compare.
    let Ok(review) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let answer: Value = serde_json::from_slice(&answer).expect("the webhook answers JSON");
    check_answer(path, &review, &answer);
});

fn check_answer(path: &str, review: &Value, answer: &Value) {
    // The answer carries the review's apiVersion and kind (kube echoes them; the API server
    // sends admission.k8s.io/v1 AdmissionReview); a review without a request gets those.
    let types = |v: &Value| (v["apiVersion"].clone(), v["kind"].clone());
    assert!(
        types(answer) == types(review)
            || (answer["apiVersion"] == "admission.k8s.io/v1"
                && answer["kind"] == "AdmissionReview"),
        "{answer}"
    );
    let response = &answer["response"];
    assert!(response.is_object(), "no response: {answer}");
    if let Some(uid) = review["request"]["uid"].as_str() {
        assert_eq!(response["uid"], uid, "{answer}");
    }
    if let Some(code) = response["status"]["code"].as_u64() {
        assert!(
            code < 500,
            "an internal denial with an allow-all policy: {answer}"
        );
    }
    if path != "/mutate" || response["allowed"] != true {
        return;
    }
    let Some(encoded) = response.get("patch").and_then(Value::as_str) else {
        return;
    };
    assert_eq!(response["patchType"], "JSONPatch", "{answer}");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("the patch is base64");
    let patch: json_patch::Patch = serde_json::from_slice(&raw).expect("the patch is a JSON Patch");
    let request = &review["request"];
    let object = &request["object"];
    // The API server always sends an object with metadata; without it, no patch can apply.
    if !object["metadata"].is_object() {
        return;
    }
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch)
        .unwrap_or_else(|e| panic!("the patch {patch:?} does not apply to {object}: {e}"));

    let kind = request["kind"]["kind"].as_str().unwrap_or_default();
    if request["operation"] != "CREATE" || !STAMPED_KINDS.contains(&kind) {
        return;
    }
    // The object the stamp is bound to, found as the webhook finds it.
    let name = non_empty(&object["metadata"]["name"])
        .or(non_empty(&request["name"]))
        .expect("a stamped object has a name");
    let namespace =
        non_empty(&request["namespace"]).or(non_empty(&object["metadata"]["namespace"]));
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(patched["metadata"]["annotations"].clone())
            .expect("annotations are strings");
    let key = ObjectKey {
        kind,
        namespace,
        name,
    };
    let stamp = identity::verify(&ring(), &annotations, &key)
        .unwrap_or_else(|e| panic!("the webhook's own stamp does not verify for {key}: {e}"));
    assert_eq!(
        Some(stamp.identity.username.as_str()),
        request["userInfo"]["username"].as_str(),
        "the stamp names someone else"
    );
}

fn non_empty(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}
