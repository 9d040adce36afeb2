//! A stored record as a client may see it: `collectionId`/`collectionName` first, hidden
//! fields removed, `email` only when visible to this requester.

use basalt_schema::Collection;
use basalt_store::Record;
use serde_json::{Map, Value};

use crate::request_info::Auth;

pub(crate) fn public_record(c: &Collection, r: &Record, auth: &Auth) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("collectionId".into(), Value::String(c.id.clone()));
    out.insert("collectionName".into(), Value::String(c.name.clone()));
    let superuser = auth.is_superuser();
    let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
    let owner = auth.0.as_ref().is_some_and(|a| {
        a.collection_id == c.id && a.record.get("id").and_then(Value::as_str) == Some(id)
    });
    for f in &c.fields {
        if f.name == "password" || f.name == "tokenKey" {
            continue;
        }
        if f.hidden && !superuser {
            continue;
        }
        if c.is_auth() && f.name == "email" {
            let visible = r
                .get("emailVisibility")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !visible && !owner && !superuser {
                continue;
            }
        }
        if let Some(v) = r.get(&f.name) {
            out.insert(f.name.clone(), v.clone());
        }
    }
    out
}
