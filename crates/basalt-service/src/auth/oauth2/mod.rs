//! OAuth2 / OpenID Connect sign-in: the providers a client may start with ([`methods`])
//! and [`sign_in`] (code exchange in `basalt-oauth2`, account linking in `link`, then the
//! session as after any first factor).

mod link;

use basalt_oauth2::{AuthorizationRequest, OAuth2Error};
use basalt_schema::collection_oauth2::OAuth2Options;
use basalt_schema::{Collection, FieldError, ValidationErrors};
use serde_json::{Map, Value, json};

use super::{AuthOutcome, Origin, Throttle, finish_auth};
use crate::error::{ServiceError, ServiceResult};
use crate::records::{Param, collection};
use crate::{Caller, Services};

fn options(c: &Collection) -> OAuth2Options {
    c.auth
        .as_ref()
        .map(|a| a.oauth2.clone())
        .unwrap_or_default()
}

/// A provider a client may start a sign-in with: a fresh state, PKCE pair and
/// authorization URL.
#[derive(Debug, Clone)]
pub struct ProviderStart {
    pub name: String,
    pub display_name: String,
    pub request: AuthorizationRequest,
}

/// The collection's OAuth2 sign-in methods.
#[derive(Debug, Clone)]
pub struct OAuth2Methods {
    pub enabled: bool,
    pub providers: Vec<ProviderStart>,
}

pub fn methods(c: &Collection) -> OAuth2Methods {
    let opts = options(c);
    let providers = if opts.enabled {
        opts.providers
            .iter()
            .filter_map(|cfg| match basalt_oauth2::provider(cfg) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(provider = %cfg.name, error = %e, "oauth2 provider skipped");
                    None
                }
            })
            .map(|p| ProviderStart {
                request: basalt_oauth2::authorization_request(&p),
                name: p.name,
                display_name: p.display_name,
            })
            .collect()
    } else {
        Vec::new()
    };
    OAuth2Methods {
        enabled: opts.enabled,
        providers,
    }
}

fn loading_failed(key: &str, e: FieldError) -> ServiceError {
    ServiceError::validation(
        "An error occurred while loading the submitted data.",
        &ValidationErrors::single(key, e),
    )
}

/// Client-facing answer for a failed exchange; the detail goes to the log only.
fn exchange_failed(e: OAuth2Error) -> ServiceError {
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
            ServiceError::bad_request("Failed to fetch OAuth2 token.")
        }
        OAuth2Error::UnknownProvider(_) | OAuth2Error::Misconfigured(_) => {
            ServiceError::bad_request("Missing or invalid provider config.")
        }
        OAuth2Error::IdToken(_) | OAuth2Error::UserInfo(_) | OAuth2Error::Avatar(_) => {
            ServiceError::bad_request("Failed to fetch OAuth2 user.")
        }
    }
}

/// A sign-in with an OAuth2 provider's authorization code; each string is empty when
/// absent.
#[derive(Debug, Clone)]
pub struct OAuth2Login {
    pub collection: String,
    pub provider: String,
    pub code: String,
    pub code_verifier: String,
    pub redirect_url: String,
    /// Fields of a record created for a new identity (`Err`: not an object).
    pub create_data: Param<Map<String, Value>>,
    /// The pending second factor this sign-in completes.
    pub mfa_id: Option<String>,
    pub origin: Origin,
}

/// Signs the provider's user in as the record linked to them, the caller's own record
/// (linking it), the record with their provider-verified email, or a new record.
pub async fn sign_in(
    svc: &Services,
    throttle: &dyn Throttle,
    caller: &Caller,
    input: OAuth2Login,
) -> ServiceResult<AuthOutcome> {
    let c = collection(svc, &input.collection)?;
    if !c.is_auth() {
        return Err(ServiceError::bad_request(format!(
            "Collection \"{}\" is not an auth collection.",
            c.name
        )));
    }
    throttle.admit(&c, "authWithOAuth2", None).await?;
    let opts = options(&c);
    if !opts.enabled {
        return Err(ServiceError::forbidden(
            "The collection is not configured to allow OAuth2 authentication.",
        ));
    }
    let provider_name = input.provider;
    let code = input.code;
    let create_data = input.create_data.map_err(|_| {
        loading_failed(
            "createData",
            FieldError::new("validation_invalid_value", "Must be an object."),
        )
    })?;
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
        return Err(ServiceError::validation(
            "An error occurred while loading the submitted data.",
            &errs,
        ));
    };
    let provider = basalt_oauth2::provider(cfg).map_err(exchange_failed)?;
    let user = svc
        .oauth2
        .exchange_code(&provider, &code, &input.code_verifier, &input.redirect_url)
        .await
        .map_err(exchange_failed)?;
    let signed_in = caller.0.as_ref().filter(|a| a.collection_id == c.id);
    let (record, is_new) =
        link::sign_in(svc, &c, &provider.name, &user, create_data, signed_in).await?;
    if !link::auth_rule_admits(svc, &c, &record).await? {
        return Err(ServiceError::forbidden(
            "The authentication is not allowed for this collection.",
        ));
    }
    let meta = meta(&user, is_new);
    let mfa_id = input.mfa_id.as_deref();
    finish_auth(svc, &c, record, "oauth2", mfa_id, input.origin, Some(meta)).await
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
