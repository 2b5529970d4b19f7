//! `POST /v1/models/{model}` (submit) and `POST /v1/models/{model}/estimate`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clipia_service::submit::SubmitCommand;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, Authed, BaseUrl};
use crate::wire::{EstimateResponse, SubmitResponse};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// The model's input; see the model's `input_schema`.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Where to POST the result when the request ends (http or https).
    pub webhook_url: Option<String>,
    /// [ext] Up to 4 KiB of JSON, echoed back in results.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EstimateBody {
    #[schema(value_type = Object)]
    pub input: Value,
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.to_owned())).map_err(|_| {
            ApiError::invalid(Some("Idempotency-Key"), "Idempotency-Key must be printable ASCII.")
        }),
    }
}

/// Submit a job.
#[utoipa::path(post, path = "/v1/models/{model}", tag = "queue",
    params(("model" = String, Path, description = "Model slug"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe (≤ 255 chars)")),
    request_body = SubmitBody,
    responses((status = 200, body = SubmitResponse, description = "Queued (or, for test keys, already finished)"),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 402, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn submit(
    State(state): State<AppState>,
    Authed(caller): Authed,
    BaseUrl(base): BaseUrl,
    Path(model): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmitBody>,
) -> ApiResult<Response> {
    let cmd = SubmitCommand {
        model,
        input: body.input,
        webhook_url: body.webhook_url,
        metadata: body.metadata,
        idempotency_key: idempotency_key(&headers)?,
    };
    let submitted = state.app.submit(&caller, cmd).await?;
    if !submitted.replayed {
        state.metrics.submitted(caller.key.mode.as_str());
    }
    let mut response = Json(SubmitResponse::new(&submitted, &base)).into_response();
    if submitted.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Price a job without submitting it.
#[utoipa::path(post, path = "/v1/models/{model}/estimate", tag = "models",
    params(("model" = String, Path, description = "Model slug")),
    request_body = EstimateBody,
    responses((status = 200, body = EstimateResponse), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn estimate(
    State(state): State<AppState>,
    Authed(_caller): Authed,
    Path(model): Path<String>,
    ApiJson(body): ApiJson<EstimateBody>,
) -> ApiResult<Json<EstimateResponse>> {
    let e = state.app.estimate(&model, &body.input)?;
    Ok(Json(EstimateResponse { credits: e.credits, warnings: e.warnings }))
}
