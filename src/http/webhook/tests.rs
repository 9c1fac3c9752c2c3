use super::*;
use kube::Resource;
use serde_json::json;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn apply(object: Value, patch: &Patch) -> Value {
    let mut object = object;
    json_patch::patch(&mut object, patch).expect("patch applies");
    object
}

#[test]
fn stamped_kinds_are_the_api_kinds() {
    assert_eq!(
        STAMPED_KINDS,
        [
            crd::System::kind(&()),
            crd::Service::kind(&()),
            crd::VmRequest::kind(&()),
            crd::VmOperation::kind(&()),
            crd::Approval::kind(&()),
        ]
    );
}

#[test]
fn annotation_names_are_escaped_in_pointers() {
    assert_eq!(
        annotation_pointer(crd::identity::USERNAME).as_str(),
        "/metadata/annotations/shepherd.kv-shepherd.io~1requested-by"
    );
}

#[test]
fn stamping_creates_the_annotations_map_when_absent() {
    let stamp = map(&[(crd::identity::USERNAME, "alice")]);
    let patched = apply(
        json!({"metadata": {"name": "x"}}),
        &stamp_patch(None, stamp),
    );
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({crd::identity::USERNAME: "alice"})
    );
}

#[test]
fn stamping_replaces_user_written_identity_and_keeps_other_annotations() {
    let existing = map(&[
        (crd::identity::USERNAME, "admin"),
        ("team.example.com/cost-centre", "42"),
    ]);
    let object = json!({"metadata": {"annotations": existing}});
    let stamp = map(&[
        (crd::identity::USERNAME, "alice"),
        (crd::identity::UID, "u-1"),
    ]);
    let patched = apply(object, &stamp_patch(Some(&existing), stamp));
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({
            crd::identity::USERNAME: "alice",
            crd::identity::UID: "u-1",
            "team.example.com/cost-centre": "42",
        })
    );
}

#[test]
fn restoring_puts_back_changed_and_removed_values_and_drops_added_ones() {
    let old = map(&[
        (crd::identity::USERNAME, "alice"),
        (crd::identity::UID, "u-1"),
        (crd::identity::SIGNATURE, "abc"),
        ("keep", "old"),
    ]);
    let new = map(&[
        (crd::identity::USERNAME, "mallory"),
        (crd::identity::GROUPS, r#"["platform-admins"]"#),
        (crd::identity::SIGNATURE, "abc"),
        ("keep", "new"),
    ]);
    let patch = restore_patch(Some(&old), Some(&new));
    let patched = apply(json!({"metadata": {"annotations": new}}), &patch);
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({
            crd::identity::USERNAME: "alice",
            crd::identity::UID: "u-1",
            crd::identity::SIGNATURE: "abc",
            "keep": "new",
        })
    );
}

#[test]
fn restoring_recreates_a_dropped_annotations_map() {
    let old = map(&[(crd::identity::USERNAME, "alice"), ("other", "x")]);
    let patched = apply(json!({"metadata": {}}), &restore_patch(Some(&old), None));
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({crd::identity::USERNAME: "alice"})
    );
}

#[test]
fn restoring_an_unchanged_stamp_is_no_patch() {
    let old = map(&[(crd::identity::USERNAME, "alice"), ("a", "1")]);
    let new = map(&[(crd::identity::USERNAME, "alice"), ("a", "2")]);
    assert!(restore_patch(Some(&old), Some(&new)).0.is_empty());
    assert!(restore_patch(None, None).0.is_empty());
    assert!(restore_patch(None, Some(&map(&[("a", "1")]))).0.is_empty());
}
