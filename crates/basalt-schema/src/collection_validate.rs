//! Collection validation and normalisation: names, field options, rules that must parse,
//! ids filled in, and the system fields every base and auth collection carries.

use serde_json::json;

use crate::collection::{AuthOptions, Collection, CollectionType};
use crate::error::{FieldError, ValidationErrors};
use crate::field::{Field, FieldKind};
use crate::filter;
use crate::schema::Schema;

const RESERVED_FIELDS: &[&str] = &["expand", "collectionId", "collectionName"];

/// IEEE CRC-32, used for PocketBase-style deterministic ids (`pbc_<crc>`, `text<crc>`).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn system_field(v: serde_json::Value) -> Field {
    // The literals below are well-formed field documents; a failure is a programming error
    // caught by the unit tests, so falling back to a plain text field is never reached.
    serde_json::from_value(v).unwrap_or_else(|_| Field {
        id: String::new(),
        name: String::new(),
        system: true,
        hidden: false,
        presentable: false,
        help: String::new(),
        kind: FieldKind::Text(Default::default()),
    })
}

/// The system fields of a collection type, in PocketBase's order.
pub fn system_fields(kind: CollectionType) -> Vec<Field> {
    let id = json!({"id": "text3208210256", "name": "id", "type": "text", "system": true, "required": true,
        "primaryKey": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"});
    match kind {
        CollectionType::View => vec![],
        CollectionType::Base => vec![system_field(id)],
        CollectionType::Auth => vec![
            system_field(id),
            system_field(
                json!({"id": "password901924565", "name": "password", "type": "password", "system": true,
                "hidden": true, "required": true, "min": 8}),
            ),
            system_field(
                json!({"id": "text2504183744", "name": "tokenKey", "type": "text", "system": true,
                "hidden": true, "required": true, "min": 30, "max": 60, "autogeneratePattern": "[a-zA-Z0-9]{50}"}),
            ),
            system_field(
                json!({"id": "email3885137012", "name": "email", "type": "email", "system": true, "required": true}),
            ),
            system_field(
                json!({"id": "bool1547992806", "name": "emailVisibility", "type": "bool", "system": true}),
            ),
            system_field(
                json!({"id": "bool256245529", "name": "verified", "type": "bool", "system": true}),
            ),
        ],
    }
}

/// SQLite reserves every object name starting with `sqlite_` (any case) for itself:
/// `CREATE TABLE sqlite_stat1` fails, and a table by such a name would shadow its own.
pub fn is_reserved_name(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("sqlite_"))
}

/// PocketBase's answer to a collection name that an internal table has or would have.
pub fn reserved_name() -> FieldError {
    FieldError::new(
        "validation_collection_name_invalid",
        "The name shouldn't match with an existing internal table.",
    )
}

/// Validates `new` (a create when `old` is `None`) against the current schema and returns
/// the normalised collection to store.
pub fn validate(
    mut new: Collection,
    old: Option<&Collection>,
    schema: &Schema,
    now: &str,
) -> Result<Collection, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    new.name = new.name.trim().to_string();
    let name_ok = !new.name.is_empty()
        && new.name.len() <= 255
        && new
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && (!new.name.starts_with('_') || new.system);
    if new.name.is_empty() {
        errs.add("name", FieldError::required());
    } else if !name_ok {
        errs.add(
            "name",
            FieldError::new("validation_match_invalid", "Must be in a valid format."),
        );
    } else if is_reserved_name(&new.name) {
        errs.add("name", reserved_name());
    } else if schema
        .by_name(&new.name)
        .is_some_and(|c| old.is_none_or(|o| o.id != c.id))
    {
        errs.add(
            "name",
            FieldError::new(
                "validation_collection_name_exists",
                "Collection name must be unique (case insensitive).",
            ),
        );
    }
    match old {
        Some(o) => {
            new.id = o.id.clone();
            new.system = o.system;
            new.created = o.created.clone();
            if new.kind != o.kind {
                errs.add(
                    "type",
                    FieldError::new(
                        "validation_collection_type_change",
                        "Changing the collection type is not allowed.",
                    ),
                );
            }
            if o.system && new.name != o.name {
                errs.add(
                    "name",
                    FieldError::new(
                        "validation_system_collection_name_change",
                        "System collection name cannot be changed.",
                    ),
                );
            }
        }
        None => {
            if new.id.is_empty() {
                let kind = serde_json::to_value(new.kind).ok();
                let kind = kind.as_ref().and_then(|k| k.as_str()).unwrap_or("base");
                new.id = format!("pbc_{}", crc32(format!("{kind}{}", new.name).as_bytes()));
            }
            // A derived id collides only when the name does, which is reported already.
            if schema.by_id(&new.id).is_some() && !errs.errors.contains_key("name") {
                errs.add(
                    "id",
                    FieldError::new("validation_invalid_id", "The id is already in use."),
                );
            }
            new.created = now.to_string();
        }
    }
    new.updated = now.to_string();
    if new.kind == CollectionType::View
        && new
            .view_query
            .as_deref()
            .is_none_or(|q| q.trim().is_empty())
    {
        errs.add("viewQuery", FieldError::required());
    }
    if new.kind == CollectionType::Auth {
        let auth = new.auth.get_or_insert_with(AuthOptions::default);
        check_auth_options(auth, old.and_then(|o| o.auth.as_ref()), &mut errs);
    } else {
        new.auth = None;
    }
    add_system_fields(&mut new);
    validate_fields(&new, old, schema, &mut errs);
    for (key, rule) in [
        ("listRule", &new.list_rule),
        ("viewRule", &new.view_rule),
        ("createRule", &new.create_rule),
        ("updateRule", &new.update_rule),
        ("deleteRule", &new.delete_rule),
    ] {
        check_rule(key, rule.as_deref(), &mut errs);
    }
    if let Some(a) = &new.auth {
        check_rule("authRule", a.auth_rule.as_deref(), &mut errs);
        check_rule("manageRule", a.manage_rule.as_deref(), &mut errs);
        check_rule("mfa.rule", Some(a.mfa.rule.as_str()), &mut errs);
        for f in &a.password_auth.identity_fields {
            if new.field(f).is_none() {
                errs.add(
                    "passwordAuth",
                    FieldError::new(
                        "validation_missing_field",
                        format!("identity field {f:?} is not a field of the collection"),
                    ),
                );
            }
        }
        crate::collection_oauth2::validate(&new, &a.oauth2, &mut errs);
    }
    errs.into_result().map(|()| new)
}

