//! A collection's fields as JSON Schema (OpenAPI 3.1 dialect): the record as the API shows
//! it, and the bodies create and update accept. Which fields a reader sees comes from
//! `basalt_service::records::Visibility`, the rule every protocol shows records by.

use basalt_schema::{Collection, Field, FieldKind};
use basalt_service::records::Visibility;
use serde_json::{Map, Value, json};

/// Names of the component schemas of collection `name`.
pub fn record_ref(name: &str) -> String {
    format!("#/components/schemas/{}", record_schema_name(name))
}

pub fn record_schema_name(name: &str) -> String {
    format!("{name}Record")
}

/// The record as a reader sees it. No property is `required`: `fields` may select fewer,
/// and an auth record's `email` shows only to its owner, superusers or when visible.
/// `expand` holds the relations named in `expand`; `target_ref` gives the `$ref` of a
/// related collection (by id) when the document describes it.
pub fn record_schema(
    c: &Collection,
    superuser: bool,
    target_ref: &dyn Fn(&str) -> Option<String>,
) -> Value {
    let visible = Visibility::widest(superuser);
    let mut props = Map::new();
    props.insert(
        "collectionId".into(),
        json!({"type": "string", "const": c.id}),
    );
    props.insert(
        "collectionName".into(),
        json!({"type": "string", "const": c.name}),
    );
    let mut expand = Map::new();
    for f in c.fields.iter().filter(|f| visible.shows(c, f)) {
        props.insert(f.name.clone(), response_value(c, f));
        if let FieldKind::Relation(o) = &f.kind {
            let one = target_ref(&o.collection_id)
                .map_or_else(|| json!({"type": "object"}), |r| json!({"$ref": r}));
            let shape = if f.is_multiple() {
                json!({"type": "array", "items": one})
            } else {
                one
            };
            expand.insert(f.name.clone(), shape);
        }
    }
    props.insert(
        "expand".into(),
        json!({
            "type": "object",
            "description": "Relations named in `expand`, each when the target's view rule lets the reader see it; back-relations as `<collection>_via_<field>`.",
            "properties": expand,
        }),
    );
    json!({"type": "object", "properties": props})
}

fn response_value(c: &Collection, f: &Field) -> Value {
    let multiple = f.is_multiple();
    let mut s = match &f.kind {
        FieldKind::Number(o) if o.only_int => json!({"type": "integer"}),
        FieldKind::Number(_) => json!({"type": "number"}),
        FieldKind::Bool(_) => json!({"type": "boolean"}),
        FieldKind::Json(_) => json!({}),
        FieldKind::GeoPoint(_) => geo_point(false),
        FieldKind::Select(o) if multiple => {
            json!({"type": "array", "items": {"type": "string", "enum": o.values}})
        }
        FieldKind::Select(o) => {
            let mut values = o.values.clone();
            values.push(String::new());
            json!({"type": "string", "enum": values})
        }
        FieldKind::Relation(_) | FieldKind::File(_) if multiple => {
            json!({"type": "array", "items": {"type": "string"}})
        }
        _ => json!({"type": "string"}),
    };
    describe(&mut s, c, f);
    s
}

/// The body a create (`partial = false`) or update (`partial = true`) accepts: every
/// writable field, the auth keys of auth collections, and on update the `+`/`-` modifiers.
/// Hidden fields are listed for superusers only: the document does not tell anyone else
/// that they exist (a rule may still let them write one).
pub fn input_schema(c: &Collection, partial: bool, superuser: bool) -> Value {
    let mut props = Map::new();
    let mut required = vec![];
    for f in &c.fields {
        if matches!(f.kind, FieldKind::Autodate(_))
            || f.name == "tokenKey"
            || (f.hidden && !superuser && f.name != "password")
        {
            continue;
        }
        if partial && f.name == "id" {
            continue;
        }
        let mut s = input_value(f);
        describe(&mut s, c, f);
        props.insert(f.name.clone(), s);
        if !partial && f.name != "id" && f.is_required() && !c.is_auth() {
            required.push(f.name.clone());
        }
        modifiers(&mut props, f, partial);
    }
    if c.is_auth() {
        props.insert(
            "passwordConfirm".into(),
            json!({"type": "string", "description": "Must equal `password`."}),
        );
        if partial {
            props.insert(
                "oldPassword".into(),
                json!({"type": "string", "description": "The current password; needed to change it unless a superuser or the collection's manage rule allows."}),
            );
        } else {
            required.extend(["password".to_string(), "passwordConfirm".to_string()]);
        }
    }
    let mut s = json!({"type": "object", "properties": props});
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    s
}

/// The multipart form of a record write for a collection with file fields: the JSON
/// body's fields as form parts, file fields (and their `field+` / `+field` modifiers) as
/// uploads, and PocketBase's `@jsonPayload` part carrying the non-file fields as JSON.
pub fn multipart_schema(c: &Collection, partial: bool, superuser: bool) -> Value {
    let mut s = input_schema(c, partial, superuser);
    let upload = json!({"type": "string", "format": "binary"});
    let uploads = |max: i64| json!({"type": "array", "items": upload, "maxItems": max});
    if let Some(props) = s["properties"].as_object_mut() {
        for f in &c.fields {
            let FieldKind::File(o) = &f.kind else {
                continue;
            };
            let name = &f.name;
            let what = if f.is_multiple() {
                uploads(o.max_select)
            } else {
                upload.clone()
            };
            if let Some(p) = props.get_mut(name) {
                let d = p["description"].take();
                *p = what.clone();
                p["description"] = d;
            }
            for m in [format!("+{name}"), format!("{name}+")] {
                if let Some(p) = props.get_mut(&m) {
                    let d = p["description"].take();
                    *p = json!({"oneOf": [upload, uploads(o.max_select)]});
                    p["description"] = d;
                }
            }
        }
        props.insert(
            "@jsonPayload".into(),
            json!({"type": "string", "description": "The non-file fields as one JSON object (PocketBase's `@jsonPayload`)."}),
        );
    }
    s
}

