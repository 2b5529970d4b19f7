//! The command line: `serve` and the admin commands, all on the same store options.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "clipia-server", version, about = "Clipia: a self-hostable generation API for images and video")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives; every command takes the same options.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Directory of the embedded SQLite database and the output files.
    #[arg(long, env = "CLIPIA_DATA_DIR", default_value = "./clipia-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL URL (postgres://…) instead of the embedded store.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most connections this process opens to PostgreSQL (besides one for notifications and one
    /// for listening).
    #[arg(long, env = "CLIPIA_DATABASE_POOL", default_value_t = clipia_store_postgres::POOL_CONNECTIONS_DEFAULT)]
    pub database_pool: u32,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the API server.
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage credits.
    #[command(subcommand)]
    Credits(CreditsCommand),
    /// Per-account rate-limit overrides.
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Webhook signing secrets.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Check the credit ledger's invariants over the whole store; exits 1 on any problem.
    Audit {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CLIPIA_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Base of the absolute URLs the API hands out, e.g. https://api.example.com (default: the request's Host).
    #[arg(long, env = "CLIPIA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A model catalog file replacing the built-in one.
    #[arg(long, env = "CLIPIA_MODELS")]
    pub models: Option<PathBuf>,
    /// Credits given to the `default` account created on first start.
    #[arg(long, default_value_t = 1000)]
    pub starter_credits: u64,
    /// Requests per minute per key when the account has no override.
    #[arg(long, default_value_t = clipia_core::limits::REQUESTS_PER_MINUTE_DEFAULT)]
    pub default_rpm: u32,
    /// Concurrent generations per key when the account has no override.
    #[arg(long, default_value_t = clipia_core::limits::CONCURRENT_GENERATIONS_DEFAULT)]
    pub default_concurrency: u32,
    /// Jobs a key may have waiting in the queue when the account has no override.
    #[arg(long, default_value_t = clipia_core::limits::QUEUED_JOBS_MAX_DEFAULT)]
    pub default_max_queued: u32,
    /// Builtin-engine jobs run at once on this node (default: the number of CPUs; 0 = an API-only node).
    #[arg(long)]
    pub builtin_runners: Option<usize>,
    /// Lease of a running job: if its runner stops renewing it for this long, the job runs again elsewhere.
    #[arg(long, default_value_t = 10_000)]
    pub lease_ms: i64,
    /// On shutdown, how long running jobs may take to finish before they are handed back to the queue.
    #[arg(long, default_value_t = 10_000)]
    pub drain_ms: u64,
    /// Make every builtin job last at least this long (demos of progress and crash recovery).
    #[arg(long, default_value_t = 0)]
    pub builtin_min_run_ms: u64,
    /// Let webhooks go to loopback, private, link-local and metadata addresses. Default: on only
    /// when --bind is a loopback address; `--allow-private-webhooks=false` turns it off.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_private_webhooks: Option<bool>,
    /// How long one webhook attempt may take before it counts as failed.
    #[arg(long, default_value_t = clipia_core::webhook::WEBHOOK_TIMEOUT_MS)]
    pub webhook_timeout_ms: u64,
    /// Multiplies the webhook retry schedule (tests and demos; 1 in production).
    #[arg(long, default_value_t = 1.0, hide = true)]
    pub webhook_retry_scale: f64,
    /// Where output files go: a directory (default: `files/` in the data directory) or
    /// `s3://bucket[/prefix]` for S3-compatible object storage shared by several nodes
    /// (credentials and region from the AWS_* environment variables).
    #[arg(long, env = "CLIPIA_FILES_URL")]
    pub files_url: Option<String>,
    /// The endpoint of an S3-compatible server (MinIO, Ceph, …) for an s3:// --files-url.
    #[arg(long, env = "CLIPIA_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// Create an account; prints its id.
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the key (shown once) and nothing else.
    Create {
        /// Account id or name.
        #[arg(long)]
        account: String,
        #[arg(long, value_parser = ["live", "test"])]
        mode: String,
        /// Comma-separated: generate, read, admin (default generate,read).
        #[arg(long)]
        scopes: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List an account's keys (prefixes only).
    List {
        #[arg(long)]
        account: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by id; effective at once, also on running servers.
    Revoke {
        key_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum CreditsCommand {
    /// Add credits to an account through the ledger.
    Grant {
        #[arg(long)]
        account: String,
        #[arg(long)]
        amount: u64,
        #[arg(long, default_value = "grant")]
        reason: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum LimitsCommand {
    /// Set an account's overrides; options left out keep their current value.
    Set {
        #[arg(long)]
        account: String,
        #[arg(long)]
        rpm: Option<u32>,
        #[arg(long)]
        concurrency: Option<u32>,
        #[arg(long)]
        max_queued: Option<u32>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Print the account's webhook signing secret for a mode (created on first use).
    Secret {
        /// Account id or name.
        #[arg(long)]
        account: String,
        #[arg(long, value_parser = ["live", "test"])]
        mode: String,
        /// Make a new secret; the old one keeps signing beside it for 24 h.
        #[arg(long)]
        rotate: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}
