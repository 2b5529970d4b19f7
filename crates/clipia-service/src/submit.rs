//! Submitting a job (SPEC §4, §5, §6, §9): validate, price, then one store transaction that
//! replays or refuses by idempotency key, reserves the credits and enqueues the job.

use clipia_catalog::Model;
use clipia_core::limits::{IDEMPOTENCY_KEY_LEN_MAX, METADATA_BYTES_MAX, WEBHOOK_URL_LEN_MAX};
use clipia_core::{Mode, RequestId, Scope};
use clipia_store::{IdempotencyClaim, InitialState, NewJob, SubmitOutcome, SubmitSnapshot};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::sandbox::{self, SandboxPlan, SLOW_QUEUE_MS};
use crate::{App, Caller, ServiceError, LANE_BUILTIN, LANE_SANDBOX};

/// Seconds a client is told to wait when its key's queue is full.
const QUEUE_FULL_RETRY_AFTER_S: u64 = 5;

/// A submit as the edge received it.
#[derive(Clone, Debug, Default)]
pub struct SubmitCommand {
    pub model: String,
    pub input: Value,
    pub webhook_url: Option<String>,
    pub metadata: Option<Value>,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Submitted {
    pub snapshot: SubmitSnapshot,
    /// True when this answer is an idempotent replay of an earlier submit.
    pub replayed: bool,
}

/// A price quote: the same validation and pricing as a submit, nothing queued.
#[derive(Clone, Debug)]
pub struct Estimate {
    pub credits: u64,
    pub warnings: Value,
}

/// Removes an idempotency key from the in-flight set when its submit ends, however it ends.
struct InFlight<'a> {
    app: &'a App,
    entry: (String, &'static str, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.app.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.entry);
    }
}

impl App {
    pub fn model(&self, slug: &str) -> Result<&Model, ServiceError> {
        self.catalog
            .get(slug)
            .ok_or_else(|| ServiceError::NotFound(format!("No model named {slug:?}; GET /v1/models lists them.")))
    }

    pub fn estimate(&self, slug: &str, input: &Value) -> Result<Estimate, ServiceError> {
        let model = self.model(slug)?;
        let checked = self
            .catalog
            .check_input(model, input)
            .map_err(|e| ServiceError::ModelInputInvalid { param: e.param, message: e.message })?;
        Ok(Estimate { credits: model.price(&checked), warnings: warnings_json(&checked.warnings) })
    }

    pub async fn submit(&self, caller: &Caller, cmd: SubmitCommand) -> Result<Submitted, ServiceError> {
        caller.require(Scope::Generate)?;
        let model = self.model(&cmd.model)?;
        let metadata = check_metadata(cmd.metadata)?;
        let webhook_url = cmd.webhook_url.map(check_webhook_url).transpose()?;
        if let Some(url) = &webhook_url {
            crate::webhooks::check_destination(url, self.config.allow_private_webhooks)?;
        }
        let idempotency_key = cmd.idempotency_key.map(check_idempotency_key).transpose()?;
        let checked = self
            .catalog
            .check_input(model, &cmd.input)
            .map_err(|e| ServiceError::ModelInputInvalid { param: e.param, message: e.message })?;
        let cost = model.price(&checked);
        let now = self.now_ms();
        let mode = caller.key.mode;
        let (lane, initial) = match mode {
            Mode::Test => match sandbox::plan(model.sandbox, &checked.input) {
                SandboxPlan::Complete(output) => (LANE_SANDBOX, InitialState::Completed { output }),
                SandboxPlan::Fail(error) => (LANE_SANDBOX, InitialState::Failed { error }),
                SandboxPlan::Slow => (LANE_SANDBOX, InitialState::Queued { run_after: now + SLOW_QUEUE_MS }),
            },
            Mode::Live => {
                self.availability(model).map_err(ServiceError::Unavailable)?;
                (LANE_BUILTIN, InitialState::Queued { run_after: now })
            }
        };
        let input = Value::Object(checked.input.clone());
        let fingerprint = fingerprint(&cmd.model, &cmd.input, webhook_url.as_deref(), metadata.as_ref());
        let tenant = caller.tenant();
        let _guard = match &idempotency_key {
            Some(key) => {
                let entry = (tenant.account.to_string(), mode.as_str(), key.clone());
                if !self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(entry.clone()) {
                    return Err(ServiceError::RequestInProgress);
                }
                Some(InFlight { app: self, entry })
            }
            None => None,
        };
        let job = NewJob {
            id: RequestId::new(),
            tenant,
            key: caller.key.id.clone(),
            model: model.slug.clone(),
            lane: lane.to_owned(),
            input,
            metadata,
            webhook_url,
            cost,
            reserve: mode == Mode::Live,
            initial,
            idempotency: idempotency_key.map(|key| IdempotencyClaim { key, fingerprint }),
            warnings: warnings_json(&checked.warnings),
            queued_jobs_max: caller.key.limits.queued_jobs_max.unwrap_or(self.config.queued_jobs_max_default),
            now_ms: now,
        };
        match self.store.submit(job).await? {
            SubmitOutcome::Created(snapshot) => {
                self.publish(snapshot.request_id, snapshot.status, 0);
                self.wake(lane);
                Ok(Submitted { snapshot, replayed: false })
            }
            SubmitOutcome::Replayed(snapshot) => Ok(Submitted { snapshot, replayed: true }),
            SubmitOutcome::IdempotencyConflict => Err(ServiceError::IdempotencyKeyReuse),
            SubmitOutcome::InsufficientCredits { cost, available } => {
                Err(ServiceError::InsufficientCredits { cost, available })
            }
            SubmitOutcome::QueueFull { queued_jobs_max } => Err(ServiceError::RateLimited {
                message: format!(
                    "This API key already has {queued_jobs_max} jobs waiting in the queue; wait for some to start."
                ),
                retry_after_s: QUEUE_FULL_RETRY_AFTER_S,
            }),
        }
    }
}

