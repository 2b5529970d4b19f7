//! The admin commands. They open the same store as `serve` and may run while it does.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use clipia_core::{ApiKey, KeyId, Mode, Scopes};
use clipia_store::{Account, LimitOverrides, NewKey, Store};

use crate::cli::{AccountsCommand, Command, CreditsCommand, KeysCommand, LimitsCommand, StoreArgs, WebhooksCommand};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The store a command runs on, chosen once from the options: PostgreSQL when a database URL is
/// given, else the embedded SQLite store in the data directory.
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    /// The same store when it is PostgreSQL: `serve` also takes its notifications and its shared
    /// rate limiter.
    pub postgres: Option<clipia_store_postgres::PgStore>,
}

pub async fn open_backend(args: &StoreArgs) -> anyhow::Result<OpenedStore> {
    if let Some(url) = args.database_url.as_deref().filter(|u| !u.is_empty()) {
        if !clipia_store_postgres::PgStore::accepts(url) {
            bail!("--database-url must be a postgres:// or postgresql:// URL");
        }
        let store = clipia_store_postgres::PgStore::open(url, args.database_pool)
            .await
            .context("opening the PostgreSQL store")?;
        return Ok(OpenedStore { store: Arc::new(store.clone()), postgres: Some(store) });
    }
    let store = clipia_store_sqlite::SqliteStore::open(&args.data_dir)
        .await
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    Ok(OpenedStore { store: Arc::new(store), postgres: None })
}

pub async fn open_store(args: &StoreArgs) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_backend(args).await?.store)
}

async fn account(store: &dyn Store, id_or_name: &str) -> anyhow::Result<Account> {
    store.find_account(id_or_name).await?.ok_or_else(|| anyhow!("no account with id or name {id_or_name:?}"))
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => unreachable!("serve is dispatched in main"),
        Command::Accounts(AccountsCommand::Create { name, store }) => {
            let store = open_store(&store).await?;
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                bail!("--name must be 1 to 100 characters");
            }
            let account = store.create_account(name, now_ms()).await?;
            println!("{}", account.id);
        }
        Command::Keys(KeysCommand::Create { account: a, mode, scopes, name, store }) => {
            let store = open_store(&store).await?;
            let account = account(&*store, &a).await?;
            let mode = Mode::parse(&mode).ok_or_else(|| anyhow!("--mode must be live or test"))?;
            let scopes = match scopes {
                Some(list) => Scopes::parse_list(&list).map_err(|e| anyhow!("--scopes: {e}"))?,
                None => Scopes::default_for_new_key(),
            };
            let secret = ApiKey::generate(mode);
            store.create_key(NewKey::for_secret(&secret, account.id, scopes, name), now_ms()).await?;
            println!("{}", secret.expose());
        }
        Command::Keys(KeysCommand::List { account: a, store }) => {
            let store = open_store(&store).await?;
            let account = account(&*store, &a).await?;
            println!("{:<24} {:<5} {:<24} {:<22} {:<8} name", "id", "mode", "prefix", "scopes", "status");
            for k in store.list_keys(&account.id).await? {
                let status = if k.revoked_at.is_some() { "revoked" } else { "active" };
                println!(
                    "{:<24} {:<5} {:<24} {:<22} {:<8} {}",
                    k.id,
                    k.mode.as_str(),
                    k.prefix,
                    k.scopes.to_list(),
                    status,
                    k.name.unwrap_or_default()
                );
            }
        }
        Command::Keys(KeysCommand::Revoke { key_id, store }) => {
            let store = open_store(&store).await?;
            let id = KeyId::parse(&key_id).ok_or_else(|| anyhow!("{key_id:?} is not a key id (key_…)"))?;
            match store.revoke_key(None, &id, now_ms()).await? {
                Some(k) => println!("revoked {} ({})", k.id, k.prefix),
                None => bail!("no key with id {key_id}"),
            }
        }
        Command::Credits(CreditsCommand::Grant { account: a, amount, reason, store }) => {
            let store = open_store(&store).await?;
            let account = account(&*store, &a).await?;
            let amount = i64::try_from(amount).context("--amount is too large")?;
            let balance = store.grant_credits(&account.id, amount, &reason, now_ms()).await?;
            println!("granted {amount} credits to {}; balance {} ({} reserved)", account.name, balance.available, balance.reserved);
        }
        Command::Audit { store } => {
            let store = open_store(&store).await?;
            let problems = store.audit().await?;
            if !problems.is_empty() {
                for p in &problems {
                    println!("{p}");
                }
                bail!("{} ledger problem(s) found", problems.len());
            }
            println!("ledger ok");
        }
        Command::Webhooks(WebhooksCommand::Secret { account: a, mode, rotate, store }) => {
            let store = open_store(&store).await?;
            let account = account(&*store, &a).await?;
            let mode = Mode::parse(&mode).ok_or_else(|| anyhow!("--mode must be live or test"))?;
            let tenant = clipia_store::Tenant { account: account.id, mode };
            let secret = webhook_secret(&*store, &tenant, rotate).await?;
            println!("{secret}");
        }
        Command::Limits(LimitsCommand::Set { account: a, rpm, concurrency, max_queued, store }) => {
            let store = open_store(&store).await?;
            let account = account(&*store, &a).await?;
            if [rpm, concurrency, max_queued].iter().any(|v| *v == Some(0)) {
                bail!("limits must be at least 1");
            }
            let set = LimitOverrides { requests_per_minute: rpm, concurrent_generations: concurrency, queued_jobs_max: max_queued };
            let now = store.set_limits(&account.id, set).await?;
            let show = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "default".into());
            println!(
                "limits of {}: rpm {}, concurrency {}, max queued {}",
                account.name,
                show(now.requests_per_minute),
                show(now.concurrent_generations),
                show(now.queued_jobs_max)
            );
        }
    }
    Ok(())
}

/// The tenant's newest webhook signing secret, creating the first one (or, with `rotate`, a new
/// one while the old keeps signing for 24 h).
pub async fn webhook_secret(store: &dyn Store, tenant: &clipia_store::Tenant, rotate: bool) -> anyhow::Result<String> {
    use clipia_core::webhook::{WebhookSecret, SECRET_OVERLAP_MS};
    let now = now_ms();
    let mut active = store.ensure_webhook_secret(tenant, WebhookSecret::generate().expose(), now).await?;
    if rotate {
        active = store.rotate_webhook_secret(tenant, WebhookSecret::generate().expose(), SECRET_OVERLAP_MS, now).await?;
    }
    active.pop().map(|s| s.secret).ok_or_else(|| anyhow!("the store kept no webhook secret"))
}