/// A `geoPoint`: `{"lon","lat"}` in degrees (ranges stated for request bodies).
fn geo_point(input: bool) -> Value {
    let (mut lon, mut lat) = (json!({"type": "number"}), json!({"type": "number"}));
    if input {
        lon = json!({"type": "number", "minimum": -180, "maximum": 180});
        lat = json!({"type": "number", "minimum": -90, "maximum": 90});
    }
    json!({"type": "object", "properties": {"lon": lon, "lat": lat}})
}

fn input_value(f: &Field) -> Value {
    let multiple = f.is_multiple();
    match &f.kind {
        FieldKind::Text(o) => text_limits(o.max, o.required.then_some(o.min.max(1))),
        FieldKind::Password(o) => text_limits(o.max, (o.min > 0).then_some(o.min)),
        FieldKind::Editor(_) | FieldKind::Email(_) | FieldKind::Url(_) | FieldKind::Date(_) => {
            json!({"type": "string"})
        }
        FieldKind::Number(o) => {
            let mut s = if o.only_int {
                json!({"type": "integer"})
            } else {
                json!({"type": "number"})
            };
            if let Some(min) = o.min {
                s["minimum"] = json!(min);
            }
            if let Some(max) = o.max {
                s["maximum"] = json!(max);
            }
            s
        }
        FieldKind::Bool(_) => json!({"type": "boolean"}),
        FieldKind::Json(_) => json!({}),
        FieldKind::GeoPoint(_) => geo_point(true),
        FieldKind::Select(o) if multiple => json!({
            "type": "array", "items": {"type": "string", "enum": o.values}, "maxItems": o.max_select,
        }),
        FieldKind::Select(o) => {
            let mut values = o.values.clone();
            if !o.required {
                values.push(String::new());
            }
            json!({"type": "string", "enum": values})
        }
        FieldKind::Relation(o) if multiple => json!({
            "type": "array", "items": {"type": "string"}, "maxItems": o.max_select,
        }),
        FieldKind::File(o) if multiple => json!({
            "type": "array", "items": {"type": "string"}, "maxItems": o.max_select,
        }),
        FieldKind::Relation(_) | FieldKind::File(_) | FieldKind::Autodate(_) => {
            json!({"type": "string"})
        }
    }
}

fn text_limits(max: i64, min: Option<i64>) -> Value {
    let mut s = json!({"type": "string"});
    if max > 0 {
        s["maxLength"] = json!(max);
    }
    if let Some(min) = min {
        s["minLength"] = json!(min);
    }
    s
}

/// PocketBase's modifiers on update: `n+`/`n-` for numbers, `+f`/`f+`/`f-` for multiple
/// values.
fn modifiers(props: &mut Map<String, Value>, f: &Field, partial: bool) {
    if !partial {
        return;
    }
    let name = &f.name;
    match &f.kind {
        FieldKind::Number(_) => {
            for m in [format!("{name}+"), format!("{name}-")] {
                props.insert(m, json!({"type": "number", "description": format!("Adds to (`+`) or subtracts from (`-`) `{name}`.")}));
            }
        }
        FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_) if f.is_multiple() => {
            let one = json!({"type": "string"});
            let either = json!({"oneOf": [one, {"type": "array", "items": one}]});
            for (m, what) in [
                (format!("+{name}"), "Prepends to"),
                (format!("{name}+"), "Appends to"),
                (format!("{name}-"), "Removes from"),
            ] {
                let mut s = either.clone();
                s["description"] = json!(format!("{what} `{name}`."));
                props.insert(m, s);
            }
        }
        _ => {}
    }
}

/// The field's kind and what the schema cannot say, as its description.
fn describe(s: &mut Value, c: &Collection, f: &Field) {
    let mut d = format!("`{}` field", f.type_name());
    match &f.kind {
        FieldKind::Text(o) if !o.pattern.is_empty() => {
            d.push_str(&format!("; a non-empty value must match `{}`", o.pattern));
        }
        FieldKind::Date(_) | FieldKind::Autodate(_) => {
            d.push_str("; `2006-01-02 15:04:05.000Z` or empty");
        }
        FieldKind::Relation(o) => d.push_str(&format!("; ids of collection `{}`", o.collection_id)),
        FieldKind::File(_) => {
            d.push_str("; stored file names (a JSON body may keep or drop names the record holds)")
        }
        _ => {}
    }
    if f.is_required() {
        d.push_str("; required");
    }
    if f.hidden {
        d.push_str("; hidden: shown to superusers only");
    }
    if c.is_auth() && f.name == "email" {
        d.push_str("; shown only to its owner, superusers, or when `emailVisibility` is on");
    }
    if !f.help.is_empty() {
        d.push_str(". ");
        d.push_str(&f.help);
    }
    s["description"] = json!(d);
}
