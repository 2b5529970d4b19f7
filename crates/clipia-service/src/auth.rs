//! Who is calling: API keys to callers, and scope checks.

use clipia_core::{ApiKey, Scope};
use clipia_store::{KeyRecord, Tenant};

use crate::{App, ServiceError};

/// An authenticated caller: a live, unrevoked key.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: KeyRecord,
}

impl Caller {
    pub fn tenant(&self) -> Tenant {
        Tenant { account: self.key.account.clone(), mode: self.key.mode }
    }

    pub fn require(&self, scope: Scope) -> Result<(), ServiceError> {
        if self.key.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ServiceError::InsufficientScope(format!(
                "This API key lacks the {:?} scope needed here.",
                scope.as_str()
            )))
        }
    }

    pub fn requests_per_minute(&self, app: &App) -> u32 {
        self.key.limits.requests_per_minute.unwrap_or(app.config.requests_per_minute_default)
    }

    pub fn concurrent_generations(&self, app: &App) -> u32 {
        self.key.limits.concurrent_generations.unwrap_or(app.config.concurrent_generations_default)
    }
}

impl App {
    /// Turns a presented key into a caller: 401 when it is malformed, unknown or revoked.
    pub async fn authenticate(&self, presented: Option<&str>) -> Result<Caller, ServiceError> {
        let presented = presented.ok_or_else(|| {
            ServiceError::InvalidApiKey(
                "No API key: send it as \"Authorization: Key <key>\", \"Authorization: Bearer <key>\" or \"X-Api-Key: <key>\"."
                    .into(),
            )
        })?;
        let invalid = || ServiceError::InvalidApiKey("The API key is invalid.".into());
        let key = ApiKey::parse(presented.trim()).ok_or_else(invalid)?;
        let hash = key.hash();
        let record = self.store.key_by_hash(&hash).await?.ok_or_else(invalid)?;
        if !record.hash.ct_eq(&hash) {
            return Err(invalid());
        }
        if record.revoked_at.is_some() {
            return Err(ServiceError::InvalidApiKey("The API key has been revoked.".into()));
        }
        Ok(Caller { key: record })
    }
}
