//! Webhooks (SPEC §8): the delivery worker that drains the outbox, the HTTP sender with its
//! SSRF guard, the payload and its signatures, signing secrets, and the delivery log.
//!
//! The outbox row is written by the store in the transaction that makes a job terminal; this
//! module only ever sends from it. A claim leases a row (its `next_attempt_at` moves past the
//! attempt's timeout), so a node that dies mid-send leaves the row to be re-sent after the lease:
//! at-least-once, never lost. The worker wakes at once on a terminal job event of this node
//! (and on resends), and polls for rows other nodes wrote and for retries that fell due.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clipia_core::webhook::{
    is_forbidden_ip, next_step, parse_retry_after_ms, signed_headers, AttemptOutcome, NextStep, WebhookSecret,
    SECRET_OVERLAP_MS,
};
use clipia_core::{RequestId, Scope, Status};
use clipia_store::{
    DeliveryLog, DeliveryNext, JobRecord, ResendOutcome, Tenant, WebhookAttempt, WebhookClaim, WebhookDelivery,
};
use rand::Rng;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::{App, Caller, ServiceError};

/// Deliveries in flight at once on this node, over all destinations.
pub const WEBHOOK_CONCURRENCY_MAX: u32 = 64;
/// Deliveries in flight at once to one destination (`host:port`), so that a slow or dead
/// receiver only ever holds this many of the slots above.
pub const WEBHOOK_PER_HOST_CONCURRENCY_MAX: u32 = 4;
/// With nothing announced, the worker still looks for due rows this often (rows written by
/// other nodes, leases of crashed nodes running out).
const WEBHOOK_POLL_MS: u64 = 1_000;
/// A claim's lease beyond the attempt's timeout: time to record the outcome.
const WEBHOOK_LEASE_MARGIN_MS: u64 = 30_000;
/// Pause after a store error before the worker tries again.
const ERROR_BACKOFF_MS: u64 = 1_000;

/// What the guard says about destinations on private networks, for messages.
const GUARD_HINT: &str = "this server does not send webhooks to loopback, private, link-local or metadata addresses \
     (an operator can allow them with --allow-private-webhooks)";

/// One signed event, as sent and as streamed to `clipia listen`.
#[derive(Clone, Debug)]
pub struct SignedEvent {
    pub webhook_id: String,
    /// `X-Clipia-*` and Standard Webhooks headers, in sending order.
    pub headers: Vec<(&'static str, String)>,
    /// The exact body that was signed.
    pub body: String,
}

/// The wake-up of the delivery worker (terminal events arrive on the job-event broadcast).
#[derive(Default)]
pub struct WebhookWake(tokio::sync::Notify);

/// Checks a submitted `webhook_url`: an absolute http(s) URL; with the guard on, a literal IP
/// may not be internal (host names are checked at delivery, on the addresses they resolve to).
pub fn check_destination(url: &str, allow_private: bool) -> Result<(), ServiceError> {
    let bad = |why: String| ServiceError::invalid("webhook_url", format!("webhook_url {why}."));
    let parsed = url::Url::parse(url).map_err(|e| bad(format!("is not a valid URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL".into()));
    }
    if let Some(ip) = literal_ip(&parsed) {
        if !allow_private && is_forbidden_ip(ip) {
            return Err(bad(format!("points to {ip}, which is refused: {GUARD_HINT}")));
        }
    }
    Ok(())
}

fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

impl App {
    /// The body Clipia sends for a terminal job (SPEC §8), with fresh signed file URLs.
    pub fn webhook_body(&self, job: &JobRecord) -> String {
        let value = match job.status {
            Status::Completed => json!({
                "request_id": job.id.to_string(),
                "status": "OK",
                "payload": {
                    "model": job.model,
                    "output": self.output(job, &self.config.public_base_url),
                    "cost": job.cost_charged.unwrap_or(0),
                },
            }),
            _ => {
                let error = job.error.clone().unwrap_or_else(|| clipia_core::JobError::new("UNKNOWN", "The request did not complete."));
                json!({
                    "request_id": job.id.to_string(),
                    "status": "ERROR",
                    "error": {"code": error.code, "message": error.message},
                })
            }
        };
        value.to_string()
    }

