//! Store-level benchmarks of the PostgreSQL store (no HTTP): submit throughput, claim+complete
//! throughput, and pickup latency from a submit on one node to a claim on another woken by
//! NOTIFY. Each run uses a fresh schema of its own.
//!
//!   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release -p clipia-store-postgres --example pgbench -- [jobs] [workers]

use std::sync::Arc;
use std::time::{Duration, Instant};

use clipia_core::{ApiKey, JobError, Mode, RequestId, Scopes};
use clipia_store::*;
use clipia_service::RateLimiter;
use clipia_store_postgres::{Heard, Note, PgStore};
use serde_json::json;

/// Accounts the load is spread over (each with one live key), as a multi-tenant server sees it.
const ACCOUNTS: usize = 32;
/// Rate-limiter checks, spread over this many keys.
const RATE_CHECKS: usize = 20_000;
const RATE_KEYS: usize = 1_000;
/// Pickup-latency samples, one at a time.
const PICKUP_SAMPLES: usize = 300;

async fn open(base: &str, schema: &str, pool: u32) -> PgStore {
    let sep = if base.contains('?') { '&' } else { '?' };
    PgStore::open(&format!("{base}{sep}options=-c%20search_path%3D{schema}&application_name={schema}"), pool).await.expect("open")
}

fn job(tenant: &Tenant, key: &KeyRecord, now: i64) -> NewJob {
    NewJob {
        id: RequestId::new(),
        tenant: tenant.clone(),
        key: key.id.clone(),
        model: "clipia-mosaic".into(),
        lane: "builtin".into(),
        input: json!({"prompt": "a benchmark"}),
        metadata: None,
        webhook_url: None,
        cost: 1,
        reserve: true,
        initial: InitialState::Queued { run_after: now },
        idempotency: None,
        warnings: json!([]),
        queued_jobs_max: u32::MAX,
        now_ms: now,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (jobs, workers) = (args.first().copied().unwrap_or(20_000), args.get(1).copied().unwrap_or(32));
    let schema = format!("clipia_bench_{:08x}", rand::random::<u32>());
    let store = Arc::new(open(&base, &schema, workers as u32 + 2).await);
    let mut tenants = Vec::new();
    for i in 0..ACCOUNTS {
        let a = store.create_account(&format!("bench-{i}"), 0).await.unwrap();
        store.grant_credits(&a.id, 1_000_000_000, "bench", 0).await.unwrap();
        let key = store.create_key(NewKey::for_secret(&ApiKey::generate(Mode::Live), a.id.clone(), Scopes::all(), None), 0).await.unwrap();
        tenants.push((Tenant { account: a.id, mode: Mode::Live }, key));
    }
    let tenants = Arc::new(tenants);

    // Submit throughput: `workers` tasks, each submitting for the accounts in turn.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (store, tenants) = (store.clone(), tenants.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < jobs {
                let (t, k) = &tenants[i % tenants.len()];
                assert!(matches!(store.submit(job(t, k, now_ms())).await.unwrap(), SubmitOutcome::Created(_)));
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!("submit: {jobs} jobs, {workers} tasks, {:.0}/s", jobs as f64 / secs);

    // Claim + complete throughput over the queue just built.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let runner = format!("bench-{w}");
            let mut n = 0usize;
            loop {
                let claim = ClaimRequest { lane: "builtin", runner: &runner, lease_ms: 30_000, now_ms: now_ms(), concurrency_default: 1_000_000 };
                let Some(c) = store.claim(claim).await.unwrap() else { break };
                let end = if n % 10 == 9 { JobEnd::Failed(JobError::new("X", "bench")) } else { JobEnd::Completed { output: json!({}), used: 1 } };
                store.finish(&c.lease, end, now_ms()).await.unwrap().expect("still leased");
                n += 1;
            }
            n
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!("claim+complete: {done} jobs, {workers} tasks, {:.0}/s", done as f64 / secs);
    let problems = store.audit().await.unwrap();
    println!("audit: {}", if problems.is_empty() { "ledger ok".to_owned() } else { format!("{problems:?}") });

    // The shared rate limiter: throughput with `workers` tasks, then one caller's latency.
    let limiter = Arc::new(store.rate_limiter());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < RATE_CHECKS {
                limiter.check(&format!("key-{}", i % RATE_KEYS), 1_000_000, now_ms()).await;
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    for i in 0..1_000 {
        let t = Instant::now();
        limiter.check(&format!("key-{}", i % RATE_KEYS), 1_000_000, now_ms()).await;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "rate limiter: {:.0} checks/s with {workers} tasks; one caller p50={:.2} ms p99={:.2} ms",
        RATE_CHECKS as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );

    // Pickup latency: node A submits; node B's idle runner is woken by NOTIFY and claims.
    let other = Arc::new(open(&base, &schema, 4).await);
    let mut heard = other.listen();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = Vec::with_capacity(PICKUP_SAMPLES);
    let (t, k) = &tenants[0];
    for _ in 0..PICKUP_SAMPLES {
        while heard.try_recv().is_ok() {}
        let sent = Instant::now();
        store.submit(job(t, k, now_ms())).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), heard.recv()).await {
                Ok(Some(Heard::Note(Note::Wake { .. }))) => break,
                Ok(Some(_)) => continue,
                _ => panic!("no wake-up within 5 s"),
            }
        }
        let claim = ClaimRequest { lane: "builtin", runner: "b", lease_ms: 30_000, now_ms: now_ms(), concurrency_default: 1_000_000 };
        let c = other.claim(claim).await.unwrap().expect("the job");
        samples.push(sent.elapsed().as_secs_f64() * 1000.0);
        other.finish(&c.lease, JobEnd::Completed { output: json!({}), used: 1 }, now_ms()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "pickup (submit on A -> NOTIFY -> claim on B): n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        samples.len(),
        pct(&samples, 0.5),
        pct(&samples, 0.9),
        pct(&samples, 0.99),
        samples[samples.len() - 1]
    );
}
