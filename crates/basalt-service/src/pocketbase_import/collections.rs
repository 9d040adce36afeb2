//! PocketBase's `_collections` rows as Basalt collections: the row's columns and its
//! `options` JSON make PocketBase's collection document, which is also Basalt's. A field
//! type Basalt lacks, or an option it would not keep (one that does not survive a round
//! trip through Basalt's `Collection`), is reported as skipped, never dropped silently.

use std::collections::HashMap;

use basalt_schema::record::is_blank;
use basalt_schema::{Collection, Field};
use serde_json::{Map, Value};

use super::Skipped;

/// PocketBase system collections whose records carry over (Basalt has the same ones).
pub(super) const SYSTEM_WITH_RECORDS: [&str; 2] = ["_superusers", "_externalAuths"];

/// PocketBase system collections left out, and why.
pub(super) fn system_skip_reason(name: &str) -> Option<&'static str> {
    match name {
        "_otps" => Some("one-time passwords are short-lived: users ask for a new one"),
        "_mfas" => Some("pending second factors are short-lived: users sign in again"),
        "_authOrigins" => Some(
            "sign-in origins are remembered per server: with authAlert on, each user's \
             first sign-in from a device sends one new-location mail",
        ),
        _ => None,
    }
}

/// One PocketBase collection as read from its row.
pub(super) struct SourceCollection {
    pub id: String,
    pub name: String,
    pub system: bool,
    pub is_view: bool,
    /// The document Basalt imports (`None` for system collections, which Basalt has).
    pub collection: Option<Collection>,
}

