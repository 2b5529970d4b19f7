//! The runtime that executes jobs on this node: runners that claim leased jobs and run them,
//! the lease reaper that requeues jobs whose runner died, and housekeeping.
//!
//! A runner renews its lease on every heartbeat; if the store says the lease was lost, the
//! runner abandons the job (a newer attempt owns it and the store fences the stale one out).
//! Shutdown drains: runners stop claiming, jobs in hand get `drain_ms` to finish and are then
//! handed back to the queue.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clipia_catalog::{image_dimensions, Backend};
use clipia_core::job::{ERROR_GENERATION_FAILED, ERROR_TIMEOUT};
use clipia_core::limits::IDEMPOTENCY_TTL_MS;
use clipia_core::{JobError, RequestId, Status};
use clipia_engine::{render_image_with_progress, ImageSpec, Style};
use clipia_store::{ClaimRequest, Claimed, JobEnd, JobRecord, LeaseState};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

use crate::output::stored_image;
use crate::sandbox::{sample_output, SLOW_RUN_MS};
use crate::{App, LANE_BUILTIN, LANE_SANDBOX};

/// An idle runner looks for work at least this often, even without a wake-up.
const IDLE_POLL_MS: u64 = 500;
/// The longest gap between heartbeats (progress shows at this rate).
const HEARTBEAT_MS_MAX: u64 = 1_000;
/// A job running longer than this fails with TIMEOUT.
const JOB_RUN_MS_MAX: u64 = 10 * 60 * 1000;
/// How often idempotency records past their 24 h are pruned.
const PRUNE_EVERY_MS: u64 = 10 * 60 * 1000;
/// Pause after a store error before a loop tries again.
const ERROR_BACKOFF_MS: u64 = 1_000;

/// What the service and the heartbeat tell a job in progress on this node.
#[derive(Default)]
pub struct RunFlags {
    pub cancel: AtomicBool,
    pub progress: AtomicU8,
}

/// The background tasks of a node; dropped work is never lost, only handed back.
pub struct Runtime {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Runtime {
    pub fn start(app: &App) -> Runtime {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for i in 0..app.config.builtin_runners {
            tasks.push(tokio::spawn(builtin_runner(app.clone(), format!("{}/builtin-{i}", app.config.node), stopped.clone())));
        }
        tasks.push(tokio::spawn(sandbox_runner(app.clone(), stopped.clone())));
        tasks.push(tokio::spawn(reaper(app.clone(), stopped.clone())));
        tasks.push(tokio::spawn(crate::webhooks::deliverer(app.clone(), stopped.clone())));
        tasks.push(tokio::spawn(pruner(app.clone(), stopped)));
        Runtime { stop, tasks }
    }

    /// Stops claiming, lets jobs in hand finish (or hands them back after the drain time), and
    /// waits for every task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl App {
    /// Tells this node's runner of `id`, if it has that job, to stop it (a no-op otherwise).
    pub fn signal_cancel(&self, id: &RequestId) {
        if let Some(flags) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            flags.cancel.store(true, Ordering::SeqCst);
        }
    }

    fn heartbeat_ms(&self) -> u64 {
        ((self.config.lease_ms / 3).max(50) as u64).min(HEARTBEAT_MS_MAX)
    }
}

async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// This node's claim on the next job of `lane`, under its lease and default limits.
fn claim_request<'a>(app: &App, lane: &'a str, runner: &'a str) -> ClaimRequest<'a> {
    ClaimRequest {
        lane,
        runner,
        lease_ms: app.config.lease_ms,
        now_ms: app.now_ms(),
        concurrency_default: app.config.concurrent_generations_default,
    }
}

async fn builtin_runner(app: App, runner: String, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let woken = app.wake_builtin.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match app.store.claim(claim_request(&app, LANE_BUILTIN, &runner)).await {
            Ok(Some(claimed)) => {
                let (job, flags) = (claimed.job.clone(), Arc::new(RunFlags::default()));
                supervise(&app, claimed, &mut stop, flags.clone(), execute_builtin(app.clone(), job, flags)).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = woken => {}
                    _ = sleep(Duration::from_millis(IDLE_POLL_MS)) => {}
                    _ = stopping(&mut stop) => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "claim failed");
                sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
            }
        }
    }
}

