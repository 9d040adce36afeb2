//! Table tests of record preparation: normalisation, constraints and modifiers.

use serde_json::{Value, json};

use super::*;
use crate::collection::Collection;

fn posts() -> Collection {
    serde_json::from_value(json!({
        "id": "pbc_1", "name": "posts", "type": "base",
        "fields": [
            {"name": "id", "type": "text", "system": true, "required": true, "primaryKey": true,
             "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"},
            {"name": "title", "type": "text", "required": true, "min": 2, "max": 10},
            {"name": "views", "type": "number", "onlyInt": true, "min": 0},
            {"name": "done", "type": "bool"},
            {"name": "tags", "type": "select", "values": ["a", "b", "c"], "maxSelect": 2},
            {"name": "mail", "type": "email"},
            {"name": "meta", "type": "json"},
            {"name": "when", "type": "date"},
            {"name": "created", "type": "autodate", "onCreate": true},
            {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
        ]
    }))
    .expect("valid collection")
}

const NOW: &str = "2024-01-01 00:00:00.000Z";

fn input(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn create_err(v: Value) -> Vec<(String, String)> {
    match prepare_create(&posts(), &input(v), &[], NOW) {
        Ok(_) => vec![],
        Err(e) => e
            .errors
            .iter()
            .map(|(k, v)| match v {
                crate::error::ValidationError::Leaf(f) => (k.clone(), f.code.clone()),
                crate::error::ValidationError::Nested(_) => (k.clone(), "nested".into()),
            })
            .collect(),
    }
}

#[test]
fn create_normalises_and_fills_defaults() {
    let r = prepare_create(&posts(), &input(json!({"title": "hi", "views": "12", "done": "on", "tags": "a", "meta": "{\"x\":1}", "when": "2024-02-03"})), &[], NOW)
        .expect("valid");
    assert_eq!(r["id"].as_str().map(str::len), Some(15));
    assert_eq!(r["views"], json!(12));
    assert_eq!(r["done"], json!(true));
    assert_eq!(r["tags"], json!(["a"]));
    assert_eq!(r["meta"], json!({"x": 1}));
    assert_eq!(r["when"], json!("2024-02-03 00:00:00.000Z"));
    assert_eq!(r["created"], json!(NOW));
    assert_eq!(r["mail"], json!(""));
}

#[test]
fn create_reports_each_constraint_with_its_code() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "title", "validation_required"),
        (
            json!({"title": "x"}),
            "title",
            "validation_min_text_constraint",
        ),
        (
            json!({"title": "much too long"}),
            "title",
            "validation_max_text_constraint",
        ),
        (
            json!({"title": "ok", "views": 1.5}),
            "views",
            "validation_only_int_constraint",
        ),
        (
            json!({"title": "ok", "views": -1}),
            "views",
            "validation_min_number_constraint",
        ),
        (
            json!({"title": "ok", "views": {"not": "a number"}}),
            "views",
            "validation_invalid_value",
        ),
        (
            json!({"title": "ok", "tags": ["z"]}),
            "tags",
            "validation_invalid_value",
        ),
        (
            json!({"title": "ok", "tags": ["a", "b", "c"]}),
            "tags",
            "validation_too_many_values",
        ),
        (
            json!({"title": "ok", "mail": "nope"}),
            "mail",
            "validation_is_email",
        ),
        (
            json!({"title": "ok", "when": "tomorrow"}),
            "when",
            "validation_invalid_datetime",
        ),
        (
            json!({"title": "ok", "id": "BAD id"}),
            "id",
            "validation_min_text_constraint",
        ),
        (
            json!({"title": "ok", "id": "UPPERCASEIDXXXX"}),
            "id",
            "validation_invalid_format",
        ),
    ];
    for (body, field, code) in cases {
        let errs = create_err(body.clone());
        assert!(
            errs.contains(&(field.to_string(), code.to_string())),
            "{body}: {errs:?}"
        );
    }
}

#[test]
fn update_applies_modifiers_and_keeps_untouched_fields() {
    let c = posts();
    let existing = prepare_create(
        &c,
        &input(json!({"title": "hi", "views": 5, "tags": ["a"]})),
        &[],
        NOW,
    )
    .expect("valid");
    let later = "2024-01-02 00:00:00.000Z";
    let r = prepare_update(
        &c,
        &existing,
        &input(json!({"views+": 3, "tags+": "b", "+tags": "c"})),
        &[],
        later,
    );
    // three tags exceed maxSelect 2
    assert!(r.is_err());
    let r = prepare_update(
        &c,
        &existing,
        &input(json!({"views-": 2, "tags+": "b"})),
        &[],
        later,
    )
    .expect("valid");
    assert_eq!(r["views"], json!(3));
    assert_eq!(r["tags"], json!(["a", "b"]));
    assert_eq!(r["title"], json!("hi"));
    assert_eq!(r["created"], json!(NOW));
    assert_eq!(r["updated"], json!(later));
    let r = prepare_update(&c, &r, &input(json!({"tags-": ["a"]})), &[], later).expect("valid");
    assert_eq!(r["tags"], json!(["b"]));
    let err = prepare_update(&c, &r, &input(json!({"id": "aaaaaaaaaaaaaaa"})), &[], later)
        .expect_err("pk change");
    assert!(err.errors.contains_key("id"));
}

