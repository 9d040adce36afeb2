//! A stored record as a caller may see it: `collectionId`/`collectionName` first, hidden
//! fields removed, `email` only when visible to this caller. Every protocol shows records
//! through these rules ([`Visibility::shows`]).

use basalt_schema::{Collection, Field};
use basalt_store::{Record, RowView};
use serde_json::{Map, Value};

use crate::Caller;

pub fn public_record(c: &Collection, r: &Record, caller: &Caller) -> Map<String, Value> {
    let visible = Visibility::of(c, r, caller);
    shape(c, &visible, |name, wanted| {
        wanted.then(|| r.get(name).cloned()).flatten()
    })
}

/// [`public_record`] moving the values out of the record instead of copying them: for the
/// common answer that needs nothing else of the stored record.
pub fn into_public_record(c: &Collection, mut r: Record, caller: &Caller) -> Map<String, Value> {
    let visible = Visibility::of(c, &r, caller);
    // The store decodes rows in field order: then the values are taken in one pass.
    let in_field_order =
        r.len() == c.fields.len() && r.keys().zip(&c.fields).all(|(k, f)| *k == f.name);
    if !in_field_order {
        return shape(c, &visible, |name, wanted| {
            wanted.then(|| r.remove(name)).flatten()
        });
    }
    let mut values = r.into_iter();
    shape(c, &visible, |_, _| values.next().map(|(_, v)| v))
}

/// Which of a record's fields a caller sees.
pub struct Visibility {
    superuser: bool,
    email: bool,
}

impl Visibility {
    pub fn of(c: &Collection, r: &Record, caller: &Caller) -> Self {
        let superuser = caller.is_superuser();
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        let owner = caller.0.as_ref().is_some_and(|a| {
            a.collection_id == c.id && a.record.get("id").and_then(Value::as_str) == Some(id)
        });
        let email_visibility = r
            .get("emailVisibility")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Self {
            superuser,
            email: email_visibility || owner || superuser,
        }
    }

    /// [`Visibility::of`] a stored row, read in place: the same answer without the row
    /// decoded (only an auth record's `id` and `emailVisibility` are read).
    pub fn of_row(c: &Collection, row: &RowView<'_>, caller: &Caller) -> Self {
        let superuser = caller.is_superuser();
        if superuser || !c.is_auth() {
            // `email` shows only on auth collections, and to a superuser always.
            return Self {
                superuser,
                email: superuser,
            };
        }
        let value = |name: &str| {
            c.fields
                .iter()
                .position(|f| f.name == name)
                .map(|i| row.value(i))
        };
        let owner = caller.0.as_ref().is_some_and(|a| {
            let id = value("id");
            let id = id.as_ref().and_then(Value::as_str).unwrap_or_default();
            a.collection_id == c.id && a.record.get("id").and_then(Value::as_str) == Some(id)
        });
        let email_visibility = value("emailVisibility")
            .as_ref()
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Self {
            superuser,
            email: email_visibility || owner,
        }
    }

    /// The most a superuser (or any other caller) may see of a collection's records: what
    /// API descriptions (OpenAPI, typed clients) list. An auth record's `email` still
    /// shows per record.
    pub fn widest(superuser: bool) -> Self {
        Self {
            superuser,
            email: true,
        }
    }

    /// Whether this caller sees field `f` of a record of `c`.
    #[inline]
    pub fn shows(&self, c: &Collection, f: &Field) -> bool {
        !(f.name == "password"
            || f.name == "tokenKey"
            || (f.hidden && !self.superuser)
            || (c.is_auth() && f.name == "email" && !self.email))
    }
}

/// Builds the shaped record; `take(name, wanted)` is called for every field in order and
/// yields the value to show (`wanted` is false for the fields this caller must not see).
fn shape(
    c: &Collection,
    visible: &Visibility,
    mut take: impl FnMut(&str, bool) -> Option<Value>,
) -> Map<String, Value> {
    let mut out = Map::with_capacity(c.fields.len() + 2);
    out.insert("collectionId".into(), Value::String(c.id.clone()));
    out.insert("collectionName".into(), Value::String(c.name.clone()));
    for f in &c.fields {
        let wanted = visible.shows(c, f);
        if let Some(v) = take(&f.name, wanted).filter(|_| wanted) {
            out.insert(f.name.clone(), v);
        }
    }
    out
}
