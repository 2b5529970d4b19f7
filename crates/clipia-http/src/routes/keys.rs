//! `GET/POST /v1/keys`, `DELETE /v1/keys/{id}` [ext], scope `admin`.

use axum::extract::{Path, State};
use axum::Json;
use clipia_core::{Mode, Scopes};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, Authed};
use crate::wire::{CreatedKey, KeyList, KeyView};
use crate::AppState;

/// The account's keys (prefixes only).
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses((status = 200, body = KeyList), (status = 403, body = ErrorEnvelope)))]
pub async fn list(State(state): State<AppState>, Authed(caller): Authed) -> ApiResult<Json<KeyList>> {
    let keys = state.app.list_keys(&caller).await?;
    Ok(Json(KeyList { data: keys.iter().map(KeyView::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    /// `live` or `test`; defaults to the calling key's mode.
    pub mode: Option<String>,
    /// Any of `generate`, `read`, `admin`; defaults to `generate` and `read`.
    pub scopes: Option<Vec<String>>,
    pub name: Option<String>,
}

/// Create a key. The secret is in this response only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKeyBody,
    responses((status = 200, body = CreatedKey), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> ApiResult<Json<CreatedKey>> {
    let mode = match body.mode.as_deref() {
        None => caller.key.mode,
        Some(m) => Mode::parse(m).ok_or_else(|| ApiError::invalid(Some("mode"), "mode must be \"live\" or \"test\"."))?,
    };
    let scopes = body
        .scopes
        .map(|list| Scopes::parse_list(&list.join(",")).map_err(|e| ApiError::invalid(Some("scopes"), format!("scopes: {e}."))))
        .transpose()?;
    if body.name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(ApiError::invalid(Some("name"), "name must be at most 100 characters."));
    }
    let (secret, record) = state.app.create_key(&caller, mode, scopes, body.name).await?;
    Ok(Json(CreatedKey { key: secret.expose().to_owned(), record: KeyView::from(&record) }))
}

/// Revoke a key; effective at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key id, key_…")),
    responses((status = 200, body = KeyView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke(State(state): State<AppState>, Authed(caller): Authed, Path(id): Path<String>) -> ApiResult<Json<KeyView>> {
    let record = state.app.revoke_key(&caller, &id).await?;
    Ok(Json(KeyView::from(&record)))
}
