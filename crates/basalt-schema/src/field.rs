//! Field definitions: the typed columns of a collection, with PocketBase's option names.
//!
//! The serde shape is PocketBase's collection document (`{"name","type",...options}`), which
//! is also what `basalt-store` persists in `_collections` and what collection import accepts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub presentable: bool,
    /// Free-form help text shown by admin UIs.
    #[serde(default)]
    pub help: String,
    #[serde(flatten)]
    pub kind: FieldKind,
}

/// The field type with its type-specific options (flattened beside the common keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FieldKind {
    Text(TextOptions),
    Editor(EditorOptions),
    Number(NumberOptions),
    Bool(BoolOptions),
    Email(EmailOptions),
    Url(EmailOptions),
    Date(DateOptions),
    Autodate(AutodateOptions),
    Select(SelectOptions),
    Json(JsonOptions),
    Relation(RelationOptions),
    Password(PasswordOptions),
    File(FileOptions),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TextOptions {
    pub required: bool,
    pub min: i64,
    pub max: i64,
    pub pattern: String,
    pub autogenerate_pattern: String,
    pub primary_key: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EditorOptions {
    pub required: bool,
    pub max_size: i64,
    #[serde(rename = "convertURLs")]
    pub convert_urls: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NumberOptions {
    pub required: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub only_int: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BoolOptions {
    pub required: bool,
}

/// Options shared by `email` and `url` fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmailOptions {
    pub required: bool,
    pub except_domains: Vec<String>,
    pub only_domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DateOptions {
    pub required: bool,
    /// PocketBase datetime string (`2006-01-02 15:04:05.000Z`) or empty.
    pub min: String,
    pub max: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AutodateOptions {
    pub on_create: bool,
    pub on_update: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SelectOptions {
    pub required: bool,
    pub values: Vec<String>,
    /// `<= 1` means a single value stored as a string; `> 1` a JSON array.
    pub max_select: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JsonOptions {
    pub required: bool,
    pub max_size: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RelationOptions {
    pub required: bool,
    pub collection_id: String,
    pub cascade_delete: bool,
    pub min_select: i64,
    /// `<= 1` means a single id stored as a string; `> 1` a JSON array of ids.
    pub max_select: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordOptions {
    pub required: bool,
    pub min: i64,
    pub max: i64,
    pub pattern: String,
    pub cost: i64,
}

/// A `file` field: names of stored files (a string, or an array when `maxSelect > 1`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FileOptions {
    pub required: bool,
    /// `<= 1` means a single name stored as a string; `> 1` a JSON array of names.
    pub max_select: i64,
    /// Bytes per file; `0` means [`DEFAULT_MAX_FILE_SIZE`].
    pub max_size: i64,
    /// Allowed detected MIME types; empty allows any.
    pub mime_types: Vec<String>,
    /// Thumb sizes that may be generated (`100x100`, `0x50`, `80x80t`, ...).
    pub thumbs: Vec<String>,
    /// Downloads need a file token and the record's view rule.
    pub protected: bool,
}

/// PocketBase's limit for a file field whose `maxSize` is 0: 5 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 5 << 20;

impl FileOptions {
    /// The per-file size limit in bytes (`maxSize`, or the 5 MiB default).
    pub fn max_file_size(&self) -> u64 {
        if self.max_size > 0 {
            self.max_size as u64
        } else {
            DEFAULT_MAX_FILE_SIZE
        }
    }

    /// True when `mime` (as detected from the content) is allowed.
    pub fn allows_mime(&self, mime: &str) -> bool {
        self.mime_types.is_empty() || self.mime_types.iter().any(|m| m == mime)
    }

    /// True when `thumb` is one of the sizes the field lists.
    pub fn allows_thumb(&self, thumb: &str) -> bool {
        self.thumbs.iter().any(|t| t == thumb)
    }
}

impl Field {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            FieldKind::Text(_) => "text",
            FieldKind::Editor(_) => "editor",
            FieldKind::Number(_) => "number",
            FieldKind::Bool(_) => "bool",
            FieldKind::Email(_) => "email",
            FieldKind::Url(_) => "url",
            FieldKind::Date(_) => "date",
            FieldKind::Autodate(_) => "autodate",
            FieldKind::Select(_) => "select",
            FieldKind::Json(_) => "json",
            FieldKind::Relation(_) => "relation",
            FieldKind::Password(_) => "password",
            FieldKind::File(_) => "file",
        }
    }

    /// True when the stored value is a JSON array (multi select / relation / file).
    pub fn is_multiple(&self) -> bool {
        match &self.kind {
            FieldKind::Select(o) => o.max_select > 1,
            FieldKind::Relation(o) => o.max_select > 1,
            FieldKind::File(o) => o.max_select > 1,
            _ => false,
        }
    }

    pub fn is_required(&self) -> bool {
        match &self.kind {
            FieldKind::Text(o) => o.required,
            FieldKind::Editor(o) => o.required,
            FieldKind::Number(o) => o.required,
            FieldKind::Bool(o) => o.required,
            FieldKind::Email(o) | FieldKind::Url(o) => o.required,
            FieldKind::Date(o) => o.required,
            FieldKind::Autodate(_) => false,
            FieldKind::Select(o) => o.required,
            FieldKind::Json(o) => o.required,
            FieldKind::Relation(o) => o.required,
            FieldKind::Password(o) => o.required,
            FieldKind::File(o) => o.required,
        }
    }

    /// The related collection's id for relation fields.
    pub fn relation_target(&self) -> Option<&str> {
        match &self.kind {
            FieldKind::Relation(o) => Some(&o.collection_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_options_answer_limits_types_and_thumbs() {
        let o = FileOptions {
            mime_types: vec!["image/png".into()],
            thumbs: vec!["100x100".into()],
            ..FileOptions::default()
        };
        assert_eq!(o.max_file_size(), DEFAULT_MAX_FILE_SIZE);
        let sized = FileOptions {
            max_size: 10,
            ..FileOptions::default()
        };
        assert_eq!(sized.max_file_size(), 10);
        assert!(o.allows_mime("image/png") && !o.allows_mime("text/html"));
        assert!(sized.allows_mime("anything/at-all"));
        assert!(o.allows_thumb("100x100") && !o.allows_thumb("100x100t"));
    }
}
