//! Object semantics through kube-rs clients: metadata, generation, status subresource,
//! optimistic concurrency, error Status objects, schema validation, CEL, finalizers,
//! garbage collection. Scenarios also run against a real cluster when
//! `SHEPHERD_TEST_KUBECONFIG` is set.

mod common;

use common::*;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

async fn metadata_and_generation(client: Client, ns: String) {
    let api = widgets(&client, &ns);
    let w = api
        .create(&PostParams::default(), &widget("w1", json!({"size": 2})))
        .await
        .unwrap();
    assert!(
        w.metadata.uid.as_deref().is_some_and(|u| !u.is_empty()),
        "uid is set"
    );
    assert!(
        w.metadata.creation_timestamp.is_some(),
        "creationTimestamp is set"
    );
    assert_eq!(w.metadata.generation, Some(1));
    assert_eq!(w.data["spec"]["color"], "red", "schema default applied");
    let rv1: u64 = w
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();

    // A status write does not move generation; a spec write does.
    let st = api
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(st.metadata.generation, Some(1));
    assert_eq!(st.data["status"]["phase"], "Ready");
    let rv2: u64 = st
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1, "resourceVersion increases");
    let sp = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(sp.metadata.generation, Some(2));

    // Status is ignored on the main resource, spec is ignored on /status.
    let p = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Hacked"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.data["status"]["phase"], "Ready");
    let p = api
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(p.data["spec"]["size"], 3);

    // Create drops status when the status subresource is enabled.
    let mut w2 = widget("w2", json!({"size": 1}));
    w2.data["status"] = json!({"phase": "Preset"});
    let w2 = api.create(&PostParams::default(), &w2).await.unwrap();
    assert!(w2.data["status"].is_null() || w2.data["status"]["phase"].is_null());
}
dual!(
    metadata_and_generation_follow_the_real_rules,
    crate::metadata_and_generation
);

