//! The committed OpenAPI document (`openapi/v1.json`) is what the code generates; `make
//! openapi` rewrites it after an API change.

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/v1.json");
    let committed = std::fs::read_to_string(&path).expect("openapi/v1.json exists");
    let generated = shepherd::http::api::openapi_json();
    assert!(
        committed == generated,
        "openapi/v1.json is stale: run `make openapi` and commit the result"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/whoami",
        "/api/v1/tickets",
        "/api/v1/tickets/{id}/preview",
        "/api/v1/tickets/{id}/approve",
        "/api/v1/tickets/{id}/reject",
        "/api/v1/tickets/{id}/cancel",
        "/api/v1/vms",
        "/api/v1/audit/export",
        "/api/v1/rbac/bindings",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}
