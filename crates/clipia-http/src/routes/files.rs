//! `GET /v1/files/{dir}/{name}`: output files by signed, expiring URL — no Authorization header,
//! so that `<img src>` works. An invalid or expired signature looks exactly like a missing file.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use clipia_service::files::{content_type, SANDBOX_DIR};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::ApiQuery;
use crate::AppState;

#[derive(Deserialize, IntoParams)]
pub struct FileQuery {
    /// Unix seconds after which the URL stops working.
    pub expires: Option<i64>,
    /// The URL's signature.
    pub sig: Option<String>,
}

/// Download an output file.
#[utoipa::path(get, path = "/v1/files/{dir}/{name}", tag = "files",
    params(("dir" = String, Path), ("name" = String, Path), FileQuery),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"),
              (status = 404, body = ErrorEnvelope)))]
pub async fn download(
    State(state): State<AppState>,
    Path((dir, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<FileQuery>,
) -> ApiResult<Response> {
    let gone = || ApiError::not_found("No such file, or its URL has expired; read the request's result for a fresh URL.");
    let key = format!("{dir}/{name}");
    let (Some(expires), Some(sig)) = (q.expires, q.sig) else { return Err(gone()) };
    if !state.app.signer.verify(&key, expires, &sig, state.app.now_ms() / 1000) {
        return Err(gone());
    }
    let bytes = if dir == SANDBOX_DIR {
        clipia_service::sandbox::file(&name).map(<[u8]>::to_vec)
    } else {
        state.app.files.get(&key).await.map_err(|e| ApiError::from(clipia_service::ServiceError::Internal(e.to_string())))?
    };
    let bytes = bytes.ok_or_else(gone)?;
    let max_age = (expires - state.app.now_ms() / 1000).max(0);
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&name).to_owned()),
            (header::CACHE_CONTROL, format!("private, max-age={max_age}, immutable")),
        ],
        bytes,
    )
        .into_response())
}
