//! Reading requests, cancelling them, waiting for them; accounts and keys as their owner sees
//! them.

use std::time::Duration;

use clipia_core::limits::PAGE_LIMIT_MAX;
use clipia_core::{ApiKey, KeyId, Mode, RequestId, Scope, Scopes, Status};
use clipia_store::{Balance, JobFilter, JobRecord, KeyRecord, LedgerEntry, LogLine, NewKey, Usage};
use serde_json::Value;

use crate::output::public_output;
use crate::{App, Caller, ServiceError};

/// A request with what its status and result views need.
#[derive(Clone, Debug)]
pub struct RequestView {
    pub job: JobRecord,
    /// Jobs ahead of it, while it is IN_QUEUE.
    pub queue_position: Option<u64>,
    pub logs: Vec<LogLine>,
}

#[derive(Clone, Debug)]
pub struct AccountView {
    pub balance: Balance,
    pub usage_30d: Usage,
}

const THIRTY_DAYS_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// A long-poll re-reads the store at least this often (a lost cross-node notification only delays it).
const WAIT_RECHECK_MS: u64 = 1_000;

impl App {
    pub fn parse_request_id(&self, text: &str) -> Result<RequestId, ServiceError> {
        // An id that cannot exist is reported as not found, like any other unknown id.
        RequestId::parse(text).ok_or_else(ServiceError::request_not_found)
    }

    pub async fn request(&self, caller: &Caller, id: &RequestId, with_logs: bool) -> Result<RequestView, ServiceError> {
        let job = self.store.job(&caller.tenant(), id).await?.ok_or_else(ServiceError::request_not_found)?;
        self.view(job, with_logs).await
    }

    async fn view(&self, job: JobRecord, with_logs: bool) -> Result<RequestView, ServiceError> {
        let queue_position = match job.status {
            Status::InQueue => Some(self.store.queue_position(&job).await?),
            _ => None,
        };
        let logs = if with_logs { self.store.job_logs(&job.id).await? } else { Vec::new() };
        Ok(RequestView { job, queue_position, logs })
    }

    /// Holds until the request is terminal or `wait` passes, then answers its current state.
    pub async fn wait_terminal(&self, caller: &Caller, id: &RequestId, wait: Duration, with_logs: bool) -> Result<RequestView, ServiceError> {
        let mut events = self.subscribe();
        let view = self.request(caller, id, with_logs).await?;
        if view.job.status.is_terminal() || wait.is_zero() {
            return Ok(view);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Wake up now and then even without an event: the request may run on another node
            // whose notification was lost.
            let recheck = (tokio::time::Instant::now() + Duration::from_millis(WAIT_RECHECK_MS)).min(deadline);
            match tokio::time::timeout_at(recheck, events.recv()).await {
                Err(_) if recheck >= deadline => break,
                Err(_) => {
                    if self.request(caller, id, false).await?.job.status.is_terminal() {
                        break;
                    }
                }
                Ok(Ok(ev)) if ev.id == *id && ev.status.is_terminal() => break,
                Ok(Ok(_)) => {}
                // Fell behind the broadcast: the store has the truth, check it.
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    if self.request(caller, id, false).await?.job.status.is_terminal() {
                        break;
                    }
                }
                Ok(Err(_)) => break,
            }
        }
        self.request(caller, id, with_logs).await
    }

    pub async fn list_requests(&self, caller: &Caller, mut filter: JobFilter) -> Result<Vec<JobRecord>, ServiceError> {
        filter.limit = filter.limit.clamp(1, PAGE_LIMIT_MAX);
        Ok(self.store.list_jobs(&caller.tenant(), &filter).await?)
    }

    /// SPEC §4 [ext]: idempotent; queued jobs end at once, running ones are asked to stop.
    pub async fn cancel(&self, caller: &Caller, id: &RequestId) -> Result<RequestView, ServiceError> {
        caller.require(Scope::Generate)?;
        let job = self
            .store
            .cancel(&caller.tenant(), id, self.now_ms())
            .await?
            .ok_or_else(ServiceError::request_not_found)?;
        match job.status {
            Status::Canceled => self.publish(job.id, job.status, job.progress),
            Status::InProgress => self.signal_cancel(&job.id),
            _ => {}
        }
        self.view(job, false).await
    }

    /// The output with signed file URLs under `base_url`, when the job has one.
    pub fn output(&self, job: &JobRecord, base_url: &str) -> Option<Value> {
        job.output.as_ref().map(|o| public_output(o, base_url, &self.signer, self.now_ms()))
    }

    pub async fn account(&self, caller: &Caller) -> Result<AccountView, ServiceError> {
        let account = &caller.key.account;
        Ok(AccountView {
            balance: self.store.balance(account).await?,
            usage_30d: self.store.usage_since(account, self.now_ms() - THIRTY_DAYS_MS).await?,
        })
    }

    pub async fn ledger(&self, caller: &Caller, before: Option<i64>, limit: u32) -> Result<Vec<LedgerEntry>, ServiceError> {
        Ok(self.store.ledger_page(&caller.key.account, before, limit.clamp(1, PAGE_LIMIT_MAX)).await?)
    }

    // ---- keys API (scope admin) ----------------------------------------------------------------

    pub async fn list_keys(&self, caller: &Caller) -> Result<Vec<KeyRecord>, ServiceError> {
        caller.require(Scope::Admin)?;
        Ok(self.store.list_keys(&caller.key.account).await?)
    }

    /// Creates a key in the caller's account; the secret is returned here and never again.
    pub async fn create_key(&self, caller: &Caller, mode: Mode, scopes: Option<Scopes>, name: Option<String>) -> Result<(ApiKey, KeyRecord), ServiceError> {
        caller.require(Scope::Admin)?;
        let secret = ApiKey::generate(mode);
        let new = NewKey::for_secret(&secret, caller.key.account.clone(), scopes.unwrap_or_else(Scopes::default_for_new_key), name);
        let record = self.store.create_key(new, self.now_ms()).await?;
        Ok((secret, record))
    }

    pub async fn revoke_key(&self, caller: &Caller, id: &str) -> Result<KeyRecord, ServiceError> {
        caller.require(Scope::Admin)?;
        let not_found = || ServiceError::NotFound("No API key with this id exists in this account.".into());
        let id = KeyId::parse(id).ok_or_else(not_found)?;
        self.store.revoke_key(Some(&caller.key.account), &id, self.now_ms()).await?.ok_or_else(not_found)
    }
}
