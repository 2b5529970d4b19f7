//! Extractors whose rejections speak the error envelope: JSON bodies, query strings, the
//! caller, the base URL for the absolute URLs the API hands out.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use clipia_service::Caller;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// A JSON body; malformed JSON, a wrong content type or an unknown field is a 400 that says
/// what is wrong.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::invalid(None, "Send the body as JSON with \"Content-Type: application/json\"."))
            }
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::invalid(None, format!("The body is not valid JSON: {}", e.body_text())))
            }
            Err(JsonRejection::JsonDataError(e)) => Err(data_error(&e.body_text())),
            Err(JsonRejection::BytesRejection(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("The request body is larger than {} bytes.", clipia_core::limits::BODY_BYTES_MAX),
            )),
            Err(other) => Err(ApiError::invalid(None, format!("The body could not be read: {}", other.body_text()))),
        }
    }
}

/// serde's data errors read "Failed to deserialize the JSON body into the target type: input:
/// invalid type: …"; keep the useful part and name the field when serde does.
fn data_error(text: &str) -> ApiError {
    let detail = text.split_once("target type: ").map(|(_, d)| d).unwrap_or(text);
    let param = detail
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(field, _)| field.to_owned())
        .or_else(|| detail.split_once(": ").map(|(path, _)| path.to_owned()).filter(|p| !p.contains(' ')))
        .or_else(|| detail.split_once("missing field `").and_then(|(_, r)| r.split_once('`')).map(|(f, _)| f.to_owned()));
    ApiError::invalid(param.as_deref(), format!("The body does not match this route: {detail}"))
}

/// A query string; a bad value is a 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(ApiQuery(q.0)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                let text = e.body_text();
                let detail = text.split_once("query string: ").map(|(_, d)| d).unwrap_or(&text).to_owned();
                let param = detail.split_once(": ").map(|(p, _)| p.to_owned()).filter(|p| !p.contains(' '));
                Err(ApiError::invalid(param.as_deref(), format!("Invalid query string: {detail}")))
            }
            Err(e) => Err(ApiError::invalid(None, format!("Invalid query string: {}", e.body_text()))),
        }
    }
}

/// The authenticated caller, placed in the request by the auth layer.
pub struct Authed(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Authed)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "No API key."))
    }
}

/// The scheme and host the API's absolute URLs are built on: `--public-url` when set, else the
/// request's `Host` (and `X-Forwarded-Proto`).
pub struct BaseUrl(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BaseUrl
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        if let Some(url) = &state.public_url {
            return Ok(BaseUrl(url.clone()));
        }
        let header_str = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let host = header_str(header::HOST.as_str())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)))
            .unwrap_or("localhost");
        let scheme = match header_str("x-forwarded-proto") {
            Some("https") => "https",
            _ => "http",
        };
        Ok(BaseUrl(format!("{scheme}://{host}")))
    }
}
