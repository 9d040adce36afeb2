//! `POST /api/realtime`: replaces a client's subscriptions and binds it to the request's
//! identity, with PocketBase's answers: 400 for a malformed body, 404 for an unknown
//! client id, 403 when the identity differs from the one bound earlier, 204 when done.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use basalt_realtime::{MAX_SUBSCRIPTIONS, MAX_TOPIC_LEN, RealtimeError, Subscription};
use serde_json::{Value, json};

use super::identity_of_headers;
use crate::ApiState;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};

const MAX_CLIENT_ID_LEN: usize = 255;

fn invalid(field: &str, code: &str, message: &str) -> ApiError {
    ApiError::bad_request("An error occurred while validating the submitted data.")
        .with_data(json!({field: {"code": code, "message": message}}))
}

pub(crate) async fn set_subscriptions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let client_id = match body.get("clientId") {
        Some(Value::String(s)) => s.trim().to_string(),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            return Err(invalid(
                "clientId",
                "validation_invalid_value",
                "Must be a string.",
            ));
        }
    };
    if client_id.is_empty() {
        return Err(invalid(
            "clientId",
            "validation_required",
            "Cannot be blank.",
        ));
    }
    if client_id.len() > MAX_CLIENT_ID_LEN {
        return Err(invalid(
            "clientId",
            "validation_length_out_of_range",
            "The length must be between 1 and 255.",
        ));
    }
    let topics: Vec<String> = match body.get("subscriptions") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    _ => {
                        return Err(invalid(
                            "subscriptions",
                            "validation_invalid_value",
                            "Must be a list of strings.",
                        ));
                    }
                }
            }
            out
        }
        // A single string, as form bodies send one value.
        Some(Value::String(s)) => vec![s.clone()],
        Some(_) => {
            return Err(invalid(
                "subscriptions",
                "validation_invalid_value",
                "Must be a list of strings.",
            ));
        }
    };
    if topics.len() > MAX_SUBSCRIPTIONS {
        return Err(invalid(
            "subscriptions",
            "validation_length_too_long",
            "The length must be no more than 1000.",
        ));
    }
    for t in topics.iter().filter(|t| !t.trim().is_empty()) {
        if t.len() > MAX_TOPIC_LEN {
            return Err(invalid(
                "subscriptions",
                "validation_length_too_long",
                "Each subscription must be no more than 2500 characters.",
            ));
        }
        if let Err(e) = Subscription::parse(t) {
            tracing::debug!(error = %e, "invalid realtime topic");
            return Err(invalid(
                "subscriptions",
                "validation_invalid_value",
                "Invalid subscription topic.",
            ));
        }
    }
    let identity = identity_of_headers(&state, &headers).await?;
    state
        .realtime
        .bind_identity(&client_id, identity)
        .and_then(|()| state.realtime.set_subscriptions(&client_id, &topics))
        .map_err(|e| match e {
            RealtimeError::UnknownClient => {
                ApiError::new(StatusCode::NOT_FOUND, "Missing or invalid client id.")
            }
            RealtimeError::IdentityMismatch => ApiError::forbidden(
                "The current and the previous request authorization don't match.",
            ),
            RealtimeError::InvalidTopic(_) | RealtimeError::TooManySubscriptions => invalid(
                "subscriptions",
                "validation_invalid_value",
                "Invalid subscription topic.",
            ),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
