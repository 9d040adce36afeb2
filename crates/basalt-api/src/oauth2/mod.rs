//! OAuth2 / OpenID Connect on the wire: the `oauth2` part of `auth-methods`, and
//! `POST /api/collections/{c}/auth-with-oauth2` (code exchange in `basalt-oauth2`, account
//! linking in `link`).

mod link;
mod redirect;

pub(crate) use redirect::{redirect_get, redirect_post};

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use basalt_oauth2::OAuth2Error;
use basalt_schema::collection_oauth2::OAuth2Options;
use basalt_schema::{Collection, FieldError, ValidationErrors};
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::auth::{ClientThrottle, outcome};
use crate::error::{ApiError, ApiResult};
use basalt_service::Caller;
use basalt_service::auth::{Throttle, finish_auth};
use basalt_service::records::collection;

fn options(c: &Collection) -> OAuth2Options {
    c.auth
        .as_ref()
        .map(|a| a.oauth2.clone())
        .unwrap_or_default()
}

/// `auth-methods`' `oauth2` object: a fresh state, PKCE pair and authorization URL (ending
/// with `redirect_uri=` for the client to complete) per enabled provider.
pub(crate) fn auth_methods(c: &Collection) -> Value {
    let opts = options(c);
    let providers: Vec<Value> = if opts.enabled {
        opts.providers
            .iter()
            .filter_map(|cfg| match basalt_oauth2::provider(cfg) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(provider = %cfg.name, error = %e, "oauth2 provider skipped");
                    None
                }
            })
            .map(|p| {
                let r = basalt_oauth2::authorization_request(&p);
                json!({
                    "name": p.name,
                    "displayName": p.display_name,
                    "state": r.state,
                    "authURL": r.auth_url,
                    // Read by SDKs older than 0.23.
                    "authUrl": r.auth_url,
                    "codeVerifier": r.code_verifier,
                    "codeChallenge": r.code_challenge,
                    "codeChallengeMethod": r.code_challenge_method,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    json!({"enabled": opts.enabled, "providers": providers})
}

fn loading_failed(key: &str, e: FieldError) -> ApiError {
    ApiError::validation(
        "An error occurred while loading the submitted data.",
        &ValidationErrors::single(key, e),
    )
}

/// Client-facing answer for a failed exchange; the detail goes to the log only.
fn exchange_failed(e: OAuth2Error) -> ApiError {
    tracing::info!(error = %e, "oauth2 exchange refused");
    match e {
        OAuth2Error::RedirectUrl(_) => loading_failed(
            "redirectURL",
            FieldError::new(
                "validation_invalid_redirect_url",
                "Invalid or not allowed redirect url.",
            ),
        ),
        OAuth2Error::CodeVerifier => loading_failed(
            "codeVerifier",
            FieldError::new(
                "validation_invalid_code_verifier",
                "Missing or invalid PKCE code verifier.",
            ),
        ),
        OAuth2Error::TokenExchange(_) | OAuth2Error::ClientSecret(_) => {
            ApiError::bad_request("Failed to fetch OAuth2 token.")
        }
        OAuth2Error::UnknownProvider(_) | OAuth2Error::Misconfigured(_) => {
            ApiError::bad_request("Missing or invalid provider config.")
        }
        OAuth2Error::IdToken(_) | OAuth2Error::UserInfo(_) => {
            ApiError::bad_request("Failed to fetch OAuth2 user.")
        }
    }
}

fn text(body: &Value, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(crate) async fn auth_with_oauth2(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    throttle: ClientThrottle,
    auth: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let c = collection(&state.service, &name)?;
    if !c.is_auth() {
        return Err(ApiError::bad_request(format!(
            "Collection \"{}\" is not an auth collection.",
            c.name
        )));
    }
    throttle.admit(&c, "authWithOAuth2", None).await?;
    let opts = options(&c);
    if !opts.enabled {
        return Err(ApiError::forbidden(
            "The collection is not configured to allow OAuth2 authentication.",
        ));
    }
    let provider_name = text(&body, "provider");
    let code = text(&body, "code");
    let verifier = text(&body, "codeVerifier");
    let redirect = match text(&body, "redirectURL") {
        r if r.is_empty() => text(&body, "redirectUrl"),
        r => r,
    };
    let create_data = match body.get("createData") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(loading_failed(
                "createData",
                FieldError::new("validation_invalid_value", "Must be an object."),
            ));
        }
    };
    let mut errs = ValidationErrors::new();
    let cfg = opts.provider(&provider_name);
    if provider_name.is_empty() {
        errs.add("provider", FieldError::required());
    } else if cfg.is_none() {
        errs.add(
            "provider",
            FieldError::new(
                "validation_invalid_provider",
                format!("Provider with name {provider_name} is missing or is not enabled."),
            ),
        );
    }
    if code.is_empty() {
        errs.add("code", FieldError::required());
    }
    let Some(cfg) = cfg.filter(|_| errs.is_empty()) else {
        return Err(ApiError::validation(
            "An error occurred while loading the submitted data.",
            &errs,
        ));
    };
    let provider = basalt_oauth2::provider(cfg).map_err(exchange_failed)?;
    let user = state
        .oauth2
        .exchange_code(&provider, &code, &verifier, &redirect)
        .await
        .map_err(exchange_failed)?;
    let signed_in = auth.0.as_ref().filter(|a| a.collection_id == c.id);
    let (record, is_new) =
        link::sign_in(&state, &c, &provider.name, &user, create_data, signed_in).await?;
    if !link::auth_rule_admits(&state, &c, &record).await? {
        return Err(ApiError::forbidden(
            "The authentication is not allowed for this collection.",
        ));
    }
    let mfa_id = query
        .get("mfaId")
        .map(String::as_str)
        .or_else(|| body.get("mfaId").and_then(Value::as_str));
    let done = finish_auth(
        &state.service,
        &c,
        record,
        "oauth2",
        mfa_id,
        throttle.origin(),
        Some(meta(&user, is_new)),
    )
    .await?;
    Ok(outcome(done))
}

fn meta(u: &basalt_oauth2::AuthUser, is_new: bool) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "username": u.username,
        "email": u.email,
        "isNew": is_new,
        "avatarURL": u.avatar_url,
        "rawUser": u.raw_user,
        "accessToken": u.access_token,
        "refreshToken": u.refresh_token,
        "expiry": u.expiry,
    })
}

/// The `_externalAuths` collection (system migration 3).
pub(crate) fn external_auths(state: &ApiState) -> ApiResult<Arc<Collection>> {
    state
        .service
        .store
        .schema()
        .find("_externalAuths")
        .cloned()
        .ok_or_else(ApiError::internal)
}
