//! Authentication and request rate limits for every `/v1` route (except signed file URLs).
//!
//! The key may come as `Authorization: Bearer <key>`, `Authorization: Key <key>` or
//! `X-Api-Key: <key>` (SPEC §2). Each authenticated call counts against the key's requests per
//! minute, and every authenticated response carries the `RateLimit-*` headers of SPEC §7.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clipia_service::{Caller, RateDecision, ServiceError};

use crate::error::ApiError;
use crate::AppState;

/// The presented key, from whichever of the three places holds it.
pub fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = auth.trim().split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("key") {
            return Some(rest.trim().to_owned());
        }
        return Some(String::new()); // an Authorization header we cannot use: invalid, not missing
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned())
}

pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let app = &state.app;
    let caller = match app.authenticate(presented_key(request.headers()).as_deref()).await {
        Ok(caller) => caller,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let rpm = caller.requests_per_minute(app);
    let decision = app.limiter.check(caller.key.id.as_str(), rpm, app.now_ms()).await;
    let headers = rate_headers(&caller, app, &decision);
    let mut response = if decision.allowed {
        request.extensions_mut().insert(caller);
        next.run(request).await
    } else {
        state.metrics.rate_limited.inc();
        ApiError::from(ServiceError::RateLimited {
            message: format!(
                "Rate limit exceeded: this key may make {rpm} requests per minute; retry in {} s.",
                decision.retry_after_s
            ),
            retry_after_s: decision.retry_after_s,
        })
        .into_response()
    };
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn rate_headers(caller: &Caller, app: &clipia_service::App, d: &RateDecision) -> [(&'static str, String); 5] {
    let concurrency = caller.concurrent_generations(app);
    let free = concurrency.saturating_sub(caller.key.running);
    [
        ("ratelimit-limit", d.limit.to_string()),
        ("ratelimit-remaining", d.remaining.to_string()),
        ("ratelimit-reset", d.reset_s.to_string()),
        (
            "ratelimit-policy",
            format!("\"requests\";q={};w=60, \"generations\";q={concurrency};qu=\"concurrent-requests\"", d.limit),
        ),
        ("ratelimit", format!("\"requests\";r={};t={}, \"generations\";r={free}", d.remaining, d.reset_s)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_schemes_are_read() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer abc"));
        assert_eq!(presented_key(&h).as_deref(), Some("abc"));
        h.insert("authorization", HeaderValue::from_static("key abc"));
        assert_eq!(presented_key(&h).as_deref(), Some("abc"));
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&h).as_deref(), Some(""));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("abc"));
        assert_eq!(presented_key(&h).as_deref(), Some("abc"));
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }
}
