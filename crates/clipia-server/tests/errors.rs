//! SPEC §2 and §3 over real HTTP: every error code that can occur, always in the one envelope;
//! the three key schemes; scopes; revocation; tenant isolation.

mod common;

use common::{stores, TestServer};
use serde_json::json;

#[tokio::test]
async fn every_error_is_the_envelope_with_the_right_code() {
    let server = TestServer::builder().arg("--builtin-runners", "0").start().await;
    let live = server.live();
    let url = |p: &str| format!("{}{p}", server.base);
    let auth = format!("Key {}", server.live_key);

    // 400: malformed JSON, wrong content type, unknown top-level field, bad webhook_url,
    // bad metadata, bad Idempotency-Key, bad query.
    let r = live.send(server.http.post(url("/v1/models/clipia-mosaic")).header("Authorization", &auth).header("content-type", "application/json").body("{bad")).await;
    assert!(r.error(400, "invalid_request")["message"].as_str().unwrap().contains("not valid JSON"));
    let r = live.send(server.http.post(url("/v1/models/clipia-mosaic")).header("Authorization", &auth).body(r#"{"input":{}}"#)).await;
    assert!(r.error(400, "invalid_request")["message"].as_str().unwrap().contains("Content-Type"));
    let r = live.post("/v1/models/clipia-mosaic", json!({"input": {"prompt": "x"}, "inputs": {}})).await;
    assert_eq!(r.error(400, "invalid_request")["param"], "inputs");
    let r = live.post("/v1/models/clipia-mosaic", json!({"input": {"prompt": "x"}, "webhook_url": "ftp://example.com"})).await;
    assert_eq!(r.error(400, "invalid_request")["param"], "webhook_url");
    let r = live.post("/v1/models/clipia-mosaic", json!({"input": {"prompt": "x"}, "metadata": [1]})).await;
    assert_eq!(r.error(400, "invalid_request")["param"], "metadata");
    let big = "x".repeat(5000);
    let r = live.post("/v1/models/clipia-mosaic", json!({"input": {"prompt": "x"}, "metadata": {"note": big}})).await;
    assert_eq!(r.error(400, "invalid_request")["param"], "metadata");
    let r = live.post("/v1/models/clipia-mosaic", json!({})).await;
    assert_eq!(r.error(400, "invalid_request")["param"], "input");
    let r = live.submit_with_key("clipia-mosaic", json!({"input": {"prompt": "x"}}), &"k".repeat(256)).await;
    assert_eq!(r.error(400, "invalid_request")["param"], "Idempotency-Key");
    live.get("/v1/requests?limit=0").await.error(400, "invalid_request");

    // 401: missing, malformed, unknown, unusable scheme.
    let r = live.send(server.http.get(url("/v1/account"))).await;
    r.error(401, "invalid_api_key");
    assert_eq!(r.body["error"]["type"], "authentication_error");
    server.api("clipia_live_short").get("/v1/account").await.error(401, "invalid_api_key");
    server.api(&format!("clipia_live_{}", "A".repeat(40))).get("/v1/account").await.error(401, "invalid_api_key");
    live.send(server.http.get(url("/v1/account")).header("Authorization", format!("Basic {}", server.live_key))).await.error(401, "invalid_api_key");

    // 402 with the numbers in the message.
    let (poor, _) = server.new_account("poor", 1);
    let r = poor.submit("clipia-landscape", json!({"prompt": "x"})).await;
    let msg = r.error(402, "insufficient_credits")["message"].as_str().unwrap().to_owned();
    assert!(msg.contains('2') && msg.contains('1'), "{msg}");

    // 403: a read-only key cannot submit; a non-admin key cannot manage keys.
    let read_only = server.admin(&["keys", "create", "--account", "default", "--mode", "live", "--scopes", "read"]);
    let ro = server.api(read_only.trim());
    let r = ro.submit("clipia-mosaic", json!({"prompt": "x"})).await;
    assert_eq!(r.error(403, "insufficient_scope")["type"], "permission_error");
    ro.get("/v1/account").await.ok();
    ro.get("/v1/models").await.ok();
    let plain = server.admin(&["keys", "create", "--account", "default", "--mode", "live"]);
    server.api(plain.trim()).get("/v1/keys").await.error(403, "insufficient_scope");

    // 404: unknown request, malformed id, unknown model, unknown route.
    live.get("/v1/requests/764cabcf-b745-4b3e-ae38-1200304cf45b").await.error(404, "not_found");
    live.get("/v1/requests/not-a-uuid/status").await.error(404, "not_found");
    live.submit("no-such-model", json!({"prompt": "x"})).await.error(404, "not_found");
    live.get("/v1/models/no-such-model").await.error(404, "not_found");
    live.get("/v2/anything").await.error(404, "not_found");
    live.send(server.http.get(url("/nope"))).await.error(404, "not_found");

    // 405 for a known route with another method.
    let r = live.delete("/v1/models").await;
    r.error(405, "invalid_request");
    assert_eq!(r.header("allow"), Some("GET,HEAD"), "a 405 names the methods the route takes");

    // 409 both ways are in the idempotency tests; 413: a body over the limit.
    let huge = json!({"input": {"prompt": "x".repeat(300_000)}});
    live.post("/v1/models/clipia-mosaic", huge).await.error(413, "invalid_request");

    // 422: names the field and the limit.
    let r = live.submit("clipia-mosaic", json!({"prompt": "x", "num_images": 7})).await;
    let e = r.error(422, "model_input_invalid");
    assert_eq!(e["param"], "input.num_images");
    assert!(e["message"].as_str().unwrap().contains('4'));
    let r = live.submit("clipia-mosaic", json!({"num_images": 1})).await;
    assert_eq!(r.error(422, "model_input_invalid")["param"], "input.prompt");
    let r = live.submit("clipia-mosaic", json!("a string")).await;
    assert_eq!(r.error(422, "model_input_invalid")["param"], "input");

    // 503: a hosted model whose provider is not configured, with a live key.
    let r = live.submit("nano-banana-2", json!({"prompt": "x"})).await;
    assert_eq!(r.error(503, "service_unavailable")["type"], "api_error");
    server.test().submit("nano-banana-2", json!({"prompt": "x"})).await.ok();
}

#[tokio::test]
async fn the_three_key_schemes_all_work() {
    let server = TestServer::start().await;
    let url = format!("{}/v1/account", server.base);
    let key = &server.live_key;
    for (name, value) in [("Authorization", format!("Bearer {key}")), ("Authorization", format!("Key {key}")), ("X-Api-Key", key.clone())] {
        let r = server.http.get(&url).header(name, value).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert!(r.headers().contains_key("x-clipia-trace-id"));
    }
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    for store in stores() {
        let server = TestServer::start_on(&store).await;
        let (other_live, other_test) = server.new_account("other", 100);
        let mine = server.live().submit("clipia-mosaic", json!({"prompt": "mine"})).await;
        let id = mine.ok()["request_id"].as_str().unwrap().to_owned();
        for api in [&other_live, &other_test, &server.test()] {
            api.result(&id).await.error(404, "not_found");
            api.status(&id).await.error(404, "not_found");
            api.post(&format!("/v1/requests/{id}/cancel"), json!({})).await.error(404, "not_found");
            assert!(!api.get("/v1/requests").await.text.contains(&id));
        }
        let sandbox = server.test().submit("clipia-mosaic", json!({"prompt": "x"})).await;
        server.live().result(sandbox.body["request_id"].as_str().unwrap()).await.error(404, "not_found");
        assert_eq!(other_live.balance().await.0, 100);
    }
}

#[tokio::test]
async fn keys_are_managed_over_the_api_and_revocation_is_immediate() {
    let server = TestServer::start().await;
    let admin = server.live();
    let created = admin.post("/v1/keys", json!({"mode": "test", "name": "ci", "scopes": ["read", "generate"]})).await;
    let body = created.ok();
    let secret = body["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("clipia_test_"));
    assert_eq!(body["scopes"], json!(["generate", "read"]));
    let key = server.api(&secret);
    key.submit("clipia-mosaic", json!({"prompt": "x"})).await.ok();

    let list = admin.get("/v1/keys").await;
    assert!(!list.text.contains(&secret) && !list.text.contains(&server.live_key), "lists never show secrets");
    assert!(list.ok()["data"].as_array().unwrap().iter().any(|k| k["id"] == body["id"]));
    assert!(admin.post("/v1/keys", json!({"mode": "prod"})).await.error(400, "invalid_request")["param"] == "mode");

    let revoked = admin.delete(&format!("/v1/keys/{}", body["id"].as_str().unwrap())).await;
    assert!(revoked.ok()["revoked_at"].is_string());
    key.get("/v1/account").await.error(401, "invalid_api_key");
    admin.delete("/v1/keys/key_doesnotexist").await.error(404, "not_found");

    // The admin command revokes on a running server, at once.
    let cli_key = server.admin(&["keys", "create", "--account", "default", "--mode", "live", "--name", "cli"]);
    let cli = server.api(cli_key.trim());
    cli.get("/v1/account").await.ok();
    let listing = server.admin(&["keys", "list", "--account", "default"]);
    assert!(!listing.contains(cli_key.trim()), "the CLI lists prefixes only");
    let id = listing.lines().find(|l| l.ends_with(" cli")).and_then(|l| l.split_whitespace().next()).unwrap().to_owned();
    server.admin(&["keys", "revoke", &id]);
    let r = cli.get("/v1/account").await;
    assert!(r.error(401, "invalid_api_key")["message"].as_str().unwrap().contains("revoked"));
}

#[tokio::test]
async fn admin_commands_validate_their_input() {
    let server = TestServer::start().await;
    assert!(server.admin_fails(&["keys", "create", "--account", "nobody", "--mode", "live"]).contains("nobody"));
    assert!(server.admin_fails(&["keys", "create", "--account", "default", "--mode", "live", "--scopes", "write"]).contains("write"));
    assert!(server.admin_fails(&["accounts", "create", "--name", "default"]).contains("already exists"));
    assert!(server.admin_fails(&["limits", "set", "--account", "default", "--rpm", "0"]).contains("at least 1"));
    let id = server.admin(&["accounts", "create", "--name", "acme"]);
    assert!(id.trim().starts_with("acct_"));
    let out = server.admin(&["credits", "grant", "--account", id.trim(), "--amount", "50"]);
    assert!(out.contains("balance 50"), "{out}");
    assert_eq!(server.admin(&["audit"]).trim(), "ledger ok");
}