/// Token durations and OTP lengths in range; each token secret (and each OAuth2
/// provider's secrets) kept from the stored document when the submitted one omits it
/// (clients never see secrets, so an update that sends the document back must not rotate
/// or erase them), token secrets generated when there are none.
fn check_auth_options(a: &mut AuthOptions, old: Option<&AuthOptions>, errs: &mut ValidationErrors) {
    let mut old_secrets: Vec<Option<String>> = match old.cloned() {
        Some(mut o) => o.tokens_mut().iter().map(|t| t.secret.clone()).collect(),
        None => vec![None; 5],
    };
    for (i, (name, t)) in [
        "authToken",
        "passwordResetToken",
        "emailChangeToken",
        "verificationToken",
        "fileToken",
    ]
    .into_iter()
    .zip(a.tokens_mut())
    .enumerate()
    {
        if t.duration < 10 || t.duration > 10 * 365 * 86_400 {
            errs.add(
                name,
                FieldError::new(
                    "validation_invalid_duration",
                    "duration must be between 10 seconds and 10 years",
                ),
            );
        }
        match &t.secret {
            Some(s) if s.len() < 30 => errs.add(
                name,
                FieldError::new(
                    "validation_length_out_of_range",
                    "secret must be at least 30 characters",
                ),
            ),
            Some(_) => {}
            None => {
                t.secret = old_secrets
                    .get_mut(i)
                    .and_then(Option::take)
                    .or_else(|| Some(crate::id::random_id(50)));
            }
        }
    }
    if let Some(o) = old {
        a.oauth2.keep_secrets(&o.oauth2);
    }
    if !(4..=32).contains(&a.otp.length) {
        errs.add(
            "otp",
            FieldError::new(
                "validation_invalid_length",
                "length must be between 4 and 32",
            ),
        );
    }
    if a.otp.duration < 10 || a.mfa.duration < 10 {
        errs.add(
            "otp",
            FieldError::new(
                "validation_invalid_duration",
                "otp and mfa durations must be at least 10 seconds",
            ),
        );
    }
}

