//! Webhooks end to end (SPEC §8): a real receiver on 127.0.0.1:0 verifies the signature of
//! every delivery; retries, timeouts, 410, Retry-After, a crash between the terminal status and
//! the delivery, the SSRF guard, secrets and rotation, resend, the live event stream, and the
//! latency from the terminal commit to the first attempt.
//!
//! Backoff runs on a scaled schedule (`--webhook-retry-scale`), never on real minutes.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clipia_core::webhook::{verify, verify_standard, WebhookSecret};
use common::{eventually, Api, TestServer};
use serde_json::{json, Value};

/// How long a test waits for a delivery that should come.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);
/// A rate limit no test reaches, so that polling never meets a 429.
const RPM_UNLIMITED: &str = "1000000";

/// How the receiver answers one request.
#[derive(Clone, Debug)]
enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    /// Answer with this status and `Retry-After` as an HTTP-date this many seconds ahead, from a
    /// receiver whose clock (its `Date` header) runs an hour ahead of ours.
    RetryAtSkewed(u16, u64),
    /// Sleep this long, then answer 200 (a receiver hanging past the timeout).
    Hang(Duration),
}

#[derive(Clone, Debug)]
struct Hit {
    at_ms: i64,
    arrived: Instant,
    headers: HeaderMap,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// Checks both signature formats against every given secret, with the 300 s tolerance.
    #[track_caller]
    fn assert_signed(&self, secrets: &[&str]) {
        let now = now_ms() / 1000;
        assert_eq!(self.header("x-clipia-webhook-id"), self.header("webhook-id"));
        assert_eq!(self.header("x-clipia-timestamp"), self.header("webhook-timestamp"));
        assert!(uuid::Uuid::parse_str(self.header("webhook-id")).is_ok(), "the webhook id is a UUID");
        assert!(self.header("content-type").starts_with("application/json"));
        for secret in secrets {
            let secret = WebhookSecret::parse(secret).expect("a whsec_ secret");
            verify(&secret, self.header("x-clipia-signature"), self.body.as_bytes(), now, Some(300))
                .unwrap_or_else(|e| panic!("X-Clipia-Signature: {e}"));
            let (id, t, sig) = (self.header("webhook-id"), self.header("webhook-timestamp"), self.header("webhook-signature"));
            verify_standard(&secret, id, t, sig, self.body.as_bytes(), now, Some(300))
                .unwrap_or_else(|e| panic!("webhook-signature: {e}"));
        }
    }
}

#[derive(Default)]
struct Shared {
    hits: Mutex<Vec<Hit>>,
    replies: Mutex<VecDeque<Reply>>,
}

