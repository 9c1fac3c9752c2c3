//! RBAC (opt-in per cluster): Roles and ClusterRoles through bindings to Users, Groups and
//! ServiceAccounts, the real server's 403 wording, access reviews from the same
//! authorizer, ServiceAccount tokens (TokenRequest, TokenReview) and `system:masters`.

mod common;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use shepherd_sim::{Authorization, ClusterConfig, SimCluster, User};

async fn start_rbac() -> SimCluster {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    SimCluster::start(
        ClusterConfig::new("rbac")
            .with_yaml(CRD_YAML)
            .unwrap()
            .with_user(User::new("alice", &["dev"]))
            .with_user(User::new("bob", &[]))
            .with_rbac(),
    )
    .await
    .unwrap()
}

/// Creates any object as admin (through the API, so RBAC objects are validated).
async fn admin_apply(sim: &SimCluster, obj: Value) {
    let client = sim.kube_client("admin").unwrap();
    let api_version = obj["apiVersion"].as_str().unwrap();
    let kind = obj["kind"].as_str().unwrap();
    let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(g, v, kind);
    let (ar, caps) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
    let api: Api<kube::api::DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
            Api::namespaced_with(client, ns, &ar)
        }
        _ => Api::all_with(client, &ar),
    };
    let o: kube::api::DynamicObject = serde_json::from_value(obj).unwrap();
    api.create(&PostParams::default(), &o).await.unwrap();
}

async fn namespace(sim: &SimCluster, name: &str) {
    admin_apply(
        sim,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .await;
}

fn forbidden(e: kube::Error) -> kube::core::Status {
    let s = status_of(e);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"), "{s:?}");
    s
}

async fn raw(client: &Client, method: &str, path: &str, body: Value) -> Result<Value, kube::Error> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client.request::<Value>(req).await
}

const WIDGET_ROLE: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: widget-maker, namespace: team}
rules:
- apiGroups: [bars.example.com]
  resources: [widgets]
  verbs: [get, list, watch, create]