fn check_rule(key: &str, rule: Option<&str>, errs: &mut ValidationErrors) {
    if let Some(r) = rule.filter(|r| !r.trim().is_empty())
        && let Err(e) = filter::parse(r)
    {
        errs.add(
            key,
            FieldError::new("validation_invalid_rule", format!("Invalid rule: {e}")),
        );
    }
}

/// Puts the system fields first (keeping a submitted field of the same name only when it
/// matches the system definition's type) and gives every field an id.
fn add_system_fields(c: &mut Collection) {
    let mut fields = Vec::new();
    for sys in system_fields(c.kind) {
        match c
            .fields
            .iter()
            .position(|f| f.name == sys.name && f.type_name() == sys.type_name())
        {
            Some(i) => {
                let mut f = c.fields.remove(i);
                f.system = true;
                if f.id.is_empty() {
                    f.id = sys.id;
                }
                fields.push(f);
            }
            None => fields.push(sys),
        }
    }
    fields.append(&mut c.fields);
    for f in &mut fields {
        if f.id.is_empty() {
            f.id = format!("{}{}", f.type_name(), crc32(f.name.as_bytes()));
        }
    }
    c.fields = fields;
}

fn validate_fields(
    c: &Collection,
    old: Option<&Collection>,
    schema: &Schema,
    errs: &mut ValidationErrors,
) {
    let mut all = ValidationErrors::new();
    for (i, f) in c.fields.iter().enumerate() {
        let mut fe = ValidationErrors::new();
        let name_ok = !f.name.is_empty()
            && f.name.len() <= 100
            && f.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            && !RESERVED_FIELDS.contains(&f.name.as_str());
        if !name_ok {
            fe.add(
                "name",
                FieldError::new("validation_invalid_name", "Invalid field name."),
            );
        } else if c
            .fields
            .iter()
            .filter(|o| o.name.eq_ignore_ascii_case(&f.name))
            .count()
            > 1
        {
            fe.add(
                "name",
                FieldError::new(
                    "validation_duplicated_field_name",
                    "Duplicated or invalid field name.",
                ),
            );
        }
        if c.fields.iter().filter(|o| o.id == f.id).count() > 1 {
            fe.add(
                "id",
                FieldError::new("validation_duplicated_field_id", "Duplicated field id."),
            );
        }
        let previous = old.and_then(|o| o.fields.iter().find(|of| of.id == f.id));
        if let Some(p) = previous
            && p.system
            && (p.name != f.name || p.type_name() != f.type_name())
        {
            fe.add(
                "name",
                FieldError::new(
                    "validation_system_field_change",
                    "System fields cannot be renamed or retyped.",
                ),
            );
        }
        match &f.kind {
            FieldKind::Select(o) => {
                if o.values.is_empty() {
                    fe.add("values", FieldError::required());
                }
                if o.max_select < 0 {
                    fe.add(
                        "maxSelect",
                        FieldError::new(
                            "validation_min_greater_equal_than_required",
                            "Must be no less than 0.",
                        ),
                    );
                }
            }
            FieldKind::File(o) => check_file_options(o, &mut fe),
            FieldKind::Relation(o) => {
                let exists = o.collection_id == c.id || schema.by_id(&o.collection_id).is_some();
                if o.collection_id.is_empty() {
                    fe.add("collectionId", FieldError::required());
                } else if !exists {
                    fe.add(
                        "collectionId",
                        FieldError::new(
                            "validation_field_invalid_relation",
                            "The relation collection doesn't exist.",
                        ),
                    );
                }
                if let Some(FieldKind::Relation(po)) = previous.map(|p| &p.kind)
                    && po.collection_id != o.collection_id
                {
                    fe.add(
                        "collectionId",
                        FieldError::new(
                            "validation_field_relation_change",
                            "The relation collection cannot be changed.",
                        ),
                    );
                }
            }
            FieldKind::Text(o) => {
                if o.max > 0 && o.min > o.max {
                    fe.add(
                        "max",
                        FieldError::new(
                            "validation_min_greater_equal_than_required",
                            "Must be no less than min.",
                        ),
                    );
                }
                if !o.pattern.is_empty() && regex::Regex::new(&o.pattern).is_err() {
                    fe.add(
                        "pattern",
                        FieldError::new("validation_invalid_regex", "Invalid regular expression."),
                    );
                }
            }
            FieldKind::Number(o) => {
                if let (Some(min), Some(max)) = (o.min, o.max)
                    && min > max
                {
                    fe.add(
                        "max",
                        FieldError::new(
                            "validation_min_greater_equal_than_required",
                            "Must be no less than min.",
                        ),
                    );
                }
            }
            _ => {}
        }
        all.add_nested(i.to_string(), fe);
    }
    if let Some(o) = old {
        for of in o.fields.iter().filter(|f| f.system) {
            if !c.fields.iter().any(|f| f.id == of.id) {
                all.add(
                    of.name.clone(),
                    FieldError::new(
                        "validation_system_field_removal",
                        "System fields cannot be removed.",
                    ),
                );
            }
        }
    }
    errs.add_nested("fields", all);
}

