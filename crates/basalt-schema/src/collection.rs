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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    #[serde(default)]
    pub auth_rule: Option<String>,
    #[serde(default)]
    pub manage_rule: Option<String>,
    #[serde(default)]
    pub password_auth: PasswordAuthOptions,
    #[serde(default)]
    pub auth_token: TokenOptions,
    #[serde(default)]
    pub oauth2: crate::collection_oauth2::OAuth2Options,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenOptions {
    /// Seconds.
    pub duration: i64,
}

impl Default for TokenOptions {
    fn default() -> Self {
        Self { duration: 604_800 }
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

    /// The superusers collection bypasses every rule.
    pub fn is_superusers(&self) -> bool {
        self.name == "_superusers"
    }
}
