//! Each provider's endpoints, scopes and id_token trust (issuer, JWKS), learned from the
//! providers' documentation; a collection's entry may override the endpoints.

use basalt_schema::collection_oauth2::{OAuth2Provider, is_generic_oidc};

use crate::OAuth2Error;

/// How a provider's user is read (see `user.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Oidc,
    Github,
    Google,
    Gitlab,
    Microsoft,
    Discord,
    Apple,
}

/// A provider ready to use: the preset merged with the collection's configuration.
/// Its `Debug` leaves out the secrets.
#[derive(Clone)]
pub struct Provider {
    pub name: String,
    pub preset: Preset,
    pub display_name: String,
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    pub user_info_url: String,
    pub scopes: Vec<String>,
    pub pkce: bool,
    /// Extra authorization parameters (Apple's `response_mode=form_post`).
    pub auth_params: Vec<(String, String)>,
    /// Where the id_token's signing keys are; empty: discovered.
    pub jwks_url: String,
    /// Accepted `iss` values of the id_token; empty: discovered.
    pub issuers: Vec<String>,
    /// Exact redirect URLs accepted at code exchange; empty: any well-formed URL.
    pub redirect_urls: Vec<String>,
    /// The whole configuration entry, for provider-specific settings.
    pub config: OAuth2Provider,
}

struct Defaults {
    preset: Preset,
    display: &'static str,
    auth: &'static str,
    token: &'static str,
    user_info: &'static str,
    scopes: &'static [&'static str],
    jwks: &'static str,
    issuers: &'static [&'static str],
}

fn defaults(name: &str) -> Option<Defaults> {
    let d = match name {
        n if is_generic_oidc(n) => Defaults {
            preset: Preset::Oidc,
            display: "OIDC",
            auth: "",
            token: "",
            user_info: "",
            scopes: &["openid", "email", "profile"],
            jwks: "",
            issuers: &[],
        },
        "github" => Defaults {
            preset: Preset::Github,
            display: "GitHub",
            auth: "https://github.com/login/oauth/authorize",
            token: "https://github.com/login/oauth/access_token",
            user_info: "https://api.github.com/user",
            scopes: &["read:user", "user:email"],
            jwks: "",
            issuers: &[],
        },
        "google" => Defaults {
            preset: Preset::Google,
            display: "Google",
            auth: "https://accounts.google.com/o/oauth2/v2/auth",
            token: "https://oauth2.googleapis.com/token",
            user_info: "https://www.googleapis.com/oauth2/v3/userinfo",
            scopes: &[
                "https://www.googleapis.com/auth/userinfo.profile",
                "https://www.googleapis.com/auth/userinfo.email",
            ],
            jwks: "https://www.googleapis.com/oauth2/v3/certs",
            issuers: &["https://accounts.google.com", "accounts.google.com"],
        },
        "gitlab" => Defaults {
            preset: Preset::Gitlab,
            display: "GitLab",
            auth: "https://gitlab.com/oauth/authorize",
            token: "https://gitlab.com/oauth/token",
            user_info: "https://gitlab.com/api/v4/user",
            scopes: &["read_user"],
            jwks: "https://gitlab.com/oauth/discovery/keys",
            issuers: &["https://gitlab.com"],
        },
        "microsoft" => Defaults {
            preset: Preset::Microsoft,
            display: "Microsoft",
            auth: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
            token: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
            user_info: "https://graph.microsoft.com/v1.0/me",
            scopes: &["User.Read"],
            jwks: "https://login.microsoftonline.com/common/discovery/v2.0/keys",
            // The issuer names the tenant; checked against the token's `tid` instead.
            issuers: &[],
        },
        "discord" => Defaults {
            preset: Preset::Discord,
            display: "Discord",
            auth: "https://discord.com/api/oauth2/authorize",
            token: "https://discord.com/api/oauth2/token",
            user_info: "https://discord.com/api/users/@me",
            scopes: &["identify", "email"],
            jwks: "",
            issuers: &[],
        },
        "apple" => Defaults {
            preset: Preset::Apple,
            display: "Apple",
            auth: "https://appleid.apple.com/auth/authorize",
            token: "https://appleid.apple.com/auth/token",
            user_info: "",
            scopes: &["name", "email"],
            jwks: "https://appleid.apple.com/auth/keys",
            issuers: &["https://appleid.apple.com"],
        },
        _ => return None,
    };
    Some(d)
}

