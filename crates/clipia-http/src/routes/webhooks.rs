//! [ext] Webhook routes (SPEC §8): the signing secret and its rotation (scope `admin`), a
//! request's delivery attempts and resending them, and the live event stream that
//! `clipia listen --forward-to URL` re-POSTs locally.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use clipia_service::time::rfc3339;
use clipia_service::App;
use clipia_store::{DeliveryLog, DeliveryState, Tenant, WebhookAttempt, WebhookDelivery};
use futures::Stream;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::Authed;
use crate::AppState;

/// Keep-alive comment interval of the event stream.
const KEEP_ALIVE_S: u64 = 15;
/// Events buffered for a slow client before the producer waits.
const CLIENT_BUFFER_EVENTS: usize = 64;

#[derive(Serialize, ToSchema)]
pub struct SecretResponse {
    /// `whsec_…`: the newest signing secret of the account in this key's mode.
    pub secret: String,
    /// `live` or `test`: the calling key's mode.
    pub mode: String,
    /// After a rotation: when the previous secret stops signing (24 h later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_expires_at: Option<String>,
}

/// [ext] The webhook signing secret of the calling key's account and mode (scope `admin`).
#[utoipa::path(get, path = "/v1/webhooks/secret", tag = "webhooks",
    responses((status = 200, body = SecretResponse), (status = 403, body = ErrorEnvelope)))]
pub async fn secret(State(state): State<AppState>, Authed(caller): Authed) -> ApiResult<Json<SecretResponse>> {
    let secret = state.app.webhook_secret(&caller).await?;
    Ok(Json(SecretResponse { secret, mode: caller.key.mode.as_str().to_owned(), previous_expires_at: None }))
}

/// [ext] Rotate the signing secret (scope `admin`): the old one keeps signing beside the new one
/// for 24 h (one `v1=` each, newest last).
#[utoipa::path(post, path = "/v1/webhooks/secret/rotate", tag = "webhooks",
    responses((status = 200, body = SecretResponse), (status = 403, body = ErrorEnvelope)))]
pub async fn rotate(State(state): State<AppState>, Authed(caller): Authed) -> ApiResult<Json<SecretResponse>> {
    let (secret, previous_expires_at) = state.app.rotate_webhook_secret(&caller).await?;
    Ok(Json(SecretResponse {
        secret,
        mode: caller.key.mode.as_str().to_owned(),
        previous_expires_at: Some(rfc3339(previous_expires_at)),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub number: u32,
    /// When the attempt started.
    pub at: String,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why it failed without an answer (timeout, connection refused, refused destination).
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    /// The event's id: `X-Clipia-Webhook-Id` and `webhook-id`, the same on every attempt.
    pub webhook_id: String,
    pub request_id: String,
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// When the next attempt is due, while `pending`.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub last_error: Option<String>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub data: Vec<DeliveryView>,
}

fn attempt_view(a: &WebhookAttempt) -> AttemptView {
    AttemptView { number: a.number, at: rfc3339(a.started_at), status_code: a.status_code, error: a.error.clone(), duration_ms: a.duration_ms }
}

fn delivery_view(d: &WebhookDelivery, attempts: &[WebhookAttempt]) -> DeliveryView {
    DeliveryView {
        webhook_id: d.id.clone(),
        request_id: d.request_id.to_string(),
        url: d.url.clone(),
        status: d.state.as_str().to_owned(),
        next_attempt_at: (d.state == DeliveryState::Pending).then(|| rfc3339(d.next_attempt_at)),
        created_at: rfc3339(d.created_at),
        completed_at: d.completed_at.map(rfc3339),
        last_error: d.last_error.clone(),
        attempts: attempts.iter().map(attempt_view).collect(),
    }
}

/// [ext] A request's webhook deliveries, each with every attempt.
#[utoipa::path(get, path = "/v1/requests/{id}/webhook-deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The request_id")),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorEnvelope)))]
pub async fn deliveries(State(state): State<AppState>, Authed(caller): Authed, Path(id): Path<String>) -> ApiResult<Json<DeliveryList>> {
    let id = state.app.parse_request_id(&id)?;
    let logs = state.app.webhook_deliveries(&caller, &id).await?;
    Ok(Json(DeliveryList { data: logs.iter().map(|l: &DeliveryLog| delivery_view(&l.delivery, &l.attempts)).collect() }))
}

/// [ext] Send a finished request's webhook again now, under the same webhook id, with a fresh
/// retry schedule (scope `generate`).
#[utoipa::path(post, path = "/v1/requests/{id}/webhook-deliveries/resend", tag = "webhooks",
    params(("id" = String, Path, description = "The request_id")),
    responses((status = 200, body = DeliveryView), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn resend(State(state): State<AppState>, Authed(caller): Authed, Path(id): Path<String>) -> ApiResult<Json<DeliveryView>> {
    let id = state.app.parse_request_id(&id)?;
    let delivery = state.app.resend_webhook(&caller, &id).await?;
    Ok(Json(delivery_view(&delivery, &[])))
}

/// [ext] Server-Sent Events: one `webhook` event per request of this account (in this key's
/// mode) that finishes while connected, whether or not it has a `webhook_url`:
/// `{"webhook_id", "headers": {…signed headers…}, "body": "<the exact signed body>"}`.
#[utoipa::path(get, path = "/v1/webhooks/events", tag = "webhooks",
    responses((status = 200, content_type = "text/event-stream", description = "`webhook` events")))]
pub async fn events(State(state): State<AppState>, Authed(caller): Authed) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER_EVENTS);
    tokio::spawn(produce(state.app.clone(), caller.tenant(), tx));
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(KEEP_ALIVE_S)))
}

async fn produce(app: App, tenant: Tenant, tx: mpsc::Sender<Result<Event, Infallible>>) {
    let mut events = app.subscribe();
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = tx.closed() => return,
        };
        let ev = match ev {
            Ok(ev) if ev.status.is_terminal() => ev,
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        let signed = match app.live_event(&tenant, &ev.id).await {
            Ok(Some(signed)) => signed,
            Ok(None) => continue, // another tenant's request
            Err(e) => {
                tracing::warn!(request_id = %ev.id, error = %e, "could not sign a live webhook event");
                continue;
            }
        };
        let headers: Map<String, Value> = signed.headers.iter().map(|(k, v)| ((*k).to_owned(), Value::String(v.clone()))).collect();
        let data = serde_json::json!({"webhook_id": signed.webhook_id, "headers": headers, "body": signed.body});
        let event = Event::default().event("webhook").id(signed.webhook_id.clone()).data(data.to_string());
        if tx.send(Ok(event)).await.is_err() {
            return;
        }
    }
}