/// Regression: a modifier that overflowed to infinity was stored as 0 with a 200, past
/// the field's `max`; PocketBase answers `validation_not_a_number`.
#[test]
fn a_number_modifier_overflowing_to_infinity_is_refused_not_stored_as_zero() {
    let c = posts();
    let existing =
        prepare_create(&c, &input(json!({"title": "hi", "views": 5})), &[], NOW).expect("valid");
    for body in [
        json!({"views": 1e308, "views+": 1e308}),
        json!({"views": -1e308, "views-": 1e308}),
    ] {
        let err =
            prepare_update(&c, &existing, &input(body.clone()), &[], NOW).expect_err("overflow");
        match err.errors.get("views") {
            Some(crate::error::ValidationError::Leaf(f)) => {
                assert_eq!(f.code, "validation_not_a_number", "{body}");
                assert_eq!(f.message, "The submitted number is not properly formatted.");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}

/// Regression: an `onlyInt` field took 1e300 and 2^63, which no 64-bit integer holds
/// (PocketBase refuses them as decimals).
#[test]
fn only_int_numbers_beyond_64_bits_are_refused() {
    for n in [json!(1e300), json!(9223372036854775808u64), json!(-1e19)] {
        let errs = create_err(json!({"title": "ok", "views": n}));
        assert!(
            errs.contains(&("views".into(), "validation_only_int_constraint".into())),
            "{n}: {errs:?}"
        );
    }
    assert!(create_err(json!({"title": "ok", "views": 9007199254740993u64})).is_empty());
}

#[test]
fn passwords_are_checked_before_hashing() {
    let f: crate::field::Field = serde_json::from_value(
        json!({"name": "password", "type": "password", "min": 8, "required": true}),
    )
    .expect("field");
    assert!(validate_password(&f, "short").is_err());
    assert!(validate_password(&f, "").is_err());
    assert!(validate_password(&f, "long enough").is_ok());
}

fn docs() -> Collection {
    serde_json::from_value(json!({
        "id": "pbc_2", "name": "docs", "type": "base",
        "fields": [
            {"name": "id", "type": "text", "system": true, "required": true, "primaryKey": true,
             "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"},
            {"name": "one", "type": "file", "maxSize": 10, "mimeTypes": ["text/plain"]},
            {"name": "many", "type": "file", "maxSelect": 2},
            {"name": "req", "type": "file", "maxSelect": 1, "required": true}
        ]
    }))
    .expect("valid collection")
}

fn file_errors(r: Result<Record, ValidationErrors>) -> Vec<(String, String, String)> {
    match r {
        Ok(_) => vec![],
        Err(e) => e
            .errors
            .iter()
            .map(|(k, v)| match v {
                crate::error::ValidationError::Leaf(f) => {
                    (k.clone(), f.code.clone(), f.message.clone())
                }
                crate::error::ValidationError::Nested(_) => (k.clone(), "nested".into(), "".into()),
            })
            .collect(),
    }
}

fn stored_doc() -> Record {
    input(json!({"id": "abcdefghijklmno", "one": "a_1234567890.txt",
                 "many": ["b_1234567890.txt", "c_1234567890.txt"], "req": "r_1234567890.txt"}))
}

/// A JSON body cannot bring new files: PocketBase 0.40 answers these (probed).
#[test]
fn file_names_in_a_body_must_already_be_held() {
    let e = file_errors(prepare_create(
        &docs(),
        &input(json!({"one": "x.txt", "many": ["a.txt"], "req": 123})),
        &[],
        NOW,
    ));
    assert_eq!(
        e,
        [
            (
                "one".into(),
                "validation_invalid_file".into(),
                "Invalid new files: [x.txt].".into()
            ),
            (
                "many".into(),
                "validation_invalid_file".into(),
                "Invalid new files: [a.txt].".into()
            ),
            (
                "req".into(),
                "validation_invalid_file".into(),
                "Invalid new files: [123].".into()
            ),
        ]
    );
    let e = prepare_create(
        &docs(),
        &input(json!({"many": ["a.txt", "b.txt"]})),
        &[],
        NOW,
    )
    .expect_err("invalid");
    let Some(crate::error::ValidationError::Leaf(f)) = e.errors.get("many") else {
        panic!("{e:?}")
    };
    assert_eq!(f.message, "Invalid new files: [a.txt b.txt].");
    assert_eq!(f.params, Some(json!({"invalidFiles": ["a.txt", "b.txt"]})));
}

#[test]
fn file_fields_create_empty_and_require_a_file() {
    assert_eq!(
        file_errors(prepare_create(
            &docs(),
            &input(json!({"one": ""})),
            &[],
            NOW
        )),
        [(
            "req".into(),
            "validation_required".into(),
            "Cannot be blank.".into()
        )]
    );
    let mut no_req = docs();
    no_req.fields.pop();
    let r = prepare_create(&no_req, &input(json!({"one": null})), &[], NOW).expect("valid");
    assert_eq!(r["one"], json!(""));
    assert_eq!(r["many"], json!([]));
}

#[test]
fn file_updates_keep_reorder_and_remove_held_names() {
    let existing = stored_doc();
    let r = prepare_update(
        &docs(),
        &existing,
        &input(json!({"many": ["c_1234567890.txt", "b_1234567890.txt"]})),
        &[],
        NOW,
    )
    .expect("held names");
    assert_eq!(r["many"], json!(["c_1234567890.txt", "b_1234567890.txt"]));
    // A string keeps one name; `field-` removes; single fields take the last name.
    let r = prepare_update(
        &docs(),
        &existing,
        &input(
            json!({"many": "b_1234567890.txt", "one-": "a_1234567890.txt",
                      "req": ["r_1234567890.txt"]}),
        ),
        &[],
        NOW,
    )
    .expect("valid");
    assert_eq!(r["many"], json!(["b_1234567890.txt"]));
    assert_eq!(r["one"], json!(""));
    assert_eq!(r["req"], json!("r_1234567890.txt"));
    let r = prepare_update(
        &docs(),
        &existing,
        &input(json!({"many-": ["b_1234567890.txt", "nope.txt"]})),
        &[],
        NOW,
    )
    .expect("valid");
    assert_eq!(r["many"], json!(["c_1234567890.txt"]));
}

#[test]
fn file_updates_refuse_new_names_and_blank_required_fields() {
    let existing = stored_doc();
    let e = file_errors(prepare_update(
        &docs(),
        &existing,
        &input(json!({"many": ["b_1234567890.txt", "zzz.txt"], "req": "", "one+": "x.txt"})),
        &[],
        NOW,
    ));
    assert_eq!(
        e,
        [
            (
                "one".into(),
                "validation_invalid_file".into(),
                "Invalid new files: [x.txt].".into()
            ),
            (
                "many".into(),
                "validation_invalid_file".into(),
                "Invalid new files: [zzz.txt].".into()
            ),
            (
                "req".into(),
                "validation_required".into(),
                "Cannot be blank.".into()
            ),
        ]
    );
}

#[test]
fn too_many_files_use_pocketbase_code() {
    let mut existing = stored_doc();
    existing.insert(
        "many".into(),
        json!(["b_1234567890.txt", "c_1234567890.txt", "d_1234567890.txt"]),
    );
    let e = file_errors(prepare_update(
        &docs(),
        &existing,
        &input(json!({})),
        &[],
        NOW,
    ));
    assert_eq!(
        e,
        [(
            "many".into(),
            "validation_too_many_files".into(),
            "The maximum allowed files is 2.".into()
        )]
    );
}

#[test]
fn an_import_keeps_ids_and_autodates_and_names_broken_constraints() {
    let c = posts();
    let r = prepare_import(
        &c,
        &input(
            json!({"id": "abcdefghijklmno", "title": "x", "views": 3, "done": 1,
            "tags": ["a"], "created": "2020-02-03 04:05:06.789Z", "updated": ""}),
        ),
        NOW,
    )
    .expect("imported");
    assert_eq!(r["id"], "abcdefghijklmno");
    assert_eq!(r["created"], "2020-02-03 04:05:06.789Z");
    assert_eq!(
        r["updated"], NOW,
        "an empty autodate takes the import's time"
    );
    assert_eq!(r["done"], true);
    // Too short a title is kept, and named.
    let errs = constraint_errors(&c, &r);
    assert_eq!(errs.errors.keys().collect::<Vec<_>>(), ["title"]);
    // A value of the wrong type is refused, and so is a record without an id.
    assert!(prepare_import(&c, &input(json!({"id": "abcdefghijklmno", "tags": 5})), NOW).is_err());
    assert!(prepare_import(&c, &input(json!({"title": "xyz"})), NOW).is_err());
}
