//! File field values in record input. A value is the list of stored file names the record
//! keeps: a string when the field holds one file (`maxSelect <= 1`, the last name wins), an
//! array otherwise. A name the record did not already hold is a new file, and new files
//! arrive only as uploads: a body that names one is answered as PocketBase answers it
//! (`validation_invalid_file`).

use serde_json::Value;

use crate::error::FieldError;
use crate::field::{Field, FileOptions};

/// The submitted names in the field's stored shape.
pub(super) fn normalize(field: &Field, v: &Value) -> Result<Value, FieldError> {
    let mut names: Vec<String> = Vec::new();
    for name in names_of(v)? {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(if field.is_multiple() {
        Value::Array(names.into_iter().map(Value::String).collect())
    } else {
        Value::String(names.pop().unwrap_or_default())
    })
}

/// Names as PocketBase reads them from a body: strings, and numbers or booleans as text.
fn names_of(v: &Value) -> Result<Vec<String>, FieldError> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(FieldError::new(
            "validation_invalid_value",
            "Invalid value.",
        )),
    };
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// Fails with PocketBase's `validation_invalid_file` when `after` names files that
/// `before` did not hold and that were not `uploads` of this write.
pub(super) fn check_new_names(
    before: &Value,
    after: &Value,
    uploads: &[String],
) -> Result<(), FieldError> {
    let held = names_of(before).unwrap_or_default();
    let new: Vec<String> = names_of(after)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !n.is_empty() && !held.contains(n) && !uploads.contains(n))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    Err(FieldError::new(
        "validation_invalid_file",
        format!("Invalid new files: [{}].", new.join(" ")),
    )
    .with_params(serde_json::json!({ "invalidFiles": new })))
}

/// The field's limit on how many files it holds.
pub(super) fn check_count(o: &FileOptions, v: &Value) -> Result<(), FieldError> {
    let count = match v {
        Value::Array(items) => items.len(),
        Value::String(s) if !s.is_empty() => 1,
        _ => 0,
    };
    let max = o.max_select.max(1) as usize;
    if count > max {
        return Err(FieldError::new(
            "validation_too_many_files",
            format!("The maximum allowed files is {max}."),
        )
        .with_params(serde_json::json!({ "maxSelect": max })));
    }
    Ok(())
}
