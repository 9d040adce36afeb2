//! An auth collection's OAuth2 / OpenID Connect options (PocketBase's `oauth2` key) and
//! their validation.
//!
//! The serde shape is PocketBase's collection document, including the client secret: the
//! document is what the store persists, and only superusers may read collection documents.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Collection;
use crate::error::{FieldError, ValidationErrors};

/// Provider names an auth collection may configure: three generic OpenID Connect slots
/// (as PocketBase has) and the presets with known endpoints.
pub const PROVIDER_NAMES: &[&str] = &[
    "oidc",
    "oidc2",
    "oidc3",
    "github",
    "google",
    "gitlab",
    "microsoft",
    "discord",
    "apple",
];

/// Whether `name` is one of the generic OpenID Connect slots, whose endpoints come from
/// the configuration rather than a preset.
pub fn is_generic_oidc(name: &str) -> bool {
    matches!(name, "oidc" | "oidc2" | "oidc3")
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Options {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub mapped_fields: MappedFields,
    #[serde(default)]
    pub providers: Vec<OAuth2Provider>,
}

/// Which record fields receive the provider's user data when a record is created.
/// An empty name maps nothing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MappedFields {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub username: String,
    #[serde(default, rename = "avatarURL")]
    pub avatar_url: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OAuth2Provider {
    pub name: String,
    #[serde(default, rename = "clientId")]
    pub client_id: String,
    /// Never shown (see [`crate::Collection::redacted_json`]); `None` when a submitted
    /// document leaves it out, which keeps the stored provider's secret on update.
    #[serde(
        default,
        rename = "clientSecret",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_secret: Option<String>,
    /// Overrides (or, for the generic slots, defines) the preset's endpoints.
    #[serde(default, rename = "authURL")]
    pub auth_url: String,
    #[serde(default, rename = "tokenURL")]
    pub token_url: String,
    #[serde(default, rename = "userInfoURL")]
    pub user_info_url: String,
    #[serde(default, rename = "displayName")]
    pub display_name: String,
    /// `None` keeps the preset's choice (PKCE on for every provider here).
    #[serde(default)]
    pub pkce: Option<bool>,
    /// Provider-specific settings: `jwksURL`, `issuers`, `redirectURLs` (exact allow-list),
    /// Apple's `teamId`/`keyId`/`privateKey` (the key is a secret: never shown, kept on
    /// update when left out), Microsoft's `idTokenEmailClaim`.
    #[serde(default)]
    pub extra: Map<String, Value>,
}

impl OAuth2Options {
    pub fn provider(&self, name: &str) -> Option<&OAuth2Provider> {
        self.providers.iter().find(|p| p.name == name)
    }
}

/// The provider settings that are secrets: removed from every answer, and kept from the
/// stored provider of the same name when an update leaves them out.
pub const SECRET_EXTRA_KEYS: &[&str] = &["privateKey"];

impl OAuth2Options {
    /// Fills in the secrets an update left out (clients never see them, so a document sent
    /// back as read must not erase them) from `old`'s provider of the same name. An
    /// explicit empty `clientSecret` stays empty and fails validation, as in PocketBase.
    pub fn keep_secrets(&mut self, old: &OAuth2Options) {
        for p in &mut self.providers {
            let Some(o) = old.provider(&p.name) else {
                continue;
            };
            if p.client_secret.is_none() {
                p.client_secret.clone_from(&o.client_secret);
            }
            for key in SECRET_EXTRA_KEYS {
                if !p.extra.contains_key(*key)
                    && let Some(v) = o.extra.get(*key)
                {
                    p.extra.insert((*key).to_string(), v.clone());
                }
            }
        }
    }
}

impl OAuth2Provider {
    /// The client secret; empty when none is set.
    pub fn secret(&self) -> &str {
        self.client_secret.as_deref().unwrap_or("")
    }

    /// A string setting from `extra` (empty when absent or not a string).
    pub fn extra_str(&self, key: &str) -> &str {
        self.extra.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// A list-of-strings setting from `extra` (non-strings are ignored).
    pub fn extra_list(&self, key: &str) -> Vec<String> {
        match self.extra.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// Apple may build its client secret from a signing key instead of a fixed secret.
    fn has_apple_signing_key(&self) -> bool {
        self.name == "apple"
            && ["teamId", "keyId", "privateKey"]
                .iter()
                .all(|k| !self.extra_str(k).is_empty())
    }
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://")) && !s.contains(char::is_whitespace)
}

fn invalid_url() -> FieldError {
    FieldError::new("validation_is_url", "Must be a valid url.")
}

/// Checks the options of `c` (an auth collection); errors are nested under `oauth2`.
pub fn validate(c: &Collection, opts: &OAuth2Options, errs: &mut ValidationErrors) {
    let mut own = ValidationErrors::new();
    let mut mapped = ValidationErrors::new();
    for (key, field) in [
        ("id", &opts.mapped_fields.id),
        ("name", &opts.mapped_fields.name),
        ("username", &opts.mapped_fields.username),
        ("avatarURL", &opts.mapped_fields.avatar_url),
    ] {
        if !field.is_empty() && c.field(field).is_none() {
            mapped.add(
                key,
                FieldError::new("validation_missing_field", "Missing collection field."),
            );
        }
    }
    own.add_nested("mappedFields", mapped);
    let mut providers = ValidationErrors::new();
    for (i, p) in opts.providers.iter().enumerate() {
        let mut pe = ValidationErrors::new();
        if !PROVIDER_NAMES.contains(&p.name.as_str()) {
            pe.add(
                "name",
                FieldError::new("validation_invalid_provider", "Unknown provider name."),
            );
        } else if opts.providers[..i].iter().any(|o| o.name == p.name) {
            pe.add(
                "name",
                FieldError::new("validation_duplicated_provider", "Duplicated provider."),
            );
        }
        if p.client_id.trim().is_empty() {
            pe.add("clientId", FieldError::required());
        }
        if p.secret().trim().is_empty() && !p.has_apple_signing_key() {
            pe.add("clientSecret", FieldError::required());
        }
        let generic = is_generic_oidc(&p.name);
        for (key, url, required) in [
            ("authURL", &p.auth_url, generic),
            ("tokenURL", &p.token_url, generic),
            ("userInfoURL", &p.user_info_url, false),
        ] {
            if url.is_empty() {
                if required {
                    pe.add(key, FieldError::required());
                }
            } else if !is_http_url(url) {
                pe.add(key, invalid_url());
            }
        }
        let mut extra = ValidationErrors::new();
        let jwks = p.extra_str("jwksURL");
        if !jwks.is_empty() && !is_http_url(jwks) {
            extra.add("jwksURL", invalid_url());
        }
        if p.extra_list("redirectURLs").iter().any(|u| !is_http_url(u)) {
            extra.add("redirectURLs", invalid_url());
        }
        pe.add_nested("extra", extra);
        providers.add_nested(i.to_string(), pe);
    }
    own.add_nested("providers", providers);
    errs.add_nested("oauth2", own);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::CollectionType;

    fn users() -> Collection {
        serde_json::from_value(serde_json::json!({
            "name": "users", "type": "auth",
            "fields": [{"name": "name", "type": "text"}]
        }))
        .unwrap()
    }

    fn errors_of(opts: serde_json::Value) -> ValidationErrors {
        let opts: OAuth2Options = serde_json::from_value(opts).unwrap();
        let mut errs = ValidationErrors::new();
        validate(&users(), &opts, &mut errs);
        errs
    }

    #[test]
    fn pocketbase_document_shape_round_trips() {
        let doc = serde_json::json!({
            "enabled": true,
            "mappedFields": {"id": "", "name": "name", "username": "", "avatarURL": ""},
            "providers": [{
                "name": "oidc", "clientId": "c", "clientSecret": "s",
                "authURL": "http://127.0.0.1:1/a", "tokenURL": "http://127.0.0.1:1/t",
                "userInfoURL": "", "displayName": "Mine", "pkce": null,
                "extra": {"jwksURL": "http://127.0.0.1:1/jwks"}
            }]
        });
        let opts: OAuth2Options = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(opts.provider("oidc").unwrap().display_name, "Mine");
        assert_eq!(serde_json::to_value(&opts).unwrap(), doc);
        assert!(users().kind == CollectionType::Auth);
    }

    #[test]
    fn valid_options_pass() {
        let errs = errors_of(serde_json::json!({
            "enabled": true, "mappedFields": {"name": "name"},
            "providers": [
                {"name": "github", "clientId": "c", "clientSecret": "s"},
                {"name": "oidc", "clientId": "c", "clientSecret": "s",
                 "authURL": "https://idp.example/auth", "tokenURL": "https://idp.example/token"},
                {"name": "apple", "clientId": "c",
                 "extra": {"teamId": "T", "keyId": "K", "privateKey": "P"}}
            ]
        }));
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn bad_options_are_rejected_per_key() {
        let errs = errors_of(serde_json::json!({
            "mappedFields": {"avatarURL": "avatar"},
            "providers": [
                {"name": "myspace", "clientId": "c", "clientSecret": "s"},
                {"name": "oidc", "clientId": "", "clientSecret": "s", "authURL": "javascript:x"},
                {"name": "oidc", "clientId": "c", "clientSecret": "s",
                 "authURL": "https://a", "tokenURL": "https://t",
                 "extra": {"redirectURLs": ["ftp://x"]}}
            ]
        }));
        let text = format!("{errs:?}");
        for needle in [
            "mappedFields",
            "validation_invalid_provider",
            "clientId",
            "validation_is_url",
            "tokenURL",
            "validation_duplicated_provider",
            "redirectURLs",
        ] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
    }
}
