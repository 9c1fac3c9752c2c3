//! The admission webhook driven in process with AdmissionReview bodies shaped as the
//! Kubernetes API server sends them, plus one round trip over TLS. No database needed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use serde_json::{Value, json};
use shepherd::app::admission::{
    AdmissionInput, AdmissionOperation as Operation, AdmissionPolicy, BoxFuture, Denial,
};
use shepherd::crd::identity as annotation;
use shepherd::domain::identity::{self, Identity, IdentityError, KeyRing, ObjectKey, Stamp};
use shepherd::http::tls::{ConnectionLimits, Listener, TlsError, serve};
use shepherd::http::webhook::{WebhookState, router};
use tower::ServiceExt;

const KEY: &[u8] = b"test-key-test-key-test-key-test-key!";
const REQUEST_UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

/// Allows everything: for tests only.
pub struct AllowAll;

impl AdmissionPolicy for AllowAll {
    fn check<'a>(&'a self, _: &'a AdmissionInput) -> BoxFuture<'a, Result<Vec<String>, Denial>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Answers with a fixed outcome and records what it was asked.
struct Scripted {
    outcome: Result<Vec<String>, Denial>,
    seen: Mutex<Vec<AdmissionInput>>,
}

impl Scripted {
    fn new(outcome: Result<Vec<String>, Denial>) -> Arc<Self> {
        Arc::new(Self {
            outcome,
            seen: Mutex::new(Vec::new()),
        })
    }

    fn seen(&self) -> Vec<AdmissionInput> {
        self.seen.lock().unwrap().clone()
    }
}

impl AdmissionPolicy for Scripted {
    fn check<'a>(
        &'a self,
        input: &'a AdmissionInput,
    ) -> BoxFuture<'a, Result<Vec<String>, Denial>> {
        self.seen.lock().unwrap().push(input.clone());
        Box::pin(async { self.outcome.clone() })
    }
}

struct Panics;

impl AdmissionPolicy for Panics {
    fn check<'a>(&'a self, _: &'a AdmissionInput) -> BoxFuture<'a, Result<Vec<String>, Denial>> {
        Box::pin(async { panic!("policy bug") })
    }
}

struct Hangs;

impl AdmissionPolicy for Hangs {
    fn check<'a>(&'a self, _: &'a AdmissionInput) -> BoxFuture<'a, Result<Vec<String>, Denial>> {
        Box::pin(std::future::pending())
    }
}

fn ring() -> KeyRing {
    KeyRing::new(KEY.to_vec(), Vec::new()).expect("the test key is long enough")
}

fn webhook(policy: Arc<dyn AdmissionPolicy>) -> Router {
    router(WebhookState::new(ring(), policy))
}

/// alice's stamp with a fresh nonce and no approval target.
fn stamp_of_alice() -> Stamp {
    Stamp {
        identity: alice(),
        nonce: identity::new_nonce(),
        approval_target: None,
    }
}

fn alice() -> Identity {
    Identity {
        username: "alice@example.com".into(),
        uid: "5f1c7a42-0d1e-4d55-9f6a-1d2b3c4d5e6f".into(),
        groups: vec!["system:authenticated".into(), "team-a".into()],
    }
}

fn user_info(identity: &Identity) -> Value {
    json!({
        "username": identity.username,
        "uid": identity.uid,
        "groups": identity.groups,
        "extra": {"authentication.kubernetes.io/credential-id": ["JTI=abc"]}
    })
}