    /// The tenant's active secrets, oldest first, creating the first one on first use.
    pub async fn signing_secrets(&self, tenant: &Tenant) -> Result<Vec<WebhookSecret>, ServiceError> {
        let now = self.now_ms();
        let mut records = self.store.webhook_secrets(tenant, now).await?;
        if records.is_empty() {
            records = self.store.ensure_webhook_secret(tenant, WebhookSecret::generate().expose(), now).await?;
        }
        let secrets: Vec<WebhookSecret> = records.iter().filter_map(|r| WebhookSecret::parse(&r.secret)).collect();
        if secrets.is_empty() {
            return Err(ServiceError::Internal("the tenant's webhook secrets are unreadable".into()));
        }
        Ok(secrets)
    }

    /// Signs `job`'s event under `webhook_id` at the current time.
    pub async fn sign_event(&self, job: &JobRecord, webhook_id: &str) -> Result<SignedEvent, ServiceError> {
        let tenant = Tenant { account: job.account.clone(), mode: job.mode };
        let secrets = self.signing_secrets(&tenant).await?;
        let body = self.webhook_body(job);
        let headers = signed_headers(&secrets, webhook_id, self.now_ms() / 1000, body.as_bytes());
        Ok(SignedEvent { webhook_id: webhook_id.to_owned(), headers, body })
    }

    /// The signed event of one of the tenant's terminal requests, for the live event stream:
    /// under its outbox webhook id when it has one, else a fresh id. `None` when the request is
    /// not the tenant's or not terminal.
    pub async fn live_event(&self, tenant: &Tenant, id: &RequestId) -> Result<Option<SignedEvent>, ServiceError> {
        let Some(job) = self.store.job(tenant, id).await? else { return Ok(None) };
        if !job.status.is_terminal() {
            return Ok(None);
        }
        let logs = self.store.webhook_deliveries(tenant, id).await?;
        let webhook_id = logs
            .last()
            .map(|l| l.delivery.id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().hyphenated().to_string());
        self.sign_event(&job, &webhook_id).await.map(Some)
    }

    /// The newest signing secret of the caller's account in the key's mode (scope `admin`).
    pub async fn webhook_secret(&self, caller: &Caller) -> Result<String, ServiceError> {
        caller.require(Scope::Admin)?;
        let secrets = self.signing_secrets(&caller.tenant()).await?;
        Ok(secrets.last().map(|s| s.expose().to_owned()).unwrap_or_default())
    }

    /// Rotates the secret (scope `admin`): the old one keeps signing beside the new one for
    /// 24 h. Returns the new secret and when the previous one stops.
    pub async fn rotate_webhook_secret(&self, caller: &Caller) -> Result<(String, i64), ServiceError> {
        caller.require(Scope::Admin)?;
        let tenant = caller.tenant();
        self.signing_secrets(&tenant).await?; // a first secret, so that there is one to rotate out
        let now = self.now_ms();
        let new = WebhookSecret::generate();
        self.store.rotate_webhook_secret(&tenant, new.expose(), SECRET_OVERLAP_MS, now).await?;
        Ok((new.expose().to_owned(), now + SECRET_OVERLAP_MS))
    }

    /// A request's deliveries and their attempts; 404 across tenants.
    pub async fn webhook_deliveries(&self, caller: &Caller, id: &RequestId) -> Result<Vec<DeliveryLog>, ServiceError> {
        let tenant = caller.tenant();
        self.store.job(&tenant, id).await?.ok_or_else(ServiceError::request_not_found)?;
        Ok(self.store.webhook_deliveries(&tenant, id).await?)
    }

