//! Credits, idempotency and rate limits under concurrency and crashes (SPEC §5, §6, §7).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{stores, TestServer};
use futures::future::join_all;
use serde_json::json;

const DONE: Duration = Duration::from_secs(90);

fn unlimited(server: &TestServer, account: &str) {
    server.admin(&["limits", "set", "--account", account, "--rpm", "1000000", "--max-queued", "100000", "--concurrency", "100"]);
}

#[tokio::test]
async fn concurrent_submits_never_spend_more_than_the_balance() {
    for store in stores() {
        let server = TestServer::builder().store(store).arg("--builtin-runners", "0").start().await;
        const K: u64 = 37;
        let (live, _) = server.new_account("exact", K);
        unlimited(&server, "exact");
        let answers = join_all((0..200).map(|i| {
            let live = live.clone();
            async move { live.submit("clipia-mosaic", json!({"prompt": format!("job {i}")})).await }
        }))
        .await;
        let mut by_status: HashMap<u16, u64> = HashMap::new();
        for a in &answers {
            *by_status.entry(a.status).or_default() += 1;
            if a.status == 402 {
                a.error(402, "insufficient_credits");
            }
        }
        assert_eq!(by_status.get(&200), Some(&K), "{by_status:?}");
        assert_eq!(by_status.get(&402), Some(&(200 - K)), "{by_status:?}");
        assert_eq!(live.balance().await, (0, K));
        assert_eq!(server.admin(&["audit"]).trim(), "ledger ok");
    }
}

#[tokio::test]
async fn one_idempotency_key_sent_by_many_tasks_makes_one_job() {
    for store in stores() {
        let server = TestServer::builder().store(store).arg("--builtin-runners", "0").start().await;
        unlimited(&server, "default");
        let live = server.live();
        let (before, _) = live.balance().await;
        let body = json!({"input": {"prompt": "once"}});
        let answers = join_all((0..50).map(|_| {
            let (live, body) = (live.clone(), body.clone());
            async move { live.submit_with_key("clipia-mosaic", body, "same-key").await }
        }))
        .await;
        let mut ids = HashSet::new();
        for a in &answers {
            match a.status {
                200 => {
                    ids.insert(a.body["request_id"].as_str().unwrap().to_owned());
                }
                409 => {
                    a.error(409, "request_in_progress");
                }
                other => panic!("unexpected {other}: {}", a.text),
            }
        }
        assert_eq!(ids.len(), 1, "every success names the same request: {ids:?}");
        assert_eq!(live.get("/v1/requests").await.body["data"].as_array().unwrap().len(), 1);
        assert_eq!(live.balance().await, (before - 1, 1), "one reservation");
        let reserves = live.get("/v1/account/ledger").await.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "reserve")
            .count();
        assert_eq!(reserves, 1);
    }
}

#[tokio::test]
async fn idempotency_replays_refuses_reuse_and_survives_restarts() {
    for store in stores() {
        let mut server = TestServer::builder().store(store).arg("--builtin-runners", "0").start().await;
        let (live, test) = server.new_account("idem", 1);
        let body = json!({"input": {"prompt": "a", "seed": 1}, "metadata": {"order": 7}});

        // Rejected before a job exists (402): nothing stored, the key can be used again.
        let poor = live.submit_with_key("clipia-landscape", body.clone(), "k1").await;
        poor.error(402, "insufficient_credits");
        server.admin(&["credits", "grant", "--account", "idem", "--amount", "10"]);
        let first = live.submit_with_key("clipia-landscape", body.clone(), "k1").await;
        assert_eq!(first.status, 200, "{}", first.text);
        assert_eq!(first.header("idempotent-replayed"), None);

        // Same key, same body (keys in another order) → the first answer again.
        let reordered = json!({"metadata": {"order": 7}, "input": {"seed": 1, "prompt": "a"}});
        let replay = live.submit_with_key("clipia-landscape", reordered, "k1").await;
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.body, first.body);
        // Another body or another model → 409 idempotency_key_reuse.
        live.submit_with_key("clipia-landscape", json!({"input": {"prompt": "b"}}), "k1").await.error(409, "idempotency_key_reuse");
        live.submit_with_key("clipia-mosaic", body.clone(), "k1").await.error(409, "idempotency_key_reuse");
        // Keys are scoped by account and mode: the same key in test mode is a new request.
        let other_mode = test.submit_with_key("clipia-landscape", body.clone(), "k1").await;
        assert_ne!(other_mode.ok()["request_id"], first.body["request_id"]);

        server.restart().await;
        let live = server.api(&live.key);
        let after = live.submit_with_key("clipia-landscape", body.clone(), "k1").await;
        assert_eq!(after.header("idempotent-replayed"), Some("true"));
        assert_eq!(after.body["request_id"], first.body["request_id"]);
        assert_eq!(live.balance().await, (1 + 10 - 2, 2), "one job reserved, no double charge");
    }
}

