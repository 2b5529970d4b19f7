//! `clipia-bench`: a load generator for Clipia's submit path.
//!
//! Two ways to load the server, two things to measure:
//!
//! - **Closed loop** (`--concurrency C`): C workers, each sends a request, waits for the answer
//!   and sends the next one. This finds the maximum throughput; its latencies are only the
//!   service time under that load.
//! - **Open loop** (`--rate R`): requests are *scheduled* at a fixed arrival rate, whether or not
//!   earlier ones have been answered, and each latency is taken from the request's scheduled send
//!   time. A server stall therefore shows up in every request scheduled during it instead of
//!   being hidden by a client that politely waits (no coordinated omission). The service time
//!   (from the actual send) is reported beside it.
//!
//! And two operations:
//!
//! - `submit`: `POST /v1/models/{model}`; a 200 is a success.
//! - `submit-to-completed`: submit, then long-poll `GET /v1/requests/{id}/status?wait=N` until
//!   the status is terminal, then fetch the result; a COMPLETED result is a success and the
//!   latency covers the whole round trip (for test keys this is the sandbox's instant answer
//!   plus the reads; for live keys it includes queueing and rendering).
//!
//! It talks to one base URL through one pooled keep-alive HTTP/1.1 client, stops by itself after
//! `--duration` seconds (plus a bounded drain), and prints requests sent, errors by status code,
//! throughput and latency percentiles from an HDR histogram. With `--label`, it also prints one
//! `ROW |…|` markdown table row for scripts (see `bench/run.sh`).

mod load;
mod report;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Longest run a single invocation may ask for.
pub const DURATION_S_MAX: u64 = 600;
/// Highest open-loop arrival rate accepted, in requests per second.
pub const RATE_PER_S_MAX: u64 = 100_000;
/// Most closed-loop workers (each holds one keep-alive connection).
pub const CONCURRENCY_MAX: usize = 1_024;
/// Open loop: requests allowed in flight at once; a scheduled request beyond that is counted as
/// `client_overloaded` instead of being sent, so a stalled server cannot make the client grow
/// without bound.
pub const IN_FLIGHT_MAX: usize = 8_192;
/// One HTTP exchange taking longer than this counts as a `timeout` error.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// After the duration, how long answers to requests already sent are still awaited.
pub const DRAIN_MS: u64 = 35_000;
/// `submit-to-completed`: the `?wait=` of each status long-poll, in seconds (SPEC: at most 60).
pub const STATUS_WAIT_S: u64 = 10;
/// `submit-to-completed`: status long-polls per job before giving up (`not_terminal`).
pub const STATUS_POLLS_MAX: u32 = 30;
/// Largest latency the histogram records, in microseconds; longer ones are clamped to it.
pub const LATENCY_US_MAX: u64 = 120_000_000;

#[derive(Parser)]
#[command(name = "clipia-bench", about = "Load generator for Clipia's submit path (talks to one base URL)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Submit jobs: POST /v1/models/{model}; a 200 counts as a success.
    Submit(Options),
    /// Submit, then long-poll the status until terminal and fetch the result; COMPLETED counts.
    SubmitToCompleted(Options),
}

#[derive(Args, Clone, Debug)]
pub struct Options {
    /// Base URL of the server (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key, sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "CLIPIA_KEY")]
    pub key: String,
    /// Model slug to submit to.
    #[arg(long, default_value = "clipia-mosaic")]
    pub model: String,
    /// The job's `input` as JSON.
    #[arg(long, default_value = r#"{"prompt":"a benchmark mosaic"}"#)]
    pub input: String,
    /// Open loop: fixed arrival rate in requests per second (latency measured from the schedule).
    #[arg(long, conflicts_with = "concurrency")]
    pub rate: Option<u64>,
    /// Closed loop: workers each keeping one request in flight (maximum throughput).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Seconds to generate load for.
    #[arg(long, default_value_t = 15)]
    pub duration: u64,
    /// Send a fresh `Idempotency-Key` with every submit.
    #[arg(long)]
    pub idempotency: bool,
    /// Seconds of untimed load before the measured run (fills caches and connection pools).
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Threads of the client's runtime; keep it low so that the server keeps the CPU.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Name of the scenario; also prints a `ROW |…|` markdown table row.
    #[arg(long)]
    pub label: Option<String>,
}

/// What one invocation runs, after its options are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Submit,
    SubmitToCompleted,
}

/// How the load arrives.
#[derive(Clone, Copy, Debug)]
pub enum Arrival {
    OpenLoop { rate_per_s: u64 },
    ClosedLoop { concurrency: usize },
}

fn check(o: &Options) -> anyhow::Result<Arrival> {
    anyhow::ensure!(o.url.starts_with("http://"), "--url must be an http:// URL");
    anyhow::ensure!((1..=DURATION_S_MAX).contains(&o.duration), "--duration must be 1..={DURATION_S_MAX} s");
    anyhow::ensure!(o.warmup <= DURATION_S_MAX, "--warmup must be at most {DURATION_S_MAX} s");
    anyhow::ensure!((1..=16).contains(&o.threads), "--threads must be 1..=16");
    serde_json::from_str::<serde_json::Value>(&o.input).map_err(|e| anyhow::anyhow!("--input is not JSON: {e}"))?;
    match (o.rate, o.concurrency) {
        (Some(r), None) => {
            anyhow::ensure!((1..=RATE_PER_S_MAX).contains(&r), "--rate must be 1..={RATE_PER_S_MAX}");
            Ok(Arrival::OpenLoop { rate_per_s: r })
        }
        (None, Some(c)) => {
            anyhow::ensure!((1..=CONCURRENCY_MAX).contains(&c), "--concurrency must be 1..={CONCURRENCY_MAX}");
            Ok(Arrival::ClosedLoop { concurrency: c })
        }
        (None, None) => Ok(Arrival::ClosedLoop { concurrency: 32 }),
        (Some(_), Some(_)) => anyhow::bail!("give --rate or --concurrency, not both"),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (operation, options) = match cli.command {
        Command::Submit(o) => (Operation::Submit, o),
        Command::SubmitToCompleted(o) => (Operation::SubmitToCompleted, o),
    };
    let arrival = check(&options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(options.threads).enable_all().build()?;
    let result = runtime.block_on(load::run(operation, arrival, &options))?;
    report::print(operation, arrival, &options, &result);
    // Requests still unanswered after the drain are abandoned, not awaited.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