/// A shepherd object of `kind` (namespaced when `namespace` is given).
fn object(kind: &str, namespace: Option<&str>, name: &str, annotations: Option<Value>) -> Value {
    let mut metadata = json!({
        "name": name,
        "labels": {"app": "web"},
        "creationTimestamp": null,
    });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    if let Some(annotations) = annotations {
        metadata["annotations"] = annotations;
    }
    let spec = match kind {
        "VmRequest" => json!({
            "system": "billing", "service": "web", "targetNamespace": "billing-test",
            "template": "ubuntu-24.04", "instanceSize": "m.large", "count": 2,
            "reason": "capacity for the Q3 launch"
        }),
        "Approval" => json!({
            "target": {"kind": "VmRequest", "name": "web-01"}, "decision": "Approve",
            "reason": "ok"
        }),
        "VmOperation" => json!({"vm": "team-a-billing-web-01", "action": "restart"}),
        _ => json!({"description": "what it is for"}),
    };
    json!({
        "apiVersion": "shepherd.kv-shepherd.io/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    })
}

struct Review<'a> {
    group: &'a str,
    kind: &'a str,
    resource: &'a str,
    operation: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
    user: Value,
    object: Value,
    old_object: Value,
}

impl<'a> Review<'a> {
    fn shepherd(kind: &'a str, operation: &'a str, namespace: Option<&'a str>) -> Self {
        let resource = match kind {
            "System" => "systems",
            "Service" => "services",
            "VmRequest" => "vmrequests",
            "VmOperation" => "vmoperations",
            "Approval" => "approvals",
            "Cluster" => "clusters",
            other => panic!("no resource for {other}"),
        };
        let name = if kind == "Service" {
            "billing.web"
        } else {
            "web-01"
        };
        Review {
            group: "shepherd.kv-shepherd.io",
            kind,
            resource,
            operation,
            namespace,
            name,
            user: user_info(&alice()),
            object: Value::Null,
            old_object: Value::Null,
        }
    }

    fn with_object(mut self, object: Value) -> Self {
        self.object = object;
        self
    }

    fn with_old_object(mut self, old_object: Value) -> Self {
        self.old_object = old_object;
        self
    }

    fn json(&self) -> Value {
        let version = if self.group.is_empty() {
            "v1"
        } else {
            "v1alpha1"
        };
        let options = match self.operation {
            "CREATE" => json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}),
            "UPDATE" => json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}),
            _ => json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}),
        };
        let mut request = json!({
            "uid": REQUEST_UID,
            "kind": {"group": self.group, "version": version, "kind": self.kind},
            "resource": {"group": self.group, "version": version, "resource": self.resource},
            "requestKind": {"group": self.group, "version": version, "kind": self.kind},
            "requestResource": {"group": self.group, "version": version, "resource": self.resource},
            "name": self.name,
            "operation": self.operation,
            "userInfo": self.user,
            "object": self.object,
            "oldObject": self.old_object,
            "dryRun": false,
            "options": options,
        });
        if let Some(ns) = self.namespace {
            request["namespace"] = json!(ns);
        }
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        })
    }
}

async fn post(router: &Router, path: &str, review: &Value) -> Value {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(review.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(reply["kind"], "AdmissionReview");
    assert_eq!(reply["response"]["uid"], REQUEST_UID);
    reply["response"].clone()
}

/// The response's JSONPatch applied to `object`, as the API server does it.
fn apply(response: &Value, object: &Value) -> Value {
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(response["patchType"], "JSONPatch");
    let encoded = response["patch"]
        .as_str()
        .expect("the patch is a base64 string");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&raw).unwrap();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    patched
}

fn annotations(object: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(object["metadata"]["annotations"].clone()).unwrap()
}

fn verify(object: &Value, kind: &str) -> Result<Identity, IdentityError> {
    let key = ObjectKey {
        kind,
        namespace: object["metadata"]["namespace"].as_str(),
        name: object["metadata"]["name"].as_str().unwrap(),
    };
    identity::verify(&ring(), &annotations(object), &key).map(|stamp| stamp.identity)
}

