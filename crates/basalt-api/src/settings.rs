//! `/api/settings` (superusers) over `basalt_service::settings`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
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

/// `POST /api/settings/test/s3` with PocketBase's body `{"filesystem": "storage"|"backups"}`.
pub(crate) async fn test_s3(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<StatusCode> {
    caller.require_superuser()?;
    let target = settings::S3Target::parse(body.get("filesystem"))?;
    settings::test_s3(&state.service, &caller, target).await?;
    Ok(StatusCode::NO_CONTENT)
}