/// Runs one claimed job beside its heartbeat, then records how it ended (fenced by the lease).
async fn supervise(
    app: &App,
    claimed: Claimed,
    stop: &mut watch::Receiver<bool>,
    flags: Arc<RunFlags>,
    work: impl std::future::Future<Output = JobEnd>,
) {
    let Claimed { lease, job } = claimed;
    app.running.lock().unwrap_or_else(|p| p.into_inner()).insert(job.id, flags.clone());
    app.publish(job.id, Status::InProgress, 0);
    tracing::info!(request_id = %job.id, model = %job.model, attempt = lease.attempt, "job started");

    let mut reported = 0u8;
    let mut beat = tokio::time::interval(Duration::from_millis(app.heartbeat_ms()));
    beat.tick().await;
    let started = Instant::now();
    let mut drain_until: Option<Instant> = None;
    tokio::pin!(work);
    let end = loop {
        tokio::select! {
            end = &mut work => break Some(end),
            _ = beat.tick() => {
                let progress = flags.progress.load(Ordering::Relaxed);
                // Progress is written (and told to other nodes) only when it moved.
                let moved = (progress != reported).then_some(progress);
                match app.store.heartbeat(&lease, moved, app.config.lease_ms, app.now_ms()).await {
                    Ok(LeaseState::Lost) => {
                        tracing::warn!(request_id = %job.id, "lease lost; abandoning the job to its newer attempt");
                        break None;
                    }
                    Ok(LeaseState::Held { cancel_requested }) => {
                        if cancel_requested {
                            flags.cancel.store(true, Ordering::SeqCst);
                        }
                        if progress != reported {
                            reported = progress;
                            app.publish(job.id, Status::InProgress, progress);
                        }
                    }
                    Err(e) => tracing::warn!(request_id = %job.id, error = %e, "heartbeat failed"),
                }
                if started.elapsed() > Duration::from_millis(JOB_RUN_MS_MAX) {
                    break Some(JobEnd::Failed(JobError::new(ERROR_TIMEOUT, "The job ran longer than the server allows.")));
                }
            }
            _ = stopping(stop), if drain_until.is_none() => {
                drain_until = Some(Instant::now() + Duration::from_millis(app.config.drain_ms));
            }
            _ = tokio::time::sleep_until(drain_until.unwrap_or_else(Instant::now)), if drain_until.is_some() => {
                match app.store.release(&lease, app.now_ms()).await {
                    Ok(_) => tracing::info!(request_id = %job.id, "handed back to the queue at shutdown"),
                    Err(e) => tracing::warn!(request_id = %job.id, error = %e, "release failed; the lease will expire"),
                }
                break None;
            }
        }
    };
    app.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.id);
    if let Some(end) = end {
        match app.store.finish(&lease, end, app.now_ms()).await {
            Ok(Some(done)) => {
                tracing::info!(request_id = %done.id, status = done.status.as_str(), "job ended");
                app.publish(done.id, done.status, done.progress);
            }
            Ok(None) => tracing::warn!(request_id = %job.id, "the lease was lost before the job ended; result dropped"),
            Err(e) => tracing::error!(request_id = %job.id, error = %e, "could not record the job's end; the lease will expire and it runs again"),
        }
    }
    app.wake(LANE_BUILTIN);
    app.wake(LANE_SANDBOX);
}

/// The seed a job uses: the caller's, or one derived from the request id so that a retry of
/// the same job draws the same picture.
fn job_seed(job: &JobRecord) -> u64 {
    job.input.get("seed").and_then(Value::as_u64).unwrap_or_else(|| {
        let bytes = job.id.to_string();
        bytes.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)) % 2_147_483_648
    })
}

async fn execute_builtin(app: App, job: JobRecord, flags: Arc<RunFlags>) -> JobEnd {
    let fail = |message: String| JobEnd::Failed(JobError::new(ERROR_GENERATION_FAILED, message));
    let Some(model) = app.catalog.get(&job.model) else {
        return fail(format!("The model {:?} is no longer in this server's catalog.", job.model));
    };
    let Backend::Builtin { engine } = &model.backend else {
        return fail("This model has no builtin engine.".into());
    };
    let Some(style) = Style::from_engine_name(engine) else {
        return fail(format!("The builtin engine {engine:?} is not part of this server."));
    };
    let text = |k: &str| job.input.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let prompt = text("prompt");
    let Some((width, height)) = image_dimensions(&text("aspect_ratio"), &text("resolution")) else {
        return fail("The requested aspect ratio and resolution give no valid image size.".into());
    };
    let count = job.input.get("num_images").and_then(Value::as_u64).unwrap_or(1).clamp(1, 4) as u32;
    let seed = job_seed(&job);
    let started = Instant::now();
    let mut images = Vec::with_capacity(count as usize);
    for i in 0..count {
        if flags.cancel.load(Ordering::SeqCst) {
            return JobEnd::Canceled;
        }
        let (prompt, progress) = (prompt.clone(), flags.clone());
        let rendered = tokio::task::spawn_blocking(move || {
            let spec = ImageSpec { prompt: &prompt, seed: seed + u64::from(i), width, height, style };
            render_image_with_progress(&spec, &mut |p| {
                progress.progress.store(((i * 100 + u32::from(p)) / count).min(99) as u8, Ordering::Relaxed);
            })
        })
        .await;
        let image = match rendered {
            Ok(Ok(image)) => image,
            Ok(Err(e)) => return fail(format!("The builtin engine could not render the image: {e}")),
            Err(_) => return fail("The builtin engine stopped unexpectedly.".into()),
        };
        let (png_key, webp_key) = (format!("{}/{i}.png", job.id), format!("{}/{i}.webp", job.id));
        let webp_size = image.webp.len();
        let stored = async {
            app.files.put(&png_key, image.png).await?;
            app.files.put(&webp_key, image.webp).await
        };
        if let Err(e) = stored.await {
            tracing::error!(request_id = %job.id, error = %e, "could not store an output file");
            return fail("The output could not be stored.".into());
        }
        images.push(stored_image(&webp_key, &png_key, image.width, image.height, webp_size));
    }
    let min_run = Duration::from_millis(app.config.builtin_min_run_ms);
    while started.elapsed() < min_run {
        if flags.cancel.load(Ordering::SeqCst) {
            return JobEnd::Canceled;
        }
        sleep(Duration::from_millis(50).min(min_run - started.elapsed())).await;
    }
    JobEnd::Completed { output: json!({"images": images, "seed": seed}), used: job.cost_reserved }
}