fn parse_json_column(row: &Map<String, Value>, key: &str) -> Value {
    match row.get(key) {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

/// PocketBase's document of one `_collections` row.
pub(super) fn document(row: &Map<String, Value>) -> Value {
    let mut doc = Map::new();
    for key in ["id", "name", "type"] {
        doc.insert(key.into(), row.get(key).cloned().unwrap_or(Value::Null));
    }
    doc.insert(
        "system".into(),
        Value::Bool(row.get("system").is_some_and(|v| !is_blank(v))),
    );
    for key in ["fields", "indexes"] {
        let v = parse_json_column(row, key);
        doc.insert(
            key.into(),
            if v.is_array() {
                v
            } else {
                Value::Array(vec![])
            },
        );
    }
    for key in [
        "listRule",
        "viewRule",
        "createRule",
        "updateRule",
        "deleteRule",
    ] {
        doc.insert(key.into(), row.get(key).cloned().unwrap_or(Value::Null));
    }
    if let Value::Object(options) = parse_json_column(row, "options") {
        for (k, v) in options {
            doc.entry(k).or_insert(v);
        }
    }
    Value::Object(doc)
}

/// Reads every row into a [`SourceCollection`]; relation targets whose collection the
/// target data dir holds under another id (same name) are pointed at that id (`moved`).
pub(super) fn read(
    rows: &[Map<String, Value>],
    moved: &HashMap<String, String>,
    skipped: &mut Vec<Skipped>,
) -> Vec<SourceCollection> {
    let mut out = Vec::new();
    for row in rows {
        let mut doc = document(row);
        let id = doc["id"].as_str().unwrap_or_default().to_string();
        let name = doc["name"].as_str().unwrap_or_default().to_string();
        let system = doc["system"].as_bool().unwrap_or(false);
        let is_view = doc["type"] == "view";
        if system {
            out.push(SourceCollection {
                id,
                name,
                system,
                is_view,
                collection: None,
            });
            continue;
        }
        if let Some(to) = moved.get(&id) {
            doc["id"] = Value::String(to.clone());
        }
        let collection = convert(&name, &mut doc, moved, skipped);
        out.push(SourceCollection {
            id,
            name,
            system,
            is_view,
            collection,
        });
    }
    out
}

/// The Basalt collection of `doc`, its unsupported fields and options reported.
fn convert(
    name: &str,
    doc: &mut Value,
    moved: &HashMap<String, String>,
    skipped: &mut Vec<Skipped>,
) -> Option<Collection> {
    let mut fields = Vec::new();
    for f in doc["fields"].as_array().cloned().unwrap_or_default() {
        let fname = f["name"].as_str().unwrap_or_default().to_string();
        let ftype = f["type"].as_str().unwrap_or_default().to_string();
        let mut f = f;
        if let Some(to) = f["collectionId"].as_str().and_then(|c| moved.get(c)) {
            f["collectionId"] = Value::String(to.clone());
        }
        match serde_json::from_value::<Field>(f.clone()) {
            Ok(parsed) => {
                let back = serde_json::to_value(&parsed).unwrap_or(Value::Null);
                let mut lost = Vec::new();
                diff(&f, &back, "", &mut lost);
                for path in lost {
                    skipped.push(Skipped::new(
                        format!("{name}.{fname} option {path}"),
                        "Basalt's field has no such option (its value is not kept)",
                    ));
                }
                fields.push(back);
            }
            Err(e) => skipped.push(Skipped::new(
                format!("{name}.{fname}"),
                format!(
                    "field type `{ftype}` is not supported by Basalt ({e}); the field and its values are left out"
                ),
            )),
        }
    }
    doc["fields"] = Value::Array(fields);
    let parsed: Collection = match serde_json::from_value(doc.clone()) {
        Ok(c) => c,
        Err(e) => {
            skipped.push(Skipped::new(
                format!("collection {name}"),
                format!("its document is not one Basalt reads ({e}); its records are left out"),
            ));
            return None;
        }
    };
    let back = serde_json::to_value(&parsed).unwrap_or(Value::Null);
    let mut top = doc.clone();
    let mut back_top = back;
    for v in [&mut top, &mut back_top] {
        if let Some(o) = v.as_object_mut() {
            o.remove("fields");
        }
    }
    let mut lost = Vec::new();
    diff(&top, &back_top, "", &mut lost);
    for path in lost {
        skipped.push(Skipped::new(
            format!("{name} option {path}"),
            "Basalt's collection has no such option (its value is not kept)",
        ));
    }
    Some(parsed)
}

/// Paths of `source` whose non-blank value `back` (the round trip) does not hold.
fn diff(source: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (source, back) {
        (Value::Object(s), Value::Object(b)) => {
            for (k, v) in s {
                match b.get(k) {
                    Some(bv) => diff(v, bv, &join(k), out),
                    None if is_blank(v) => {}
                    None => out.push(join(k)),
                }
            }
        }
        (Value::Array(s), Value::Array(b)) if s.len() == b.len() => {
            for (i, (sv, bv)) in s.iter().zip(b).enumerate() {
                diff(sv, bv, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(s), Value::Number(b)) if s.as_f64() == b.as_f64() => {}
        (s, b) if s == b => {}
        (s, b) if is_blank(s) && is_blank(b) => {}
        _ => out.push(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(fields: Value, options: Value) -> Map<String, Value> {
        json!({"id": "pbc_1", "system": 0, "type": "base", "name": "posts",
            "fields": fields.to_string(), "indexes": "[]", "listRule": "", "viewRule": null,
            "createRule": null, "updateRule": null, "deleteRule": null,
            "options": options.to_string()})
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    #[test]
    fn unknown_field_types_and_options_are_reported_not_dropped_silently() {
        let rows = vec![row(
            json!([
                {"id": "t", "name": "id", "type": "text", "system": true, "primaryKey": true,
                 "required": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$",
                 "autogeneratePattern": "[a-z0-9]{15}"},
                {"id": "g", "name": "where", "type": "hologram", "required": false},
                {"id": "n", "name": "views", "type": "number", "min": 0, "futureOption": "x"}
            ]),
            json!({"someNewOption": true}),
        )];
        let mut skipped = Vec::new();
        let cols = read(&rows, &HashMap::new(), &mut skipped);
        let c = cols[0].collection.as_ref().expect("converted");
        let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "views"]);
        let what: Vec<&str> = skipped.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "posts.where",
                "posts.views option futureOption",
                "posts option someNewOption"
            ]
        );
    }

    #[test]
    fn relations_follow_a_collection_kept_under_another_id() {
        let rows = vec![row(
            json!([{"id": "t", "name": "id", "type": "text", "system": true, "primaryKey": true,
                    "required": true, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"},
                   {"id": "r", "name": "owner", "type": "relation", "collectionId": "pbc_old",
                    "maxSelect": 1}]),
            json!({}),
        )];
        let moved = HashMap::from([("pbc_old".to_string(), "pbc_new".to_string())]);
        let mut skipped = Vec::new();
        let cols = read(&rows, &moved, &mut skipped);
        let c = cols[0].collection.as_ref().expect("converted");
        assert_eq!(c.fields[1].relation_target(), Some("pbc_new"));
        assert!(skipped.is_empty(), "{skipped:?}");
    }
}
