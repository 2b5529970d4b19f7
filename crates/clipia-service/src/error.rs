//! The service's one error type. Each variant is one row of SPEC §3; the HTTP edge and the
//! MCP tools turn it into their own wire shape.

use clipia_core::Credits;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{message}")]
    InvalidRequest { param: Option<String>, message: String },
    #[error("{0}")]
    InvalidApiKey(String),
    #[error("Not enough credits: this job costs {cost}, {available} available.")]
    InsufficientCredits { cost: Credits, available: Credits },
    #[error("{0}")]
    InsufficientScope(String),
    #[error("{0}")]
    NotFound(String),
    #[error("This Idempotency-Key was already used with a different model or request body.")]
    IdempotencyKeyReuse,
    #[error("A request with this Idempotency-Key is still being processed; retry shortly.")]
    RequestInProgress,
    #[error("{message}")]
    ModelInputInvalid { param: String, message: String },
    #[error("{message}")]
    RateLimited { message: String, retry_after_s: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(param: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::InvalidRequest { param: Some(param.to_owned()), message: message.into() }
    }

    pub fn request_not_found() -> ServiceError {
        ServiceError::NotFound("No request with this id exists for this API key.".into())
    }

    /// The SPEC §3 code.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::InvalidRequest { .. } => "invalid_request",
            ServiceError::InvalidApiKey(_) => "invalid_api_key",
            ServiceError::InsufficientCredits { .. } => "insufficient_credits",
            ServiceError::InsufficientScope(_) => "insufficient_scope",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::IdempotencyKeyReuse => "idempotency_key_reuse",
            ServiceError::RequestInProgress => "request_in_progress",
            ServiceError::ModelInputInvalid { .. } => "model_input_invalid",
            ServiceError::RateLimited { .. } => "rate_limit_exceeded",
            ServiceError::Unavailable(_) => "service_unavailable",
            ServiceError::Internal(_) => "internal_error",
        }
    }

    pub fn param(&self) -> Option<&str> {
        match self {
            ServiceError::InvalidRequest { param, .. } => param.as_deref(),
            ServiceError::ModelInputInvalid { param, .. } => Some(param),
            _ => None,
        }
    }
}

impl From<clipia_store::StoreError> for ServiceError {
    fn from(e: clipia_store::StoreError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}
