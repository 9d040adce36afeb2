//! The compiler's case tables on both engines: the schema and data of `tests::setup` in
//! SQLite and in PostgreSQL (tables from `pg_schema`, rows copied from SQLite), every case
//! of [`CASES`] and [`READER_CASES`] (as superuser, user and anonymous client) and a table
//! of sorts compiled for each dialect and run; each must give the same ids in the same
//! order (and the same total), or the same refusal.
//!
//! PostgreSQL comes from `BASALT_TEST_PG_URL` (`scripts/pg.sh`). Without it the test says
//! so and passes locally; under `CI=true` it fails.

use std::sync::Arc;

use basalt_schema::filter::parse;
use basalt_schema::{Collection, FieldKind, RequestInfo, Schema};
use basalt_testkit::pg::PgSchema;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, params_from_iter};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::tests::{As, CASES, READER_CASES, auth_req, setup, su_req};
use super::*;
use crate::{Access, Author, ListQuery, SortKey};

type Answer = Result<(Vec<String>, Option<i64>), String>;

/// A connection to a fresh PostgreSQL schema of its own with the dialect's support
/// functions, dropped by [`Pg::close`].
struct Pg {
    client: Client,
    schema: PgSchema,
}

impl Pg {
    async fn connect() -> Option<Pg> {
        let schema = PgSchema::create("conformance").await?;
        let client = schema.connect().await;
        client
            .batch_execute(pg::SUPPORT_SQL)
            .await
            .expect("support functions");
        Some(Pg { client, schema })
    }

    async fn close(self) {
        drop(self.client);
        drop(self.schema);
    }

    /// `tests::setup`'s tables and rows, copied from SQLite in rowid order.
    async fn load(&self, conn: &Connection, schema: &Schema) {
        for c in schema.collections() {
            for stmt in crate::pg_schema::create_table(c).expect("ddl") {
                self.client
                    .batch_execute(&stmt)
                    .await
                    .unwrap_or_else(|e| panic!("{stmt}: {e}"));
            }
            self.copy_rows(conn, c).await;
        }
    }

    async fn copy_rows(&self, conn: &Connection, c: &Collection) {
        let cols: Vec<String> = c
            .fields
            .iter()
            .map(|f| Dialect::Sqlite.quote(&f.name))
            .collect();
        let placeholders: Vec<String> = c
            .fields
            .iter()
            .enumerate()
            .map(
                |(i, f)| match (&f.kind, f.is_multiple() && f.name != "id") {
                    (FieldKind::Number(_), _) => format!("${}::float8", i + 1),
                    (FieldKind::Bool(_), _) => format!("${}::bool", i + 1),
                    (FieldKind::Json(_) | FieldKind::GeoPoint(_), _) | (_, true) => {
                        format!("${}::text::jsonb", i + 1)
                    }
                    _ => format!("${}::text", i + 1),
                },
            )
            .collect();
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            Dialect::Sqlite.quote(&c.name),
            cols.join(", "),
            placeholders.join(", ")
        );
        let select = format!(
            "SELECT {} FROM {} ORDER BY rowid",
            cols.join(", "),
            Dialect::Sqlite.quote(&c.name)
        );
        let mut stmt = conn.prepare(&select).expect("select");
        let mut rows = stmt.query([]).expect("rows");
        while let Some(row) = rows.next().expect("row") {
            let mut values: Vec<Box<dyn ToSql + Sync + Send>> = vec![];
            for (i, f) in c.fields.iter().enumerate() {
                let v = row.get_ref(i).expect("value");
                values.push(match (&f.kind, v) {
                    (FieldKind::Number(_), ValueRef::Integer(n)) => Box::new(n as f64),
                    (FieldKind::Number(_), ValueRef::Real(x)) => Box::new(x),
                    (FieldKind::Bool(_), ValueRef::Integer(n)) => Box::new(n != 0),
                    (_, ValueRef::Null) => Box::new(None::<String>),
                    (_, ValueRef::Text(t)) => Box::new(String::from_utf8_lossy(t).into_owned()),
                    (_, other) => panic!("{}.{}: unexpected {other:?}", c.name, f.name),
                });
            }
            let refs: Vec<&(dyn ToSql + Sync)> = values
                .iter()
                .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                .collect();
            self.client
                .execute(&insert, &refs)
                .await
                .unwrap_or_else(|e| panic!("{insert}: {e}"));
        }
    }

    async fn ids(&self, page: &SqlFragment, count: Option<&SqlFragment>) -> Answer {
        let rows = self
            .client
            .query(&page.pg_sql(), &crate::postgres::params(&page.params))
            .await
            .map_err(|e| format!("{e:?}: {}", page.pg_sql()))?;
        let ids = rows
            .iter()
            .map(|r| r.try_get::<_, String>("id").map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let total = match count {
            Some(c) => Some(
                self.client
                    .query_one(&c.pg_sql(), &crate::postgres::params(&c.params))
                    .await
                    .and_then(|r| r.try_get::<_, i64>(0))
                    .map_err(|e| format!("{e:?}: {}", c.pg_sql()))?,
            ),
            None => None,
        };
        Ok((ids, total))
    }
}

