//! Stored file names a write leaves without a record: every file of a deleted record
//! (cascades included), names an update replaced or removed, the names a removed file
//! field held, and everything of a deleted or truncated collection. Noted inside the transaction, where before and after are both known,
//! and handed to the caller only when the write committed, so files are deleted after
//! the commit and never before. The store knows names, never storage.

use std::cell::RefCell;

use basalt_schema::{Collection, FieldKind};

use crate::Record;
use serde_json::Value;

/// Files of one record that a committed write dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedFiles {
    pub collection_id: String,
    pub record_id: String,
    pub what: Dropped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// The record is gone: everything stored under it.
    Record,
    /// These stored names (and their thumbs).
    Names(Vec<String>),
    /// Every record of the collection is gone (deleted or truncated): everything stored
    /// under it. `record_id` is empty.
    Collection,
}

thread_local! {
    static DROPPED: RefCell<Vec<DroppedFiles>> = const { RefCell::new(Vec::new()) };
}

/// Clears what an earlier job on this (writer) thread left.
pub(crate) fn reset() {
    DROPPED.with(|d| d.borrow_mut().clear());
}

/// Takes what was noted since [`reset`].
pub(crate) fn take() -> Vec<DroppedFiles> {
    DROPPED.with(|d| std::mem::take(&mut *d.borrow_mut()))
}

fn note(d: DroppedFiles) {
    DROPPED.with(|v| v.borrow_mut().push(d));
}

pub(crate) fn has_file_fields(c: &Collection) -> bool {
    c.fields
        .iter()
        .any(|f| matches!(f.kind, FieldKind::File(_)))
}

/// The stored names a file field's value holds.
pub(crate) fn names_in(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}

/// Every stored name `r`'s file fields hold.
pub fn file_names(c: &Collection, r: &Record) -> Vec<String> {
    c.fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::File(_)))
        .flat_map(|f| names_in(r.get(&f.name)))
        .collect()
}

/// What deleting record `id` of `c` drops.
pub(crate) fn deleted(c: &Collection, id: &str) -> Option<DroppedFiles> {
    has_file_fields(c).then(|| DroppedFiles {
        collection_id: c.id.clone(),
        record_id: id.to_string(),
        what: Dropped::Record,
    })
}

/// Every record of `c` is gone: the collection was deleted or truncated. What was noted
/// for its single records is covered and left out.
pub(crate) fn collection_emptied(c: &Collection) {
    DROPPED.with(|v| emptied_into(&mut v.borrow_mut(), c));
}

/// [`collection_emptied`] into `dropped`, for an engine that gathers what it drops itself.
pub(crate) fn emptied_into(dropped: &mut Vec<DroppedFiles>, c: &Collection) {
    if c.is_view() {
        return;
    }
    dropped.retain(|d| d.collection_id != c.id);
    dropped.push(DroppedFiles {
        collection_id: c.id.clone(),
        record_id: String::new(),
        what: Dropped::Collection,
    });
}

/// What record `id` of `c` going from `before` to `after` drops.
pub(crate) fn updated(
    c: &Collection,
    id: &str,
    before: &Record,
    after: &Record,
) -> Option<DroppedFiles> {
    if !has_file_fields(c) {
        return None;
    }
    let kept = file_names(c, after);
    let gone: Vec<String> = file_names(c, before)
        .into_iter()
        .filter(|n| !kept.contains(n))
        .collect();
    (!gone.is_empty()).then(|| DroppedFiles {
        collection_id: c.id.clone(),
        record_id: id.to_string(),
        what: Dropped::Names(gone),
    })
}

/// What a removed file field holding `names` in record `id` drops.
pub(crate) fn removed_field(c: &Collection, id: &str, names: Vec<String>) -> Option<DroppedFiles> {
    (!names.is_empty()).then(|| DroppedFiles {
        collection_id: c.id.clone(),
        record_id: id.to_string(),
        what: Dropped::Names(names),
    })
}

/// Record `id` of `c` was deleted.
pub(crate) fn record_deleted(c: &Collection, id: &str) {
    if let Some(d) = deleted(c, id) {
        note(d);
    }
}

/// Record `id` of `c` went from `before` to `after`.
pub(crate) fn record_updated(c: &Collection, id: &str, before: &Record, after: &Record) {
    if let Some(d) = updated(c, id, before, after) {
        note(d);
    }
}

/// A removed file field held `names` in record `id`.
pub(crate) fn field_removed(c: &Collection, id: &str, names: Vec<String>) {
    if let Some(d) = removed_field(c, id, names) {
        note(d);
    }
}
