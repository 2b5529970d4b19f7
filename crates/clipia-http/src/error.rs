//! The one error envelope on the wire (SPEC §3), and the trace id that ties a response to the
//! server's logs.
//!
//! Every error leaves as `{"error": {"type", "code", "message", "param"?, "trace_id"}}` with
//! `Content-Type: application/json`. Errors raised by handlers become [`ApiError`]s; the
//! framework's own plain responses (405, 413, a caught panic) are rewritten into the envelope
//! by [`envelope_fixup`], so no plain-text error body ever leaves the server.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clipia_service::ServiceError;
use serde_json::json;
use utoipa::ToSchema;

/// The response header carrying the request's trace id.
pub const TRACE_HEADER: &str = "x-clipia-trace-id";

tokio::task_local! {
    static TRACE_ID: String;
}

pub fn trace_id() -> String {
    TRACE_ID.try_with(Clone::clone).unwrap_or_default()
}

/// An error about to be sent: status, SPEC §3 code and a message naming the field and limit.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub retry_after_s: Option<u64>,
}

/// The error envelope, as documented in the OpenAPI description.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `rate_limit_error` or `api_error`.
    r#type: String,
    /// A stable machine-readable code, e.g. `insufficient_credits`.
    code: String,
    message: String,
    /// [ext] The field at fault, e.g. `input.num_images`.
    param: Option<String>,
    /// [ext] Also in the `X-Clipia-Trace-Id` header.
    trace_id: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), param: None, retry_after_s: None }
    }

    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError { param: param.map(str::to_owned), ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message) }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn error_type(&self) -> &'static str {
        match self.code {
            "invalid_api_key" => "authentication_error",
            "insufficient_scope" => "permission_error",
            "rate_limit_exceeded" => "rate_limit_error",
            "internal_error" | "service_unavailable" => "api_error",
            _ => "invalid_request_error",
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        let status = match &e {
            ServiceError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ServiceError::InvalidApiKey(_) => StatusCode::UNAUTHORIZED,
            ServiceError::InsufficientCredits { .. } => StatusCode::PAYMENT_REQUIRED,
            ServiceError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::IdempotencyKeyReuse | ServiceError::RequestInProgress => StatusCode::CONFLICT,
            ServiceError::ModelInputInvalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let ServiceError::Internal(detail) = &e {
            // The detail goes to the log with the trace id, never to the client.
            tracing::error!(trace_id = %trace_id(), detail = %detail, "internal error");
        }
        let retry_after_s = match &e {
            ServiceError::RateLimited { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        };
        let message = match &e {
            ServiceError::Internal(_) => "Something went wrong on our side; try again with backoff.".to_owned(),
            other => other.to_string(),
        };
        ApiError { status, code: e.code(), message, param: e.param().map(str::to_owned), retry_after_s }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"type": self.error_type(), "code": self.code, "message": self.message});
        if let Some(param) = &self.param {
            body["param"] = json!(param);
        }
        body["trace_id"] = json!(trace_id());
        let mut response = (self.status, axum::Json(json!({"error": body}))).into_response();
        if let Some(s) = self.retry_after_s {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Outermost layer: gives each request a trace id (in a task-local, for error bodies and logs)
/// and returns it in the `X-Clipia-Trace-Id` header.
pub async fn trace(request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut response = TRACE_ID.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(TRACE_HEADER, value);
    }
    response
}

/// Rewrites any error response that is not already JSON into the envelope, so the framework's
/// own answers (wrong method, body too large, a caught panic) keep the contract too.
pub async fn envelope_fixup(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "invalid_request",
            match allow.as_ref().and_then(|a| a.to_str().ok()) {
                Some(methods) => format!("This route does not accept this HTTP method; it accepts {methods}."),
                // The router adds `Allow` after this layer; the header is on the response then.
                None => "This route does not accept this HTTP method; the Allow header lists those it does.".to_owned(),
            },
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "invalid_request",
            format!("The request body is larger than {} bytes.", clipia_core::limits::BODY_BYTES_MAX),
        ),
        StatusCode::NOT_FOUND => ApiError::not_found("No such route."),
        s if s.is_server_error() => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Something went wrong on our side; try again with backoff."),
        s => ApiError::new(s, "invalid_request", "The request could not be processed."),
    };
    let mut fixed = error.into_response();
    if let Some(allow) = allow {
        fixed.headers_mut().insert(header::ALLOW, allow);
    }
    fixed
}

/// Turns a caught panic into a 500 (the fix-up layer then writes the envelope). The panic's
/// message is logged, never sent.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    tracing::error!(trace_id = %trace_id(), detail, "handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Something went wrong on our side; try again with backoff.")
        .into_response()
}