fn identity_of(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    annotations
        .iter()
        .filter(|(k, _)| annotation::ALL.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[tokio::test]
async fn create_stamps_a_signed_identity_that_verifies() {
    let created = object(
        "VmRequest",
        Some("team-a"),
        "web-01",
        Some(json!({"team.example.com/cost-centre": "42"})),
    );
    let review =
        Review::shepherd("VmRequest", "CREATE", Some("team-a")).with_object(created.clone());
    let response = post(&webhook(Arc::new(AllowAll)), "/mutate", &review.json()).await;

    let patched = apply(&response, &created);
    assert_eq!(verify(&patched, "VmRequest"), Ok(alice()));
    let annotations = annotations(&patched);
    assert_eq!(annotations["team.example.com/cost-centre"], "42");
    assert_eq!(annotations[annotation::USERNAME], "alice@example.com");
    assert_eq!(
        annotations[annotation::GROUPS],
        r#"["system:authenticated","team-a"]"#
    );
    assert_eq!(
        annotations.len(),
        1 + annotation::ALL.len(),
        "{annotations:?}"
    );
    assert_eq!(patched["spec"], created["spec"], "only annotations change");
}

#[tokio::test]
async fn every_stamped_kind_is_stamped_and_bound_to_its_scope() {
    let router = webhook(Arc::new(AllowAll));
    for (kind, namespace) in [
        ("System", None),
        ("Service", None),
        ("VmRequest", Some("team-a")),
        ("VmOperation", Some("team-a")),
        ("Approval", Some("team-a")),
    ] {
        let review = Review::shepherd(kind, "CREATE", namespace);
        let created = object(kind, namespace, review.name, None);
        let review = review.with_object(created.clone());
        let patched = apply(&post(&router, "/mutate", &review.json()).await, &created);
        assert_eq!(verify(&patched, kind), Ok(alice()), "{kind}");
        // The stamp does not fit another kind or name.
        let mut elsewhere = patched.clone();
        elsewhere["metadata"]["name"] = json!("web-02");
        assert_eq!(
            verify(&elsewhere, kind),
            Err(IdentityError::Forged),
            "{kind}"
        );
        assert_eq!(
            verify(&patched, "Cluster"),
            Err(IdentityError::Forged),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn an_identity_written_by_the_user_is_replaced() {
    let forged = json!({
        annotation::USERNAME: "platform-admin",
        annotation::UID: "0",
        annotation::GROUPS: r#"["platform-admins"]"#,
        annotation::SIGNATURE: "00".repeat(32),
        "note": "kept",
    });
    let created = object("System", None, "web-01", Some(forged));
    let review = Review::shepherd("System", "CREATE", None).with_object(created.clone());
    let response = post(&webhook(Arc::new(AllowAll)), "/mutate", &review.json()).await;
    let patched = apply(&response, &created);
    assert_eq!(verify(&patched, "System"), Ok(alice()));
    assert_eq!(annotations(&patched)["note"], "kept");
}

#[tokio::test]
async fn a_partial_forgery_is_replaced_too() {
    // Only the username written: the stamp must still be complete and consistent.
    let created = object(
        "VmRequest",
        Some("team-a"),
        "web-01",
        Some(json!({annotation::USERNAME: "platform-admin"})),
    );
    let review =
        Review::shepherd("VmRequest", "CREATE", Some("team-a")).with_object(created.clone());
    let patched = apply(
        &post(&webhook(Arc::new(AllowAll)), "/mutate", &review.json()).await,
        &created,
    );
    assert_eq!(verify(&patched, "VmRequest"), Ok(alice()));
}

/// An object as alice created it through the webhook.
fn stamped_by_alice(kind: &str, namespace: Option<&str>, name: &str) -> Value {
    let key = ObjectKey {
        kind,
        namespace,
        name,
    };
    let mut stamp: BTreeMap<String, String> = identity::stamp(&ring(), &stamp_of_alice(), &key);
    stamp.insert("note".into(), "v1".into());
    object(kind, namespace, name, Some(json!(stamp)))
}

#[tokio::test]
async fn update_restores_the_identity_of_the_old_object() {
    let old = stamped_by_alice("VmRequest", Some("team-a"), "web-01");
    let mut changed = old.clone();
    let meta = &mut changed["metadata"]["annotations"];
    meta[annotation::USERNAME] = json!("mallory@example.com");
    meta[annotation::GROUPS] = json!(r#"["platform-admins"]"#);
    meta.as_object_mut().unwrap().remove(annotation::SIGNATURE);
    meta["note"] = json!("v2");

    let mut review = Review::shepherd("VmRequest", "UPDATE", Some("team-a"))
        .with_object(changed.clone())
        .with_old_object(old.clone());
    review.user = json!({"username": "mallory@example.com", "groups": ["platform-admins"]});
    let response = post(&webhook(Arc::new(AllowAll)), "/mutate", &review.json()).await;

    let patched = apply(&response, &changed);
    assert_eq!(
        identity_of(&annotations(&patched)),
        identity_of(&annotations(&old))
    );
    assert_eq!(verify(&patched, "VmRequest"), Ok(alice()));
    assert_eq!(
        annotations(&patched)["note"],
        "v2",
        "other annotations may change"
    );
}

#[tokio::test]
async fn update_that_drops_all_annotations_gets_the_identity_back() {
    let old = stamped_by_alice("System", None, "web-01");
    let mut changed = old.clone();
    changed["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let review = Review::shepherd("System", "UPDATE", None)
        .with_object(changed.clone())
        .with_old_object(old.clone());
    let response = post(&webhook(Arc::new(AllowAll)), "/mutate", &review.json()).await;
    let patched = apply(&response, &changed);
    assert_eq!(verify(&patched, "System"), Ok(alice()));
    assert!(!annotations(&patched).contains_key("note"));
}

#[tokio::test]
async fn update_cannot_give_an_unstamped_object_an_identity() {
    let old = object("VmRequest", Some("team-a"), "web-01", None);
    let forged = identity::stamp(
        &ring(),
        &stamp_of_alice(),
        &ObjectKey {
            kind: "VmRequest",
            namespace: Some("team-a"),
            name: "web-01",
        },
    );
    let changed = object("VmRequest", Some("team-a"), "web-01", Some(json!(forged)));
    let review = Review::shepherd("VmRequest", "UPDATE", Some("team-a"))
        .with_object(changed.clone())
        .with_old_object(old);
    let response = post(&webhook(Arc::new(AllowAll)), "/mutate", &review.json()).await;
    let patched = apply(&response, &changed);
    assert!(identity_of(&annotations(&patched)).is_empty());
    assert_eq!(
        verify(&patched, "VmRequest"),
        Err(IdentityError::Missing(annotation::USERNAME))
    );
}

#[tokio::test]
async fn update_that_keeps_the_identity_needs_no_patch() {
    let old = stamped_by_alice("VmRequest", Some("team-a"), "web-01");
    let mut changed = old.clone();
    changed["metadata"]["annotations"]["note"] = json!("v2");
    changed["metadata"]["finalizers"] = json!(["shepherd.kv-shepherd.io/ticket"]);
    let review = Review::shepherd("VmRequest", "UPDATE", Some("team-a"))
        .with_object(changed)
        .with_old_object(old);
    let response = post(&webhook(Arc::new(AllowAll)), "/mutate", &review.json()).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none(), "{response}");
    assert!(response.get("patchType").is_none(), "{response}");
}

#[tokio::test]
async fn other_kinds_and_operations_are_allowed_without_a_patch() {
    let router = webhook(Arc::new(AllowAll));
    let core_service = Review {
        group: "",
        kind: "Service",
        resource: "services",
        operation: "CREATE",
        namespace: Some("team-a"),
        name: "web",
        user: user_info(&alice()),
        object: json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "team-a",
                         "annotations": {annotation::USERNAME: "platform-admin"}},
            "spec": {"ports": [{"port": 80}]}
        }),
        old_object: Value::Null,
    };
    let cluster = Review::shepherd("Cluster", "CREATE", None)
        .with_object(object("Cluster", None, "web-01", None));
    let delete = Review::shepherd("VmRequest", "DELETE", Some("team-a"))
        .with_old_object(stamped_by_alice("VmRequest", Some("team-a"), "web-01"));
    for review in [core_service, cluster, delete] {
        let response = post(&router, "/mutate", &review.json()).await;
        assert_eq!(response["allowed"], true, "{response}");
        assert!(response.get("patch").is_none(), "{response}");
    }
}

#[tokio::test]
async fn create_without_a_name_is_refused() {
    let mut created = object("VmRequest", Some("team-a"), "", None);
    created["metadata"].as_object_mut().unwrap().remove("name");
    created["metadata"]["generateName"] = json!("web-");
    let mut review = Review::shepherd("VmRequest", "CREATE", Some("team-a")).with_object(created);
    review.name = "";
    let response = post(&webhook(Arc::new(AllowAll)), "/mutate", &review.json()).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 422);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("generateName"), "{message}");
    assert!(response.get("patch").is_none());
}

#[tokio::test]
async fn create_by_a_request_without_username_is_refused() {
    let created = object("System", None, "web-01", None);
    let mut review = Review::shepherd("System", "CREATE", None).with_object(created);
    review.user = json!({"groups": ["system:unauthenticated"]});
    let response = post(&webhook(Arc::new(AllowAll)), "/mutate", &review.json()).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(response["status"]["reason"], "Forbidden");
}

#[tokio::test]
async fn validate_denies_with_the_policy_code_reason_and_message() {
    let message = "System billing has 2 live Services (billing.web, billing.db): delete them \
                   first, then delete the System";
    let policy = Scripted::new(Err(Denial::conflict(message)));
    let review = Review::shepherd("System", "DELETE", None)
        .with_old_object(stamped_by_alice("System", None, "billing"));
    let response = post(&webhook(policy.clone()), "/validate", &review.json()).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["status"], "Failure");
    assert_eq!(response["status"]["code"], 409);
    assert_eq!(response["status"]["reason"], "Conflict");
    assert_eq!(response["status"]["message"], message);
    assert_eq!(policy.seen().len(), 1);
}