    /// Sends a finished request's webhook again now (scope `generate`), under the same id.
    pub async fn resend_webhook(&self, caller: &Caller, id: &RequestId) -> Result<WebhookDelivery, ServiceError> {
        caller.require(Scope::Generate)?;
        match self.store.resend_webhook(&caller.tenant(), id, self.now_ms()).await? {
            ResendOutcome::Armed(delivery) => {
                self.webhook_wake.0.notify_one();
                Ok(delivery)
            }
            ResendOutcome::NotFound => Err(ServiceError::request_not_found()),
            ResendOutcome::NoWebhookUrl => {
                Err(ServiceError::InvalidRequest { param: None, message: "This request has no webhook_url, so there is no webhook to resend.".into() })
            }
            ResendOutcome::NotTerminal => Err(ServiceError::InvalidRequest {
                param: None,
                message: "This request has not finished yet; its webhook is sent when it does.".into(),
            }),
        }
    }
}

// ---- sending ----------------------------------------------------------------------------------

/// The guard's refusal, carried through reqwest's error chain from the resolver.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolves names and keeps only addresses the guard allows, so the address reqwest connects
/// to is always one that was checked: a name that re-resolves to an internal address (DNS
/// rebinding) finds nothing to connect to.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| !is_forbidden_ip(a.ip())).collect();
            if allowed.is_empty() {
                let shown = all.first().map(|a| a.ip().to_string()).unwrap_or_else(|| "no address".into());
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(Refused(format!("{host} resolves to {shown}, which is refused: {GUARD_HINT}")));
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client deliveries go through: no redirects, no proxies (a proxy would connect on
/// our behalf to addresses the guard never saw), the attempt timeout, and the guard.
struct Sender {
    client: reqwest::Client,
    allow_private: bool,
    timeout_ms: u64,
}

/// How one attempt went, before the retry policy judges it.
struct Sent {
    outcome: AttemptOutcome,
    status: Option<u16>,
    error: Option<String>,
    retry_after_ms: Option<u64>,
}

impl Sender {
    fn new(allow_private: bool, timeout_ms: u64) -> Result<Sender, String> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_millis(timeout_ms))
            .user_agent(concat!("Clipia-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(Sender { client, allow_private, timeout_ms })
    }

    async fn send(&self, url: &str, event: &SignedEvent) -> Sent {
        let refused = |why: String| Sent { outcome: AttemptOutcome::Refused, status: None, error: Some(why), retry_after_ms: None };
        let parsed = match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            _ => return refused("the webhook_url is not an http(s) URL".into()),
        };
        // Literal IPs never reach the resolver, so the guard checks them here.
        if let Some(ip) = literal_ip(&parsed).filter(|ip| !self.allow_private && is_forbidden_ip(*ip)) {
            return refused(format!("{ip} is refused: {GUARD_HINT}"));
        }
        let mut request = self.client.post(parsed).header("content-type", "application/json");
        for (name, value) in &event.headers {
            request = request.header(*name, value);
        }
        match request.body(event.body.clone()).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
                // Dates are read against the receiver's own clock when it says what it is.
                let their_now =
                    header("date").and_then(|d| httpdate::parse_http_date(d).ok()).unwrap_or_else(std::time::SystemTime::now);
                let retry_after_ms = header("retry-after").and_then(|v| parse_retry_after_ms(v, their_now));
                Sent { outcome: AttemptOutcome::Status(status), status: Some(status), error: None, retry_after_ms }
            }
            Err(e) => {
                let e = e.without_url(); // a URL may carry credentials; never log or store it
                if let Some(refusal) = find_refusal(&e) {
                    return refused(refusal);
                }
                let error = if e.is_timeout() {
                    format!("no answer within {} ms (timeout)", self.timeout_ms)
                } else if e.is_connect() {
                    format!("could not connect: {}", root_cause(&e))
                } else {
                    format!("request failed: {}", root_cause(&e))
                };
                Sent { outcome: AttemptOutcome::Transport, status: None, error: Some(error), retry_after_ms: None }
            }
        }
    }
}