async fn errors_are_status_objects(client: Client, ns: String) {
    let api = widgets(&client, &ns);
    api.create(&PostParams::default(), &widget("dup", json!({"size": 1})))
        .await
        .unwrap();
    let e = status_of(
        api.create(&PostParams::default(), &widget("dup", json!({"size": 1})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "widgets.bars.example.com \"dup\" already exists");

    let e = status_of(api.get("nope").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "widgets.bars.example.com \"nope\" not found");

    // Stale resourceVersion -> 409 Conflict.
    let cur = api.get("dup").await.unwrap();
    api.patch(
        "dup",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .unwrap();
    let e = status_of(
        api.replace("dup", &PostParams::default(), &cur)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(e.message.contains("the object has been modified; please apply your changes to the latest version and try again"), "{}", e.message);
}
dual!(
    errors_are_kubernetes_status_objects,
    crate::errors_are_status_objects
);

async fn schema_validation(client: Client, ns: String) {
    let api = widgets(&client, &ns);
    let pp = PostParams::default();
    let cases = [
        (
            json!({"size": "big"}),
            "spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
        ),
        (json!({"color": "red"}), "spec.size: Required value"),
        (
            json!({"size": 1, "color": "pink"}),
            "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\"",
        ),
        (
            json!({"size": 11}),
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
        ),
        (
            json!({"size": 0}),
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
        (
            json!({"size": 1, "label": "ABC"}),
            "spec.label: Invalid value: \"ABC\": spec.label in body should match '^[a-z]+$'",
        ),
        (
            json!({"size": 1, "label": "abcdefghijkl"}),
            "spec.label: Too long: may not be more than 10 bytes",
        ),
        (
            json!({"size": 1, "tags": ["a", "a"]}),
            "spec.tags[1]: Duplicate value: \"a\"",
        ),
    ];
    for (i, (spec, want)) in cases.into_iter().enumerate() {
        let e = status_of(
            api.create(&pp, &widget(&format!("bad{i}"), spec))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (e.code, e.reason.as_str()),
            (422, "Invalid"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains(want),
            "case {i}: {:?} does not contain {want:?}",
            e.message
        );
        assert!(
            e.message
                .starts_with(&format!("Widget.bars.example.com \"bad{i}\" is invalid: ")),
            "{}",
            e.message
        );
    }
    // Invalid labels are refused as by the real server.
    let mut w = widget("badlabel", json!({"size": 1}));
    w.metadata.labels = Some([("owner".to_string(), "a@b.com".to_string())].into());
    let e = status_of(api.create(&pp, &w).await.unwrap_err());
    assert!(
        e.message
            .contains("metadata.labels: Invalid value: \"a@b.com\""),
        "{}",
        e.message
    );
}
dual!(
    structural_schema_validation_reports_real_messages,
    crate::schema_validation
);

async fn cel_rules(client: Client, ns: String) {
    let api = widgets(&client, &ns);
    let e = status_of(
        api.create(
            &PostParams::default(),
            &widget("big", json!({"size": 7, "color": "blue"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("spec: Invalid value: \"object\": big widgets must be red"),
        "{}",
        e.message
    );
    api.create(
        &PostParams::default(),
        &widget("owned", json!({"size": 1, "owner": "ann"})),
    )
    .await
    .unwrap();
    // Transition rule with oldSelf.
    let e = status_of(
        api.patch(
            "owned",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"owner": "bob"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("spec.owner: Invalid value: \"string\": owner is immutable"),
        "{}",
        e.message
    );
    api.patch(
        "owned",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .unwrap();
}
dual!(
    cel_validation_rules_including_transition_rules,
    crate::cel_rules
);

async fn unknown_fields(client: Client, ns: String) {
    let api = widgets(&client, &ns);
    // Default field validation prunes unknown fields (with a warning).
    let w = api
        .create(
            &PostParams::default(),
            &widget("p", json!({"size": 1, "bogus": 1, "extra": {"kept": true}})),
        )
        .await
        .unwrap();
    assert!(
        w.data["spec"].get("bogus").is_none(),
        "unknown field pruned"
    );
    assert_eq!(
        w.data["spec"]["extra"]["kept"], true,
        "preserved subtree kept"
    );
    // Strict refuses.
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..Default::default()
    };
    let e = status_of(
        api.patch("p", &strict, &Patch::Merge(json!({"spec": {"bogus": 2}})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert!(
        e.message
            .contains("strict decoding error: unknown field \"spec.bogus\""),
        "{}",
        e.message
    );
}
dual!(
    unknown_fields_are_pruned_or_refused_when_strict,
    crate::unknown_fields
);

async fn finalizers(client: Client, ns: String) {
    let api = widgets(&client, &ns);
    let mut w = widget("fin", json!({"size": 1}));
    w.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &w).await.unwrap();
    let del = api
        .delete("fin", &DeleteParams::background())
        .await
        .unwrap();
    let held = del.left().expect("object returned while finalizers remain");
    assert!(held.metadata.deletion_timestamp.is_some());
    let got = api.get("fin").await.unwrap();
    assert!(got.metadata.deletion_timestamp.is_some());
    // No new finalizers once deleting.
    let e = status_of(
        api.patch(
            "fin",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422, "{}", e.message);
    api.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("object gone after finalizer removal", || async {
        api.get_opt("fin").await.unwrap().is_none().then_some(())
    })
    .await;
}
dual!(finalizers_hold_deletion_until_removed, crate::finalizers);

async fn garbage_collection(client: Client, ns: String) {
    let api = widgets(&client, &ns);
    let owner = api
        .create(&PostParams::default(), &widget("owner", json!({"size": 1})))
        .await
        .unwrap();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "child", "ownerReferences": [{
            "apiVersion": "bars.example.com/v1", "kind": "Widget", "name": "owner", "uid": owner.metadata.uid, "controller": true,
        }]},
        "data": {"a": "b"},
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cm.metadata.name = Some("orphan".into());
    cm.metadata.owner_references = None;
    cms.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("dependent collected", || async {
        cms.get_opt("child").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        cms.get_opt("orphan").await.unwrap().is_some(),
        "unrelated object kept"
    );
}
dual!(
    owner_references_drive_background_garbage_collection,
    crate::garbage_collection
);

async fn namespaces(client: Client, ns: String) {
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "no-such-namespace");
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    let e = status_of(cms.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    nss.delete(&ns, &DeleteParams::default()).await.unwrap();
    eventually("namespace and contents gone", || async {
        nss.get_opt(&ns).await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(cms.get_opt("x").await.unwrap().is_none());
}
dual!(
    namespaces_scope_and_finalize_their_contents,
    crate::namespaces
);

#[tokio::test]
async fn dynamic_crd_serves_cluster_scoped_resources_and_unregisters_on_delete() {
    let sim = start().await;
    let client = sim.kube_client("admin").unwrap();
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
            ),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Gadget", "plural": "gadgets"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("example.com", "v1", "Gadget"),
        "gadgets",
    );
    let gadgets: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let g: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "anything": 1})).unwrap();
    gadgets.create(&PostParams::default(), &g).await.unwrap();
    assert_eq!(
        gadgets.list(&Default::default()).await.unwrap().items.len(),
        1
    );
    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let e = status_of(gadgets.list(&Default::default()).await.unwrap_err());
    assert_eq!(e.code, 404);
    // An invalid CRD is refused.
    let mut bad = crd.clone();
    bad.metadata.name = Some("wrong.example.com".into());
    let e = status_of(crds.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(e.code, 422, "{}", e.message);
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let sim = start().await;
    let client = sim.kube_client("admin").unwrap();
    let api = widgets(&client, "default");
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let w = api
        .create(&pp, &widget("dry", json!({"size": 1})))
        .await
        .unwrap();
    assert_eq!(w.data["spec"]["color"], "red");
    assert!(api.get_opt("dry").await.unwrap().is_none());
    let e = status_of(
        api.create(&pp, &widget("dry", json!({"size": 99})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
}