/// A webhook receiver on 127.0.0.1: records every request, answers from a script, then 200.
struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(replies: Vec<Reply>) -> Receiver {
        Self::start_on(0, replies).await
    }

    async fn start_on(port: u16, replies: Vec<Reply>) -> Receiver {
        let shared = Arc::new(Shared { hits: Mutex::default(), replies: Mutex::new(replies.into()) });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().fallback(receive).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { port, shared, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    async fn wait_hits(&self, n: usize) -> Vec<Hit> {
        let ok = eventually(DELIVERY_WAIT, || async { self.hits().len() >= n }).await;
        assert!(ok, "expected {n} deliveries, got {}", self.hits().len());
        self.hits()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.hits.lock().unwrap().push(Hit {
        at_ms: now_ms(),
        arrived: Instant::now(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = shared.replies.lock().unwrap().pop_front();
    match reply {
        None => StatusCode::OK.into_response(),
        Some(Reply::Status(s)) => StatusCode::from_u16(s).unwrap().into_response(),
        Some(Reply::RetryAfter(s, secs)) => (StatusCode::from_u16(s).unwrap(), [("retry-after", secs.to_string())]).into_response(),
        Some(Reply::RetryAtSkewed(s, secs)) => {
            let their_now = std::time::SystemTime::now() + Duration::from_secs(3600);
            let at = httpdate::fmt_http_date(their_now + Duration::from_secs(secs));
            let date = httpdate::fmt_http_date(their_now);
            (StatusCode::from_u16(s).unwrap(), [("retry-after", at), ("date", date)]).into_response()
        }
        Some(Reply::Hang(d)) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn server(extra: &[(&str, &str)]) -> TestServer {
    let mut b = TestServer::builder().arg("--default-rpm", RPM_UNLIMITED);
    for (name, value) in extra {
        b = if value.is_empty() { b.flag(name) } else { b.arg(name, value) };
    }
    b.start().await
}

fn secret(server: &TestServer, mode: &str) -> String {
    server.admin(&["webhooks", "secret", "--account", "default", "--mode", mode]).trim().to_owned()
}

async fn submit_with_webhook(api: &Api, model: &str, prompt: &str, url: &str) -> String {
    let r = api.post(&format!("/v1/models/{model}"), json!({"input": {"prompt": prompt}, "webhook_url": url})).await;
    r.ok()["request_id"].as_str().unwrap().to_owned()
}

async fn deliveries(api: &Api, id: &str) -> Value {
    let r = api.get(&format!("/v1/requests/{id}/webhook-deliveries")).await;
    r.ok()["data"].clone()
}

/// Waits until the request's first delivery is no longer pending; returns it.
async fn settled_delivery(api: &Api, id: &str) -> Value {
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let d = deliveries(api, id).await;
        if d[0]["status"] != "pending" && d[0]["status"].is_string() {
            return d[0].clone();
        }
        assert!(Instant::now() < deadline, "the delivery never settled: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_test_key_job_is_delivered_signed_in_both_formats() {
    let server = server(&[]).await;
    let receiver = Receiver::start(vec![]).await;
    let api = server.test();
    let id = submit_with_webhook(&api, "clipia-landscape", "a quiet lake", &receiver.url()).await;
    let hit = receiver.wait_hits(1).await.remove(0);
    hit.assert_signed(&[&secret(&server, "test")]);
    // The live secret does not verify a test-mode delivery.
    let live = WebhookSecret::parse(&secret(&server, "live")).unwrap();
    assert!(verify(&live, hit.header("x-clipia-signature"), hit.body.as_bytes(), now_ms() / 1000, Some(300)).is_err());

    let body = hit.json();
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["request_id", "status", "payload"]);
    assert_eq!(body["request_id"], id.as_str());
    assert_eq!(body["status"], "OK");
    assert_eq!(body["payload"]["model"], "clipia-landscape");
    assert!(body["payload"]["cost"].is_u64());
    let image_url = body["payload"]["output"]["images"][0]["url"].as_str().unwrap();
    assert!(image_url.starts_with(&format!("{}/v1/files/", server.base)), "{image_url}");
    let file = server.http.get(image_url).send().await.unwrap();
    assert_eq!(file.status(), 200, "the signed file URL in the webhook works");

    let d = settled_delivery(&api, &id).await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["webhook_id"], hit.header("webhook-id"));
    assert_eq!(d["attempts"][0]["number"], 1);
    assert_eq!(d["attempts"][0]["status_code"], 200);
    assert!(d["attempts"][0]["duration_ms"].is_i64());

    // A failure has Clipia's error shape.
    let failed = submit_with_webhook(&api, "clipia-landscape", "clipia:fail", &receiver.url()).await;
    let hit = receiver.wait_hits(2).await.remove(1);
    hit.assert_signed(&[&secret(&server, "test")]);
    let body = hit.json();
    assert_eq!(body["request_id"], failed.as_str());
    assert_eq!(body["status"], "ERROR");
    assert_eq!(body["error"]["code"], "GENERATION_FAILED");
    assert!(body["error"]["message"].is_string());
    assert!(body.get("payload").is_none());
}

#[tokio::test]
async fn a_live_job_is_delivered_after_the_builtin_engine_runs() {
    let server = server(&[]).await;
    let receiver = Receiver::start(vec![]).await;
    let api = server.live();
    let id = submit_with_webhook(&api, "clipia-landscape", "mountains at dawn", &receiver.url()).await;
    let hit = receiver.wait_hits(1).await.remove(0);
    hit.assert_signed(&[&secret(&server, "live")]);
    let result = api.result(&id).await;
    let body = hit.json();
    assert_eq!(body["status"], "OK");
    assert_eq!(body["payload"]["cost"], result.ok()["cost"]);
    assert!(body["payload"]["output"]["images"][0]["original_url"].as_str().unwrap().contains("/v1/files/"));
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_under_the_same_id() {
    let server = server(&[("--webhook-retry-scale", "0.001")]).await;
    let receiver = Receiver::start(vec![Reply::Status(500), Reply::Status(503), Reply::Status(302)]).await;
    let api = server.test();
    let id = submit_with_webhook(&api, "clipia-landscape", "retry me", &receiver.url()).await;
    let hits = receiver.wait_hits(4).await;
    let secret = secret(&server, "test");
    for hit in &hits {
        hit.assert_signed(&[&secret]);
        assert_eq!(hit.header("webhook-id"), hits[0].header("webhook-id"), "one event, one id");
    }
    let d = settled_delivery(&api, &id).await;
    assert_eq!(d["status"], "delivered");
    let codes: Vec<Value> = d["attempts"].as_array().unwrap().iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(503), json!(302), json!(200)], "redirects are not followed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits().len(), 4, "nothing after a success");
}

#[tokio::test]
async fn a_receiver_hanging_past_the_timeout_counts_as_a_failure() {
    let server = server(&[("--webhook-retry-scale", "0.001"), ("--webhook-timeout-ms", "300")]).await;
    let receiver = Receiver::start(vec![Reply::Hang(Duration::from_secs(3))]).await;
    let api = server.test();
    let id = submit_with_webhook(&api, "clipia-landscape", "slow receiver", &receiver.url()).await;
    let hits = receiver.wait_hits(2).await;
    assert_eq!(hits[0].header("webhook-id"), hits[1].header("webhook-id"));
    assert!(hits[1].arrived.duration_since(hits[0].arrived) < Duration::from_secs(2), "retried before the hang ended");
    let d = settled_delivery(&api, &id).await;
    assert_eq!(d["status"], "delivered");
    let first = &d["attempts"][0];
    assert!(first["status_code"].is_null());
    assert!(first["error"].as_str().unwrap().contains("timeout"), "{first}");
    assert_eq!(d["attempts"][1]["status_code"], 200);
}

#[tokio::test]
async fn gone_stops_retries_and_retry_after_is_honored() {
    let server = server(&[("--webhook-retry-scale", "0.001")]).await;
    let api = server.test();

    let gone = Receiver::start(vec![Reply::Status(410)]).await;
    let id = submit_with_webhook(&api, "clipia-landscape", "gone", &gone.url()).await;
    let d = settled_delivery(&api, &id).await;
    assert_eq!(d["status"], "failed");
    assert!(d["last_error"].as_str().unwrap().contains("410"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gone.hits().len(), 1, "410 stops retries");

    let busy = Receiver::start(vec![Reply::RetryAfter(429, 1)]).await;
    submit_with_webhook(&api, "clipia-landscape", "busy", &busy.url()).await;
    let hits = busy.wait_hits(2).await;
    let gap = hits[1].arrived.duration_since(hits[0].arrived);
    assert!(gap >= Duration::from_millis(950), "Retry-After: 1 was honored over a 10 ms scaled retry ({gap:?})");

    // An HTTP-date counts from the receiver's own clock, even one an hour off ours.
    let dated = Receiver::start(vec![Reply::RetryAtSkewed(503, 2)]).await;
    submit_with_webhook(&api, "clipia-landscape", "dated", &dated.url()).await;
    let hits = dated.wait_hits(2).await;
    let gap = hits[1].arrived.duration_since(hits[0].arrived);
    assert!(gap >= Duration::from_millis(1900), "a Retry-After date 2 s ahead was honored ({gap:?})");
    assert!(gap < Duration::from_secs(10), "the receiver's clock skew did not count ({gap:?})");
}

#[tokio::test]
async fn retries_give_up_after_the_schedule_with_a_clear_reason() {
    let server = server(&[("--webhook-retry-scale", "0.0001")]).await;
    let receiver = Receiver::start(vec![Reply::Status(500); 20]).await;
    let api = server.test();
    let id = submit_with_webhook(&api, "clipia-landscape", "never ok", &receiver.url()).await;
    let d = settled_delivery(&api, &id).await;
    assert_eq!(d["status"], "failed");
    assert_eq!(d["attempts"].as_array().unwrap().len(), clipia_core::webhook::WEBHOOK_RETRY_SCHEDULE_S.len() + 1);
    assert!(d["last_error"].as_str().unwrap().contains("attempts"), "{d}");
}

#[tokio::test]
async fn a_kill_between_the_terminal_status_and_the_delivery_still_delivers() {
    // A receiver that is down: its port refuses connections until it starts below.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hook");
    // The first retry comes 1–1.25 s after the refused attempt: time to kill and restart.
    let mut server = server(&[("--webhook-retry-scale", "0.1")]).await;
    let api = server.test();
    let id = submit_with_webhook(&api, "clipia-landscape", "survive a crash", &url).await;
    let ok = eventually(DELIVERY_WAIT, || async { deliveries(&api, &id).await[0]["attempts"].as_array().is_some_and(|a| !a.is_empty()) }).await;
    assert!(ok, "the first attempt was made");
    let before = deliveries(&api, &id).await[0].clone();
    assert_eq!(before["status"], "pending", "{before}");
    assert!(before["attempts"][0]["error"].as_str().unwrap().contains("connect"), "{before}");

    server.kill(); // kill -9
    let receiver = Receiver::start_on(port, vec![]).await;
    server.restart().await;
    let hit = receiver.wait_hits(1).await.remove(0);
    hit.assert_signed(&[&secret(&server, "test")]);
    assert_eq!(hit.header("webhook-id"), before["webhook_id"].as_str().unwrap(), "the same event");
    assert_eq!(hit.json()["request_id"], id.as_str());
    let api = server.test();
    let d = settled_delivery(&api, &id).await;
    assert_eq!(d["status"], "delivered");
}

#[tokio::test]
async fn the_guard_refuses_internal_destinations() {
    let server = server(&[("--allow-private-webhooks=false", "")]).await;
    let api = server.test();
    for url in ["http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data", "http://[::1]:9/x"] {
        let r = api.post("/v1/models/clipia-landscape", json!({"input": {"prompt": "x"}, "webhook_url": url})).await;
        let e = r.error(400, "invalid_request");
        assert_eq!(e["param"], "webhook_url", "{url}");
        assert!(e["message"].as_str().unwrap().contains("webhook_url"), "{url}: {e}");
    }
    // A host name is checked on the addresses it resolves to, when connecting.
    let receiver = Receiver::start(vec![]).await;
    let url = format!("http://localhost:{}/hook", receiver.port);
    let id = submit_with_webhook(&api, "clipia-landscape", "rebind me", &url).await;
    let d = settled_delivery(&api, &id).await;
    assert_eq!(d["status"], "failed", "refused, not retried forever");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
    assert!(d["attempts"][0]["error"].as_str().unwrap().contains("refused"), "{d}");
    assert!(d["attempts"][0]["status_code"].is_null());
    assert!(receiver.hits().is_empty(), "nothing reached the loopback receiver");
}

#[tokio::test]
async fn private_destinations_are_allowed_by_default_on_a_loopback_server_and_by_flag() {
    for extra in [vec![], vec![("--allow-private-webhooks", "")]] {
        let server = server(&extra).await;
        let receiver = Receiver::start(vec![]).await;
        let url = format!("http://localhost:{}/hook", receiver.port);
        submit_with_webhook(&server.test(), "clipia-landscape", "local", &url).await;
        receiver.wait_hits(1).await;
    }
}

#[tokio::test]
async fn secrets_rotate_and_both_sign_for_a_day() {
    let server = server(&[]).await;
    let api = server.test();
    let r = api.get("/v1/webhooks/secret").await;
    assert_eq!(r.ok()["mode"], "test");
    let old = r.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(old, secret(&server, "test"), "the route and the CLI agree");
    assert_ne!(server.live().get("/v1/webhooks/secret").await.ok()["secret"], old.as_str(), "one secret per mode");

    let reader = server.admin(&["keys", "create", "--account", "default", "--mode", "test", "--scopes", "generate,read"]);
    let reader = server.api(reader.trim());
    reader.get("/v1/webhooks/secret").await.error(403, "insufficient_scope");
    reader.post("/v1/webhooks/secret/rotate", json!({})).await.error(403, "insufficient_scope");

    let r = api.post("/v1/webhooks/secret/rotate", json!({})).await;
    let new = r.ok()["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(r.body["previous_expires_at"].is_string());
    assert_eq!(api.get("/v1/webhooks/secret").await.ok()["secret"], new.as_str());

    let receiver = Receiver::start(vec![]).await;
    submit_with_webhook(&api, "clipia-landscape", "rotated", &receiver.url()).await;
    let hit = receiver.wait_hits(1).await.remove(0);
    hit.assert_signed(&[&old, &new]);
    let sig = hit.header("x-clipia-signature");
    assert_eq!(sig.matches("v1=").count(), 2, "{sig}");
    assert_eq!(hit.header("webhook-signature").split(' ').count(), 2);
    // Newest last: a verifier that keeps only the last v1= needs the new secret.
    let last_only = format!("{},{}", sig.split(',').next().unwrap(), sig.rsplit(',').next().unwrap());
    let (old_s, new_s) = (WebhookSecret::parse(&old).unwrap(), WebhookSecret::parse(&new).unwrap());
    assert!(verify(&new_s, &last_only, hit.body.as_bytes(), now_ms() / 1000, Some(300)).is_ok());
    assert!(verify(&old_s, &last_only, hit.body.as_bytes(), now_ms() / 1000, Some(300)).is_err());
}

#[tokio::test]
async fn a_delivered_event_can_be_resent_under_its_id() {
    let server = server(&[]).await;
    let receiver = Receiver::start(vec![]).await;
    let api = server.test();
    let id = submit_with_webhook(&api, "clipia-landscape", "again", &receiver.url()).await;
    receiver.wait_hits(1).await;
    settled_delivery(&api, &id).await;
    let r = api.post(&format!("/v1/requests/{id}/webhook-deliveries/resend"), json!({})).await;
    assert_eq!(r.ok()["status"], "pending");
    let hits = receiver.wait_hits(2).await;
    assert_eq!(hits[0].header("webhook-id"), hits[1].header("webhook-id"));
    hits[1].assert_signed(&[&secret(&server, "test")]);
    let ok = eventually(DELIVERY_WAIT, || async {
        let d = deliveries(&api, &id).await;
        d[0]["status"] == "delivered" && d[0]["attempts"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    assert!(ok, "the resend is the second attempt: {}", deliveries(&api, &id).await);

    // No webhook_url: nothing to resend. Another tenant's request: not found.
    let plain = api.submit("clipia-landscape", json!({"prompt": "no hook"})).await.ok()["request_id"].as_str().unwrap().to_owned();
    api.post(&format!("/v1/requests/{plain}/webhook-deliveries/resend"), json!({})).await.error(400, "invalid_request");
    server.live().get(&format!("/v1/requests/{id}/webhook-deliveries")).await.error(404, "not_found");
    server.live().post(&format!("/v1/requests/{id}/webhook-deliveries/resend"), json!({})).await.error(404, "not_found");
}

#[tokio::test]
async fn the_live_event_stream_carries_signed_events() {
    use futures::StreamExt;
    let server = server(&[]).await;
    let api = server.test();
    let response = server
        .http
        .get(format!("{}/v1/webhooks/events", server.base))
        .header("Authorization", format!("Key {}", server.test_key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = response.bytes_stream();
    // A live request of the same account must not show on the test key's stream.
    server.live().submit("clipia-landscape", json!({"prompt": "live, not on this stream"})).await.ok();
    let id = api.submit("clipia-landscape", json!({"prompt": "stream me"})).await.ok()["request_id"].as_str().unwrap().to_owned();
    let mut text = String::new();
    let data = tokio::time::timeout(DELIVERY_WAIT, async {
        loop {
            let chunk = stream.next().await.expect("the stream stays open").unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(block) = text.split("\n\n").find(|b| b.contains("event: webhook")) {
                let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))).collect();
                break data;
            }
        }
    })
    .await
    .expect("a webhook event on the stream");
    let event: Value = serde_json::from_str(&data).unwrap();
    let body = event["body"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(body).unwrap()["request_id"], id.as_str());
    let headers = &event["headers"];
    assert_eq!(headers["webhook-id"], event["webhook_id"]);
    let secret = WebhookSecret::parse(&secret(&server, "test")).unwrap();
    verify(&secret, headers["X-Clipia-Signature"].as_str().unwrap(), body.as_bytes(), now_ms() / 1000, Some(300)).unwrap();
    let (wid, t, sig) = (headers["webhook-id"].as_str().unwrap(), headers["webhook-timestamp"].as_str().unwrap(), headers["webhook-signature"].as_str().unwrap());
    verify_standard(&secret, wid, t, sig, body.as_bytes(), now_ms() / 1000, Some(300)).unwrap();
}

/// Milliseconds since midnight UTC of an RFC 3339 time the API wrote (`…THH:MM:SS.mmmZ`).
fn ms_of_day(rfc3339: &str) -> i64 {
    let time = rfc3339.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = time.split(':');
    let (h, m): (i64, i64) = (parts.next().unwrap().parse().unwrap(), parts.next().unwrap().parse().unwrap());
    let s: f64 = parts.next().unwrap().parse().unwrap();
    h * 3_600_000 + m * 60_000 + (s * 1000.0).round() as i64
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The benchmark of BENCHMARKS.md: from the terminal commit (the delivery row's `created_at`,
/// taken inside the transaction, so the commit itself is counted) to the first attempt's start
/// and to the receiver. `WEBHOOK_LATENCY_SAMPLES` sets the sample count (default 100).
#[tokio::test]
async fn delivery_latency_from_terminal_commit_to_first_attempt() {
    let samples: usize = std::env::var("WEBHOOK_LATENCY_SAMPLES").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let server = server(&[]).await;
    let receiver = Receiver::start(vec![]).await;
    let api = server.test();
    let mut ids = Vec::with_capacity(samples);
    for i in 0..samples {
        ids.push(submit_with_webhook(&api, "clipia-landscape", &format!("sample {i}"), &receiver.url()).await);
        receiver.wait_hits(i + 1).await; // one at a time: latency, not throughput
    }
    let arrivals: std::collections::HashMap<String, i64> =
        receiver.hits().iter().map(|h| (h.json()["request_id"].as_str().unwrap().to_owned(), h.at_ms)).collect();
    let (mut to_attempt, mut to_receiver) = (Vec::new(), Vec::new());
    for id in &ids {
        let d = settled_delivery(&api, id).await;
        let created = ms_of_day(d["created_at"].as_str().unwrap());
        to_attempt.push((ms_of_day(d["attempts"][0]["at"].as_str().unwrap()) - created).rem_euclid(86_400_000));
        to_receiver.push((arrivals[id] % 86_400_000 - created).rem_euclid(86_400_000));
    }
    to_attempt.sort_unstable();
    to_receiver.sort_unstable();
    let (p50, p99) = (percentile(&to_attempt, 0.5), percentile(&to_attempt, 0.99));
    println!(
        "webhook latency over {samples} deliveries: terminal commit -> first attempt p50 {p50} ms, p99 {p99} ms; \
         -> receiver p50 {} ms, p99 {} ms",
        percentile(&to_receiver, 0.5),
        percentile(&to_receiver, 0.99)
    );
    // Generous bounds so that a loaded CI machine does not flake; the target (p50 ≤ 20 ms) is
    // what BENCHMARKS.md records.
    assert!(p50 <= 200, "p50 {p50} ms");
}