fn find_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        cur = err.source();
    }
    None
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// One attempt of one claimed delivery; returns when its next attempt is due, if any.
async fn attempt(app: App, sender: Arc<Sender>, delivery: WebhookDelivery) -> Option<i64> {
    let started_at = app.now_ms();
    let clock = Instant::now();
    let sent = match app.store.job_by_id(&delivery.request_id).await {
        Ok(Some(job)) => match app.sign_event(&job, &delivery.id).await {
            Ok(event) => sender.send(&delivery.url, &event).await,
            Err(e) => {
                tracing::error!(webhook_id = %delivery.id, error = %e, "could not sign a webhook");
                Sent { outcome: AttemptOutcome::Transport, status: None, error: Some("internal error while signing".into()), retry_after_ms: None }
            }
        },
        Ok(None) => Sent {
            outcome: AttemptOutcome::Refused,
            status: None,
            error: Some("the request no longer exists".into()),
            retry_after_ms: None,
        },
        Err(e) => {
            tracing::error!(webhook_id = %delivery.id, error = %e, "could not read a webhook's request");
            Sent { outcome: AttemptOutcome::Transport, status: None, error: Some("internal error while reading the request".into()), retry_after_ms: None }
        }
    };
    let duration_ms = clock.elapsed().as_millis() as i64;
    let retries_done = delivery.attempts.saturating_sub(delivery.round_start).saturating_sub(1) as usize;
    let jitter: f64 = rand::thread_rng().gen();
    let step = next_step(&sent.outcome, retries_done, jitter, app.config.webhook_retry_scale, sent.retry_after_ms);
    let now = app.now_ms();
    let (next, due) = match step {
        NextStep::Delivered => (DeliveryNext::Delivered, None),
        NextStep::RetryInMs(ms) => {
            let at_ms = now + ms as i64;
            (DeliveryNext::Retry { at_ms }, Some(at_ms))
        }
        NextStep::GiveUp(reason) => {
            let reason = match &sent.error {
                Some(error) if matches!(sent.outcome, AttemptOutcome::Refused) => error.clone(),
                Some(error) => format!("{reason}; last error: {error}"),
                None => reason,
            };
            (DeliveryNext::Failed { reason }, None)
        }
    };
    tracing::info!(
        webhook_id = %delivery.id,
        request_id = %delivery.request_id,
        host = %delivery.host,
        attempt = delivery.attempts,
        status = sent.status,
        error = sent.error.as_deref(),
        duration_ms,
        "webhook attempt"
    );
    let record = WebhookAttempt {
        webhook_id: delivery.id.clone(),
        number: delivery.attempts,
        started_at,
        duration_ms,
        status_code: sent.status,
        error: sent.error,
    };
    if let Err(e) = app.store.record_webhook_attempt(record, next, now).await {
        // The lease runs out and the row is attempted again: at-least-once.
        tracing::error!(webhook_id = %delivery.id, error = %e, "could not record a webhook attempt");
    }
    due
}

