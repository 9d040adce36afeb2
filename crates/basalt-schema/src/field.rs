//! Field definitions: the typed columns of a collection, with PocketBase's option names.
//!
//! The serde shape is PocketBase's collection document (`{"name","type",...options}`), which
//! is also what `basalt-store` persists in `_collections` and what collection import accepts.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

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
    /// `{"lon": .., "lat": ..}` in degrees, stored as that JSON object.
    #[serde(rename = "geoPoint")]
    GeoPoint(GeoPointOptions),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GeoPointOptions {
    /// Required means not `{"lon":0,"lat":0}`, PocketBase's blank point.
    pub required: bool,
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

    /// True when `mime` (as detected from the content; parameters such as `; charset=utf-8`
    /// ignored) is allowed.
    pub fn allows_mime(&self, mime: &str) -> bool {
        let essence = mime.split(';').next().unwrap_or_default().trim();
        self.mime_types.is_empty()
            || self
                .mime_types
                .iter()
                .any(|m| m.eq_ignore_ascii_case(essence))
    }

    /// PocketBase's answer to an upload of `size` bytes past the limit; `file` is the name
    /// the client sent.
    pub fn check_size(&self, file: &str, size: u64) -> Result<(), FieldError> {
        let max = self.max_file_size();
        if size <= max {
            return Ok(());
        }
        Err(FieldError::new(
            "validation_file_size_limit",
            format!("Failed to upload {file} - the maximum allowed file size is {max} bytes."),
        )
        .with_params(serde_json::json!({"file": file, "maxSize": max})))
    }

    /// PocketBase's answer to an upload whose detected `mime` is not allowed;
    /// `stored_name` is the name the file would be stored under.
    pub fn check_mime(&self, stored_name: &str, mime: &str) -> Result<(), FieldError> {
        if self.allows_mime(mime) {
            return Ok(());
        }
        Err(FieldError::new(
            "validation_invalid_mime_type",
            format!(
                "\"{stored_name}\" mime type must be one of: {}.",
                self.mime_types.join(", ")
            ),
        ))
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
            FieldKind::GeoPoint(_) => "geoPoint",
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
            FieldKind::GeoPoint(o) => o.required,
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
        assert!(o.allows_mime("IMAGE/PNG; foo=bar"));
    }

    /// The answers PocketBase 0.40 gave for these uploads (probed).
    #[test]
    fn upload_checks_answer_as_pocketbase() {
        let o = FileOptions {
            max_size: 10,
            mime_types: vec!["text/plain".into(), "image/jpeg".into()],
            ..FileOptions::default()
        };
        assert!(o.check_size("big.txt", 10).is_ok());
        let e = o.check_size("big.txt", 26).expect_err("too big");
        assert_eq!(e.code, "validation_file_size_limit");
        assert_eq!(
            e.message,
            "Failed to upload big.txt - the maximum allowed file size is 10 bytes."
        );
        assert_eq!(
            e.params,
            Some(serde_json::json!({"file": "big.txt", "maxSize": 10}))
        );
        // maxSize 0: PocketBase's 5 MiB, the limit itself allowed.
        let default = FileOptions::default();
        assert!(default.check_size("five.bin", 5 << 20).is_ok());
        assert_eq!(
            default
                .check_size("six.bin", 6_000_000)
                .expect_err("too big")
                .message,
            "Failed to upload six.bin - the maximum allowed file size is 5242880 bytes."
        );
        assert!(
            o.check_mime("a_1234567890.txt", "text/plain; charset=utf-8")
                .is_ok()
        );
        let e = o
            .check_mime("xq20ueardd6_mi6fni0n58.txt", "image/png")
            .expect_err("png not allowed");
        assert_eq!(e.code, "validation_invalid_mime_type");
        assert_eq!(
            e.message,
            "\"xq20ueardd6_mi6fni0n58.txt\" mime type must be one of: text/plain, image/jpeg."
        );
        assert_eq!(e.params, None);
    }
}