#[tokio::test]
async fn a_kill_during_a_burst_leaves_the_ledger_balanced() {
    for store in stores() {
        let mut server = TestServer::builder().store(store).arg("--lease-ms", "800").start().await;
        unlimited(&server, "default");
        let live = server.live();
        let (start, _) = live.balance().await;
        let submits = join_all((0..120).map(|i| {
            let live = live.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(i * 5)).await;
                live.submit("clipia-mosaic", json!({"prompt": format!("burst {i}"), "resolution": "512"})).await
            }
        }));
        // Kill the server while submits and completions are in flight.
        let killer = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let (answers, _) = tokio::join!(submits, killer);
        server.kill();
        let accepted: Vec<String> =
            answers.iter().filter(|a| a.status == 200).map(|a| a.body["request_id"].as_str().unwrap().to_owned()).collect();
        assert!(!accepted.is_empty());

        server.restart().await;
        let live = server.api(&live.key);
        let mut charged = 0;
        for id in &accepted {
            let done = live.wait_done(id, DONE).await;
            assert_eq!(done.status, 200, "every acknowledged submit survived: {}", done.text);
            assert_eq!(done.body["status"], "COMPLETED", "{}", done.text);
            charged += done.body["cost"].as_u64().unwrap();
        }
        assert_eq!(charged, accepted.len() as u64, "each job charged exactly its price");
        let (available, reserved) = live.balance().await;
        assert_eq!(reserved, 0);
        assert!(available + charged <= start, "no job charged twice");
        assert_eq!(server.admin(&["audit"]).trim(), "ledger ok");
    }
}

#[tokio::test]
async fn rate_limit_headers_count_down_and_429_says_when_to_retry() {
    let server = TestServer::start().await;
    server.admin(&["limits", "set", "--account", "default", "--rpm", "60"]);
    let live = server.live();
    let first = live.get("/v1/account").await;
    assert_eq!(first.header("ratelimit-limit"), Some("60"));
    assert_eq!(first.header("ratelimit-remaining"), Some("59"));
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"requests\";q=60;w=60, \"generations\";q=10;qu=\"concurrent-requests\"")
    );
    assert!(first.header("ratelimit").unwrap().starts_with("\"requests\";r=59;t="));
    let mut remaining = 59;
    loop {
        let r = live.get("/v1/models").await;
        if r.status == 429 {
            let e = r.error(429, "rate_limit_exceeded");
            assert_eq!(e["type"], "rate_limit_error");
            assert_eq!(remaining, 0, "refused only once the quota was used up");
            let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=2).contains(&wait), "one request per second refills: {wait}");
            tokio::time::sleep(Duration::from_secs(wait)).await;
            live.get("/v1/models").await.ok();
            break;
        }
        let now: u32 = r.header("ratelimit-remaining").unwrap().parse().unwrap();
        assert_eq!(now, remaining - 1);
        remaining = now;
    }
    // Limits are per key.
    server.test().get("/v1/models").await.ok();
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let server = TestServer::builder().arg("--builtin-runners", "0").start().await;
    server.admin(&["limits", "set", "--account", "default", "--max-queued", "2"]);
    let live = server.live();
    live.submit("clipia-mosaic", json!({"prompt": "1"})).await.ok();
    live.submit("clipia-mosaic", json!({"prompt": "2"})).await.ok();
    let third = live.submit("clipia-mosaic", json!({"prompt": "3"})).await;
    third.error(429, "rate_limit_exceeded");
    assert!(third.header("retry-after").is_some());
    assert_eq!(live.balance().await.1, 2, "the refused submit reserved nothing");
}
