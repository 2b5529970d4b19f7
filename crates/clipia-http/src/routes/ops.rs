//! `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json` [ext]: no key needed.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Object)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process can serve: its store answers.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Object), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.app.store.queue_stats().await {
        Ok(_) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            crate::error::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "The store is not answering.")
                .into_response()
        }
    }
}

/// Prometheus metrics, text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(stats) = state.app.store.queue_stats().await {
        state.metrics.set_queue(stats.queued, stats.in_progress);
    }
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

/// This server's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, body = Object)))]
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
