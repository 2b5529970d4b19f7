//! Per-key request rate limits (SPEC §7), behind a trait so that a multi-node deployment can
//! keep the state in a shared store.
//!
//! The in-process limiter is a token bucket per key: capacity = the per-minute quota, refilled
//! continuously at quota/60 per second. It is written here rather than taken from `governor`
//! because every key may have its own quota (per-account overrides) and every response reports
//! the exact remaining count and reset time, which a keyed limiter with one shared quota does
//! not give.

use std::collections::HashMap;
use std::sync::Mutex;

/// The outcome of counting one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_s: u64,
    /// Seconds until the next request would be allowed (0 when allowed now).
    pub retry_after_s: u64,
}

/// Async so that a multi-node deployment can keep the buckets in a shared store.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request of `key` against `per_minute`.
    async fn check(&self, key: &str, per_minute: u32, now_ms: i64) -> RateDecision;
}

/// The decision for a token bucket of `per_minute` that holds `tokens` after this request
/// (after taking one token when `allowed`); shared by every limiter so all report alike.
pub fn bucket_decision(per_minute: u32, tokens: f64, allowed: bool) -> RateDecision {
    let quota = f64::from(per_minute.max(1));
    let tokens = tokens.clamp(0.0, quota);
    let ms_per_token = 60_000.0 / quota;
    RateDecision {
        allowed,
        limit: per_minute,
        remaining: tokens.floor() as u32,
        reset_s: (((quota - tokens) * ms_per_token) / 1000.0).ceil() as u64,
        retry_after_s: if allowed { 0 } else { (((1.0 - tokens) * ms_per_token) / 1000.0).ceil().max(1.0) as u64 },
    }
}

/// Buckets kept before idle, full ones are swept.
const BUCKETS_SWEEP_AT: usize = 100_000;

#[derive(Default)]
pub struct LocalRateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

fn refill(b: Bucket, per_minute: f64, now_ms: i64) -> f64 {
    let elapsed = (now_ms - b.updated_ms).max(0) as f64;
    (b.tokens + elapsed * per_minute / 60_000.0).min(per_minute)
}

#[async_trait::async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: &str, per_minute: u32, now_ms: i64) -> RateDecision {
        let quota = f64::from(per_minute.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= BUCKETS_SWEEP_AT {
            buckets.retain(|_, b| refill(*b, quota, now_ms) < quota);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: quota, updated_ms: now_ms });
        let mut tokens = refill(*bucket, quota, now_ms);
        let allowed = tokens >= 1.0;
        if allowed {
            tokens -= 1.0;
        }
        *bucket = Bucket { tokens, updated_ms: now_ms };
        bucket_decision(per_minute, tokens, allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_down_refuses_then_refills() {
        let l = LocalRateLimiter::default();
        for i in 0..3 {
            let d = l.check("k", 3, 0).await;
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
        }
        let refused = l.check("k", 3, 0).await;
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_s, 20, "one token per 20 s at 3/min");
        assert!(!l.check("k", 3, 19_000).await.allowed);
        assert!(l.check("k", 3, 20_500).await.allowed);
        assert!(l.check("other", 3, 0).await.allowed, "keys are independent");
    }
}
