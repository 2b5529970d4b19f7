//! `clipia-server serve`: open the store, bootstrap a fresh one, start the runners and the API,
//! and drain on SIGTERM / Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clipia_catalog::Catalog;
use clipia_core::keys::random_token;
use clipia_core::{ApiKey, Mode, Scopes};
use clipia_http::{AppState, Metrics};
use clipia_service::runner::Runtime;
use clipia_service::objects::{S3Files, S3Location};
use clipia_service::{App, Config, FileStore, LocalFiles, LocalRateLimiter, RateLimiter, SystemClock, UrlSigner};
use clipia_store::{NewKey, Store, StoreError};

use crate::admin::open_backend;
use crate::cli::ServeArgs;

/// The secret that signs file URLs, shared by every node through the store.
const FILE_URL_SECRET: &str = "file-url-signing-secret";
/// Extra time HTTP connections (long-polls, event streams) get to finish after the drain.
const HTTP_GRACE_MS: u64 = 2_000;

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLIPIA_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    let catalog = match &args.models {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Catalog::from_json(&text).with_context(|| format!("the model catalog {} is invalid", path.display()))?
        }
        None => Catalog::builtin(),
    };
    let backend = open_backend(&args.store).await?;
    let store = backend.store.clone();
    let public_url = args.public_url.as_ref().map(|u| u.trim_end_matches('/').to_owned());

    // Bound before the services start, so that webhook payloads can name the real address.
    let listener = tokio::net::TcpListener::bind(args.bind).await.with_context(|| format!("binding {}", args.bind))?;
    let addr = listener.local_addr()?;
    let display_url = public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    bootstrap(&*store, args.starter_credits, &display_url).await?;
    let secret = store.secret(FILE_URL_SECRET, &|| random_token(48)).await?;
    let config = Config {
        lease_ms: args.lease_ms.max(100),
        builtin_runners: args.builtin_runners.unwrap_or(Config::default().builtin_runners),
        requests_per_minute_default: args.default_rpm.max(1),
        concurrent_generations_default: args.default_concurrency.max(1),
        queued_jobs_max_default: args.default_max_queued.max(1),
        builtin_min_run_ms: args.builtin_min_run_ms,
        drain_ms: args.drain_ms,
        public_base_url: public_url.clone().unwrap_or_else(|| format!("http://{addr}")),
        allow_private_webhooks: args.allow_private_webhooks.unwrap_or_else(|| args.bind.ip().is_loopback()),
        webhook_timeout_ms: args.webhook_timeout_ms.max(1),
        webhook_retry_scale: if args.webhook_retry_scale.is_finite() { args.webhook_retry_scale.max(0.0) } else { 1.0 },
        ..Config::default()
    };
    // Request-rate buckets live where every node sees them: in PostgreSQL when there is one.
    let limiter: Arc<dyn RateLimiter> = match &backend.postgres {
        Some(pg) => Arc::new(pg.rate_limiter()),
        None => Arc::new(LocalRateLimiter::default()),
    };
    let app = App::new(
        store,
        Arc::new(catalog),
        open_files(&args)?,
        UrlSigner::new(&secret),
        Arc::new(SystemClock),
        limiter,
        config,
    );
    // Several nodes share one PostgreSQL database: hear what the others do.
    let _cluster = backend.postgres.as_ref().map(|pg| crate::cluster::spawn_listener(pg, app.clone()));
    let runtime = Runtime::start(&app);
    let state = AppState { app: app.clone(), public_url, metrics: Arc::new(Metrics::default()) };
    println!("Clipia listening on http://{addr}");
    tracing::info!(%addr, data_dir = %args.store.data_dir.display(), "serving");

    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(clipia_http::serve(listener, state, async move {
        let _ = http_stopped.await;
    }));
    shutdown_signal().await;
    tracing::info!("shutting down: no new jobs are claimed; running jobs finish or go back to the queue");
    let _ = stop_http.send(());
    runtime.shutdown().await;
    // Long-polls and event streams may hold connections; give them a moment, then leave.
    let _ = tokio::time::timeout(Duration::from_millis(HTTP_GRACE_MS), server).await;
    tracing::info!("stopped");
    Ok(())
}