/// Runs the sandbox's `clipia:slow` jobs: each waits a little IN_PROGRESS, then completes with
/// the model's sample. Many can wait at once, so each gets its own task.
async fn sandbox_runner(app: App, mut stop: watch::Receiver<bool>) {
    let runner = format!("{}/sandbox", app.config.node);
    let mut running = tokio::task::JoinSet::new();
    while !*stop.borrow() {
        let woken = app.wake_sandbox.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match app.store.claim(claim_request(&app, LANE_SANDBOX, &runner)).await {
            Ok(Some(claimed)) => {
                let (app, mut stop) = (app.clone(), stop.clone());
                running.spawn(async move {
                    let (job, flags) = (claimed.job.clone(), Arc::new(RunFlags::default()));
                    supervise(&app, claimed, &mut stop, flags.clone(), execute_sandbox(app.clone(), job, flags)).await;
                });
            }
            Ok(None) => {
                tokio::select! {
                    _ = woken => {}
                    _ = sleep(Duration::from_millis(IDLE_POLL_MS / 5)) => {}
                    _ = stopping(&mut stop) => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "sandbox claim failed");
                sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
            }
        }
    }
    while running.join_next().await.is_some() {}
}

async fn execute_sandbox(app: App, job: JobRecord, flags: Arc<RunFlags>) -> JobEnd {
    let steps = 10u64;
    for step in 0..steps {
        if flags.cancel.load(Ordering::SeqCst) {
            return JobEnd::Canceled;
        }
        flags.progress.store((step * 100 / steps) as u8, Ordering::Relaxed);
        sleep(Duration::from_millis(SLOW_RUN_MS / steps)).await;
    }
    let kind = app.catalog.get(&job.model).map(|m| m.sandbox).unwrap_or(clipia_catalog::ModelKind::Image);
    let input = job.input.as_object().cloned().unwrap_or_default();
    JobEnd::Completed { output: sample_output(kind, &input), used: job.cost_reserved }
}

/// Requeues jobs whose runner stopped heartbeating (crashed, killed, partitioned).
async fn reaper(app: App, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_millis((app.config.lease_ms / 4).clamp(100, 5_000) as u64);
    loop {
        tokio::select! {
            _ = sleep(every) => {}
            _ = stopping(&mut stop) => return,
        }
        match app.store.expire_leases(app.now_ms()).await {
            Ok(ids) if !ids.is_empty() => {
                for id in &ids {
                    tracing::warn!(request_id = %id, "lease expired");
                    if let Ok(Some(job)) = app.store.job_by_id(id).await {
                        app.publish(job.id, job.status, job.progress);
                    }
                }
                app.wake(LANE_BUILTIN);
                app.wake(LANE_SANDBOX);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "lease expiry failed"),
        }
    }
}

async fn pruner(app: App, mut stop: watch::Receiver<bool>) {
    loop {
        match app.store.prune_idempotency(app.now_ms() - IDEMPOTENCY_TTL_MS).await {
            Ok(n) if n > 0 => tracing::info!(records = n, "pruned expired idempotency records"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "idempotency pruning failed"),
        }
        tokio::select! {
            _ = sleep(Duration::from_millis(PRUNE_EVERY_MS)) => {}
            _ = stopping(&mut stop) => return,
        }
    }
}