fn sqlite_ids(conn: &Connection, page: &SqlFragment, count: Option<&SqlFragment>) -> Answer {
    let mut stmt = conn
        .prepare(&page.sql)
        .map_err(|e| format!("{e}: {}", page.sql))?;
    let ids = stmt
        .query_map(params_from_iter(page.params.iter()), |r| {
            r.get::<_, String>("id")
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    let total = match count {
        Some(c) => Some(
            conn.query_row(&c.sql, params_from_iter(c.params.iter()), |r| r.get(0))
                .map_err(|e| format!("{e}: {}", c.sql))?,
        ),
        None => None,
    };
    Ok((ids, total))
}

fn query(
    schema: &Schema,
    filter: &str,
    sort: &[&str],
    req: &RequestInfo,
    author: Author,
) -> Result<ListQuery, String> {
    let c = schema.by_name("posts").expect("posts").clone();
    let mut keys: Vec<SortKey> = sort
        .iter()
        .map(|p| SortKey {
            path: p.trim_start_matches('-').into(),
            descending: p.starts_with('-'),
        })
        .collect();
    keys.push(SortKey {
        path: "id".into(),
        descending: false,
    });
    Ok(ListQuery {
        collection: c,
        filter: if filter.is_empty() {
            None
        } else {
            Some(parse(filter).map_err(|e| e.to_string())?)
        },
        access: Access::Unrestricted,
        sort: keys,
        author,
        page: 1,
        per_page: 100,
        skip_total: false,
        request: Arc::new(req.clone()),
    })
}

/// Filters beyond the compiler's table, where SQLite's typing decides the answer:
/// comparisons across types, affinity conversions, byte order, case folding, JSON values.
const LOOSE_TYPING: &[&str] = &[
    "title = 10",
    "views = '10.0'",
    "views = ' 10 '",
    "views = '1e1'",
    "views = 'abc'",
    "views != 'abc'",
    "views < 'abc'",
    "views > 'abc'",
    "views > '6'",
    "views = 10.0",
    "views > 5.5",
    "views = true",
    "done = 1",
    "done = 'true'",
    "done != 0",
    "done > 0",
    "title < 'a'",
    "title > 'Z'",
    "title >= 'second'",
    "title ~ 'HELLO'",
    "title ~ 'hello w%'",
    "title ~ '%o%o%'",
    "title !~ '%'",
    "title ~ '%\\\\_%'",
    "title:length > 10",
    "title:lower ~ 'under'",
    "views:length = 2",
    "views ~ '1'",
    "views ~ 0",
    "meta.a = '1'",
    "meta.a = 1.0",
    "meta.a > 'x'",
    "meta.a < 'x'",
    "meta.b > 0",
    "meta.b.c ~ 'X'",
    "meta.b.c = 'x' && meta.a = 1",
    "meta.a != null",
    "meta.nope = null",
    "meta:length = 2",
    "meta ~ 'c'",
    "meta.0 >= 1",
    "meta.1 = '2'",
    "meta.0.a = 1",
    "meta.a.0 = 1",
    "meta.b.0 = 'x'",
    "meta.b.c.0 = 'x'",
    "cats:each > 'a'",
    "cats:each ?> 'b'",
    "cats:each < 'c'",
    "cats:each:lower ?= 'B'",
    "cats:length >= 2",
    "cats != '[]'",
    "cats = '[]'",
    "cats = null",
    "tags = '[]'",
    "tags ~ 't2'",
    "tags.label:lower ?= 'RED'",
    "tags.label:length ?= 4",
    "tags.label ?> 'green'",
    "tags.label > 'a'",
    "tags.label ?= null",
    "tags.label = null",
    "tags.label != null",
    "comments_via_post.text ?= title",
    "comments_via_post.post.views ?> 6",
    "comments_via_post.post.title ?~ 'world'",
    "author.name ?= 'Ann'",
    "author.name:lower = 'bob'",
    "author.name > 'B'",
    "author.name = null",
    "when = ''",
    "when > '2021'",
    "when ~ '2030%'",
    "when < @todayStart",
    "views < @day || views > @year",
    "@request.auth.id ?= author.id",
    "@request.body.cats ?= 'a'",
    "@request.body.cats = 'a'",
    "@request.body.cats:length = 1",
    "@request.body.cats:lower ?= 'A'",
    "@request.body.title:lower = title:lower",
    "@request.body.title:changed = false",
    "@request.body.nope = null",
    "@request.body.nope = 0",
    "@request.query.q ~ 'second'",
    "@request.query.missing = null",
    "@request.query.missing != ''",
    "@request.headers.x_team = author.id",
    "@request.auth.name > 'A'",
    "@request.auth.email ~ 'x.io'",
    "@collection.comments.text ~ 'nice' && @collection.comments.post = id",
    "@collection.tags.label ?= 'red' && tags ~ @collection.tags.id",
    "@collection.posts:p.views > views",
    "views > null",
    "title < null",
    "meta.a >= null",
    "null = views",
    "null != title",
    "null = null",
    "'a' = 'a'",
    "1 < 'a'",
    "'10' = 10",
    "@request.auth.id != author && author != ''",
    "author = @request.auth.id || views = 0",
];

/// Sorts (each followed by `id`) as each reader: SQLite's order of NULLs, of text by
/// bytes, of JSON values by type, and what a client may not read sorting as NULL.
const SORTS: &[&[&str]] = &[
    &["-views"],
    &["title"],
    &["-title"],
    &["done", "-views"],
    &["when"],
    &["author.name"],
    &["-author.name"],
    &["pin.body"],
    &["-pin.body"],
    &["author.email"],
    &["-author.email"],
    &["meta.a"],
    &["-meta.b.c"],
    &["@rowid"],
    &["-@rowid"],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compiler_case_selects_the_same_rows_on_sqlite_and_postgresql() {
    let Some(pg) = Pg::connect().await else {
        return;
    };
    let (conn, schema) = setup();
    pg.load(&conn, &schema).await;

    let mut cases: Vec<(String, &str, Vec<&str>, RequestInfo, Author)> = vec![];
    for (filter, _) in CASES {
        cases.push((
            filter.to_string(),
            filter,
            vec![],
            auth_req(),
            Author::Server,
        ));
    }
    for (filter, who, _) in READER_CASES {
        let req = match who {
            As::Anonymous => RequestInfo::default(),
            As::Ann => auth_req(),
            As::Superuser => su_req(),
        };
        cases.push((
            format!("{filter} as {who:?}"),
            filter,
            vec![],
            req,
            Author::Client,
        ));
    }
    for filter in LOOSE_TYPING {
        cases.push((
            filter.to_string(),
            filter,
            vec![],
            auth_req(),
            Author::Server,
        ));
    }
    for sort in SORTS {
        for (who, req) in [
            ("superuser", su_req()),
            ("Ann", auth_req()),
            ("anonymous", RequestInfo::default()),
        ] {
            cases.push((
                format!("sort {sort:?} as {who}"),
                "",
                sort.to_vec(),
                req,
                Author::Client,
            ));
        }
    }

    let (mut same, mut refused, mut failures) = (0, 0, vec![]);
    for (name, filter, sort, req, author) in &cases {
        let answer = |d: Dialect| {
            let q = query(&schema, filter, sort, req, *author)?;
            compile_list(d, &schema, &q).map_err(|e| e.to_string())
        };
        let lite = answer(Dialect::Sqlite).and_then(|(p, c)| sqlite_ids(&conn, &p, c.as_ref()));
        let post = match answer(Dialect::Postgres) {
            Ok((p, c)) => pg.ids(&p, c.as_ref()).await,
            Err(e) => Err(e),
        };
        if lite == post {
            same += 1;
            refused += usize::from(lite.is_err());
        } else {
            failures.push(format!(
                "{name}:\n  sqlite:     {lite:?}\n  postgresql: {post:?}"
            ));
        }
    }
    // `@random`: each engine's own shuffle, of the same rows.
    for req in [su_req(), RequestInfo::default()] {
        let q = query(&schema, "views > 0", &["@random"], &req, Author::Client).expect("query");
        let mut got = vec![];
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let (page, count) = compile_list(d, &schema, &q).expect("compiles");
            let answer = match d {
                Dialect::Sqlite => sqlite_ids(&conn, &page, count.as_ref()),
                Dialect::Postgres => pg.ids(&page, count.as_ref()).await,
            };
            let (mut ids, total) = answer.expect("runs");
            ids.sort();
            got.push((ids, total));
        }
        assert_eq!(got[0], got[1], "@random");
        assert_eq!(got[0].0, ["p1", "p2", "p4"]);
    }
    pg.close().await;
    eprintln!(
        "conformance: {same} of {} cases answer alike on SQLite and PostgreSQL \
         ({refused} of them refusals before any SQL runs)",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Every field kind, PocketBase's system collections and their indexes as PostgreSQL
/// tables: the same columns as SQLite's (plus `_rowid`), the same defaults, the same
/// indexes, and emails unique without case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_become_postgresql_tables_like_sqlite_ones() {
    let Some(pg) = Pg::connect().await else {
        return;
    };
    let conn = Connection::open_in_memory().expect("db");
    let system = crate::system::migrate(&conn).expect("system collections");
    let doc = serde_json::json!({"id": "kinds0000000001", "name": "kinds", "fields": [
        {"name": "t", "type": "text"}, {"name": "ed", "type": "editor"},
        {"name": "n", "type": "number"}, {"name": "b", "type": "bool"},
        {"name": "em", "type": "email"}, {"name": "u", "type": "url"},
        {"name": "d", "type": "date"}, {"name": "ad", "type": "autodate", "onCreate": true},
        {"name": "s1", "type": "select", "values": ["a", "b"], "maxSelect": 1},
        {"name": "s2", "type": "select", "values": ["a", "b"], "maxSelect": 2},
        {"name": "j", "type": "json"},
        {"name": "r1", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
        {"name": "r2", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 9},
        {"name": "f1", "type": "file", "maxSelect": 1}, {"name": "f2", "type": "file", "maxSelect": 3},
        {"name": "g", "type": "geoPoint"}
    ], "indexes": ["CREATE INDEX `idx_kinds_t` ON `kinds` (`t` COLLATE NOCASE, `n`)"]});
    let kinds: Collection = serde_json::from_value(doc).expect("doc");
    let kinds = basalt_schema::collection_validate::validate(
        kinds,
        None,
        &system,
        "2024-01-01 00:00:00.000Z",
    )
    .expect("valid");
    crate::collections::create_table(&conn, &kinds).expect("sqlite table");
    let mut all: Vec<Collection> = system.collections().iter().map(|c| (**c).clone()).collect();
    all.push(kinds);
    assert!(all.len() >= 6, "the system collections and `kinds`");

    let mut failures = vec![];
    for c in all.iter().filter(|c| !c.is_view()) {
        for stmt in crate::pg_schema::create_table(c).expect("ddl") {
            if let Err(e) = pg.client.batch_execute(&stmt).await {
                failures.push(format!("{stmt}: {e:?}"));
            }
        }
        let lite_cols: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{}') ORDER BY cid",
                c.name
            ))
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("columns");
        let pg_cols: Vec<String> = pg
            .client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                &[&c.name],
            )
            .await
            .expect("columns")
            .iter()
            .map(|r| r.get(0))
            .collect();
        if [lite_cols.clone(), vec!["_rowid".into()]].concat() != pg_cols {
            failures.push(format!("{}: columns {lite_cols:?} vs {pg_cols:?}", c.name));
        }
        let lite_indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                [&c.name],
                |r| r.get(0),
            )
            .expect("indexes");
        // Besides the primary key and `_rowid`'s unique index.
        let pg_indexes: i64 = pg
            .client
            .query_one(
                "SELECT COUNT(*) - 2 FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
                &[&c.name],
            )
            .await
            .expect("indexes")
            .get(0);
        if lite_indexes != pg_indexes {
            failures.push(format!(
                "{}: {lite_indexes} vs {pg_indexes} indexes",
                c.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Defaults: a row given only its id reads as SQLite's does.
    conn.execute("INSERT INTO kinds (id) VALUES ('k1')", [])
        .expect("sqlite row");
    pg.client
        .execute("INSERT INTO kinds (id) VALUES ('k1')", &[])
        .await
        .expect("pg row");
    let lite: String = conn
        .query_row(
            "SELECT json_array(t, ed, n, b, em, u, d, ad, s1, json(s2), j, r1, json(r2), f1, json(f2)) FROM kinds",
            [],
            |r| r.get(0),
        )
        .expect("sqlite defaults");
    let post: String = pg
        .client
        .query_one(
            "SELECT jsonb_build_array(t, ed, n, b::int, em, u, d, ad, s1, s2, j, r1, r2, f1, f2)::text FROM kinds",
            &[],
        )
        .await
        .expect("pg defaults")
        .get(0);
    let lite: serde_json::Value = serde_json::from_str(&lite).expect("json");
    let post: serde_json::Value = serde_json::from_str(&post).expect("json");
    assert_eq!(lite, post);

    // Emails are unique without case (ASCII), empty ones are not.
    let users = "INSERT INTO users (id, email, password, \"tokenKey\") VALUES ($1, $2, 'h', $1)";
    for (id, email) in [("u1", "Ann@x.io"), ("u2", ""), ("u3", "")] {
        pg.client
            .execute(users, &[&id, &email])
            .await
            .unwrap_or_else(|e| panic!("{email}: {e}"));
    }
    let dup = pg.client.execute(users, &[&"u4", &"ann@X.IO"]).await;
    assert!(
        dup.as_ref().err().and_then(|e| e.code())
            == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
        "{dup:?}"
    );
    pg.close().await;
}

proptest::proptest! {
    /// PostgreSQL's statements take user values as bound parameters only, as SQLite's do:
    /// the SQL text is the same as for a harmless value.
    #[test]
    fn any_user_value_is_a_bound_parameter_on_postgresql(v in "\\PC{0,40}") {
        let (_, schema) = setup();
        let c = schema.by_name("posts").expect("posts").clone();
        let mut req = auth_req();
        req.body.insert("title".into(), serde_json::Value::String(v.clone()));
        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
        let filter = format!(
            "title = \"{escaped}\" || title ~ \"{escaped}\" || meta.a = \"{escaped}\" || title = @request.body.title"
        );
        let sql = |f: &str| {
            compile_condition(Dialect::Postgres, &schema, &c, &parse(f).expect("parse"), &req, Author::Server)
                .expect("compiles")
                .pg_sql()
        };
        if parse(&filter).is_ok() {
            proptest::prop_assert_eq!(
                sql(&filter),
                sql("title = \"x\" || title ~ \"x\" || meta.a = \"x\" || title = @request.body.title")
            );
        }
    }
}
