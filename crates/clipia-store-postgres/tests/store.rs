//! Store-level checks of the PostgreSQL store against a real database: the ledger, idempotency,
//! claims and fencing, and the invariants that must hold when two nodes share one database.
//! Without DATABASE_URL each test says why it skips.

use std::sync::Arc;

use clipia_core::{ApiKey, JobError, Mode, RequestId, Scopes, Status};
use clipia_store::*;
use clipia_store_postgres::PgStore;
use serde_json::json;

/// Opens a store in a fresh schema of its own; `None` (with the reason printed) without a database.
async fn fresh_store() -> Option<(PgStore, String)> {
    let Ok(base) = std::env::var("DATABASE_URL") else {
        eprintln!("skipping: DATABASE_URL is not set");
        return None;
    };
    let schema = format!("clipia_s_{:016x}", rand::random::<u64>());
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some((PgStore::open(&url, 8).await.expect("open the PostgreSQL store"), url))
}

struct Fixture {
    tenant: Tenant,
    key: KeyRecord,
}

async fn account_with_key(store: &PgStore, name: &str, credits: i64, mode: Mode) -> Fixture {
    let account = store.create_account(name, 1).await.unwrap();
    if credits > 0 {
        store.grant_credits(&account.id, credits, "test", 1).await.unwrap();
    }
    let secret = ApiKey::generate(mode);
    let key = store.create_key(NewKey::for_secret(&secret, account.id.clone(), Scopes::all(), None), 1).await.unwrap();
    Fixture { tenant: Tenant { account: account.id, mode }, key }
}

fn new_job(f: &Fixture, cost: u64, idem: Option<(&str, &str)>, now: i64) -> NewJob {
    NewJob {
        id: RequestId::new(),
        tenant: f.tenant.clone(),
        key: f.key.id.clone(),
        model: "m".into(),
        lane: "builtin".into(),
        input: json!({"prompt": "x"}),
        metadata: None,
        webhook_url: None,
        cost,
        reserve: f.tenant.mode == Mode::Live,
        initial: InitialState::Queued { run_after: now },
        idempotency: idem.map(|(k, fp)| IdempotencyClaim { key: k.into(), fingerprint: fp.into() }),
        warnings: json!([]),
        queued_jobs_max: 1000,
        now_ms: now,
    }
}

fn claim_req(now: i64) -> ClaimRequest<'static> {
    ClaimRequest { lane: "builtin", runner: "r", lease_ms: 1_000, now_ms: now, concurrency_default: 10 }
}