fn or(configured: &str, preset: &str) -> String {
    if configured.is_empty() {
        preset.to_string()
    } else {
        configured.to_string()
    }
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("preset", &self.preset)
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl Provider {
    pub(crate) fn resolve(cfg: &OAuth2Provider) -> Result<Provider, OAuth2Error> {
        let d =
            defaults(&cfg.name).ok_or_else(|| OAuth2Error::UnknownProvider(cfg.name.clone()))?;
        let auth_url = or(&cfg.auth_url, d.auth);
        let token_url = or(&cfg.token_url, d.token);
        if auth_url.is_empty() || token_url.is_empty() {
            return Err(OAuth2Error::Misconfigured(
                "authURL and tokenURL are required".into(),
            ));
        }
        let mut scopes: Vec<String> = d.scopes.iter().map(|s| s.to_string()).collect();
        if d.preset == Preset::Microsoft
            && !cfg.extra_str("idTokenEmailClaim").is_empty()
            && !scopes.iter().any(|s| s == "openid")
        {
            // The email then comes from the id_token, which only `openid` returns.
            scopes.push("openid".into());
        }
        let auth_params = if d.preset == Preset::Apple {
            // Apple posts the code back (and the user's name, on first consent only).
            vec![("response_mode".to_string(), "form_post".to_string())]
        } else {
            Vec::new()
        };
        let issuers = match cfg.extra_list("issuers") {
            l if l.is_empty() => d.issuers.iter().map(|s| s.to_string()).collect(),
            l => l,
        };
        Ok(Provider {
            name: cfg.name.clone(),
            preset: d.preset,
            display_name: or(&cfg.display_name, d.display),
            client_id: cfg.client_id.clone(),
            client_secret: cfg.secret().to_string(),
            auth_url,
            token_url,
            user_info_url: or(&cfg.user_info_url, d.user_info),
            scopes,
            pkce: cfg.pkce.unwrap_or(true),
            auth_params,
            jwks_url: or(cfg.extra_str("jwksURL"), d.jwks),
            issuers,
            redirect_urls: cfg.extra_list("redirectURLs"),
            config: cfg.clone(),
        })
    }

    /// Whether the identity comes from an OpenID Connect id_token (so a nonce is sent).
    pub fn uses_id_token(&self) -> bool {
        matches!(self.preset, Preset::Oidc | Preset::Apple)
            || self.scopes.iter().any(|s| s == "openid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str) -> OAuth2Provider {
        OAuth2Provider {
            name: name.into(),
            client_id: "cid".into(),
            client_secret: Some("sec".into()),
            ..Default::default()
        }
    }

    #[test]
    fn presets_have_their_real_endpoints() {
        for name in [
            "github",
            "google",
            "gitlab",
            "microsoft",
            "discord",
            "apple",
        ] {
            let p = Provider::resolve(&cfg(name)).unwrap();
            assert!(p.auth_url.starts_with("https://"), "{name}");
            assert!(p.token_url.starts_with("https://"), "{name}");
            assert!(p.pkce);
        }
        let apple = Provider::resolve(&cfg("apple")).unwrap();
        assert_eq!(apple.issuers, ["https://appleid.apple.com"]);
        assert!(apple.uses_id_token());
        assert!(!Provider::resolve(&cfg("github")).unwrap().uses_id_token());
    }

    #[test]
    fn generic_oidc_needs_its_endpoints() {
        assert!(matches!(
            Provider::resolve(&cfg("oidc")),
            Err(OAuth2Error::Misconfigured(_))
        ));
        assert!(matches!(
            Provider::resolve(&cfg("myspace")),
            Err(OAuth2Error::UnknownProvider(_))
        ));
        let mut c = cfg("oidc2");
        c.auth_url = "http://127.0.0.1:1/authorize".into();
        c.token_url = "http://127.0.0.1:1/token".into();
        c.extra
            .insert("issuers".into(), serde_json::json!(["http://127.0.0.1:1"]));
        let p = Provider::resolve(&c).unwrap();
        assert_eq!(p.scopes, ["openid", "email", "profile"]);
        assert_eq!(p.issuers, ["http://127.0.0.1:1"]);
        assert_eq!(p.display_name, "OIDC");
        let shown = format!("{p:?}");
        assert!(shown.contains("oidc2") && !shown.contains("sec"), "{shown}");
    }
}
