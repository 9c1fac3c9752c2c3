//! Merge patch, JSON patch, strategic merge for built-ins, and server-side apply with
//! field managers (ownership, conflicts, force, removal of fields no longer applied).

mod common;

use common::*;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

async fn patches(client: Client, ns: String) {
    let api = widgets(&client, &ns);
    api.create(
        &PostParams::default(),
        &widget("p", json!({"size": 1, "tags": ["a"]})),
    )
    .await
    .unwrap();
    let w = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2, "tags": null}})),
        )
        .await
        .unwrap();
    assert_eq!(w.data["spec"]["size"], 2);
    assert!(
        w.data["spec"].get("tags").is_none(),
        "null removes in a merge patch"
    );
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/size", "value": 2},
        {"op": "replace", "path": "/spec/size", "value": 3},
        {"op": "add", "path": "/spec/label", "value": "abc"},
    ]))
    .unwrap();
    let w = api
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(
        (
            w.data["spec"]["size"].as_i64(),
            w.data["spec"]["label"].as_str()
        ),
        (Some(3), Some("abc"))
    );
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/size", "value": 99}])).unwrap();
    let e = status_of(
        api.patch("p", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422, "{}", e.message);

    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap(),
    )
    .await
    .unwrap();
    let c = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(c.data.unwrap().len(), 2);
}
dual!(merge_json_and_strategic_patches, crate::patches);

async fn server_side_apply(client: Client, ns: String) {
    let api = widgets(&client, &ns);
    let a = PatchParams::apply("alice");
    let applied = json!({"apiVersion": "bars.example.com/v1", "kind": "Widget", "metadata": {"name": "s", "labels": {"team": "a"}},
        "spec": {"size": 2, "label": "abc"}});
    let w = api.patch("s", &a, &Patch::Apply(&applied)).await.unwrap();
    assert_eq!(w.metadata.generation, Some(1), "apply creates");
    let mf = w.metadata.managed_fields.clone().unwrap();
    assert!(
        mf.iter()
            .any(|m| m.manager.as_deref() == Some("alice")
                && m.operation.as_deref() == Some("Apply"))
    );
    let fields = serde_json::to_value(&mf[0].fields_v1).unwrap();
    assert!(fields["f:spec"]["f:size"].is_object(), "{fields}");
    // Re-applying the same thing changes nothing.
    let again = api.patch("s", &a, &Patch::Apply(&applied)).await.unwrap();
    assert_eq!(again.metadata.resource_version, w.metadata.resource_version);

    // Another manager changing alice's field conflicts...
    let bob = json!({"apiVersion": "bars.example.com/v1", "kind": "Widget", "metadata": {"name": "s"}, "spec": {"size": 4}});
    let e = status_of(
        api.patch("s", &PatchParams::apply("bob"), &Patch::Apply(&bob))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("conflict with \"alice\""),
        "{}",
        e.message
    );
    assert!(e.message.contains(".spec.size"), "{}", e.message);
    // ...unless forced, which moves ownership.
    let w = api
        .patch("s", &PatchParams::apply("bob").force(), &Patch::Apply(&bob))
        .await
        .unwrap();
    assert_eq!(w.data["spec"]["size"], 4);
    // Alice stops applying `label`: it is removed; size now belongs to bob and stays.
    let alice2 = json!({"apiVersion": "bars.example.com/v1", "kind": "Widget", "metadata": {"name": "s", "labels": {"team": "a"}}, "spec": {}});
    let w = api.patch("s", &a, &Patch::Apply(&alice2)).await.unwrap();
    assert!(
        w.data["spec"].get("label").is_none(),
        "field no longer applied is removed: {}",
        w.data
    );
    assert_eq!(w.data["spec"]["size"], 4);
    // A merge patch takes ownership as an Update manager.
    let w = api
        .patch(
            "s",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"size": 5}})),
        )
        .await
        .unwrap();
    let mf = w.metadata.managed_fields.unwrap();
    assert!(mf.iter().any(
        |m| m.manager.as_deref() == Some("editor") && m.operation.as_deref() == Some("Update")
    ));
    // Status through apply on the status subresource.
    let st = json!({"apiVersion": "bars.example.com/v1", "kind": "Widget", "metadata": {"name": "s"}, "status": {"phase": "Done"}});
    let w = api
        .patch_status("s", &PatchParams::apply("ctrl").force(), &Patch::Apply(&st))
        .await
        .unwrap();
    assert_eq!(w.data["status"]["phase"], "Done");
}
dual!(
    server_side_apply_tracks_field_ownership,
    crate::server_side_apply
);

/// kube-runtime adds the first finalizer with `test /metadata/finalizers == null` on an
/// object that has none; the API server's JSON patch treats the missing path as null.
async fn json_patch_test_of_null_matches_a_missing_path(client: Client, ns: String) {
    let api = widgets(&client, &ns);
    api.create(&PostParams::default(), &widget("f", json!({"size": 1})))
        .await
        .unwrap();
    let add_first: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/hold"]},
    ]))
    .unwrap();
    let w = api
        .patch("f", &PatchParams::default(), &Patch::<()>::Json(add_first))
        .await
        .unwrap();
    assert_eq!(
        w.metadata.finalizers,
        Some(vec!["example.com/hold".to_string()])
    );
    // A failing test still refuses the whole patch.
    let wrong: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "replace", "path": "/spec/size", "value": 9},
    ]))
    .unwrap();
    let err = api
        .patch("f", &PatchParams::default(), &Patch::<()>::Json(wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 422));
    assert_eq!(api.get("f").await.unwrap().data["spec"]["size"], 1);
    let release: json_patch::Patch =
        serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers"}])).unwrap();
    api.patch("f", &PatchParams::default(), &Patch::<()>::Json(release))
        .await
        .unwrap();
}

mod json_patch_test_of_null {
    use super::*;

    #[tokio::test]
    async fn on_sim() {
        common::on_sim(json_patch_test_of_null_matches_a_missing_path).await;
    }

    #[tokio::test]
    async fn on_real_cluster() {
        common::on_real_cluster(
            "json_patch_test_of_null",
            json_patch_test_of_null_matches_a_missing_path,
        )
        .await;
    }
}
