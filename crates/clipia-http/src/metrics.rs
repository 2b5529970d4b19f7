//! Prometheus metrics of this node, in a registry owned by the app (no global state, so several
//! servers can share a process in tests).

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    mode: String,
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Histogram,
    jobs_submitted: Family<ModeLabels, Counter>,
    pub rate_limited: Counter,
    jobs_queued: Gauge<u64, AtomicU64>,
    jobs_in_progress: Gauge<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("clipia");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let jobs_submitted = Family::<ModeLabels, Counter>::default();
        let rate_limited = Counter::default();
        let jobs_queued = Gauge::<u64, AtomicU64>::default();
        let jobs_in_progress = Gauge::<u64, AtomicU64>::default();
        registry.register("http_requests", "HTTP requests by route and status", http_requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer an HTTP request", http_seconds.clone());
        registry.register("jobs_submitted", "Jobs created by submit, by key mode", jobs_submitted.clone());
        registry.register("rate_limited", "Requests refused by the per-key rate limit", rate_limited.clone());
        registry.register("jobs_queued", "Jobs waiting in the queue", jobs_queued.clone());
        registry.register("jobs_in_progress", "Jobs running now", jobs_in_progress.clone());
        Metrics { registry, http_requests, http_seconds, jobs_submitted, rate_limited, jobs_queued, jobs_in_progress }
    }
}

impl Metrics {
    pub fn submitted(&self, mode: &str) {
        self.jobs_submitted.get_or_create(&ModeLabels { mode: mode.to_owned() }).inc();
    }

    pub fn set_queue(&self, queued: u64, in_progress: u64) {
        self.jobs_queued.set(queued);
        self.jobs_in_progress.set(in_progress);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Counts and times every request by its route template (never the raw path, which holds ids).
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state.metrics.http_seconds.observe(started.elapsed().as_secs_f64());
    state.metrics.http_requests.get_or_create(&HttpLabels { method, route, status: response.status().as_u16() }).inc();
    response
}
