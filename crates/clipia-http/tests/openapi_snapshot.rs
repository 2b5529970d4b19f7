//! The OpenAPI document is generated from the code; `contract/openapi.json` is its reviewed
//! snapshot. This test fails when they differ, so the published description cannot drift from
//! what the server does. Regenerate with `UPDATE_SNAPSHOTS=1 cargo test -p clipia-http --test openapi_snapshot`.

use std::path::PathBuf;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contract/openapi.json")
}

#[test]
fn the_openapi_document_matches_its_snapshot() {
    let generated = serde_json::to_string_pretty(&clipia_http::openapi::document()).unwrap() + "\n";
    let path = snapshot_path();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == generated,
        "contract/openapi.json is out of date; run UPDATE_SNAPSHOTS=1 cargo test -p clipia-http --test openapi_snapshot and review the diff"
    );
}

#[test]
fn every_route_of_the_contract_is_described() {
    let doc = clipia_http::openapi::document();
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/models/{model}", "post"),
        ("/v1/models/{model}", "get"),
        ("/v1/models", "get"),
        ("/v1/models/{model}/estimate", "post"),
        ("/v1/requests/{id}/status", "get"),
        ("/v1/requests/{id}", "get"),
        ("/v1/requests/{id}/cancel", "post"),
        ("/v1/requests/{id}/events", "get"),
        ("/v1/requests", "get"),
        ("/v1/account", "get"),
        ("/v1/keys", "post"),
        ("/openapi.json", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not described");
    }
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    assert!(doc["components"]["schemas"]["ErrorEnvelope"].is_object());
}
