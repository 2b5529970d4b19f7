//! The model catalog is data: `--models FILE` replaces the built-in one, and a broken file stops
//! the server at start with a message naming the problem.

mod common;

use std::process::Command;

use common::{TestServer, BIN};
use serde_json::{json, Value};

fn builtin_catalog() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../clipia-catalog/models.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_catalog_file_replaces_the_builtin_models() {
    let mut catalog = builtin_catalog();
    let mut model = catalog["models"].as_array().unwrap().iter().find(|m| m["slug"] == "clipia-mosaic").unwrap().clone();
    model["slug"] = json!("house-style");
    model["name"] = json!("House style");
    model["pricing"]["credits"] = json!(5);
    catalog["models"] = json!([model]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.json");
    std::fs::write(&path, catalog.to_string()).unwrap();

    let server = TestServer::builder().arg("--models", path.to_str().unwrap()).start().await;
    let live = server.live();
    let list = live.get("/v1/models").await;
    let slugs: Vec<&str> = list.ok()["data"].as_array().unwrap().iter().map(|m| m["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["house-style"]);
    let r = live.submit("house-style", json!({"prompt": "x", "num_images": 2})).await;
    assert_eq!(r.ok()["cost"], 10);
    assert_eq!(live.wait_done(r.body["request_id"].as_str().unwrap(), std::time::Duration::from_secs(60)).await.body["status"], "COMPLETED");
    live.submit("clipia-mosaic", json!({"prompt": "x"})).await.error(404, "not_found");
}

#[test]
fn a_broken_catalog_stops_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = builtin_catalog();
    catalog["models"][1]["slug"] = catalog["models"][0]["slug"].clone();
    let path = dir.path().join("models.json");
    std::fs::write(&path, catalog.to_string()).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--models", path.to_str().unwrap(), "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("models.json") && err.contains("nano-banana-2"), "{err}");
}