/// The largest integer a JSON number holds exactly (2^53 - 1), PocketBase's bound.
const MAX_SAFE_INT: i64 = (1 << 53) - 1;

/// A file field's options, with PocketBase's codes and messages.
fn check_file_options(o: &crate::field::FileOptions, fe: &mut ValidationErrors) {
    for (key, n) in [("maxSelect", o.max_select), ("maxSize", o.max_size)] {
        if n < 0 {
            fe.add(
                key,
                FieldError::new(
                    "validation_min_greater_equal_than_required",
                    "Must be no less than 0.",
                )
                .with_params(json!({"threshold": 0})),
            );
        } else if n > MAX_SAFE_INT {
            fe.add(
                key,
                FieldError::new(
                    "validation_max_less_equal_than_required",
                    format!("Must be no greater than {MAX_SAFE_INT}."),
                )
                .with_params(json!({"threshold": MAX_SAFE_INT})),
            );
        }
    }
    let mut thumbs = ValidationErrors::new();
    for (i, spec) in o.thumbs.iter().enumerate() {
        if let Err(e) = crate::thumb::check_thumb_option(spec) {
            thumbs.add(i.to_string(), e);
        }
    }
    fe.add_nested("thumbs", thumbs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_pocketbase_ids() {
        // PocketBase names the `id` field `text3208210256` and base `posts` `pbc_1125843985`.
        assert_eq!(crc32(b"id"), 3_208_210_256);
        assert_eq!(crc32(b"baseposts"), 1_125_843_985);
    }

    #[test]
    fn new_collections_get_system_fields_and_ids() {
        let c: Collection = serde_json::from_value(
            json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}),
        )
        .expect("doc");
        let c = validate(c, None, &Schema::default(), "now").expect("valid");
        assert_eq!(c.id, "pbc_1125843985");
        assert_eq!(c.fields[0].name, "id");
        assert_eq!(c.fields[1].id, "text724990059");
    }

    /// The answer PocketBase 0.40 gave for these file options (probed).
    #[test]
    fn file_options_are_checked_as_pocketbase() {
        use crate::error::ValidationError;
        let c: Collection = serde_json::from_value(json!({"name": "f1", "fields": [{
            "name": "doc", "type": "file", "maxSelect": -1, "maxSize": 9007199254740992_i64,
            "thumbs": ["100x100", "abc", "0x0", "10x10z", "100x0", "0x50t", "10x10f", "-1x5"]
        }]}))
        .expect("doc");
        let errs = validate(c, None, &Schema::default(), "now").expect_err("invalid");
        let Some(ValidationError::Nested(fields)) = errs.errors.get("fields") else {
            panic!("{errs:?}")
        };
        // The system `id` field comes first, so the file field is entry 1.
        let Some(ValidationError::Nested(doc)) = fields.errors.get("1") else {
            panic!("{fields:?}")
        };
        let leaf = |e: Option<&ValidationError>| match e {
            Some(ValidationError::Leaf(f)) => (f.code.clone(), f.message.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            leaf(doc.errors.get("maxSelect")),
            (
                "validation_min_greater_equal_than_required".into(),
                "Must be no less than 0.".into()
            )
        );
        assert_eq!(
            leaf(doc.errors.get("maxSize")),
            (
                "validation_max_less_equal_than_required".into(),
                "Must be no greater than 9007199254740991.".into()
            )
        );
        let Some(ValidationError::Nested(thumbs)) = doc.errors.get("thumbs") else {
            panic!("{doc:?}")
        };
        let keys: Vec<&str> = thumbs.errors.keys().map(String::as_str).collect();
        assert_eq!(keys, ["1", "2", "3", "7"]);
        assert_eq!(leaf(thumbs.errors.get("2")).0, "validation_not_in_invalid");
    }

    #[test]
    fn file_fields_keep_pocketbase_shape() {
        let c: Collection = serde_json::from_value(json!({"name": "docs", "fields": [
            {"name": "doc", "type": "file", "maxSelect": 2, "maxSize": 1024,
             "mimeTypes": ["image/png"], "thumbs": ["10x10"], "protected": true}
        ]}))
        .expect("doc");
        let c = validate(c, None, &Schema::default(), "now").expect("valid");
        let doc = serde_json::to_value(&c.fields[1]).expect("json");
        assert_eq!(
            doc,
            json!({"id": "file2252471652", "name": "doc", "system": false, "hidden": false,
                   "presentable": false, "help": "", "type": "file", "required": false,
                   "maxSelect": 2, "maxSize": 1024, "mimeTypes": ["image/png"],
                   "thumbs": ["10x10"], "protected": true})
        );
        assert!(c.fields[1].is_multiple());
    }

    #[test]
    fn bad_collections_are_rejected() {
        for doc in [
            json!({"name": ""}),
            json!({"name": "bad name"}),
            json!({"name": "_hidden"}),
            json!({"name": "x", "fields": [{"name": "expand", "type": "text"}]}),
            json!({"name": "x", "fields": [{"name": "a", "type": "text"}, {"name": "A", "type": "bool"}]}),
            json!({"name": "x", "fields": [{"name": "s", "type": "select"}]}),
            json!({"name": "x", "fields": [{"name": "r", "type": "relation", "collectionId": "nope"}]}),
            json!({"name": "x", "listRule": "a ="}),
            json!({"name": "x", "type": "view"}),
            json!({"name": "sqlite_master"}),
            json!({"name": "sqlite_stat1"}),
            json!({"name": "SQLite_anything"}),
        ] {
            let c: Collection = serde_json::from_value(doc.clone()).expect("doc");
            assert!(
                validate(c, None, &Schema::default(), "now").is_err(),
                "{doc}"
            );
        }
    }
}
