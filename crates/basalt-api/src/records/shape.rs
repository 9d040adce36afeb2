//! A stored record as a client may see it: `collectionId`/`collectionName` first, hidden
//! fields removed, `email` only when visible to this requester.

use basalt_schema::Collection;
use basalt_store::Record;
use serde_json::{Map, Value};

use crate::request_info::Auth;

pub(crate) fn public_record(c: &Collection, r: &Record, auth: &Auth) -> Map<String, Value> {
    let visible = Visibility::of(c, r, auth);
    shape(c, &visible, |name| r.get(name).cloned())
}

/// [`public_record`] moving the values out of the record instead of copying them: for the
/// common answer that needs nothing else of the stored record.
pub(crate) fn into_public_record(c: &Collection, mut r: Record, auth: &Auth) -> Map<String, Value> {
    let visible = Visibility::of(c, &r, auth);
    shape(c, &visible, |name| r.remove(name))
}

/// Which of a record's fields this requester sees.
struct Visibility {
    superuser: bool,
    email: bool,
}

impl Visibility {
    fn of(c: &Collection, r: &Record, auth: &Auth) -> Self {
        let superuser = auth.is_superuser();
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        let owner = auth.0.as_ref().is_some_and(|a| {
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
}

fn shape(
    c: &Collection,
    visible: &Visibility,
    mut take: impl FnMut(&str) -> Option<Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("collectionId".into(), Value::String(c.id.clone()));
    out.insert("collectionName".into(), Value::String(c.name.clone()));
    for f in &c.fields {
        if f.name == "password" || f.name == "tokenKey" {
            continue;
        }
        if f.hidden && !visible.superuser {
            continue;
        }
        if c.is_auth() && f.name == "email" && !visible.email {
            continue;
        }
        if let Some(v) = take(&f.name) {
            out.insert(f.name.clone(), v);
        }
    }
    out
}