- apiGroups: [bars.example.com]
  resources: [widgets/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [allowed]
  verbs: [get, list, watch, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-makes-widgets, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: widget-maker}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
"#;

async fn install(sim: &SimCluster, yaml: &str) {
    for doc in serde_saphyr::from_multiple::<Value>(yaml).unwrap() {
        admin_apply(sim, doc).await;
    }
}

#[tokio::test]
async fn a_role_grants_exactly_its_rules_in_its_namespace() {
    let sim = start_rbac().await;
    namespace(&sim, "team").await;
    namespace(&sim, "other").await;
    install(&sim, WIDGET_ROLE).await;
    let admin = sim.kube_client("admin").unwrap();
    let alice = sim.kube_client("alice").unwrap();

    // create, get, list, watch: granted in team.
    let w = widgets(&alice, "team")
        .create(&PostParams::default(), &widget("w1", json!({"size": 2})))
        .await
        .unwrap();
    assert_eq!(w.metadata.name.as_deref(), Some("w1"));
    widgets(&alice, "team").get("w1").await.unwrap();
    assert_eq!(
        widgets(&alice, "team")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let mut stream = widgets(&alice, "team")
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Added(o)) => assert_eq!(o.metadata.name.as_deref(), Some("w1")),
        other => panic!("expected ADDED, got {other:?}"),
    }
    // The status subresource is granted for patch, the object itself is not.
    widgets(&alice, "team")
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    let s = forbidden(
        widgets(&alice, "team")
            .patch(
                "w1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": 3}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message,
        "widgets.bars.example.com \"w1\" is forbidden: User \"alice\" cannot patch resource \"widgets\" in API group \"bars.example.com\" in the namespace \"team\""
    );
    let d = s.details.unwrap();
    assert_eq!(
        (d.name.as_str(), d.group.as_str(), d.kind.as_str()),
        ("w1", "bars.example.com", "widgets")
    );
    let s = forbidden(
        widgets(&alice, "team")
            .delete("w1", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert!(
        s.message.contains("cannot delete resource \"widgets\""),
        "{}",
        s.message
    );
    let s = forbidden(
        widgets(&alice, "team")
            .delete_collection(&DeleteParams::default(), &Default::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message,
        "widgets.bars.example.com is forbidden: User \"alice\" cannot deletecollection resource \"widgets\" in API group \"bars.example.com\" in the namespace \"team\""
    );
    // Nothing in another namespace, nor across namespaces.
    let s = forbidden(
        widgets(&alice, "other")
            .create(&PostParams::default(), &widget("w2", json!({"size": 2})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message,
        "widgets.bars.example.com is forbidden: User \"alice\" cannot create resource \"widgets\" in API group \"bars.example.com\" in the namespace \"other\""
    );
    let all: Api<kube::api::DynamicObject> = Api::all_with(alice.clone(), &widget_ar());
    let s = forbidden(all.list(&Default::default()).await.unwrap_err());
    assert_eq!(
        s.message,
        "widgets.bars.example.com is forbidden: User \"alice\" cannot list resource \"widgets\" in API group \"bars.example.com\" at the cluster scope"
    );
    let s = forbidden(
        all.watch(&WatchParams::default().timeout(1), "0")
            .await
            .err()
            .expect("watch refused"),
    );
    assert!(
        s.message.contains("cannot watch resource \"widgets\""),
        "{}",
        s.message
    );

    // resourceNames: the named ConfigMap only; list/watch only when named by fieldSelector.
    let cms_admin: Api<ConfigMap> = Api::namespaced(admin.clone(), "team");
    for name in ["allowed", "secret-ish"] {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cms_admin.create(&PostParams::default(), &cm).await.unwrap();
    }
    let cms: Api<ConfigMap> = Api::namespaced(alice.clone(), "team");
    cms.get("allowed").await.unwrap();
    cms.patch(
        "allowed",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    let s = forbidden(cms.get("secret-ish").await.unwrap_err());
    assert_eq!(
        s.message,
        "configmaps \"secret-ish\" is forbidden: User \"alice\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"team\""
    );
    forbidden(cms.list(&Default::default()).await.unwrap_err());
    let named = kube::api::ListParams::default().fields("metadata.name=allowed");
    assert_eq!(cms.list(&named).await.unwrap().items.len(), 1);

    // bob has no binding at all; the admin (system:masters) has no binding and needs none.
    let bob = sim.kube_client("bob").unwrap();
    let s = forbidden(widgets(&bob, "team").get("w1").await.unwrap_err());
    assert_eq!(
        s.message,
        "widgets.bars.example.com \"w1\" is forbidden: User \"bob\" cannot get resource \"widgets\" in API group \"bars.example.com\" in the namespace \"team\""
    );
    widgets(&admin, "team")
        .delete("w1", &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn cluster_roles_groups_service_accounts_and_missing_roles() {
    let sim = start_rbac().await;
    namespace(&sim, "team").await;
    namespace(&sim, "other").await;
    install(
        &sim,
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: namespace-reader}
rules:
- {apiGroups: [""], resources: [namespaces], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: devs-read-namespaces}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: namespace-reader}
subjects:
- {kind: Group, name: dev, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: secret-reader}
rules:
- {apiGroups: [""], resources: [secrets], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: robot-reads-secrets, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: secret-reader}
subjects:
- {kind: ServiceAccount, name: robot}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-dangling, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: not-there}
subjects:
- {kind: User, name: bob}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: team}
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: team}
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: other}
"#,
    )
    .await;
    // Group subject, cluster-wide.
    let alice = sim.kube_client("alice").unwrap();
    let nss: Api<Namespace> = Api::all(alice);
    assert!(nss.list(&Default::default()).await.unwrap().items.len() >= 6);
    nss.get("team").await.unwrap();
    let bob = sim.kube_client("bob").unwrap();
    let s = forbidden(
        Api::<Namespace>::all(bob.clone())
            .list(&Default::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message,
        "namespaces is forbidden: User \"bob\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    // A binding to a missing role is reported with the denial, as the real authorizer does.
    let s = forbidden(
        Api::<Secret>::namespaced(bob, "team")
            .get("s")
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message,
        "secrets \"s\" is forbidden: User \"bob\" cannot get resource \"secrets\" in API group \"\" in the namespace \"team\": RBAC: clusterrole.rbac.authorization.k8s.io \"not-there\" not found"
    );

    // ServiceAccount subject (namespace defaulted to the binding's), ClusterRole through a
    // RoleBinding: only in that namespace.
    let robot = sim.service_account_client("team", "robot").unwrap();
    Api::<Secret>::namespaced(robot.clone(), "team")
        .get("s")
        .await
        .unwrap();
    let s = forbidden(
        Api::<Secret>::namespaced(robot.clone(), "other")
            .get("s")
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message,
        "secrets \"s\" is forbidden: User \"system:serviceaccount:team:robot\" cannot get resource \"secrets\" in API group \"\" in the namespace \"other\""
    );
    forbidden(
        Api::<Secret>::namespaced(robot.clone(), "team")
            .list(&Default::default())
            .await
            .unwrap_err(),
    );

    // Every authenticated user may discover; other non-resource paths are refused.
    let d = kube::discovery::Discovery::new(robot.clone())
        .run()
        .await
        .unwrap();
    assert!(d.has_group("bars.example.com"));
    let e = robot
        .request_text(http::Request::get("/metrics").body(vec![]).unwrap())
        .await
        .unwrap_err();
    let s = forbidden(e);
    assert_eq!(
        s.message,
        "forbidden: User \"system:serviceaccount:team:robot\" cannot get path \"/metrics\""
    );

    // A Group binding for all ServiceAccounts of a namespace.
    admin_apply(
        &sim,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "sas-read-secrets", "namespace": "other"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "secret-reader"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:team"}]}),
    )
    .await;
    Api::<Secret>::namespaced(robot, "other")
        .get("s")
        .await
        .unwrap();

    // A binding's roleRef cannot change.
    let admin = sim.kube_client("admin").unwrap();
    let rb_ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "RoleBinding"),
        "rolebindings",
    );
    let rbs: Api<kube::api::DynamicObject> = Api::namespaced_with(admin, "team", &rb_ar);
    let e = status_of(
        rbs.patch(
            "bob-dangling",
            &PatchParams::default(),
            &Patch::Merge(json!({"roleRef": {"name": "secret-reader"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("roleRef: Invalid value"),
        "{}",
        e.message
    );
    assert!(e.message.contains("cannot change roleRef"), "{}", e.message);
}

#[tokio::test]
async fn server_side_apply_that_creates_needs_create() {
    let sim = start_rbac().await;
    namespace(&sim, "team").await;
    install(&sim, WIDGET_ROLE).await;
    let alice = sim.kube_client("alice").unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(alice, "team");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "allowed"}, "data": {"a": "b"}});
    let s = forbidden(
        cms.patch("allowed", &PatchParams::apply("t"), &Patch::Apply(&cm))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message, "configmaps \"allowed\" is forbidden: ",
        "kube-apiserver's patch handler words the create check with the bare RBAC reason"
    );
    let admin: Api<ConfigMap> = Api::namespaced(sim.kube_client("admin").unwrap(), "team");
    admin
        .patch("allowed", &PatchParams::apply("admin"), &Patch::Apply(&cm))
        .await
        .unwrap();
    cms.patch(
        "allowed",
        &PatchParams::apply("t").force(),
        &Patch::Apply(&cm),
    )
    .await
    .unwrap();
}

fn ssar(attrs: Value) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": attrs})
}

#[tokio::test]
async fn access_reviews_answer_from_the_same_authorizer() {
    let sim = start_rbac().await;
    namespace(&sim, "team").await;
    install(&sim, WIDGET_ROLE).await;
    let alice = sim.kube_client("alice").unwrap();
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let create = json!({"resourceAttributes": {"namespace": "team", "verb": "create", "group": "bars.example.com", "resource": "widgets"}});
    let out = raw(&alice, "POST", path, ssar(create)).await.unwrap();
    assert_eq!(out["kind"], "SelfSubjectAccessReview");
    assert_eq!(out["status"]["allowed"], true);
    assert_eq!(
        out["status"]["reason"],
        "RBAC: allowed by RoleBinding \"alice-makes-widgets/team\" of Role \"widget-maker\" to User \"alice\""
    );
    let delete = json!({"resourceAttributes": {"namespace": "team", "verb": "delete", "group": "bars.example.com", "resource": "widgets"}});
    let out = raw(&alice, "POST", path, ssar(delete.clone()))
        .await
        .unwrap();
    assert_eq!(out["status"]["allowed"], false);
    let status = json!({"resourceAttributes": {"namespace": "team", "verb": "patch", "group": "bars.example.com", "resource": "widgets", "subresource": "status"}});
    let out = raw(&alice, "POST", path, ssar(status)).await.unwrap();
    assert_eq!(out["status"]["allowed"], true);
    let named = json!({"resourceAttributes": {"namespace": "team", "verb": "get", "resource": "configmaps", "name": "other"}});
    assert_eq!(
        raw(&alice, "POST", path, ssar(named)).await.unwrap()["status"]["allowed"],
        false
    );
    let discovery =
        json!({"nonResourceAttributes": {"path": "/apis/bars.example.com", "verb": "get"}});
    assert_eq!(
        raw(&alice, "POST", path, ssar(discovery)).await.unwrap()["status"]["allowed"],
        true
    );

    // SubjectAccessReview: for another user, needs create on subjectaccessreviews.
    let sar = |user: &str, groups: &[&str], attrs: &Value| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": attrs["resourceAttributes"]}})
    };
    let sar_path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let create = json!({"resourceAttributes": {"namespace": "team", "verb": "create", "group": "bars.example.com", "resource": "widgets"}});
    let s = forbidden(
        raw(&alice, "POST", sar_path, sar("bob", &[], &create))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message,
        "subjectaccessreviews.authorization.k8s.io is forbidden: User \"alice\" cannot create resource \"subjectaccessreviews\" in API group \"authorization.k8s.io\" at the cluster scope"
    );
    let admin = sim.kube_client("admin").unwrap();
    let out = raw(&admin, "POST", sar_path, sar("alice", &[], &create))
        .await
        .unwrap();
    assert_eq!(out["status"]["allowed"], true);
    let out = raw(&admin, "POST", sar_path, sar("bob", &[], &create))
        .await
        .unwrap();
    assert_eq!(out["status"]["allowed"], false);
    let out = raw(
        &admin,
        "POST",
        sar_path,
        sar("bob", &["system:masters"], &delete),
    )
    .await
    .unwrap();
    assert_eq!(out["status"]["allowed"], true);
    let e = status_of(
        raw(&admin, "POST", sar_path, sar("", &[], &create))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);

    // With AlwaysAllow everything is allowed again, and the reviews say so.
    sim.set_authorization(Authorization::AlwaysAllow);
    let out = raw(&alice, "POST", path, ssar(delete)).await.unwrap();
    assert_eq!(out["status"]["allowed"], true);
    widgets(&alice, "team")
        .create(&PostParams::default(), &widget("w", json!({"size": 1})))
        .await
        .unwrap();
    widgets(&alice, "team")
        .delete("w", &DeleteParams::default())
        .await
        .unwrap();
}

async fn token_review(admin: &Client, token: &str, audiences: Option<&[&str]>) -> Value {
    let mut spec = json!({"token": token});
    if let Some(a) = audiences {
        spec["audiences"] = json!(a);
    }
    raw(
        admin,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}),
    )
    .await
    .unwrap()
}

