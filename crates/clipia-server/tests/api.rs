//! The queue API over real HTTP: each route's success path, the sandbox, files, models, SSE,
//! long-polls, cancel, lists and the ops endpoints. Every test runs on every store.

mod common;

use std::time::Duration;

use common::{eventually, stores, TestServer};
use serde_json::{json, Value};

const DONE: Duration = Duration::from_secs(60);

fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

fn is_webp(bytes: &[u8]) -> bool {
    bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP"
}

async fn download(server: &TestServer, url: &str) -> (u16, Option<String>, Vec<u8>) {
    let r = server.http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_test_key_completes_at_once_with_the_shipped_sample_and_costs_nothing() {
    for store in stores() {
        let server = TestServer::start_on(&store).await;
        let test = server.test();
        let before = test.balance().await;
        let r = test
            .submit_with_key("nano-banana-2", json!({"input": {"prompt": "a sunset over mountains, cinematic"}}), "k-1")
            .await;
        let body = r.ok();
        assert_eq!(body["status"], "COMPLETED");
        assert_eq!(body["queue_position"], 0);
        assert_eq!(body["cost"], 12, "the computed price of one nano-banana-2 image");
        assert_eq!(body["warnings"], json!([]));
        let id = body["request_id"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok());
        assert_eq!(body["status_url"], format!("{}/v1/requests/{id}/status", server.base));
        assert_eq!(body["response_url"], format!("{}/v1/requests/{id}", server.base));
        assert_eq!(body["cancel_url"], format!("{}/v1/requests/{id}/cancel", server.base));

        let result = test.result(id).await;
        assert_eq!(result.status, 200);
        let out = &result.body;
        assert_eq!(out["status"], "COMPLETED");
        assert_eq!(out["model"], "nano-banana-2");
        assert_eq!(out["mode"], "test");
        assert_eq!(out["error"], Value::Null);
        let image = &out["output"]["images"][0];
        assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(1024), Some(1024)));
        let (status, ct, bytes) = download(&server, image["url"].as_str().unwrap()).await;
        assert_eq!((status, ct.as_deref()), (200, Some("image/webp")));
        assert!(is_webp(&bytes));
        assert_eq!(image["file_size"].as_u64(), Some(bytes.len() as u64));
        let (status, ct, bytes) = download(&server, image["original_url"].as_str().unwrap()).await;
        assert_eq!((status, ct.as_deref()), (200, Some("image/png")));
        assert!(is_png(&bytes));

        let status = test.status(id).await;
        assert_eq!(status.ok()["status"], "COMPLETED");
        assert_eq!(test.balance().await, before, "test keys never touch credits");

        // The hosted video model works in the sandbox too, with a real MP4 sample.
        let video = test.submit("seedance-2-fast-t2v", json!({"prompt": "waves", "duration": 10})).await;
        assert_eq!(video.ok()["cost"], 200);
        let v = test.result(video.body["request_id"].as_str().unwrap()).await;
        let file = &v.body["output"]["video"];
        assert_eq!(file["content_type"], "video/mp4");
        let (status, _, bytes) = download(&server, file["url"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(&bytes[4..8], b"ftyp", "an MP4 file");
    }
}

#[tokio::test]
async fn a_live_key_runs_the_builtin_engine_and_is_charged_the_price() {
    for store in stores() {
        let server = TestServer::start_on(&store).await;
        let live = server.live();
        let (before, _) = live.balance().await;
        let r = live.submit("clipia-landscape", json!({"prompt": "a sunset over mountains", "seed": 7, "num_images": 2, "resolution": "512"})).await;
        let body = r.ok();
        assert_eq!(body["status"], "IN_QUEUE");
        assert_eq!(body["cost"], 4);
        assert!(body["queue_position"].as_u64().is_some());
        let id = body["request_id"].as_str().unwrap().to_owned();

        let pending_or_done = live.result(&id).await;
        assert!([200, 202].contains(&pending_or_done.status));
        if pending_or_done.status == 202 {
            assert!(pending_or_done.body["status_url"].is_string());
        }
        let done = live.wait_done(&id, DONE).await;
        assert_eq!(done.status, 200, "{}", done.text);
        assert_eq!(done.body["status"], "COMPLETED", "{}", done.text);
        assert_eq!(done.body["cost"], 4);
        assert_eq!(done.body["output"]["seed"], 7);
        let images = done.body["output"]["images"].as_array().unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!((images[0]["width"].as_u64(), images[0]["height"].as_u64()), (Some(512), Some(512)));
        let (_, _, png) = download(&server, images[0]["original_url"].as_str().unwrap()).await;
        assert!(is_png(&png));
        assert!(done.body["metrics"]["run_ms"].as_i64().is_some());
        assert!(done.body["started_at"].is_string() && done.body["completed_at"].is_string());
        assert_eq!(live.balance().await, (before - 4, 0));

        // The same seed gives the same bytes; another prompt gives another picture.
        let again = live.submit("clipia-landscape", json!({"prompt": "a sunset over mountains", "seed": 7, "resolution": "512"})).await;
        let again = live.wait_done(again.body["request_id"].as_str().unwrap(), DONE).await;
        let (_, _, png2) = download(&server, again.body["output"]["images"][0]["original_url"].as_str().unwrap()).await;
        assert_eq!(png, png2);
        let other = live.submit("clipia-landscape", json!({"prompt": "a snowy night sky", "seed": 7, "resolution": "512"})).await;
        let other = live.wait_done(other.body["request_id"].as_str().unwrap(), DONE).await;
        let (_, _, png3) = download(&server, other.body["output"]["images"][0]["original_url"].as_str().unwrap()).await;
        assert_ne!(png, png3);

        let status = live.status(&id).await;
        let logs = status.ok()["logs"].as_array().unwrap();
        assert!(logs.iter().any(|l| l["message"] == "started") && logs.iter().all(|l| l["timestamp"].is_string()));
        assert_eq!(status.body["progress"], 100);
    }
}

#[tokio::test]
async fn file_urls_are_signed_and_expire() {
    let server = TestServer::start().await;
    let r = server.test().submit("clipia-mosaic", json!({"prompt": "x"})).await;
    let out = server.test().result(r.body["request_id"].as_str().unwrap()).await;
    let url = out.body["output"]["images"][0]["url"].as_str().unwrap().to_owned();
    assert!(out.body["output"]["images"][0]["expires_at"].is_string());
    let tampered = url.replace("sig=", "sig=00");
    let (status, ct, _) = download(&server, &tampered).await;
    assert_eq!((status, ct.as_deref()), (404, Some("application/json")));
    let unsigned = url.split('?').next().unwrap();
    assert_eq!(download(&server, unsigned).await.0, 404);
    let expired = url.replace("expires=", "expires=1");
    assert_eq!(download(&server, &expired).await.0, 404, "changing the expiry breaks the signature");
}

#[tokio::test]
async fn magic_prompts_fail_or_take_their_time() {
    let server = TestServer::start().await;
    let test = server.test();
    let fail = test.submit("clipia-landscape", json!({"prompt": "clipia:fail"})).await;
    assert_eq!(fail.ok()["status"], "FAILED");
    let result = test.result(fail.body["request_id"].as_str().unwrap()).await;
    assert_eq!(result.status, 200);
    assert_eq!(result.body["error"]["code"], "GENERATION_FAILED");
    assert_eq!(result.body["cost"], 0);
    assert_eq!(result.body["output"], Value::Null);

    let slow = test.submit("nano-banana-2", json!({"prompt": "clipia:slow"})).await;
    assert_eq!(slow.ok()["status"], "IN_QUEUE");
    let id = slow.body["request_id"].as_str().unwrap().to_owned();
    assert_eq!(test.result(&id).await.status, 202);
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut finished = false;
    while std::time::Instant::now() < deadline && !finished {
        let s = test.status(&id).await.body["status"].as_str().unwrap_or_default().to_owned();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        finished = s == "COMPLETED";
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(finished, "slow sandbox job never completed: {seen:?}");
    assert!(seen.contains(&"IN_PROGRESS".to_owned()), "{seen:?}");
    assert_eq!(test.result(&id).await.body["cost"], 12);
}

#[tokio::test]
async fn models_are_listed_with_prices_schemas_and_availability() {
    let server = TestServer::start().await;
    let live = server.live();
    let list = live.get("/v1/models").await;
    assert_eq!(list.ok()["object"], "list");
    let data = list.body["data"].as_array().unwrap();
    let slugs: Vec<&str> = data.iter().map(|m| m["slug"].as_str().unwrap()).collect();
    for slug in ["nano-banana-2", "seedance-2-fast-t2v", "clipia-landscape", "clipia-mosaic"] {
        assert!(slugs.contains(&slug), "{slugs:?}");
    }
    for m in data {
        assert_eq!(m["id"], m["slug"]);
        assert_eq!(m["object"], "model");
        assert!(m["input_schema"]["parameters"].as_array().is_some_and(|p| !p.is_empty()));
        assert_eq!(m["json_schema"]["type"], "object");
        let available = m["pricing"]["available"].as_bool().unwrap();
        assert_eq!(available, m["unavailable_reason"].is_null(), "{m}");
    }
    let nano = live.get("/v1/models/nano-banana-2").await;
    assert_eq!(nano.ok()["type"], "image");
    assert_eq!(nano.body["pricing"]["credits"], 12);
    assert_eq!(nano.body["pricing"]["billing_unit"], "image");
    assert_eq!(nano.body["pricing"]["available"], false);
    let builtin = live.get("/v1/models/clipia-landscape").await;
    assert_eq!(builtin.ok()["pricing"]["available"], true);
    assert!(builtin.body["description"].as_str().unwrap().to_lowercase().contains("not a neural"));

    let e = live.post("/v1/models/nano-banana-2/estimate", json!({"input": {"prompt": "x", "num_images": 3}})).await;
    assert_eq!(e.ok()["credits"], 36);
    let e = live.post("/v1/models/seedance-2-fast-t2v/estimate", json!({"input": {"prompt": "x", "duration": 10, "colour": "red"}})).await;
    assert_eq!(e.ok()["credits"], 200);
    assert_eq!(e.body["warnings"][0]["parameter"], "colour");
    assert_eq!(e.body["warnings"][0]["code"], "unknown_parameter");
    let bad = live.post("/v1/models/nano-banana-2/estimate", json!({"input": {"prompt": "x", "num_images": 9}})).await;
    assert_eq!(bad.error(422, "model_input_invalid")["param"], "input.num_images");
    assert_eq!(live.balance().await.1, 0, "an estimate reserves nothing");
}

#[tokio::test]
async fn unknown_input_keys_are_warnings_not_errors() {
    let server = TestServer::start().await;
    let r = server.test().submit("clipia-landscape", json!({"prompt": "x", "duration": 5, "colour": "red"})).await;
    let warnings = r.ok()["warnings"].as_array().unwrap().clone();
    let by_param = |p: &str| warnings.iter().find(|w| w["parameter"] == p).map(|w| w["code"].as_str().unwrap().to_owned());
    assert_eq!(by_param("duration").as_deref(), Some("unsupported_parameter"));
    assert_eq!(by_param("colour").as_deref(), Some("unknown_parameter"));
}

#[tokio::test]
async fn the_status_long_poll_returns_when_the_request_finishes() {
    let server = TestServer::start().await;
    let test = server.test();
    let slow = test.submit("clipia-mosaic", json!({"prompt": "clipia:slow"})).await;
    let id = slow.body["request_id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let s = test.get(&format!("/v1/requests/{id}/status?wait=30")).await;
    assert_eq!(s.ok()["status"], "COMPLETED");
    assert!(started.elapsed() < Duration::from_secs(20), "returned at completion, not at the deadline");
    let bad = test.get(&format!("/v1/requests/{id}/status?wait=500")).await;
    assert_eq!(bad.error(400, "invalid_request")["param"], "wait");
}

#[tokio::test]
async fn events_stream_each_change_and_close_after_the_terminal_status() {
    let server = TestServer::start().await;
    let test = server.test();
    let slow = test.submit("clipia-mosaic", json!({"prompt": "clipia:slow"})).await;
    let id = slow.body["request_id"].as_str().unwrap().to_owned();
    let response = server
        .http
        .get(format!("{}/v1/requests/{id}/events", server.base))
        .header("Authorization", format!("Bearer {}", server.test_key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = tokio::time::timeout(Duration::from_secs(30), response.text()).await.expect("the stream closes").unwrap();
    let statuses: Vec<String> = text
        .split("\n\n")
        .filter(|e| e.contains("event: status"))
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses.first().map(String::as_str), Some("IN_QUEUE"), "{text}");
    assert!(statuses.contains(&"IN_PROGRESS".to_owned()), "{text}");
    assert_eq!(statuses.last().map(String::as_str), Some("COMPLETED"), "{text}");
    assert!(text.contains("event: log"), "{text}");
    let missing = test.get("/v1/requests/764cabcf-b745-4b3e-ae38-1200304cf45b/events").await;
    missing.error(404, "not_found");
}

#[tokio::test]
async fn queue_positions_are_real_and_cancel_refunds() {
    for store in stores() {
        let server = TestServer::builder().store(store).arg("--builtin-runners", "0").start().await;
        let live = server.live();
        let (before, _) = live.balance().await;
        let mut ids = Vec::new();
        for i in 0..3 {
            let r = live.submit("clipia-mosaic", json!({"prompt": format!("job {i}")})).await;
            assert_eq!(r.ok()["queue_position"], i);
            ids.push(r.body["request_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(live.status(&ids[2]).await.body["queue_position"], 2);
        assert_eq!(live.balance().await, (before - 3, 3), "three reservations");

        let canceled = live.post(&format!("/v1/requests/{}/cancel", ids[0]), json!({})).await;
        assert_eq!(canceled.ok()["status"], "CANCELED");
        assert_eq!(canceled.body["cost"], 0);
        assert_eq!(canceled.body["error"]["code"], "CANCELED");
        assert_eq!(live.status(&ids[2]).await.body["queue_position"], 1, "the queue moved up");
        let again = live.post(&format!("/v1/requests/{}/cancel", ids[0]), json!({})).await;
        assert_eq!(again.ok()["status"], "CANCELED", "cancel is idempotent");
        assert_eq!(live.balance().await, (before - 2, 2), "the canceled job's reservation went back");
    }
}

#[tokio::test]
async fn concurrent_submits_get_distinct_positions_and_a_new_account_is_not_queued_behind_a_backlog() {
    for store in stores() {
        let server = TestServer::builder().store(store).arg("--builtin-runners", "0").start().await;
        let live = server.live();
        // Sent together, they are decided together (one batch on PostgreSQL): every position
        // is still a different place in the queue.
        let n = 40;
        let replies = futures::future::join_all(
            (0..n).map(|i| live.submit("clipia-mosaic", json!({"prompt": format!("burst {i}")}))),
        )
        .await;
        let mut positions: Vec<u64> = replies.iter().map(|r| r.ok()["queue_position"].as_u64().unwrap()).collect();
        positions.sort_unstable();
        assert_eq!(positions, (0..n as u64).collect::<Vec<_>>());

        // Fair queuing: another account's first job goes near the front, not behind the 40.
        let (other, _) = server.new_account("newcomer", 10);
        let r = other.submit("clipia-mosaic", json!({"prompt": "newcomer"})).await;
        let position = r.ok()["queue_position"].as_u64().unwrap();
        assert!(position <= 1, "a newly active account waits behind at most one job, not {position}");
        let id = r.body["request_id"].as_str().unwrap().to_owned();
        assert_eq!(other.status(&id).await.body["queue_position"].as_u64(), Some(position));
        let audit = server.admin(&["audit"]);
        assert!(!audit.contains("disagree"), "{audit}");
    }
}

#[tokio::test]
async fn positions_of_jobs_landing_amid_a_long_queue_are_exact_when_sent_together() {
    for store in stores() {
        let server = TestServer::builder().store(store).arg("--builtin-runners", "0").start().await;
        server.admin(&["limits", "set", "--account", "default", "--rpm", "100000", "--max-queued", "100000"]);
        let live = server.live();
        // One account fills the lane with 400 jobs.
        for chunk in 0..4 {
            let fill = (0..100).map(|i| live.submit("clipia-mosaic", json!({"prompt": format!("fill {chunk}/{i}")})));
            for r in futures::future::join_all(fill).await {
                r.ok();
            }
        }
        // Another account's burst lands near the front, each job with hundreds behind it.
        let (other, _) = server.new_account("interleaved", 100);
        server.admin(&["limits", "set", "--account", "interleaved", "--rpm", "100000"]);
        let replies = futures::future::join_all(
            (0..30).map(|i| other.submit("clipia-mosaic", json!({"prompt": format!("burst {i}")}))),
        )
        .await;
        let mut positions = Vec::new();
        for r in &replies {
            let position = r.ok()["queue_position"].as_u64().unwrap();
            let id = r.body["request_id"].as_str().unwrap();
            // Nothing runs, so the count a status read makes now is what the submit saw.
            assert_eq!(other.status(id).await.body["queue_position"].as_u64(), Some(position), "job {id}");
            positions.push(position);
        }
        positions.sort_unstable();
        positions.dedup();
        assert_eq!(positions.len(), 30, "every job of the burst has a place of its own: {positions:?}");
        assert!(positions[29] < 100, "fair queuing keeps the burst near the front: {positions:?}");
        let audit = server.admin(&["audit"]);
        assert!(!audit.contains("disagree"), "{audit}");
    }
}

#[tokio::test]
async fn a_running_job_can_be_canceled_and_is_not_charged() {
    let server = TestServer::builder().arg("--builtin-min-run-ms", "5000").start().await;
    let live = server.live();
    let (before, _) = live.balance().await;
    let r = live.submit("clipia-mosaic", json!({"prompt": "x"})).await;
    let id = r.body["request_id"].as_str().unwrap().to_owned();
    assert!(eventually(Duration::from_secs(10), || async { live.status(&id).await.body["status"] == "IN_PROGRESS" }).await);
    let c = live.post(&format!("/v1/requests/{id}/cancel"), json!({})).await;
    assert!(["IN_PROGRESS", "CANCELED"].contains(&c.ok()["status"].as_str().unwrap()));
    let done = live.wait_done(&id, DONE).await;
    assert_eq!(done.body["status"], "CANCELED", "{}", done.text);
    assert_eq!(done.body["cost"], 0);
    assert_eq!(live.balance().await, (before, 0));
}

#[tokio::test]
async fn requests_are_listed_newest_first_with_a_cursor() {
    let server = TestServer::start().await;
    let test = server.test();
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = test.submit(if i % 2 == 0 { "clipia-mosaic" } else { "clipia-landscape" }, json!({"prompt": format!("p{i}")})).await;
        ids.push(r.body["request_id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/v1/requests?limit=2&cursor={c}"),
            None => "/v1/requests?limit=2".to_owned(),
        };
        let page = test.get(&path).await;
        seen.extend(page.ok()["data"].as_array().unwrap().iter().map(|r| r["request_id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let only = test.get("/v1/requests?model=clipia-mosaic&status=COMPLETED").await;
    assert_eq!(only.ok()["data"].as_array().unwrap().len(), 3);
    test.get("/v1/requests?status=DONE").await.error(400, "invalid_request");
    test.get("/v1/requests?cursor=zzz").await.error(400, "invalid_request");
    assert_eq!(server.live().get("/v1/requests").await.ok()["data"], json!([]), "live and test are separate worlds");
}

#[tokio::test]
async fn the_account_shows_balance_usage_key_and_limits() {
    let server = TestServer::start().await;
    let live = server.live();
    let a = live.get("/v1/account").await;
    let body = a.ok();
    assert!(body["account_id"].as_str().unwrap().starts_with("acct_"));
    assert_eq!(body["balance"]["credits"], 1000);
    assert_eq!(body["usage_30d"], json!({"requests": 0, "credits_spent": 0}));
    assert_eq!(body["key"]["mode"], "live");
    assert!(body["key"]["prefix"].as_str().unwrap().ends_with('…'));
    assert!(!a.text.contains(&server.live_key), "the secret is never shown again");
    assert_eq!(body["limits"], json!({"requests_per_minute": 120, "concurrent_generations": 10}));
    let r = live.submit("clipia-mosaic", json!({"prompt": "x"})).await;
    live.wait_done(r.body["request_id"].as_str().unwrap(), DONE).await;
    let a = live.get("/v1/account").await;
    assert_eq!(a.body["usage_30d"], json!({"requests": 1, "credits_spent": 1}));
    let ledger = live.get("/v1/account/ledger?limit=10").await;
    let kinds: Vec<&str> = ledger.ok()["data"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["capture", "reserve", "grant"]);
}

#[tokio::test]
async fn ops_endpoints_answer_without_a_key() {
    let server = TestServer::start().await;
    let get = |p: &str| server.http.get(format!("{}{p}", server.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    server.test().submit("clipia-mosaic", json!({"prompt": "x"})).await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("clipia_http_requests_total{"), "{metrics}");
    assert!(metrics.contains("clipia_jobs_submitted_total{mode=\"test\"} 1"), "{metrics}");
    let doc: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/v1/models/{model}"]["post"].is_object());
}
