//! Collections: a named set of typed fields with access rules; `base`, `auth` or `view`.
//!
//! The serde shape is PocketBase's collection document. Auth-only and view-only keys are
//! flattened in and only serialised for their type.

use serde::{Deserialize, Serialize};

use crate::field::Field;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    #[default]
    Base,
    Auth,
    View,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: CollectionType,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub fields: Vec<Field>,
    #[serde(default)]
    pub indexes: Vec<String>,
    /// `None` (JSON null): superusers only. `Some("")`: everyone.
    #[serde(default)]
    pub list_rule: Option<String>,
    #[serde(default)]
    pub view_rule: Option<String>,
    #[serde(default)]
    pub create_rule: Option<String>,
    #[serde(default)]
    pub update_rule: Option<String>,
    #[serde(default)]
    pub delete_rule: Option<String>,
    /// View collections only: the SELECT the view is made of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_query: Option<String>,
    /// Auth collections only.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthOptions>,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub updated: String,
}

/// The options of an auth collection, in PocketBase's (v0.23+) document shape. Every key
/// defaults as PocketBase's would, so an imported PocketBase schema round-trips.
///
/// Token `secret`s are stored with the document but never shown: the API layer strips
/// them (see [`Collection::redacted_json`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    #[serde(default = "open_rule")]
    pub auth_rule: Option<String>,
    /// A record matching it manages other records of the collection: it may change their
    /// email, password and verified flag without knowing the old password.
    #[serde(default)]
    pub manage_rule: Option<String>,
    #[serde(default)]
    pub auth_alert: AuthAlertOptions,
    #[serde(default)]
    pub password_auth: PasswordAuthOptions,
    #[serde(default)]
    pub mfa: MfaOptions,
    #[serde(default)]
    pub otp: OtpOptions,
    #[serde(default = "TokenOptions::auth")]
    pub auth_token: TokenOptions,
    #[serde(default)]
    pub oauth2: crate::collection_oauth2::OAuth2Options,
    #[serde(default = "TokenOptions::password_reset")]
    pub password_reset_token: TokenOptions,
    #[serde(default = "TokenOptions::email_change")]
    pub email_change_token: TokenOptions,
    #[serde(default = "TokenOptions::verification")]
    pub verification_token: TokenOptions,
    #[serde(default = "TokenOptions::file")]
    pub file_token: TokenOptions,
    #[serde(default = "EmailTemplate::verification")]
    pub verification_template: EmailTemplate,
    #[serde(default = "EmailTemplate::reset_password")]
    pub reset_password_template: EmailTemplate,
    #[serde(default = "EmailTemplate::confirm_email_change")]
    pub confirm_email_change_template: EmailTemplate,
}

fn open_rule() -> Option<String> {
    Some(String::new())
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            auth_rule: open_rule(),
            manage_rule: None,
            auth_alert: AuthAlertOptions::default(),
            password_auth: PasswordAuthOptions::default(),
            mfa: MfaOptions::default(),
            otp: OtpOptions::default(),
            oauth2: Default::default(),
            auth_token: TokenOptions::auth(),
            password_reset_token: TokenOptions::password_reset(),
            email_change_token: TokenOptions::email_change(),
            verification_token: TokenOptions::verification(),
            file_token: TokenOptions::file(),
            verification_template: EmailTemplate::verification(),
            reset_password_template: EmailTemplate::reset_password(),
            confirm_email_change_template: EmailTemplate::confirm_email_change(),
        }
    }
}

impl AuthOptions {
    /// Every token option of the collection, mutable (to fill in or keep secrets).
    pub fn tokens_mut(&mut self) -> [&mut TokenOptions; 5] {
        [
            &mut self.auth_token,
            &mut self.password_reset_token,
            &mut self.email_change_token,
            &mut self.verification_token,
            &mut self.file_token,
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordAuthOptions {
    pub enabled: bool,
    pub identity_fields: Vec<String>,
}

impl Default for PasswordAuthOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            identity_fields: vec!["email".into()],
        }
    }
}

