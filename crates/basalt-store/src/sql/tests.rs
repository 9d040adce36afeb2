//! Data-driven tests of the compiler on a real SQLite database: each filter string with
//! the ids it must match; injection payloads stay values.

use std::sync::Arc;

use basalt_schema::collection_validate::validate;
use basalt_schema::filter::parse;
use basalt_schema::request::AuthInfo;
use basalt_schema::{Collection, RequestInfo, Schema};
use rusqlite::{Connection, params_from_iter};
use serde_json::{Value, json};

use super::*;
use crate::{Access, ListQuery, SortKey};

fn coll(v: Value, schema: &Schema) -> Collection {
    let c: Collection = serde_json::from_value(v).expect("doc");
    validate(c, None, schema, "2024-01-01 00:00:00.000Z").expect("valid")
}

fn setup() -> (Connection, Schema) {
    let conn = Connection::open_in_memory().expect("db");
    let mut cols = vec![];
    let users = coll(
        json!({"id": "users0000000001", "name": "users", "type": "auth", "fields": [{"name": "name", "type": "text"}]}),
        &Schema::default(),
    );
    cols.push(users);
    let tags = coll(
        json!({"id": "tags00000000001", "name": "tags", "fields": [{"name": "label", "type": "text"}]}),
        &Schema::new(cols.clone()),
    );
    cols.push(tags);
    let posts = coll(
        json!({"id": "posts0000000001", "name": "posts", "fields": [
            {"name": "title", "type": "text"}, {"name": "views", "type": "number"}, {"name": "done", "type": "bool"},
            {"name": "author", "type": "relation", "collectionId": "users0000000001", "maxSelect": 1},
            {"name": "tags", "type": "relation", "collectionId": "tags00000000001", "maxSelect": 5},
            {"name": "cats", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
            {"name": "meta", "type": "json"}, {"name": "when", "type": "date"}
        ]}),
        &Schema::new(cols.clone()),
    );
    cols.push(posts);
    let comments = coll(
        json!({"id": "comments0000001", "name": "comments", "fields": [
            {"name": "text", "type": "text"},
            {"name": "post", "type": "relation", "collectionId": "posts0000000001", "maxSelect": 1}
        ]}),
        &Schema::new(cols.clone()),
    );
    cols.push(comments);
    let schema = Schema::new(cols);
    for c in schema.collections() {
        crate::collections::create_table(&conn, c).expect("table");
    }
    conn.execute_batch(r#"
        INSERT INTO users (id, email, name, password, tokenKey) VALUES ('u1', 'ann@x.io', 'Ann', 'h', 'k1'), ('u2', 'bob@x.io', 'Bob', 'h', 'k2');
        INSERT INTO tags (id, label) VALUES ('t1', 'red'), ('t2', 'blue'), ('t3', 'green_ish');
        INSERT INTO posts (id, title, views, done, author, tags, cats, meta, "when") VALUES
          ('p1', 'Hello World', 10, 1, 'u1', '["t1","t2"]', '["a","b"]', '{"a":1,"b":{"c":"x"}}', '2020-01-01 00:00:00.000Z'),
          ('p2', 'second post', 5, 0, 'u2', '["t2"]', '["b"]', '{"a":2}', '2030-01-01 00:00:00.000Z'),
          ('p3', '100% sure', 0, 0, '', '[]', '[]', NULL, ''),
          ('p4', 'under_score', 7, 1, 'u1', '["t3"]', '["c"]', '[1,2]', '');
        INSERT INTO comments (id, text, post) VALUES ('c1', 'nice', 'p1'), ('c2', 'meh', 'p1'), ('c3', 'nice too', 'p2');
    "#).expect("seed");
    (conn, schema)
}

fn ids(
    conn: &Connection,
    schema: &Schema,
    filter: &str,
    req: &RequestInfo,
) -> Result<Vec<String>, String> {
    let c = schema.by_name("posts").expect("posts").clone();
    let expr = parse(filter).map_err(|e| e.to_string())?;
    let q = ListQuery {
        collection: c.clone(),
        filter: Some(expr),
        access: Access::Unrestricted,
        sort: vec![SortKey {
            path: "id".into(),
            descending: false,
        }],
        page: 1,
        per_page: 100,
        skip_total: false,
        request: Arc::new(req.clone()),
    };
    let (page, _) = compile_list(Dialect::Sqlite, schema, &q).map_err(|e| e.to_string())?;
    let mut stmt = conn
        .prepare(&page.sql)
        .map_err(|e| format!("{e}: {}", page.sql))?;
    let rows = stmt
        .query_map(params_from_iter(page.params.iter()), |r| {
            r.get::<_, String>("id")
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

fn obj(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn auth_req() -> RequestInfo {
    RequestInfo {
        auth: Some(AuthInfo {
            collection_id: "users0000000001".into(),
            collection_name: "users".into(),
            record: obj(json!({"id": "u1", "name": "Ann", "email": "ann@x.io"})),
            is_superuser: false,
        }),
        body: obj(json!({"title": "Hello World", "cats": ["a"]})),
        query: obj(json!({"q": "second post"})),
        headers: obj(json!({"x_team": "u2"})),
        method: "GET".into(),
        context: "default".into(),
    }
}

const CASES: &[(&str, &[&str])] = &[
    ("views > 5", &["p1", "p4"]),
    ("views >= 5", &["p1", "p2", "p4"]),
    ("views < 5", &["p3"]),
    ("views <= 5", &["p2", "p3"]),
    ("views = 10", &["p1"]),
    ("views != 10", &["p2", "p3", "p4"]),
    ("views = '10'", &["p1"]),
    ("done = true", &["p1", "p4"]),
    ("done = false", &["p2", "p3"]),
    ("title = 'Hello World'", &["p1"]),
    ("title ~ 'world'", &["p1"]),
    ("title !~ 'world'", &["p2", "p3", "p4"]),
    ("title ~ 'hel%'", &["p1"]),
    ("title ~ '100%'", &["p3"]),
    ("title ~ 'unde__score'", &[]),
    ("title ~ 'r_sc'", &["p4"]),
    ("title:lower = 'hello world'", &["p1"]),
    ("author = ''", &["p3"]),
    ("author = null", &["p3"]),
    ("author != null", &["p1", "p2", "p4"]),
    ("meta = null", &["p3"]),
    ("author.name = 'Ann'", &["p1", "p4"]),
    ("author.email ~ 'bob'", &["p2"]),
    ("tags.label ?= 'blue'", &["p1", "p2"]),
    ("tags.label = 'blue'", &["p2"]),
    ("tags.label ?~ 'ish'", &["p4"]),
    ("tags.label ?!= 'red'", &["p1", "p2", "p3", "p4"]),
    ("tags:length = 2", &["p1"]),
    ("tags:length = 0", &["p3"]),
    ("cats ?= 'b'", &[]),
    ("cats = '[\"b\"]'", &["p2"]),
    ("cats ~ 'b'", &["p1", "p2"]),
    ("cats:each ?= 'b'", &["p1", "p2"]),
    ("cats = 'b'", &[]),
    ("cats:each = 'b'", &["p2"]),
    ("cats:each ~ 'b'", &["p2"]),
    ("cats:length > 0", &["p1", "p2", "p4"]),
    ("comments_via_post.text ?~ 'nice'", &["p1", "p2"]),
    ("comments_via_post.text = 'nice'", &[]),
    ("comments_via_post.text != 'nice'", &["p2", "p3", "p4"]),
    ("comments_via_post:length = 2", &["p1"]),
    ("meta.a = 1", &["p1"]),
    ("meta.b.c = 'x'", &["p1"]),
    ("meta.0 = 1", &["p4"]),
    ("meta.99999999999999999999 = 1", &[]),
    ("meta.a.b.c.d.e = 1", &[]),
    ("when < @now && when != ''", &["p1"]),
    ("when > @now", &["p2"]),
    ("when >= @yearStart", &["p2"]),
    ("(views > 6 || title ~ 'second') && done = false", &["p2"]),
    (
        "views > 6 || title ~ 'second' && done = false",
        &["p1", "p2", "p4"],
    ),
    ("@request.auth.id = author", &["p1", "p4"]),
    ("author = @request.auth.id && views > 8", &["p1"]),
    ("@request.auth.name = 'Ann'", &["p1", "p2", "p3", "p4"]),
    (
        "@request.auth.collectionName = 'users' && author.name = @request.auth.name",
        &["p1", "p4"],
    ),
    ("@request.body.title = title", &["p1"]),
    ("@request.body.title:isset = true && views = 0", &["p3"]),
    ("@request.body.views:isset = true", &[]),
    ("@request.body.title:changed = true && views >= 7", &["p4"]),
    ("@request.body.cats ?= cats:each", &["p1"]),
    ("@request.body.cats:length = 1 && views = 5", &["p2"]),
    ("@request.query.q = title", &["p2"]),
    ("@request.headers.x_team = author", &["p2"]),
    ("@request.method = 'GET' && views = 0", &["p3"]),
    ("@collection.comments.post ?= id", &["p1", "p2"]),
    (
        "@collection.comments.post = id && @collection.comments.text = 'meh'",
        &["p1"],
    ),
    (
        "@collection.comments:a.text = 'nice too' && @collection.comments:b.post = id",
        &["p1", "p2"],
    ),
    (
        "@collection.users.name = 'Bob' && author = @collection.users.id",
        &["p2"],
    ),
    ("title = \"x' OR 1=1 --\"", &[]),
    ("title = '\"; DROP TABLE posts; --'", &[]),
];

#[test]
fn filters_match_exactly_the_expected_records() {
    let (conn, schema) = setup();
    let req = auth_req();
    let mut failures = vec![];
    for (filter, want) in CASES {
        match ids(&conn, &schema, filter, &req) {
            Ok(got) if got == *want => {}
            other => failures.push(format!("{filter}: want {want:?}, got {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM posts", [], |r| r.get(0))
        .expect("table intact");
    assert_eq!(n, 4);
}

#[test]
fn unknown_and_hidden_fields_are_invalid_queries() {
    let (conn, schema) = setup();
    let anon = RequestInfo::default();
    for f in [
        "nope = 1",
        "author.nope = 1",
        "title.x = 1",
        "@collection.nope.x = 1",
        "author.password = 'h'",
        "author.tokenKey = 'k1'",
    ] {
        assert!(ids(&conn, &schema, f, &anon).is_err(), "{f}");
    }
}

#[test]
fn user_values_never_reach_the_sql_text() {
    let (_, schema) = setup();
    let c = schema.by_name("posts").expect("posts").clone();
    let mut req = auth_req();
    let payload = "x' OR 1=1; DROP TABLE posts; --";
    req.body
        .insert("title".into(), Value::String(payload.into()));
    req.query.insert("q".into(), Value::String(payload.into()));
    let expr = parse(&format!(
        "title = '{}' || title = @request.body.title || title = @request.query.q || title ~ 'a%b'",
        payload.replace('\'', "\\'")
    ))
    .expect("parse");
    let f = compile_condition(Dialect::Sqlite, &schema, &c, &expr, &req).expect("compile");
    assert!(!f.sql.contains("DROP"), "{}", f.sql);
    assert!(!f.sql.contains("1=1"), "{}", f.sql);
    assert!(f.params.contains(&SqlValue::Text(payload.into())));
}

#[test]
fn sorting_by_fields_relations_and_specials() {
    let (_, schema) = setup();
    let c = schema.by_name("posts").expect("posts").clone();
    let req = RequestInfo::default();
    for (keys, ok) in [
        (vec![("-views", true), ("title", false)], true),
        (vec![("author.name", false)], true),
        (vec![("@random", false), ("@rowid", true)], true),
        (vec![("tags.label", false)], false),
        (vec![("nope", false)], false),
    ] {
        let sort: Vec<SortKey> = keys
            .iter()
            .map(|(p, d)| SortKey {
                path: p.trim_start_matches('-').into(),
                descending: *d || p.starts_with('-'),
            })
            .collect();
        assert_eq!(
            compile_order(Dialect::Sqlite, &schema, &c, &sort, &req).is_ok(),
            ok,
            "{keys:?}"
        );
    }
}

proptest::proptest! {
    /// Whatever a user writes inside a string literal or a request value, it reaches SQL
    /// only as a parameter: the SQL text is the same as for a harmless value.
    #[test]
    fn any_user_value_is_a_bound_parameter(v in "\\PC{0,40}") {
        let (_, schema) = setup();
        let c = schema.by_name("posts").expect("posts").clone();
        let mut req = auth_req();
        req.body.insert("title".into(), Value::String(v.clone()));
        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
        let filter = format!("title = \"{escaped}\" || title ~ \"{escaped}\" || title = @request.body.title");
        if let Ok(expr) = parse(&filter) {
            let f = compile_condition(Dialect::Sqlite, &schema, &c, &expr, &req).expect("compiles");
            let baseline = compile_condition(Dialect::Sqlite, &schema, &c, &parse("title = \"x\" || title ~ \"x\" || title = @request.body.title").expect("parse"), &req).expect("compiles");
            proptest::prop_assert_eq!(f.sql, baseline.sql);
        }
    }
}

#[test]
fn the_largest_accepted_filter_still_runs() {
    let (conn, schema) = setup();
    let f = vec!["tags.label ?= 'x' || cats:each ?= 'y' || comments_via_post.text ?~ 'z'"; 66]
        .join(" || ");
    assert_eq!(ids(&conn, &schema, &f, &auth_req()), Ok(vec![]));
}