async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The delivery worker of this node: claims due rows within the concurrency limits, sends each
/// on its own task, and sleeps until a terminal event, a resend, a finished send, the next
/// known retry or the poll interval, whichever comes first.
pub(crate) async fn deliverer(app: App, mut stop: watch::Receiver<bool>) {
    let sender = match Sender::new(app.config.allow_private_webhooks, app.config.webhook_timeout_ms) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are not sent from this node");
            return;
        }
    };
    let lease_ms = (app.config.webhook_timeout_ms + WEBHOOK_LEASE_MARGIN_MS) as i64;
    let mut events = app.subscribe();
    let mut in_flight: HashMap<String, u32> = HashMap::new();
    let mut tasks: JoinSet<(String, Option<i64>)> = JoinSet::new();
    let mut next_due: Option<i64> = None;
    while !*stop.borrow() {
        let wake = app.webhook_wake.0.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let free = WEBHOOK_CONCURRENCY_MAX.saturating_sub(tasks.len() as u32);
        if free > 0 {
            let now = app.now_ms();
            if next_due.is_some_and(|d| d <= now) {
                next_due = None;
            }
            let claim = WebhookClaim { now_ms: now, lease_ms, limit: free, per_host_max: WEBHOOK_PER_HOST_CONCURRENCY_MAX, in_flight: &in_flight };
            match app.store.claim_webhooks(claim).await {
                Ok(claimed) => {
                    for delivery in claimed {
                        let host = delivery.host.clone();
                        *in_flight.entry(host.clone()).or_default() += 1;
                        let (app, sender) = (app.clone(), sender.clone());
                        tasks.spawn(async move { (host, attempt(app, sender, delivery).await) });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming webhooks failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)) => {}
                        _ = stopping(&mut stop) => {}
                    }
                    continue;
                }
            }
        }
        let poll_ms = next_due.map(|d| (d - app.now_ms()).clamp(0, WEBHOOK_POLL_MS as i64) as u64).unwrap_or(WEBHOOK_POLL_MS);
        let sleep = tokio::time::sleep(Duration::from_millis(poll_ms));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) if !ev.status.is_terminal() => continue, // progress: nothing to send
                    _ => break, // a terminal event (its outbox row just committed), or we lagged
                },
                _ = &mut wake => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok((host, due)) = done {
                        release(&mut in_flight, &host);
                        if let Some(due) = due {
                            next_due = Some(next_due.map_or(due, |d| d.min(due)));
                        }
                    }
                    break;
                }
                _ = &mut sleep => break,
                _ = stopping(&mut stop) => break,
            }
        }
    }
    // Drain: sends in hand get the drain time; any cut off is re-sent after its lease.
    let drain = Duration::from_millis(app.config.drain_ms);
    let _ = tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
}

fn release(in_flight: &mut HashMap<String, u32>, host: &str) {
    if let Some(n) = in_flight.get_mut(host) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            in_flight.remove(host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitted_urls_are_checked_for_scheme_and_literal_internal_addresses() {
        for ok in ["https://example.com/hook", "http://hooks.example.com:8080/x?y=1", "http://8.8.8.8/"] {
            assert!(check_destination(ok, false).is_ok(), "{ok}");
        }
        for refused in [
            "http://127.0.0.1:9000/x",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/", // 127.0.0.1 as one decimal number
            "http://0x7f.1/",
        ] {
            let e = check_destination(refused, false).unwrap_err();
            assert_eq!(e.param(), Some("webhook_url"), "{refused}");
            assert!(e.to_string().contains("refused"), "{refused}: {e}");
            assert!(check_destination(refused, true).is_ok(), "{refused} with private allowed");
        }
        assert!(check_destination("ftp://example.com/", true).is_err());
        assert!(check_destination("not a url", true).is_err());
        // Host names pass at submit: their addresses are checked when connecting.
        assert!(check_destination("http://localhost:9000/", false).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_internal_addresses() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = match GuardedResolver.resolve(name).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e,
        };
        assert!(find_refusal(err.as_ref()).is_some_and(|m| m.contains("localhost resolves to")), "{err}");
    }

    #[tokio::test]
    async fn a_refused_name_is_reported_as_refused_through_reqwest() {
        let sender = Sender::new(false, 2_000).unwrap();
        let event = SignedEvent { webhook_id: "w".into(), headers: Vec::new(), body: "{}".into() };
        for url in ["http://localhost:9/x", "http://127.0.0.1:9/x", "http://[::1]:9/x", "http://10.0.0.1/", "http://169.254.169.254/"] {
            let sent = sender.send(url, &event).await;
            assert_eq!(sent.outcome, AttemptOutcome::Refused, "{url}: {:?}", sent.error);
            assert!(sent.error.as_deref().is_some_and(|e| e.contains("refused")), "{url}");
        }
    }
}