/// One token kind's lifetime and the collection's part of its signing key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenOptions {
    /// Seconds.
    pub duration: i64,
    /// Generated when missing; replacing it revokes every token of this kind at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl TokenOptions {
    fn with(duration: i64) -> Self {
        Self {
            duration,
            secret: None,
        }
    }
    pub fn auth() -> Self {
        Self::with(604_800)
    }
    pub fn password_reset() -> Self {
        Self::with(1_800)
    }
    pub fn email_change() -> Self {
        Self::with(1_800)
    }
    pub fn verification() -> Self {
        Self::with(86_400)
    }
    pub fn file() -> Self {
        Self::with(180)
    }
}

impl Default for TokenOptions {
    fn default() -> Self {
        Self::auth()
    }
}

/// An email's subject and HTML body with placeholders (`{APP_NAME}`, `{APP_URL}`,
/// `{TOKEN}`, `{OTP}`, `{OTP_ID}`, `{RECORD:field}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EmailTemplate {
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
}

fn page(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| format!("<p>{l}</p>"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl EmailTemplate {
    pub fn verification() -> Self {
        Self {
            subject: "Verify your {APP_NAME} email".into(),
            body: page(&[
                "Hello,",
                "please confirm that this address belongs to you by opening the link below.",
                "<a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-verification/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Verify my email</a>",
                "The {APP_NAME} team",
            ]),
        }
    }
    pub fn reset_password() -> Self {
        Self {
            subject: "Reset your {APP_NAME} password".into(),
            body: page(&[
                "Hello,",
                "someone asked to reset the password of your account. Open the link below to choose a new one.",
                "<a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Reset my password</a>",
                "If you did not ask for it, ignore this email: your password stays as it is.",
                "The {APP_NAME} team",
            ]),
        }
    }
    pub fn confirm_email_change() -> Self {
        Self {
            subject: "Confirm your new {APP_NAME} email address".into(),
            body: page(&[
                "Hello,",
                "open the link below to make this your account's new email address.",
                "<a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Confirm my new email</a>",
                "If you did not ask for it, ignore this email.",
                "The {APP_NAME} team",
            ]),
        }
    }
    pub fn otp() -> Self {
        Self {
            subject: "Your {APP_NAME} sign-in code".into(),
            body: page(&[
                "Hello,",
                "your one-time sign-in code is: <strong>{OTP}</strong>",
                "If you did not ask for it, ignore this email.",
                "The {APP_NAME} team",
            ]),
        }
    }
    pub fn auth_alert() -> Self {
        Self {
            subject: "New sign-in to your {APP_NAME} account".into(),
            body: page(&[
                "Hello,",
                "your account was just signed in to from a new location: <em>{ALERT_INFO}</em>",
                "If this was not you, change your password right away.",
                "The {APP_NAME} team",
            ]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthAlertOptions {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "EmailTemplate::auth_alert")]
    pub email_template: EmailTemplate,
}

fn yes() -> bool {
    true
}

impl Default for AuthAlertOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            email_template: EmailTemplate::auth_alert(),
        }
    }
}

/// Multi-factor authentication: a second, different method must follow the first within
/// `duration` seconds, for the records matching `rule` (all when empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MfaOptions {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "mfa_duration")]
    pub duration: i64,
    #[serde(default)]
    pub rule: String,
}

fn mfa_duration() -> i64 {
    600
}

impl Default for MfaOptions {
    fn default() -> Self {
        Self {
            enabled: false,
            duration: mfa_duration(),
            rule: String::new(),
        }
    }
}

/// One-time codes sent by email.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtpOptions {
    #[serde(default)]
    pub enabled: bool,
    /// Seconds a code stays valid.
    #[serde(default = "otp_duration")]
    pub duration: i64,
    /// Digits per code.
    #[serde(default = "otp_length")]
    pub length: i64,
    #[serde(default = "EmailTemplate::otp")]
    pub email_template: EmailTemplate,
}

fn otp_duration() -> i64 {
    180
}

fn otp_length() -> i64 {
    8
}

impl Default for OtpOptions {
    fn default() -> Self {
        Self {
            enabled: false,
            duration: otp_duration(),
            length: otp_length(),
            email_template: EmailTemplate::otp(),
        }
    }
}

impl Collection {
    pub fn is_auth(&self) -> bool {
        self.kind == CollectionType::Auth
    }