#[tokio::test]
async fn ledger_idempotency_claim_and_fencing() {
    let Some((store, _)) = fresh_store().await else { return };
    let f = account_with_key(&store, "a", 30, Mode::Live).await;

    let first = store.submit(new_job(&f, 12, Some(("k1", "fp")), 10)).await.unwrap();
    let SubmitOutcome::Created(snap) = first else { panic!("created, got {first:?}") };
    assert!(matches!(store.submit(new_job(&f, 12, Some(("k1", "fp")), 11)).await.unwrap(),
        SubmitOutcome::Replayed(s) if s.request_id == snap.request_id));
    assert!(matches!(store.submit(new_job(&f, 12, Some(("k1", "other")), 11)).await.unwrap(), SubmitOutcome::IdempotencyConflict));
    assert!(matches!(store.submit(new_job(&f, 12, None, 12)).await.unwrap(), SubmitOutcome::Created(_)));
    // 6 left: a third job of 12 is refused and leaves nothing behind, not even its key.
    assert!(matches!(store.submit(new_job(&f, 12, Some(("k2", "fp")), 13)).await.unwrap(),
        SubmitOutcome::InsufficientCredits { cost: 12, available: 6 }));
    assert_eq!(store.balance(&f.tenant.account).await.unwrap(), Balance { available: 6, reserved: 24 });
    assert!(matches!(store.submit(new_job(&f, 6, Some(("k2", "fp")), 14)).await.unwrap(), SubmitOutcome::Created(_)));

    let a = store.claim(claim_req(20)).await.unwrap().expect("a job to claim");
    assert_eq!(a.job.id, snap.request_id, "oldest first");
    assert_eq!(store.heartbeat(&a.lease, Some(50), 1_000, 21).await.unwrap(), LeaseState::Held { cancel_requested: false });
    // The lease runs out; the reaper requeues it and a second attempt takes over.
    assert_eq!(store.expire_leases(2_000).await.unwrap(), vec![a.job.id]);
    let b = store.claim(claim_req(2_001)).await.unwrap().unwrap();
    let b = if b.job.id == a.job.id { b } else { store.claim(claim_req(2_001)).await.unwrap().unwrap() };
    assert_eq!(b.lease.attempt, 2);
    // The first attempt is fenced out; the second settles exactly once.
    assert_eq!(store.heartbeat(&a.lease, None, 1_000, 2_002).await.unwrap(), LeaseState::Lost);
    assert!(store.finish(&a.lease, JobEnd::Completed { output: json!({}), used: 12 }, 2_003).await.unwrap().is_none());
    let done = store.finish(&b.lease, JobEnd::Completed { output: json!({"ok": 1}), used: 5 }, 2_004).await.unwrap().unwrap();
    assert_eq!((done.status, done.cost_charged), (Status::Completed, Some(5)));
    assert!(store.finish(&b.lease, JobEnd::Failed(JobError::new("X", "y")), 2_005).await.unwrap().is_none());
    assert_eq!(store.balance(&f.tenant.account).await.unwrap(), Balance { available: 7, reserved: 18 });
    assert_eq!(store.audit().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn two_nodes_keep_every_invariant() {
    let Some((one, url)) = fresh_store().await else { return };
    let two = Arc::new(PgStore::open(&url, 8).await.unwrap());
    let one = Arc::new(one);
    let f = Arc::new(account_with_key(&one, "b", 100, Mode::Live).await);
    one.set_limits(&f.tenant.account, LimitOverrides { concurrent_generations: Some(3), ..Default::default() }).await.unwrap();

    // 40 concurrent submits of 3 credits on two nodes: exactly 33 fit, never below zero.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (store, f) = (if i % 2 == 0 { one.clone() } else { two.clone() }, f.clone());
        tasks.push(tokio::spawn(async move { store.submit(new_job(&f, 3, None, 100)).await.unwrap() }));
    }
    let mut created = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), SubmitOutcome::Created(_)) {
            created += 1;
        }
    }
    assert_eq!(created, 33);
    assert_eq!(one.balance(&f.tenant.account).await.unwrap(), Balance { available: 1, reserved: 99 });

    // The same idempotency key on both nodes at once: one job, one answer.
    let (x, y) = tokio::join!(
        one.submit(new_job(&f, 0, Some(("same", "fp")), 101)),
        two.submit(new_job(&f, 0, Some(("same", "fp")), 101))
    );
    let ids: Vec<RequestId> = [x.unwrap(), y.unwrap()]
        .into_iter()
        .map(|o| match o {
            SubmitOutcome::Created(s) | SubmitOutcome::Replayed(s) => s.request_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids[0], ids[1]);

    // Claims racing on both nodes never exceed the key's concurrency of 3.
    let mut claims = Vec::new();
    for i in 0..12 {
        let store = if i % 2 == 0 { one.clone() } else { two.clone() };
        claims.push(tokio::spawn(async move { store.claim(claim_req(200)).await.unwrap() }));
    }
    let mut leases = Vec::new();
    for c in claims {
        leases.extend(c.await.unwrap());
    }
    assert_eq!(leases.len(), 3, "concurrency 3 holds across nodes");
    let mut seen: Vec<RequestId> = leases.iter().map(|c| c.job.id).collect();
    seen.dedup();
    assert_eq!(seen.len(), 3, "no job claimed twice");
    for (i, c) in leases.iter().enumerate() {
        let store = if i % 2 == 0 { &one } else { &two };
        store.finish(&c.lease, JobEnd::Failed(JobError::new("X", "y")), 300).await.unwrap().unwrap();
    }
    assert_eq!(one.audit().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn notifications_reach_the_other_node() {
    let Some((one, url)) = fresh_store().await else { return };
    let two = PgStore::open(&url, 4).await.unwrap();
    let mut heard = two.listen();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // the listener connects
    let f = account_with_key(&one, "c", 10, Mode::Live).await;
    assert!(matches!(one.submit(new_job(&f, 1, None, 1)).await.unwrap(), SubmitOutcome::Created(_)));
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), heard.recv()).await.expect("a note in time");
    assert_eq!(got, Some(clipia_store_postgres::Heard::Note(clipia_store_postgres::Note::Wake { lane: "builtin".into() })));
}

#[tokio::test]
async fn a_key_lookup_and_a_rate_check_cut_off_mid_statement_run_again() {
    use clipia_service::RateLimiter;
    use sqlx::Connection;
    let Some((store, url)) = fresh_store().await else { return };
    let f = account_with_key(&store, "cut", 0, Mode::Live).await;
    let limiter = store.rate_limiter();
    assert!(limiter.check("k1", 10, 1).await.allowed);
    // Another session holds both tables, so the next lookup and check wait inside PostgreSQL...
    let mut blocker = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE api_keys, rate_buckets IN ACCESS EXCLUSIVE MODE").execute(&mut blocker).await.unwrap();
    let lookup = tokio::spawn({
        let (store, hash) = (store.clone(), f.key.hash.clone());
        async move { store.key_by_hash(&hash).await }
    });
    let check = tokio::spawn(async move { limiter.check("k1", 10, 2).await });
    // ...until the backends it blocks are terminated.
    let mut waiting = 0;
    for _ in 0..100 {
        waiting = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))",
        )
        .fetch_one(&mut blocker)
        .await
        .unwrap();
        if waiting >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(waiting >= 2, "both statements wait on the lock");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))",
    )
    .execute(&mut blocker)
    .await
    .unwrap();
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    let found = lookup.await.unwrap().expect("the lookup ran again on a fresh connection");
    assert_eq!(found.map(|k| k.id), Some(f.key.id.clone()));
    let decision = check.await.unwrap();
    assert!(decision.allowed);
    assert_eq!(decision.remaining, 8, "the check ran again and spent one token, not zero or two");
}
