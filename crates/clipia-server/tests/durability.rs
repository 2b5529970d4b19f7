//! The durable queue: kill -9 mid-job (the lease expires, the job runs again, nothing lost,
//! charged once), restarts with queued work, and the draining shutdown.

mod common;

use std::time::Duration;

use common::{eventually, stores, TestServer};
use serde_json::json;

const DONE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_job_whose_server_was_killed_mid_run_runs_again_and_is_charged_once() {
    for store in stores() {
        let mut server = TestServer::builder()
            .store(store)
            .arg("--lease-ms", "1000")
            .arg("--builtin-min-run-ms", "3000")
            .start()
            .await;
        let live = server.live();
        let (before, _) = live.balance().await;
        let r = live.submit("clipia-mosaic", json!({"prompt": "survives a crash"})).await;
        let id = r.ok()["request_id"].as_str().unwrap().to_owned();
        assert!(eventually(Duration::from_secs(10), || async { live.status(&id).await.body["status"] == "IN_PROGRESS" }).await);

        server.kill();
        server.restart().await;
        let live = server.live();
        let done = live.wait_done(&id, DONE).await;
        assert_eq!(done.body["status"], "COMPLETED", "{}", done.text);
        let logs = live.status(&id).await.body["logs"].to_string();
        assert!(logs.contains("attempt 2"), "the job ran again after its lease expired: {logs}");
        assert_eq!(live.balance().await, (before - 1, 0), "charged exactly once");
        assert_eq!(server.admin(&["audit"]).trim(), "ledger ok");
    }
}

#[tokio::test]
async fn queued_jobs_survive_a_restart() {
    let mut server = TestServer::builder().arg("--builtin-runners", "0").start().await;
    let live = server.live();
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = live.submit("clipia-mosaic", json!({"prompt": format!("queued {i}")})).await;
        ids.push(r.ok()["request_id"].as_str().unwrap().to_owned());
    }
    let test = server.test().submit("clipia-mosaic", json!({"prompt": "x"})).await;
    let test_id = test.body["request_id"].as_str().unwrap().to_owned();
    assert!(server.terminate(), "a clean exit on SIGTERM");

    // The same data directory, now with runners.
    server.restart_with_runners().await;
    let live = server.live();
    for id in &ids {
        assert_eq!(live.wait_done(id, DONE).await.body["status"], "COMPLETED");
    }
    assert_eq!(server.test().result(&test_id).await.body["status"], "COMPLETED");
}

#[tokio::test]
async fn sigterm_lets_running_jobs_finish() {
    let mut server = TestServer::builder().arg("--builtin-min-run-ms", "1500").arg("--drain-ms", "10000").start().await;
    let live = server.live();
    let r = live.submit("clipia-mosaic", json!({"prompt": "finish me"})).await;
    let id = r.ok()["request_id"].as_str().unwrap().to_owned();
    assert!(eventually(Duration::from_secs(10), || async { live.status(&id).await.body["status"] == "IN_PROGRESS" }).await);
    assert!(server.terminate());
    server.restart().await;
    let result = server.live().result(&id).await;
    assert_eq!(result.body["status"], "COMPLETED", "finished during the drain: {}", result.text);
}

#[tokio::test]
async fn sigterm_hands_back_jobs_that_cannot_finish_in_time() {
    let mut server = TestServer::builder().arg("--builtin-min-run-ms", "4000").arg("--drain-ms", "200").start().await;
    let live = server.live();
    let r = live.submit("clipia-mosaic", json!({"prompt": "hand me back"})).await;
    let id = r.ok()["request_id"].as_str().unwrap().to_owned();
    assert!(eventually(Duration::from_secs(10), || async { live.status(&id).await.body["status"] == "IN_PROGRESS" }).await);
    let started = std::time::Instant::now();
    assert!(server.terminate());
    assert!(started.elapsed() < Duration::from_secs(4), "the drain is bounded");
    server.restart().await;
    let live = server.live();
    let status = live.status(&id).await;
    assert!(status.body["logs"].to_string().contains("back in the queue"), "{}", status.text);
    assert_eq!(live.wait_done(&id, DONE).await.body["status"], "COMPLETED");
}

#[tokio::test]
async fn per_key_concurrency_holds_and_other_accounts_are_not_blocked() {
    let server = TestServer::builder().arg("--builtin-runners", "2").arg("--builtin-min-run-ms", "1500").start().await;
    server.admin(&["limits", "set", "--account", "default", "--concurrency", "1"]);
    let a = server.live();
    let (b, _) = server.new_account("b", 10);
    let mut a_ids = Vec::new();
    for i in 0..3 {
        let r = a.submit("clipia-mosaic", json!({"prompt": format!("a{i}")})).await;
        a_ids.push(r.ok()["request_id"].as_str().unwrap().to_owned());
    }
    let b_id = b.submit("clipia-mosaic", json!({"prompt": "b"})).await.body["request_id"].as_str().unwrap().to_owned();
    // While A's first job runs, A's others wait (concurrency 1) and B's job takes the free runner.
    assert!(eventually(Duration::from_secs(10), || async { b.status(&b_id).await.body["status"] != "IN_QUEUE" }).await);
    let running: usize = futures::future::join_all(a_ids.iter().map(|id| a.status(id)))
        .await
        .iter()
        .filter(|s| s.body["status"] == "IN_PROGRESS")
        .count();
    assert!(running <= 1, "key A has {running} jobs running with a limit of 1");
    let mut spans = Vec::new();
    for id in &a_ids {
        let r = a.wait_done(id, DONE).await;
        spans.push((r.body["started_at"].as_str().unwrap().to_owned(), r.body["completed_at"].as_str().unwrap().to_owned()));
    }
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "A's jobs never overlapped: {spans:?}");
    }
}
