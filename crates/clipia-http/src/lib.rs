//! The HTTP edge: axum routes for the queue API, the error envelope, authentication and rate
//! limits, metrics and the OpenAPI description.
//!
//! Architecture invariant: only this crate knows HTTP and the JSON wire shapes. Handlers parse,
//! call one service function, and render; rules live in `clipia-service`.

pub mod auth;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod wire;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{delete, get, post};
use axum::Router;
use clipia_service::App;
use tower_http::catch_panic::CatchPanicLayer;

pub use metrics::Metrics;

/// What every handler receives: the services and the edge's own settings.
#[derive(Clone)]
pub struct AppState {
    /// The services shared with MCP.
    pub app: App,
    /// The base of the absolute URLs handed out; `None` means "from the request's Host".
    pub public_url: Option<String>,
    pub metrics: Arc<Metrics>,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    use routes::*;
    let authed = Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/models/{model}", post(submit::submit).get(models::get))
        .route("/v1/models/{model}/estimate", post(submit::estimate))
        .route("/v1/requests", get(requests::list))
        .route("/v1/requests/{id}", get(requests::result))
        .route("/v1/requests/{id}/status", get(requests::status))
        .route("/v1/requests/{id}/cancel", post(requests::cancel))
        .route("/v1/requests/{id}/events", get(events::events))
        .route("/v1/requests/{id}/webhook-deliveries", get(webhooks::deliveries))
        .route("/v1/requests/{id}/webhook-deliveries/resend", post(webhooks::resend))
        .route("/v1/webhooks/secret", get(webhooks::secret))
        .route("/v1/webhooks/secret/rotate", post(webhooks::rotate))
        .route("/v1/webhooks/events", get(webhooks::events))
        .route("/v1/account", get(account::get))
        .route("/v1/account/ledger", get(account::ledger))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", delete(keys::revoke))
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    let open = Router::new()
        .route("/v1/files/{dir}/{name}", get(files::download))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi));
    authed
        .merge(open)
        .fallback(|| async { error::ApiError::not_found("No such route; see /openapi.json for the API's routes.") })
        .route_layer(from_fn_with_state(state.clone(), metrics::record))
        .layer(DefaultBodyLimit::max(clipia_core::limits::BODY_BYTES_MAX))
        .layer(from_fn(error::envelope_fixup))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(from_fn(error::trace))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