    pub fn is_view(&self) -> bool {
        self.kind == CollectionType::View
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Whether field `f` holds a secret that must never leave the record's own table (no
    /// answer, no change log): password hashes (auth passwords, OTP codes) and an auth
    /// record's `tokenKey`.
    pub fn holds_secret(&self, f: &Field) -> bool {
        matches!(f.kind, crate::field::FieldKind::Password(_))
            || (self.is_auth() && f.name == "tokenKey")
    }

    /// The superusers collection bypasses every rule.
    pub fn is_superusers(&self) -> bool {
        self.name == "_superusers"
    }

    /// The document as clients see it: token secrets and OAuth2 provider secrets
    /// (`clientSecret`, as PocketBase leaves it out, and `extra.privateKey`) removed.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            for key in [
                "authToken",
                "passwordResetToken",
                "emailChangeToken",
                "verificationToken",
                "fileToken",
            ] {
                if let Some(t) = obj.get_mut(key).and_then(|t| t.as_object_mut()) {
                    t.remove("secret");
                }
            }
            let providers = obj
                .get_mut("oauth2")
                .and_then(|o| o.get_mut("providers"))
                .and_then(|p| p.as_array_mut());
            for p in providers.into_iter().flatten() {
                let Some(p) = p.as_object_mut() else { continue };
                p.remove("clientSecret");
                if let Some(extra) = p.get_mut("extra").and_then(|e| e.as_object_mut()) {
                    for key in crate::collection_oauth2::SECRET_EXTRA_KEYS {
                        extra.remove(*key);
                    }
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pocketbase_users_document_round_trips_and_hides_secrets() {
        let doc = serde_json::json!({
            "id": "_pb_users_auth_", "name": "users", "type": "auth",
            "authRule": "verified = true", "manageRule": "@request.auth.role = 'admin'",
            "authAlert": {"enabled": false, "emailTemplate": {"subject": "s", "body": "b"}},
            "passwordAuth": {"enabled": true, "identityFields": ["email", "username"]},
            "mfa": {"enabled": true, "duration": 600, "rule": "verified = true"},
            "otp": {"enabled": true, "duration": 120, "length": 6, "emailTemplate": {"subject": "o", "body": "{OTP}"}},
            "authToken": {"duration": 100, "secret": "abcdefghijabcdefghijabcdefghij"},
            "passwordResetToken": {"duration": 101},
            "emailChangeToken": {"duration": 102},
            "verificationToken": {"duration": 103},
            "fileToken": {"duration": 104},
            "verificationTemplate": {"subject": "v", "body": "{TOKEN}"},
            "resetPasswordTemplate": {"subject": "r", "body": "{TOKEN}"},
            "confirmEmailChangeTemplate": {"subject": "c", "body": "{TOKEN}"}
        });
        let c: Collection = serde_json::from_value(doc).expect("parse");
        let a = c.auth.clone().expect("auth options");
        assert_eq!(a.otp.length, 6);
        assert_eq!(a.mfa.rule, "verified = true");
        assert_eq!(a.file_token.duration, 104);
        assert_eq!(
            a.auth_token.secret.as_deref(),
            Some("abcdefghijabcdefghijabcdefghij")
        );
        let back: Collection =
            serde_json::from_value(serde_json::to_value(&c).expect("ser")).expect("reparse");
        assert_eq!(back, c, "stored documents keep everything");
        let shown = c.redacted_json();
        assert!(!shown.to_string().contains("abcdefghij"), "{shown}");
        assert_eq!(shown["authToken"]["duration"], 100);
        assert_eq!(shown["otp"]["emailTemplate"]["body"], "{OTP}");
    }

    #[test]
    fn missing_options_take_pocketbase_defaults() {
        let c: Collection =
            serde_json::from_value(serde_json::json!({"name": "members", "type": "auth"}))
                .expect("parse");
        let a = c.auth.expect("auth");
        assert_eq!(a.auth_rule.as_deref(), Some(""));
        assert_eq!(a.manage_rule, None);
        assert_eq!(a.verification_token.duration, 86_400);
        assert_eq!(a.mfa.duration, 600);
        assert_eq!(a.password_reset_token.duration, 1_800);
        assert_eq!(a.otp.length, 8);
        assert!(!a.mfa.enabled);
        assert!(a.verification_template.body.contains("{TOKEN}"));
    }
}
