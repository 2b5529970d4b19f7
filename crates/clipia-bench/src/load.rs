//! Sending the load: the pooled client, one operation, and the open and closed loops.
//!
//! Every worker records into one shared [`Stats`] as each request ends, so that whatever is
//! abandoned at the end of the drain leaves the rest of the numbers intact.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::{
    Arrival, Operation, Options, CONCURRENCY_MAX, DRAIN_MS, IN_FLIGHT_MAX, LATENCY_US_MAX, REQUEST_TIMEOUT_MS,
    STATUS_POLLS_MAX, STATUS_WAIT_S,
};

/// How often the open loop checks whether its last requests have been answered.
const DRAIN_POLL_MS: u64 = 5;

/// What one request (or one submit-to-completed round trip) ended with.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    Ok,
    /// An HTTP status other than the expected one.
    Status(u16),
    /// No usable answer: a transport error, a timeout, a job that did not complete, …
    Error(&'static str),
}

/// Counters and latency histograms of one measured phase.
pub struct Stats {
    /// Requests sent (for `submit-to-completed`: round trips started).
    pub sent: u64,
    pub ok: u64,
    /// Unexpected HTTP statuses, by code.
    pub statuses: BTreeMap<u16, u64>,
    /// Other failures, by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Successful requests: from the scheduled send time (open loop) or the send (closed loop), µs.
    pub latency: Histogram<u64>,
    /// Successful requests: from the actual send, µs.
    pub service: Histogram<u64>,
}

impl Stats {
    fn new() -> Stats {
        let h = || Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds");
        Stats { sent: 0, ok: 0, statuses: BTreeMap::new(), errors: BTreeMap::new(), latency: h(), service: h() }
    }

    fn record(&mut self, outcome: Outcome, latency: Duration, service: Duration) {
        let us = |d: Duration| (d.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        match outcome {
            Outcome::Ok => {
                self.ok += 1;
                self.latency.saturating_record(us(latency));
                self.service.saturating_record(us(service));
            }
            Outcome::Status(code) => *self.statuses.entry(code).or_default() += 1,
            Outcome::Error(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    pub fn failed(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.errors.values().sum::<u64>()
    }
}

/// The measured phase: its stats and how long it lasted, from the first send to the last answer.
pub struct RunResult {
    pub stats: Stats,
    pub elapsed: Duration,
    /// Requests still unanswered when the drain ended (abandoned, not counted as sent-and-answered).
    pub abandoned: u64,
}

type Shared = Arc<Mutex<Stats>>;

/// Everything a request needs, shared by all workers.
struct Ctx {
    client: Client<HttpConnector, Full<Bytes>>,
    operation: Operation,
    base: String,
    submit_uri: String,
    auth: HeaderValue,
    body: Bytes,
    idempotency: bool,
    /// Makes idempotency keys unique across runs against the same server.
    nonce: String,
}

impl Ctx {
    fn new(operation: Operation, o: &Options) -> anyhow::Result<Ctx> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(CONCURRENCY_MAX.max(IN_FLIGHT_MAX))
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let base = o.url.trim_end_matches('/').to_owned();
        let body = format!(r#"{{"input":{}}}"#, o.input);
        let nonce = format!(
            "{:x}-{:x}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        );
        Ok(Ctx {
            client,
            operation,
            submit_uri: format!("{base}/v1/models/{}", o.model),
            base,
            auth: HeaderValue::from_str(&format!("Bearer {}", o.key))?,
            body: Bytes::from(body),
            idempotency: o.idempotency,
            nonce,
        })
    }

    /// One HTTP exchange, body read to the end (so that the connection goes back to the pool).
    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), &'static str> {
        let call = async {
            let response = self.client.request(request).await.map_err(|_| "connection")?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|_| "body")?.to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), call).await.map_err(|_| "timeout")?
    }

    fn get(&self, uri: String) -> Request<Full<Bytes>> {
        let mut r = Request::new(Full::new(Bytes::new()));
        *r.uri_mut() = uri.parse().expect("a URI built from a checked base URL");
        r.headers_mut().insert(AUTHORIZATION, self.auth.clone());
        r
    }

    async fn submit(&self, seq: u64) -> Result<Bytes, Outcome> {
        let mut r = Request::new(Full::new(self.body.clone()));
        *r.method_mut() = Method::POST;
        *r.uri_mut() = self.submit_uri.parse().map_err(|_| Outcome::Error("bad_uri"))?;
        let h = r.headers_mut();
        h.insert(AUTHORIZATION, self.auth.clone());
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.idempotency {
            let key = format!("bench-{}-{seq}", self.nonce);
            h.insert("idempotency-key", HeaderValue::from_str(&key).map_err(|_| Outcome::Error("bad_key"))?);
        }
        match self.exchange(r).await {
            Ok((StatusCode::OK, body)) => Ok(body),
            Ok((status, _)) => Err(Outcome::Status(status.as_u16())),
            Err(kind) => Err(Outcome::Error(kind)),
        }
    }

    async fn one(&self, seq: u64) -> Outcome {
        let body = match self.submit(seq).await {
            Ok(body) => body,
            Err(outcome) => return outcome,
        };
        if self.operation == Operation::Submit {
            return Outcome::Ok;
        }
        let Some((id, mut status)) = id_and_status(&body) else { return Outcome::Error("unparsable_submit") };
        let mut polls = 0;
        while !is_terminal(&status) {
            if polls == STATUS_POLLS_MAX {
                return Outcome::Error("not_terminal");
            }
            polls += 1;
            let uri = format!("{}/v1/requests/{id}/status?wait={STATUS_WAIT_S}", self.base);
            status = match self.exchange(self.get(uri)).await {
                Ok((StatusCode::OK, body)) => match id_and_status(&body) {
                    Some((_, s)) => s,
                    None => return Outcome::Error("unparsable_status"),
                },
                Ok((code, _)) => return Outcome::Status(code.as_u16()),
                Err(kind) => return Outcome::Error(kind),
            };
        }
        match self.exchange(self.get(format!("{}/v1/requests/{id}", self.base))).await {
            Ok((StatusCode::OK, body)) => match id_and_status(&body) {
                Some((_, s)) if s == "COMPLETED" => Outcome::Ok,
                Some(_) => Outcome::Error("job_not_completed"),
                None => Outcome::Error("unparsable_result"),
            },
            Ok((code, _)) => Outcome::Status(code.as_u16()),
            Err(kind) => Outcome::Error(kind),
        }
    }
}

fn id_and_status(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some((v.get("request_id")?.as_str()?.to_owned(), v.get("status")?.as_str()?.to_owned()))
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "COMPLETED" | "FAILED" | "CANCELED")
}

