//! `/api/crons` (superusers) over `basalt_service::crons`: the cron jobs with their
//! expressions, and a run of one on demand (204 at once; the job runs in the background).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use basalt_service::{Caller, crons};
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::ApiResult;

pub(crate) async fn list(State(state): State<ApiState>, caller: Caller) -> ApiResult<Json<Value>> {
    let jobs = crons::list(&state.service, &caller).await?;
    Ok(Json(Value::Array(
        jobs.into_iter()
            .map(|j| json!({"id": j.id, "expression": j.expression}))
            .collect(),
    )))
}

pub(crate) async fn run(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    crons::run(&state.service, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
