//! OAuth2 / OpenID Connect login, as a service: the provider presets (GitHub, Google,
//! GitLab, Microsoft, Discord, Apple) and the generic OIDC provider, authorization URLs
//! with PKCE (S256), state and nonce, the authorization-code exchange, the user-info fetch,
//! id_token verification against the provider's JWKS, and the mapping of each provider's
//! user to one [`AuthUser`].
//!
//! It owns the outbound HTTP client for provider calls, but must never know Basalt's own
//! routes, the wire format, SQL or how accounts are linked: the API layer hands it a
//! collection's provider configuration and gets a verified external identity back.

mod apple;
mod cache;
mod exchange;
mod fetch;
mod id_token;
mod pkce;
mod presets;
mod redirect;
mod user;

use basalt_schema::collection_oauth2::OAuth2Provider;

pub use exchange::ProviderClient;
pub use pkce::{AuthorizationRequest, authorization_request, nonce_for};
pub use presets::{Preset, Provider};
pub use redirect::check_redirect_url;
pub use user::{AuthUser, map_user};

#[derive(Debug, thiserror::Error)]
pub enum OAuth2Error {
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    #[error("provider is misconfigured: {0}")]
    Misconfigured(String),
    #[error("missing or malformed pkce code verifier")]
    CodeVerifier,
    #[error("redirect url not allowed: {0}")]
    RedirectUrl(String),
    #[error("token exchange failed: {0}")]
    TokenExchange(String),
    #[error("user info request failed: {0}")]
    UserInfo(String),
    #[error("invalid id_token: {0}")]
    IdToken(String),
    #[error("client secret could not be built: {0}")]
    ClientSecret(String),
    #[error("avatar download failed: {0}")]
    Avatar(String),
}

/// Resolves a collection's provider entry against its preset.
pub fn provider(cfg: &OAuth2Provider) -> Result<Provider, OAuth2Error> {
    Provider::resolve(cfg)
}