/// Runs the warm-up (discarded), then the measured phase.
pub async fn run(operation: Operation, arrival: Arrival, o: &Options) -> anyhow::Result<RunResult> {
    let ctx = Arc::new(Ctx::new(operation, o)?);
    let seq = Arc::new(AtomicU64::new(0));
    if o.warmup > 0 {
        phase(&ctx, &seq, arrival, Duration::from_secs(o.warmup)).await;
    }
    Ok(phase(&ctx, &seq, arrival, Duration::from_secs(o.duration)).await)
}

async fn phase(ctx: &Arc<Ctx>, seq: &Arc<AtomicU64>, arrival: Arrival, duration: Duration) -> RunResult {
    let stats: Shared = Arc::new(Mutex::new(Stats::new()));
    let start = Instant::now();
    let abandoned = match arrival {
        Arrival::ClosedLoop { concurrency } => closed_loop(ctx, seq, &stats, concurrency, start + duration).await,
        Arrival::OpenLoop { rate_per_s } => open_loop(ctx, seq, &stats, rate_per_s, start, duration).await,
    };
    let elapsed = start.elapsed();
    let stats = std::mem::replace(&mut *stats.lock().unwrap_or_else(|p| p.into_inner()), Stats::new());
    RunResult { stats, elapsed, abandoned }
}

fn record(stats: &Shared, outcome: Outcome, latency: Duration, service: Duration) {
    stats.lock().unwrap_or_else(|p| p.into_inner()).record(outcome, latency, service);
}

/// `concurrency` workers, each with one request in flight, until `deadline`.
async fn closed_loop(ctx: &Arc<Ctx>, seq: &Arc<AtomicU64>, stats: &Shared, concurrency: usize, deadline: Instant) -> u64 {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (ctx, seq, stats, in_flight) = (ctx.clone(), seq.clone(), stats.clone(), in_flight.clone());
        workers.spawn(async move {
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                stats.lock().unwrap_or_else(|p| p.into_inner()).sent += 1;
                in_flight.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let outcome = ctx.one(n).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                record(&stats, outcome, sent.elapsed(), sent.elapsed());
            }
        });
    }
    let drained = tokio::time::timeout_at(deadline + Duration::from_millis(DRAIN_MS), async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        workers.abort_all();
    }
    in_flight.load(Ordering::Relaxed) as u64
}

/// Requests scheduled at `rate_per_s` for `duration`, each sent at its time whatever the others
/// are doing; latency counts from the scheduled time.
async fn open_loop(
    ctx: &Arc<Ctx>,
    seq: &Arc<AtomicU64>,
    stats: &Shared,
    rate_per_s: u64,
    start: Instant,
    duration: Duration,
) -> u64 {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let total = rate_per_s * duration.as_secs();
    for i in 0..total {
        let due = start + Duration::from_nanos((u128::from(i) * 1_000_000_000 / u128::from(rate_per_s)) as u64);
        tokio::time::sleep_until(due).await;
        if in_flight.load(Ordering::Relaxed) >= IN_FLIGHT_MAX {
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            *s.errors.entry("client_overloaded").or_default() += 1;
            continue;
        }
        stats.lock().unwrap_or_else(|p| p.into_inner()).sent += 1;
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (ctx, stats, in_flight) = (ctx.clone(), stats.clone(), in_flight.clone());
        let n = seq.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = ctx.one(n).await;
            let now = Instant::now();
            record(&stats, outcome, now - due, now - sent);
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let drain_until = Instant::now() + Duration::from_millis(DRAIN_MS);
    while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(DRAIN_POLL_MS)).await;
    }
    in_flight.load(Ordering::Relaxed) as u64
}
