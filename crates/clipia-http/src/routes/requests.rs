//! `GET /v1/requests/{id}/status`, `GET /v1/requests/{id}`, `POST /v1/requests/{id}/cancel`,
//! `GET /v1/requests`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clipia_core::limits::{PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, STATUS_WAIT_S_MAX};
use clipia_core::Status;
use clipia_store::JobFilter;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiQuery, Authed, BaseUrl};
use crate::wire::{PendingResponse, RequestList, ResultResponse, StatusResponse};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// [ext] Hold the call up to this many seconds (≤ 60) until the request is finished.
    pub wait: Option<f64>,
    /// Accepted for compatibility; logs are always included.
    pub logs: Option<String>,
}

/// Status, queue position, progress and logs of a request.
#[utoipa::path(get, path = "/v1/requests/{id}/status", tag = "queue",
    params(("id" = String, Path, description = "The request_id"), StatusQuery),
    responses((status = 200, body = StatusResponse), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn status(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> ApiResult<Json<StatusResponse>> {
    let id = state.app.parse_request_id(&id)?;
    let wait = match q.wait {
        None => Duration::ZERO,
        Some(w) if w.is_finite() && (0.0..=STATUS_WAIT_S_MAX as f64).contains(&w) => Duration::from_secs_f64(w),
        Some(_) => {
            return Err(ApiError::invalid(Some("wait"), format!("wait must be a number of seconds from 0 to {STATUS_WAIT_S_MAX}.")))
        }
    };
    let view = state.app.wait_terminal(&caller, &id, wait, true).await?;
    Ok(Json(StatusResponse::from(&view)))
}

/// The result: 202 while the request is queued or running, 200 once it has finished.
#[utoipa::path(get, path = "/v1/requests/{id}", tag = "queue",
    params(("id" = String, Path, description = "The request_id")),
    responses((status = 200, body = ResultResponse, description = "Finished: COMPLETED, FAILED or CANCELED"),
              (status = 202, body = PendingResponse, description = "Still IN_QUEUE or IN_PROGRESS"),
              (status = 404, body = ErrorEnvelope)))]
pub async fn result(
    State(state): State<AppState>,
    Authed(caller): Authed,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = state.app.parse_request_id(&id)?;
    let view = state.app.request(&caller, &id, false).await?;
    Ok(if view.job.status.is_terminal() {
        Json(ResultResponse::new(&state.app, &view.job, &base)).into_response()
    } else {
        (StatusCode::ACCEPTED, Json(PendingResponse::new(&view, &base))).into_response()
    })
}

/// [ext] Cancel a request. Idempotent; a canceled request is never charged.
#[utoipa::path(post, path = "/v1/requests/{id}/cancel", tag = "queue",
    params(("id" = String, Path, description = "The request_id")),
    responses((status = 200, body = ResultResponse), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn cancel(
    State(state): State<AppState>,
    Authed(caller): Authed,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Json<ResultResponse>> {
    let id = state.app.parse_request_id(&id)?;
    let view = state.app.cancel(&caller, &id).await?;
    Ok(Json(ResultResponse::new(&state.app, &view.job, &base)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only requests in this status.
    pub status: Option<String>,
    /// Only requests to this model.
    pub model: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// [ext] The key's requests, newest first.
#[utoipa::path(get, path = "/v1/requests", tag = "queue", params(ListQuery),
    responses((status = 200, body = RequestList), (status = 400, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Authed(caller): Authed,
    BaseUrl(base): BaseUrl,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<RequestList>> {
    let status = q
        .status
        .map(|s| {
            Status::parse(&s).ok_or_else(|| {
                ApiError::invalid(Some("status"), "status must be IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED or CANCELED.")
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(PAGE_LIMIT_DEFAULT);
    if !(1..=PAGE_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::invalid(Some("limit"), format!("limit must be from 1 to {PAGE_LIMIT_MAX}.")));
    }
    let before_seq = q.cursor.map(|c| parse_cursor(&c)).transpose()?;
    let filter = JobFilter { status, model: q.model, before_seq, limit };
    let jobs = state.app.list_requests(&caller, filter).await?;
    let next_cursor = (jobs.len() == limit as usize).then(|| jobs.last().map(|j| format!("r{}", j.seq))).flatten();
    Ok(Json(RequestList { data: jobs.iter().map(|j| ResultResponse::new(&state.app, j, &base)).collect(), next_cursor }))
}

/// Cursors are opaque to clients: a letter and a position.
pub fn parse_cursor(cursor: &str) -> ApiResult<i64> {
    cursor
        .strip_prefix('r')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid(Some("cursor"), "cursor is not one this server handed out."))
}
