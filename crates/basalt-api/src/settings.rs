//! `/api/settings` (superusers) over `basalt_service::settings`.

use axum::Json;
use axum::extract::State;
use basalt_service::{Caller, settings};
use serde_json::Value;

use crate::ApiState;
use crate::error::ApiResult;

pub(crate) async fn get(State(state): State<ApiState>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(settings::view(&state.service, &caller).await?))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Json(patch): Json<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        settings::update(&state.service, &caller, patch).await?,
    ))
}
