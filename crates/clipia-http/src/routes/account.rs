//! `GET /v1/account` and `GET /v1/account/ledger`.

use axum::extract::State;
use axum::Json;
use clipia_core::limits::PAGE_LIMIT_DEFAULT;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiQuery, Authed};
use crate::routes::requests::parse_cursor;
use crate::wire::{AccountResponse, BalanceView, KeyView, LedgerEntryView, LedgerPage, LimitsView, UsageView};
use crate::AppState;

/// Balance, 30-day usage, and [ext] the calling key and its limits.
#[utoipa::path(get, path = "/v1/account", tag = "account",
    responses((status = 200, body = AccountResponse), (status = 401, body = ErrorEnvelope)))]
pub async fn get(State(state): State<AppState>, Authed(caller): Authed) -> ApiResult<Json<AccountResponse>> {
    let view = state.app.account(&caller).await?;
    Ok(Json(AccountResponse {
        account_id: caller.key.account.to_string(),
        balance: BalanceView { credits: view.balance.available, reserved: view.balance.reserved },
        usage_30d: UsageView { requests: view.usage_30d.requests, credits_spent: view.usage_30d.credits_spent },
        key: KeyView::from(&caller.key),
        limits: LimitsView {
            requests_per_minute: caller.requests_per_minute(&state.app),
            concurrent_generations: caller.concurrent_generations(&state.app),
        },
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// [ext] The account's credit ledger, newest first.
#[utoipa::path(get, path = "/v1/account/ledger", tag = "account", params(LedgerQuery),
    responses((status = 200, body = LedgerPage), (status = 400, body = ErrorEnvelope)))]
pub async fn ledger(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<LedgerQuery>,
) -> ApiResult<Json<LedgerPage>> {
    let limit = q.limit.unwrap_or(PAGE_LIMIT_DEFAULT);
    if !(1..=clipia_core::limits::PAGE_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::invalid(Some("limit"), "limit must be from 1 to 100."));
    }
    let before = q.cursor.map(|c| parse_cursor(&c)).transpose()?;
    let entries = state.app.ledger(&caller, before, limit).await?;
    let next_cursor = (entries.len() == limit as usize).then(|| entries.last().map(|e| format!("r{}", e.id))).flatten();
    Ok(Json(LedgerPage { data: entries.iter().map(LedgerEntryView::from).collect(), next_cursor }))
}
