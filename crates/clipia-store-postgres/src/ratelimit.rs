//! The request-rate limiter shared by every node: one token bucket per key in the UNLOGGED
//! `rate_buckets` table, so a key's quota holds however many nodes its requests reach.
//!
//! The checks that arrive at a node together go to the database as one call
//! (`clipia_rate_batch`, migration `0004`): each key's bucket is refilled and spent once for all
//! of that key's requests in the batch, and the first of them, in arrival order, get its tokens.
//!
//! Why PostgreSQL and not Redis: the nodes already share the database and keep their counters
//! there; a batched call on a table that skips the write-ahead log costs less per request than a
//! Redis round trip does on the same machine (see BENCHMARKS.md), and an operator runs one
//! stateful service instead of two.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use clipia_service::ratelimit::bucket_decision;
use clipia_service::{RateDecision, RateLimiter};
use clipia_store::StoreResult;
use sqlx::Row;

use crate::batch::{Batcher, Db};
use crate::rows::db_err;

/// Every this many checks, buckets idle long enough to be full again are deleted.
const SWEEP_EVERY_CHECKS: u64 = 10_000;
/// A bucket untouched this long has refilled completely (a quota is per minute).
const BUCKET_IDLE_MS: i64 = 60_000;

/// One request to count.
struct Check {
    key: String,
    per_minute: u32,
    now_ms: i64,
}

pub struct PgRateLimiter {
    db: Db,
    checks: AtomicU64,
    batcher: Batcher<Check, RateDecision>,
}

impl PgRateLimiter {
    pub fn new(db: Db) -> PgRateLimiter {
        let batcher = Batcher::spawn({
            let db = db.clone();
            move |checks| check_batch(db.clone(), checks)
        });
        PgRateLimiter { db, checks: AtomicU64::new(0), batcher }
    }
}

#[async_trait]
impl RateLimiter for PgRateLimiter {
    async fn check(&self, key: &str, per_minute: u32, now_ms: i64) -> RateDecision {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY_CHECKS == SWEEP_EVERY_CHECKS - 1 {
            let pool = self.db.pool.clone();
            tokio::spawn(async move {
                let _ = sqlx::query("DELETE FROM rate_buckets WHERE updated_ms < $1").bind(now_ms - BUCKET_IDLE_MS).execute(&pool).await;
            });
        }
        match self.batcher.call(Check { key: key.to_owned(), per_minute, now_ms }).await {
            Ok(decision) => decision,
            Err(e) => {
                // A database hiccup must not turn every call into a 429; the call itself will
                // meet the same database and fail or succeed on its own.
                tracing::warn!(error = %e, "rate limiter unavailable; allowing the request");
                bucket_decision(per_minute, f64::from(per_minute.max(1)) - 1.0, true)
            }
        }
    }
}

/// Counts a batch of checks in one call: the requests of each (key, quota) are counted together,
/// in the order they arrived.
async fn check_batch(db: Db, checks: Vec<Check>) -> Vec<StoreResult<RateDecision>> {
    // Sorted by key, so that concurrent batches of several nodes lock buckets in one order.
    let mut groups: BTreeMap<(&str, u32), Vec<usize>> = BTreeMap::new();
    for (i, c) in checks.iter().enumerate() {
        groups.entry((c.key.as_str(), c.per_minute)).or_default().push(i);
    }
    let keys: Vec<&str> = groups.keys().map(|(k, _)| *k).collect();
    let quotas: Vec<f64> = groups.keys().map(|(_, q)| f64::from((*q).max(1))).collect();
    let counts: Vec<i32> = groups.values().map(|v| v.len() as i32).collect();
    let now = checks.iter().map(|c| c.now_ms).max().unwrap_or(0);
    // One statement in its own transaction: when it fails, no bucket was spent.
    let rows = crate::retried(|| async {
        sqlx::query("SELECT ord, tokens_left, spent FROM clipia_rate_batch($1, $2, $3, $4)")
            .bind(&keys)
            .bind(&quotas)
            .bind(&counts)
            .bind(now)
            .fetch_all(&db.pool)
            .await
            .map_err(db_err)
    });
    let rows = match rows.await {
        Ok(rows) => rows,
        Err(e) => return vec![Err(e); checks.len()],
    };
    let mut out: Vec<StoreResult<RateDecision>> = Vec::with_capacity(checks.len());
    out.resize_with(checks.len(), || Err(clipia_store::StoreError::Backend("no answer for a rate check".into())));
    let groups: Vec<_> = groups.into_iter().collect();
    for row in &rows {
        let Some(((_, per_minute), members)) = usize::try_from(row.get::<i32, _>("ord") - 1).ok().and_then(|g| groups.get(g)) else {
            continue;
        };
        let left: f64 = row.get("tokens_left");
        let spent = row.get::<i32, _>("spent").max(0) as usize;
        for (nth, &i) in members.iter().enumerate() {
            out[i] = Ok(spread(*per_minute, left, spent, nth));
        }
    }
    out
}

/// The decision for the `nth` (from 0) of a group of requests that found `left + spent` tokens
/// and spent `spent` of them: the first `spent` are allowed, each seeing one token fewer.
fn spread(per_minute: u32, left: f64, spent: usize, nth: usize) -> RateDecision {
    if nth < spent {
        bucket_decision(per_minute, left + (spent - nth - 1) as f64, true)
    } else {
        bucket_decision(per_minute, left, false)
    }
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn a_group_counts_down_in_arrival_order_then_is_refused() {
        // 3 requests found 2.5 tokens: two spent, 0.5 left.
        let d: Vec<_> = (0..3).map(|n| spread(60, 0.5, 2, n)).collect();
        assert!(d[0].allowed && d[1].allowed && !d[2].allowed);
        assert_eq!((d[0].remaining, d[1].remaining, d[2].remaining), (1, 0, 0));
        assert_eq!(d[2].retry_after_s, 1, "half a token at one per second");
    }
}
