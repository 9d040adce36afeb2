//! `auth-methods`: which sign-in methods an auth collection offers, with a fresh OAuth2
//! start (state, PKCE pair, authorization URL) per enabled provider.

use axum::Json;
use axum::extract::{Path, State};
use basalt_schema::Collection;
use basalt_service::auth::auth_collection;
use basalt_service::auth::oauth2;
use basalt_service::tokens::options;
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::ApiResult;

/// Which sign-in methods the collection offers.
pub(crate) async fn auth_methods(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = auth_collection(&state.service, &name)?;
    let a = options(&c);
    let pa = &a.password_auth;
    let secs = |enabled: bool, d: i64| if enabled { d } else { 0 };
    let oauth2 = oauth2_methods(&c);
    Ok(Json(json!({
        "password": {"enabled": pa.enabled, "identityFields": pa.identity_fields},
        "oauth2": oauth2,
        "mfa": {"enabled": a.mfa.enabled, "duration": secs(a.mfa.enabled, a.mfa.duration)},
        "otp": {"enabled": a.otp.enabled, "duration": secs(a.otp.enabled, a.otp.duration)},
        // Kept by PocketBase for older SDKs.
        "authProviders": oauth2["providers"],
        "usernamePassword": pa.enabled && pa.identity_fields.iter().any(|f| f == "username"),
        "emailPassword": pa.enabled && pa.identity_fields.iter().any(|f| f == "email"),
    })))
}

/// `auth-methods`' `oauth2` object: a fresh state, PKCE pair and authorization URL (ending
/// with `redirect_uri=` for the client to complete) per enabled provider.
fn oauth2_methods(c: &Collection) -> Value {
    let m = oauth2::methods(c);
    let providers: Vec<Value> = m
        .providers
        .into_iter()
        .map(|p| {
            let r = p.request;
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
        .collect();
    json!({"enabled": m.enabled, "providers": providers})
}
