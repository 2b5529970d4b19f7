//! `GET /v1/models` and `GET /v1/models/{model}`.

use axum::extract::{Path, State};
use axum::Json;
use clipia_catalog::Model;
use clipia_service::App;
use serde_json::Value;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::Authed;
use crate::wire::ModelList;
use crate::AppState;

fn model_json(app: &App, model: &Model) -> Value {
    let availability = app.availability(model);
    model.to_api_json(availability.is_ok(), availability.err().as_deref())
}

/// List the model catalog with prices and availability.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = ModelList), (status = 401, body = ErrorEnvelope)))]
pub async fn list(State(state): State<AppState>, Authed(_): Authed) -> Json<ModelList> {
    let data = state.app.catalog.models().iter().map(|m| model_json(&state.app, m)).collect();
    Json(ModelList { object: "list", data })
}

/// One model: parameters, price, availability.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "models",
    params(("model" = String, Path, description = "Model slug")),
    responses((status = 200, body = Object, description = "A model object"), (status = 404, body = ErrorEnvelope)))]
pub async fn get(State(state): State<AppState>, Authed(_): Authed, Path(model): Path<String>) -> ApiResult<Json<Value>> {
    let model = state.app.model(&model)?;
    Ok(Json(model_json(&state.app, model)))
}
