//! The catalogue of client-facing validation error codes and the per-field error map.
//!
//! Codes follow PocketBase's (`validation_required`, `validation_min_text_constraint`, ...)
//! so SDKs and UIs that switch on them keep working; our own codes are snake_case too.

use indexmap::IndexMap;

/// One field's validation failure: a stable machine code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub code: String,
    pub message: String,
    /// The constraint's values (`{"max": 20}`), as PocketBase reports them.
    pub params: Option<serde_json::Value>,
}

impl FieldError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            params: None,
        }
    }

    pub fn with_params(mut self, params: serde_json::Value) -> Self {
        self.params = Some(params);
        self
    }

    pub fn required() -> Self {
        Self::new("validation_required", "Cannot be blank.")
    }
}

/// Validation failures keyed by field (or option) name, in the order they were found.
/// Nested keys (e.g. a field option inside a collection's `fields` list) use their own
/// nested map, as PocketBase does, via [`ValidationErrors::Nested`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors {
    pub errors: IndexMap<String, ValidationError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationError {
    Leaf(FieldError),
    Nested(ValidationErrors),
}

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn add(&mut self, key: impl Into<String>, err: FieldError) {
        self.errors.insert(key.into(), ValidationError::Leaf(err));
    }

    pub fn add_nested(&mut self, key: impl Into<String>, errs: ValidationErrors) {
        if !errs.is_empty() {
            self.errors
                .insert(key.into(), ValidationError::Nested(errs));
        }
    }

    pub fn single(key: impl Into<String>, err: FieldError) -> Self {
        let mut e = Self::new();
        e.add(key, err);
        e
    }

    /// `Ok(())` when nothing failed, so validators can end with `errs.into_result()`.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.errors.keys().map(String::as_str).collect();
        write!(f, "validation failed for: {}", keys.join(", "))
    }
}

impl std::error::Error for ValidationErrors {}