#[tokio::test]
async fn validate_passes_warnings_on_allow() {
    let warnings = vec!["disk 900 GiB is near the size's maximum of 1024 GiB".to_string()];
    let policy = Scripted::new(Ok(warnings.clone()));
    let created = object("VmRequest", Some("team-a"), "web-01", None);
    let review = Review::shepherd("VmRequest", "CREATE", Some("team-a")).with_object(created);
    let response = post(&webhook(policy), "/validate", &review.json()).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response["warnings"], json!(warnings));
    assert!(response.get("patch").is_none());
}

#[tokio::test]
async fn validate_gives_the_policy_what_it_needs() {
    let policy = Scripted::new(Ok(Vec::new()));
    let router = webhook(policy.clone());
    let old = stamped_by_alice("VmRequest", Some("team-a"), "web-01");
    let mut changed = old.clone();
    changed["metadata"]["annotations"]["note"] = json!("v2");
    let update = Review::shepherd("VmRequest", "UPDATE", Some("team-a"))
        .with_object(changed.clone())
        .with_old_object(old.clone());
    let delete = Review::shepherd("System", "DELETE", None)
        .with_old_object(stamped_by_alice("System", None, "web-01"));
    post(&router, "/validate", &update.json()).await;
    post(&router, "/validate", &delete.json()).await;

    let seen = policy.seen();
    assert_eq!(seen.len(), 2);
    let (update, delete) = (&seen[0], &seen[1]);
    assert_eq!(update.kind, "VmRequest");
    assert_eq!(update.operation, Operation::Update);
    assert_eq!(update.namespace.as_deref(), Some("team-a"));
    assert_eq!(update.name, "web-01");
    assert_eq!(update.identity, alice());
    assert!(!update.dry_run);
    assert_eq!(update.sub_resource, None);
    let update_object = update.object.as_ref().unwrap();
    assert_eq!(update_object["spec"], changed["spec"]);
    assert_eq!(update_object["metadata"]["annotations"]["note"], "v2");
    let update_old = update.old_object.as_ref().unwrap();
    assert_eq!(
        update_old["metadata"]["annotations"],
        old["metadata"]["annotations"]
    );
    assert_eq!(update_old["spec"], old["spec"]);

    assert_eq!(delete.kind, "System");
    assert_eq!(delete.operation, Operation::Delete);
    assert_eq!(delete.namespace, None);
    assert_eq!(delete.name, "web-01");
    assert_eq!(delete.object, None);
    assert!(delete.old_object.is_some());
}