fn warnings_json(warnings: &[clipia_catalog::Warning]) -> Value {
    serde_json::to_value(warnings).unwrap_or_else(|_| Value::Array(Vec::new()))
}

fn check_metadata(metadata: Option<Value>) -> Result<Option<Value>, ServiceError> {
    match metadata {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => {
            let size = serde_json::to_string(&map).map(|s| s.len()).unwrap_or(usize::MAX);
            if size > METADATA_BYTES_MAX {
                return Err(ServiceError::invalid(
                    "metadata",
                    format!("metadata must be at most {METADATA_BYTES_MAX} bytes as JSON (got {size})."),
                ));
            }
            Ok(Some(Value::Object(map)))
        }
        Some(_) => Err(ServiceError::invalid("metadata", "metadata must be a JSON object.")),
    }
}

/// Accepts an absolute http(s) URL with a host. Where it may point is the webhook sender's
/// concern (its SSRF guard checks the address actually connected to).
fn check_webhook_url(url: String) -> Result<String, ServiceError> {
    let bad = |why: &str| ServiceError::invalid("webhook_url", format!("webhook_url {why}."));
    if url.len() > WEBHOOK_URL_LEN_MAX {
        return Err(bad(&format!("must be at most {WEBHOOK_URL_LEN_MAX} characters")));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("must be an absolute http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must have a host and no spaces"));
    }
    Ok(url)
}

fn check_idempotency_key(key: String) -> Result<String, ServiceError> {
    let ok = !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_LEN_MAX && key.bytes().all(|b| (0x21..0x7f).contains(&b));
    if ok {
        Ok(key)
    } else {
        Err(ServiceError::invalid(
            "Idempotency-Key",
            format!("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} printable ASCII characters without spaces."),
        ))
    }
}

/// What makes two submits "the same": the model and the body, compared after sorting object
/// keys so that field order does not matter.
fn fingerprint(model: &str, input: &Value, webhook_url: Option<&str>, metadata: Option<&Value>) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut body = Map::new();
    body.insert("input".into(), input.clone());
    body.insert("webhook_url".into(), webhook_url.map(Value::from).unwrap_or(Value::Null));
    body.insert("metadata".into(), metadata.cloned().unwrap_or(Value::Null));
    let mut text = String::from(model);
    text.push('\n');
    canonical(&Value::Object(body), &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprints_ignore_key_order_but_not_values() {
        let a = fingerprint("m", &json!({"prompt": "x", "seed": 1}), None, None);
        let b = fingerprint("m", &json!({"seed": 1, "prompt": "x"}), None, None);
        let c = fingerprint("m", &json!({"seed": 2, "prompt": "x"}), None, None);
        let d = fingerprint("n", &json!({"seed": 1, "prompt": "x"}), None, None);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn webhook_urls_must_be_http_with_a_host() {
        assert!(check_webhook_url("https://example.com/hook".into()).is_ok());
        assert!(check_webhook_url("http://127.0.0.1:9000/x".into()).is_ok());
        for bad in ["ftp://x", "https://", "https:///path", "example.com", "https://a b.com"] {
            let e = check_webhook_url(bad.into()).unwrap_err();
            assert_eq!(e.param(), Some("webhook_url"), "{bad}");
        }
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        assert!(check_idempotency_key("a".repeat(255)).is_ok());
        assert!(check_idempotency_key("a".repeat(256)).is_err());
        assert!(check_idempotency_key(String::new()).is_err());
        assert!(check_idempotency_key("has space".into()).is_err());
    }
}
