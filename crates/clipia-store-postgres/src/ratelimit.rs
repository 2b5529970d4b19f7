//! The request-rate limiter shared by every node: one token bucket per key in the UNLOGGED
//! `rate_buckets` table, refilled and spent by a single upsert, so a key's quota holds however
//! many nodes its requests reach.
//!
//! Why PostgreSQL and not Redis: the nodes already share the database and keep their counters
//! there; one statement per authenticated call on a table that skips the write-ahead log costs
//! about what a Redis round trip does on the same machine (see BENCHMARKS.md), and an operator
//! runs one stateful service instead of two.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use clipia_service::ratelimit::bucket_decision;
use clipia_service::{RateDecision, RateLimiter};
use sqlx::postgres::PgPool;
use sqlx::Row;

/// Every this many checks, buckets idle long enough to be full again are deleted.
const SWEEP_EVERY_CHECKS: u64 = 10_000;
/// A bucket untouched this long has refilled completely (a quota is per minute).
const BUCKET_IDLE_MS: i64 = 60_000;

pub struct PgRateLimiter {
    pool: PgPool,
    checks: AtomicU64,
}

impl PgRateLimiter {
    pub fn new(pool: PgPool) -> PgRateLimiter {
        PgRateLimiter { pool, checks: AtomicU64::new(0) }
    }
}

#[async_trait]
impl RateLimiter for PgRateLimiter {
    async fn check(&self, key: &str, per_minute: u32, now_ms: i64) -> RateDecision {
        let quota = f64::from(per_minute.max(1));
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY_CHECKS == SWEEP_EVERY_CHECKS - 1 {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                let _ = sqlx::query("DELETE FROM rate_buckets WHERE updated_ms < $1").bind(now_ms - BUCKET_IDLE_MS).execute(&pool).await;
            });
        }
        let row = sqlx::query(
            "INSERT INTO rate_buckets AS b (key, tokens, allowed, updated_ms) VALUES ($1, $2 - 1, TRUE, $3) \
             ON CONFLICT (key) DO UPDATE SET \
               tokens = least($2, b.tokens + greatest($3 - b.updated_ms, 0) * $2 / 60000.0) \
                 - CASE WHEN least($2, b.tokens + greatest($3 - b.updated_ms, 0) * $2 / 60000.0) >= 1 THEN 1 ELSE 0 END, \
               allowed = least($2, b.tokens + greatest($3 - b.updated_ms, 0) * $2 / 60000.0) >= 1, \
               updated_ms = greatest(b.updated_ms, $3) \
             RETURNING tokens, allowed",
        )
        .bind(key)
        .bind(quota)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => bucket_decision(per_minute, row.get::<f64, _>(0), row.get::<bool, _>(1)),
            Err(e) => {
                // A database hiccup must not turn every call into a 429; the call itself will
                // meet the same database and fail or succeed on its own.
                tracing::warn!(error = %e, "rate limiter unavailable; allowing the request");
                bucket_decision(per_minute, quota - 1.0, true)
            }
        }
    }
}