#[tokio::test]
async fn validate_leaves_other_api_groups_to_others() {
    let policy = Scripted::new(Err(Denial::forbidden("must not be asked")));
    let review = Review {
        group: "",
        kind: "Service",
        resource: "services",
        operation: "DELETE",
        namespace: Some("team-a"),
        name: "web",
        user: user_info(&alice()),
        object: Value::Null,
        old_object: json!({"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": "web", "namespace": "team-a"}}),
    };
    let response = post(&webhook(policy.clone()), "/validate", &review.json()).await;
    assert_eq!(response["allowed"], true);
    assert!(policy.seen().is_empty());
}

#[tokio::test]
async fn a_policy_that_panics_or_hangs_denies() {
    let created = object("System", None, "web-01", None);
    let review = Review::shepherd("System", "CREATE", None).with_object(created);

    let response = post(&webhook(Arc::new(Panics)), "/validate", &review.json()).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 500);
    assert_eq!(response["status"]["reason"], "InternalError");

    let state =
        WebhookState::new(ring(), Arc::new(Hangs)).with_policy_timeout(Duration::from_millis(50));
    let response = post(&router(state), "/validate", &review.json()).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 500);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("System web-01"), "{message}");
}

#[tokio::test]
async fn a_denial_with_a_success_code_still_denies() {
    let policy = Scripted::new(Err(Denial::new(200, "Whatever", "no")));
    let created = object("System", None, "web-01", None);
    let review = Review::shepherd("System", "CREATE", None).with_object(created);
    let response = post(&webhook(policy), "/validate", &review.json()).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
}

#[tokio::test]
async fn a_review_without_request_is_refused() {
    let router = webhook(Arc::new(AllowAll));
    for path in ["/mutate", "/validate"] {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).to_string(),
            ))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let reply: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(reply["response"]["allowed"], false, "{path}: {reply}");
    }
}

mod tls;