fn client_with_token(sim: &SimCluster, token: &str) -> Client {
    let mut cfg = sim.kube_config("admin").unwrap();
    cfg.auth_info.token = Some(token.to_string().into());
    Client::try_from(cfg).unwrap()
}

#[tokio::test]
async fn token_requests_issue_service_account_tokens_that_token_review_accepts() {
    let sim = start_rbac().await;
    namespace(&sim, "team").await;
    let admin = sim.kube_client("admin").unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "team");
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some("robot".into());
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let path = "/api/v1/namespaces/team/serviceaccounts/robot/token";
    let tr = raw(
        &admin,
        "POST",
        path,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    )
    .await
    .unwrap();
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        tr["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let token = tr["status"]["token"].as_str().unwrap().to_string();
    assert!(tr["status"]["expirationTimestamp"].is_string());

    // The token authenticates as the ServiceAccount (system:basic-user lets it ask who it is).
    let robot = client_with_token(&sim, &token);
    let me = raw(
        &robot,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await
    .unwrap();
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:team:robot"
    );
    let review = token_review(&admin, &token, None).await;
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:team:robot"
    );
    let groups = review["status"]["user"]["groups"].clone();
    for g in [
        "system:serviceaccounts",
        "system:serviceaccounts:team",
        "system:authenticated",
    ] {
        assert!(groups.as_array().unwrap().contains(&json!(g)), "{groups}");
    }
    // Without RBAC grants it may not do anything else.
    forbidden(
        Api::<ConfigMap>::namespaced(robot.clone(), "team")
            .list(&Default::default())
            .await
            .unwrap_err(),
    );

    // A token for another audience does not authenticate to the API server, but
    // TokenReview accepts it for that audience.
    let tr = raw(
        &admin,
        "POST",
        path,
        json!({"spec": {"audiences": ["shepherd"], "expirationSeconds": 600}}),
    )
    .await
    .unwrap();
    let aud_token = tr["status"]["token"].as_str().unwrap().to_string();
    let e = status_of(
        Api::<ConfigMap>::namespaced(client_with_token(&sim, &aud_token), "team")
            .list(&Default::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 401);
    let review = token_review(&admin, &aud_token, Some(&["shepherd", "other"])).await;
    assert_eq!(review["status"]["authenticated"], true);
    assert_eq!(review["status"]["audiences"], json!(["shepherd"]));
    assert_eq!(
        token_review(&admin, &aud_token, None).await["status"]["authenticated"],
        false
    );
    assert_eq!(
        token_review(&admin, &token, Some(&["shepherd"])).await["status"]["authenticated"],
        false
    );

    // Too short an expiry, or a missing ServiceAccount, are refused.
    let e = status_of(
        raw(
            &admin,
            "POST",
            path,
            json!({"spec": {"expirationSeconds": 60}}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("may not specify a duration less than 10 minutes"),
        "{}",
        e.message
    );
    let e = status_of(
        raw(
            &admin,
            "POST",
            "/api/v1/namespaces/team/serviceaccounts/ghost/token",
            json!({"spec": {}}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 404);
    // Creating a token needs create on serviceaccounts/token.
    let s = forbidden(
        raw(&robot, "POST", path, json!({"spec": {}}))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        s.message,
        "serviceaccounts \"robot\" is forbidden: User \"system:serviceaccount:team:robot\" cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"team\""
    );

    // Deleting the ServiceAccount invalidates its tokens.
    let minted = sim
        .service_account_token("team", "robot", std::time::Duration::from_secs(3600))
        .unwrap();
    assert_eq!(
        token_review(&admin, &minted, None).await["status"]["authenticated"],
        true
    );
    sas.delete("robot", &DeleteParams::default()).await.unwrap();
    let e = status_of(
        raw(
            &robot,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json!({}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 401);
    assert_eq!(
        token_review(&admin, &minted, None).await["status"]["authenticated"],
        false
    );
    // A new ServiceAccount of the same name does not revive them.
    sas.create(&PostParams::default(), &sa).await.unwrap();
    assert_eq!(
        token_review(&admin, &token, None).await["status"]["authenticated"],
        false
    );
    assert!(
        sim.service_account_token("team", "ghost", std::time::Duration::from_secs(600))
            .is_err()
    );
}