/// Output files: on S3-compatible storage for an `s3://` --files-url, else in a directory.
fn open_files(args: &ServeArgs) -> anyhow::Result<Arc<dyn FileStore>> {
    match args.files_url.as_deref() {
        Some(url) if url.starts_with("s3://") => {
            let location = S3Location::parse(url, args.s3_endpoint.clone())
                .with_context(|| format!("--files-url {url:?} is not s3://bucket[/prefix]"))?;
            Ok(Arc::new(S3Files::new(&location).map_err(anyhow::Error::msg)?))
        }
        Some(dir) => Ok(Arc::new(LocalFiles::new(std::path::Path::new(dir.strip_prefix("file://").unwrap_or(dir))))),
        None => Ok(Arc::new(LocalFiles::new(&args.store.data_dir.join("files")))),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// On an empty store: account `default` with starter credits, one live and one test key,
/// printed once.
async fn bootstrap(store: &dyn Store, starter_credits: u64, url: &str) -> anyhow::Result<()> {
    if store.account_count().await? > 0 {
        return Ok(());
    }
    let now = crate::admin::now_ms();
    let account = match store.create_account("default", now).await {
        Ok(a) => a,
        Err(StoreError::Conflict(_)) => return Ok(()), // another node bootstrapped first
        Err(e) => return Err(e.into()),
    };
    if starter_credits > 0 {
        store.grant_credits(&account.id, starter_credits as i64, "starter credits", now).await?;
    }
    let live = ApiKey::generate(Mode::Live);
    let test = ApiKey::generate(Mode::Test);
    for (key, name) in [(&live, "bootstrap live key"), (&test, "bootstrap test key")] {
        let new = NewKey::for_secret(key, account.id.clone(), Scopes::all(), Some(name.to_owned()));
        store.create_key(new, now).await?;
    }
    let tenant = |mode| clipia_store::Tenant { account: account.id.clone(), mode };
    let live_whsec = crate::admin::webhook_secret(store, &tenant(Mode::Live), false).await?;
    let test_whsec = crate::admin::webhook_secret(store, &tenant(Mode::Test), false).await?;
    println!(
        "\nFirst start: created account \"default\" ({}) with {starter_credits} credits.\n\
         API keys — shown only now, store them somewhere safe:\n\
         \x20 live key: {}\n\
         \x20 test key: {}\n\
         Webhook signing secrets (again with `clipia-server webhooks secret --account default --mode live|test`):\n\
         \x20 live: {}\n\
         \x20 test: {}\n\n\
         Your first job — a test key completes at once with a sample and costs nothing:\n\
         \x20 export CLIPIA_KEY={test}\n\
         \x20 curl -X POST {url}/v1/models/nano-banana-2 -H \"Authorization: Key $CLIPIA_KEY\" \\\n\
         \x20   -H \"Content-Type: application/json\" -H \"Idempotency-Key: $(uuidgen)\" \\\n\
         \x20   -d '{{ \"input\": {{ \"prompt\": \"a sunset over mountains, cinematic\" }} }}'\n\
         \x20 curl {url}/v1/requests/<request_id> -H \"Authorization: Key $CLIPIA_KEY\"\n\n\
         A live key spends credits and renders a real PNG on this machine's CPU:\n\
         \x20 export CLIPIA_KEY={live}\n\
         \x20 curl -X POST {url}/v1/models/clipia-landscape -H \"Authorization: Key $CLIPIA_KEY\" \\\n\
         \x20   -H \"Content-Type: application/json\" -H \"Idempotency-Key: $(uuidgen)\" \\\n\
         \x20   -d '{{ \"input\": {{ \"prompt\": \"a sunset over mountains, cinematic\" }} }}'\n\
         \x20 curl \"{url}/v1/requests/<request_id>/status?wait=30\" -H \"Authorization: Key $CLIPIA_KEY\"\n\
         \x20 curl {url}/v1/requests/<request_id> -H \"Authorization: Key $CLIPIA_KEY\"\n",
        account.id,
        live.expose(),
        test.expose(),
        live_whsec,
        test_whsec,
        test = test.expose(),
        live = live.expose(),
    );
    Ok(())
}
