//! Clipia's application services: what the REST routes and the MCP tools both call.
//!
//! Architecture invariant: this crate knows the domain, the store trait and the catalog, but no
//! HTTP and no wire shapes; it returns records and [`ServiceError`]s. It also owns the runtime
//! that executes jobs (runners, lease expiry, housekeeping), because running a job and answering
//! about it must agree on every state change.

pub mod auth;
pub mod clock;
pub mod error;
pub mod files;
pub mod objects;
pub mod output;
pub mod ratelimit;
pub mod requests;
pub mod runner;
pub mod sandbox;
pub mod submit;
pub mod time;
pub mod webhooks;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use clipia_catalog::{Backend, Catalog, Model};
use clipia_core::{RequestId, Status};
use clipia_store::Store;
use tokio::sync::{broadcast, Notify};

pub use auth::Caller;
pub use clock::{Clock, SystemClock};
pub use error::ServiceError;
pub use files::{FileStore, LocalFiles, UrlSigner};
pub use ratelimit::{LocalRateLimiter, RateDecision, RateLimiter};

/// Events kept for slow subscribers; a subscriber that falls further behind re-reads the store.
const EVENTS_BUFFER: usize = 4096;

/// Settings of the running service, each with the default a fresh `serve` uses.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a claimed job is leased before another runner may take it over.
    pub lease_ms: i64,
    /// Jobs the builtin engines run at once on this node.
    pub builtin_runners: usize,
    pub requests_per_minute_default: u32,
    pub concurrent_generations_default: u32,
    pub queued_jobs_max_default: u32,
    /// Every builtin job runs at least this long (demos and crash tests); 0 in production.
    pub builtin_min_run_ms: u64,
    /// How long a stopping server lets running jobs finish before handing them back.
    pub drain_ms: u64,
    /// A name for this node's runners in leases and logs.
    pub node: String,
    /// The base of absolute URLs in webhook payloads: `--public-url`, or `http://<bind address>`.
    pub public_base_url: String,
    /// Whether webhooks may go to loopback, private, link-local and metadata addresses.
    pub allow_private_webhooks: bool,
    /// How long one webhook attempt may take (SPEC §8: 10 s).
    pub webhook_timeout_ms: u64,
    /// Multiplies the webhook retry schedule: 1.0 in production, small in tests.
    pub webhook_retry_scale: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lease_ms: 10_000,
            builtin_runners: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            requests_per_minute_default: clipia_core::limits::REQUESTS_PER_MINUTE_DEFAULT,
            concurrent_generations_default: clipia_core::limits::CONCURRENT_GENERATIONS_DEFAULT,
            queued_jobs_max_default: clipia_core::limits::QUEUED_JOBS_MAX_DEFAULT,
            builtin_min_run_ms: 0,
            drain_ms: 10_000,
            node: format!("node-{}", std::process::id()),
            public_base_url: "http://127.0.0.1:8080".to_owned(),
            allow_private_webhooks: false,
            webhook_timeout_ms: clipia_core::webhook::WEBHOOK_TIMEOUT_MS,
            webhook_retry_scale: 1.0,
        }
    }
}

/// A change of a request, broadcast inside this process to long-polls and event streams.
#[derive(Clone, Debug)]
pub struct JobEvent {
    pub id: RequestId,
    pub status: Status,
    pub progress: u8,
}

/// The queue lanes this node runs.
pub const LANE_BUILTIN: &str = "builtin";
pub const LANE_SANDBOX: &str = "sandbox";
pub const LANE_UPSTREAM: &str = "upstream";
pub const LANE_WORKER: &str = "worker";

/// A cheap-to-clone handle to everything the services share.
#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    /// Durable state: accounts, keys, ledger, jobs.
    pub store: Arc<dyn Store>,
    /// The model catalog (embedded or `--models`).
    pub catalog: Arc<Catalog>,
    /// Output files.
    pub files: Arc<dyn FileStore>,
    /// Signs file URLs with the secret all nodes share.
    pub signer: UrlSigner,
    pub clock: Arc<dyn Clock>,
    pub limiter: Arc<dyn RateLimiter>,
    pub config: Config,
    events: broadcast::Sender<JobEvent>,
    /// Wakes idle runners of a lane when a job is queued there.
    wake_builtin: Notify,
    wake_sandbox: Notify,
    /// Idempotency keys whose first submit is being processed on this node.
    in_flight: Mutex<HashSet<(String, &'static str, String)>>,
    /// Cancel flags of the jobs running on this node.
    running: Mutex<HashMap<RequestId, Arc<runner::RunFlags>>>,
    /// Wakes the webhook delivery worker (resends; terminal jobs arrive as events).
    webhook_wake: webhooks::WebhookWake,
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        files: Arc<dyn FileStore>,
        signer: UrlSigner,
        clock: Arc<dyn Clock>,
        limiter: Arc<dyn RateLimiter>,
        config: Config,
    ) -> App {
        App(Arc::new(Inner {
            store,
            catalog,
            files,
            signer,
            clock,
            limiter,
            config,
            events: broadcast::channel(EVENTS_BUFFER).0,
            wake_builtin: Notify::new(),
            wake_sandbox: Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
            running: Mutex::new(HashMap::new()),
            webhook_wake: webhooks::WebhookWake::default(),
        }))
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    pub(crate) fn publish(&self, id: RequestId, status: Status, progress: u8) {
        let _ = self.events.send(JobEvent { id, status, progress });
    }

    /// Whether a model can run live on this server now, and if not, why.
    pub fn availability(&self, model: &Model) -> Result<(), String> {
        match &model.backend {
            Backend::Builtin { engine } if clipia_engine::Style::from_engine_name(engine).is_some() => Ok(()),
            Backend::Builtin { engine } => Err(format!("The builtin engine {engine:?} is not part of this server.")),
            Backend::Upstream { provider, .. } => Err(format!(
                "This model runs on the upstream provider {provider:?}, and no API key for that provider is configured on this server."
            )),
            Backend::Worker => Err("This model runs on external workers, and none is connected.".to_owned()),
        }
    }

    /// Hands an event heard from another node (over the store's notifications) to this node's
    /// long-polls and event streams, exactly as if it had happened here.
    pub fn deliver(&self, event: JobEvent) {
        let _ = self.events.send(event);
    }

    /// Wakes this node's idle runners of `lane`: another node queued work there or freed a slot.
    pub fn wake_lane(&self, lane: &str) {
        self.wake(lane);
    }

    fn wake(&self, lane: &str) {
        match lane {
            LANE_BUILTIN => self.wake_builtin.notify_waiters(),
            LANE_SANDBOX => self.wake_sandbox.notify_waiters(),
            _ => {}
        }
    }
}
