//! The store conformance suite: what every storage backend must do, written once against
//! the public `Store` API and instantiated per backend by `store_suite!` (quickwit's
//! metastore suite is the model): SQLite, and PostgreSQL from `BASALT_TEST_PG_URL`
//! (`scripts/pg.sh`), each case in a schema of its own (`basalt_testkit::pg`: without
//! that URL the PostgreSQL cases say so and pass locally; under `CI=true` they fail).
//!
//! Each case takes an open store with the default collections and nothing else.

use std::sync::Arc;

use basalt_schema::{Collection, RequestInfo};
use basalt_store::{
    Access, Author, ChangeAction, ListQuery, PgConfig, SortKey, Store, StoreConfig, StoreError,
    WriteOp,
};
use basalt_testkit::pg::PgSchema;
use serde_json::{Map, Value, json};

/// An open store and whatever keeps it alive (a temporary directory, a database schema).
pub struct Opened {
    pub store: Store,
    _keep: Box<dyn std::any::Any + Send>,
}

pub async fn open_sqlite() -> Option<Opened> {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(StoreConfig {
        data_dir: dir.path().to_path_buf(),
        readers: 2,
        writer_queue: 64,
        synchronous_full: false,
        change_log: Default::default(),
    })
    .await
    .expect("open");
    Some(Opened {
        store,
        _keep: Box::new(dir),
    })
}

pub fn pg_config(url: String) -> PgConfig {
    PgConfig {
        url,
        max_connections: 4,
        change_log: Default::default(),
    }
}

pub async fn open_postgres() -> Option<Opened> {
    let schema = PgSchema::create("suite").await?;
    let store = Store::open_postgres(pg_config(schema.url()))
        .await
        .expect("open");
    Some(Opened {
        store,
        _keep: Box::new(schema),
    })
}

/// The suite's cases, each for `$open`'s backend.
macro_rules! store_suite {
    ($backend:ident, $open:path) => {
        mod $backend {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn writes_then_lists_with_filter_sort_and_total() {
                let Some(o) = $open().await else { return };
                crate::cases::writes_then_lists_with_filter_sort_and_total(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_failed_batch_stores_nothing() {
                let Some(o) = $open().await else { return };
                crate::cases::a_failed_batch_stores_nothing(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn change_events_follow_commit_order() {
                let Some(o) = $open().await else { return };
                crate::cases::change_events_follow_commit_order(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_schema_change_keeps_the_records() {
                let Some(o) = $open().await else { return };
                crate::cases::a_schema_change_keeps_the_records(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn relations_are_checked_and_deletes_cascade() {
                let Some(o) = $open().await else { return };
                crate::cases::relations_are_checked_and_deletes_cascade(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_duplicate_is_validation_not_unique() {
                let Some(o) = $open().await else { return };
                crate::cases::a_duplicate_is_validation_not_unique(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_create_rule_is_checked_on_the_new_row() {
                let Some(o) = $open().await else { return };
                crate::cases::the_create_rule_is_checked_on_the_new_row(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn point_reads_and_params_read_what_was_stored() {
                let Some(o) = $open().await else { return };
                crate::cases::point_reads_and_params_read_what_was_stored(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_field_changing_storage_keeps_its_values() {
                let Some(o) = $open().await else { return };
                crate::cases::a_field_changing_storage_keeps_its_values(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn auth_emails_are_unique_without_case() {
                let Some(o) = $open().await else { return };
                crate::cases::auth_emails_are_unique_without_case(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn truncate_and_import_change_what_they_name() {
                let Some(o) = $open().await else { return };
                crate::cases::truncate_and_import_change_what_they_name(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn snapshot_checks_judge_the_record_given() {
                let Some(o) = $open().await else { return };
                crate::cases::snapshot_checks_judge_the_record_given(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_writes_all_land() {
                let Some(o) = $open().await else { return };
                crate::cases::concurrent_writes_all_land(&o.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rows_read_in_place_are_the_listed_records() {
                let Some(o) = $open().await else { return };
                crate::cases::rows_read_in_place_are_the_listed_records(&o.store).await;
            }
        }
    };
}

mod cases {
    use super::*;

    fn req() -> Arc<RequestInfo> {
        Arc::new(RequestInfo::default())
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    async fn posts(store: &Store) -> Arc<Collection> {
        let c: Collection = serde_json::from_value(json!({
            "name": "posts", "type": "base",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "views", "type": "number"},
                {"name": "tags", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3}
            ],
            "indexes": ["CREATE UNIQUE INDEX `idx_posts_title` ON `posts` (`title`)"]
        }))
        .expect("document");
        store.create_collection(c).await.expect("create collection")
    }

    fn create(c: &Arc<Collection>, input: Value) -> WriteOp {
        WriteOp::Create {
            collection: c.clone(),
            input: obj(input),
            access: Access::Unrestricted,
            uploads: vec![],
        }
    }

    /// `list_rows` hands each row of the page `list_records` answers: its decoded record,
    /// and each field's JSON as the decoded value serialises, in the same order, with the
    /// same total.
    pub async fn rows_read_in_place_are_the_listed_records(store: &Store) {
        let c = posts(store).await;
        let ops = (0..5)
            .map(|i| {
                create(
                    &c,
                    json!({"title": format!("t{i}"), "views": i * 10, "tags": ["c", "a"]}),
                )
            })
            .chain([create(&c, json!({"title": "quote \" é"}))])
            .collect();
        store.write(ops, req()).await.expect("write");
        let query = || ListQuery {
            collection: c.clone(),
            filter: Some(basalt_schema::filter::parse("views < 40").expect("filter")),
            access: Access::Unrestricted,
            sort: vec![SortKey {
                path: "views".into(),
                descending: true,
            }],
            author: Author::Client,
            page: 1,
            per_page: 3,
            skip_total: false,
            request: req(),
        };
        let records = store.list_records(query()).await.expect("records");
        let fields = c.fields.len();
        let rows = store
            .list_rows(query(), Vec::new(), move |out, row| {
                let json: Vec<Value> = (0..fields)
                    .map(|i| serde_json::to_value(row.json(i)).expect("json"))
                    .collect();
                out.push((row.record()?, json));
                Ok(())
            })
            .await
            .expect("rows");
        assert_eq!(rows.total_items, records.total_items);
        assert_eq!(rows.rows.len(), 3);
        for ((record, json), listed) in rows.rows.iter().zip(&records.items) {
            assert_eq!(record, listed);
            let want: Vec<Value> = c.fields.iter().map(|f| listed[&f.name].clone()).collect();
            assert_eq!(json, &want);
        }
    }

    async fn list(
        store: &Store,
        c: &Arc<Collection>,
        filter: &str,
        sort: &str,
    ) -> (Vec<Value>, u64) {
        let page = store
            .list_records(ListQuery {
                collection: c.clone(),
                filter: (!filter.is_empty())
                    .then(|| basalt_schema::filter::parse(filter).expect("filter")),
                access: Access::Unrestricted,
                sort: sort
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| SortKey {
                        path: s.trim_start_matches('-').into(),
                        descending: s.starts_with('-'),
                    })
                    .collect(),
                author: Author::Client,
                page: 1,
                per_page: 100,
                skip_total: false,
                request: req(),
            })
            .await
            .expect("list");
        let titles = page
            .items
            .iter()
            .map(|r| r.get("title").cloned().unwrap_or(Value::Null))
            .collect();
        (titles, page.total_items.unwrap_or_default())
    }

    /// The first page of `c`'s records, without a total.
    async fn rows(store: &Store, c: &Arc<Collection>) -> Vec<basalt_store::Record> {
        let page = store
            .list_records(ListQuery {
                collection: c.clone(),
                filter: None,
                access: Access::Unrestricted,
                sort: vec![],
                author: Author::Server,
                page: 1,
                per_page: 10,
                skip_total: true,
                request: req(),
            })
            .await
            .expect("list");
        assert_eq!(page.total_items, None);
        page.items
    }

    pub async fn writes_then_lists_with_filter_sort_and_total(store: &Store) {
        let c = posts(store).await;
        for (title, views, tags) in [
            ("one", 1, json!(["a"])),
            ("two", 20, json!(["a", "b"])),
            ("three", 3, json!([])),
        ] {
            store
                .write(
                    vec![create(
                        &c,
                        json!({"title": title, "views": views, "tags": tags}),
                    )],
                    req(),
                )
                .await
                .expect("create");
        }
        assert_eq!(
            list(store, &c, "", "").await,
            (vec![json!("one"), json!("two"), json!("three")], 3)
        );
        assert_eq!(
            list(store, &c, "views > 2", "-views").await,
            (vec![json!("two"), json!("three")], 2)
        );
        assert_eq!(
            list(store, &c, "tags:each ?= 'a' && title ~ 'O'", "title").await,
            (vec![json!("one"), json!("two")], 2)
        );
        assert_eq!(
            list(store, &c, "views = '20'", "").await,
            (vec![json!("two")], 1)
        );
    }

    pub async fn a_failed_batch_stores_nothing(store: &Store) {
        let c = posts(store).await;
        let batch = vec![
            create(&c, json!({"title": "same"})),
            create(&c, json!({"title": "same"})),
        ];
        match store.write(batch, req()).await {
            Err(StoreError::Batch { index: 1, .. }) => {}
            other => panic!("the second create breaks the unique index: {other:?}"),
        }
        assert_eq!(list(store, &c, "", "").await, (vec![], 0));
    }

    pub async fn change_events_follow_commit_order(store: &Store) {
        let c = posts(store).await;
        let mut events = store.subscribe_changes();
        let created = store
            .write(vec![create(&c, json!({"title": "a"}))], req())
            .await
            .expect("create")
            .pop()
            .flatten()
            .expect("record");
        let id = created
            .get("id")
            .and_then(Value::as_str)
            .expect("id")
            .to_string();
        store
            .write(
                vec![
                    WriteOp::Update {
                        collection: c.clone(),
                        id: id.clone(),
                        input: obj(json!({"title": "b"})),
                        access: Access::Unrestricted,
                        uploads: vec![],
                    },
                    WriteOp::Delete {
                        collection: c.clone(),
                        id: id.clone(),
                        access: Access::Unrestricted,
                    },
                ],
                req(),
            )
            .await
            .expect("update and delete");
        let mut seen = vec![];
        for _ in 0..3 {
            let e = tokio::time::timeout(std::time::Duration::from_secs(10), events.recv())
                .await
                .expect("an event in time")
                .expect("event");
            seen.push((e.seq, e.action, e.record.get("title").cloned()));
        }
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        let actions: Vec<ChangeAction> = seen.iter().map(|s| s.1).collect();
        assert_eq!(
            actions,
            [
                ChangeAction::Create,
                ChangeAction::Update,
                ChangeAction::Delete
            ]
        );
        assert_eq!(seen[1].2, Some(json!("b")));
    }

    pub async fn a_schema_change_keeps_the_records(store: &Store) {
        let c = posts(store).await;
        store
            .write(
                vec![create(&c, json!({"title": "kept", "views": 7}))],
                req(),
            )
            .await
            .expect("create");
        let mut changed = (*c).clone();
        let extra =
            serde_json::from_value(json!({"name": "summary", "type": "text"})).expect("field");
        changed.fields.push(extra);
        let c = store
            .update_collection(&c.id, changed)
            .await
            .expect("add a field");
        assert_eq!(
            list(store, &c, "views = 7 && summary = ''", "").await,
            (vec![json!("kept")], 1)
        );
    }

    async fn collection(store: &Store, doc: Value) -> Arc<Collection> {
        let c: Collection = serde_json::from_value(doc).expect("document");
        store.create_collection(c).await.expect("create collection")
    }

    async fn create_one(store: &Store, c: &Arc<Collection>, input: Value) -> String {
        let r = store
            .write(vec![create(c, input)], req())
            .await
            .expect("create")
            .pop()
            .flatten()
            .expect("record");
        r["id"].as_str().expect("id").to_string()
    }

    fn field_code(e: &StoreError, field: &str) -> Option<String> {
        let StoreError::Validation(errs) = e else {
            return None;
        };
        match errs.errors.get(field)? {
            basalt_schema::error::ValidationError::Leaf(f) => Some(f.code.clone()),
            _ => None,
        }
    }

    pub async fn relations_are_checked_and_deletes_cascade(store: &Store) {
        let authors = collection(
            store,
            json!({"name": "authors", "type": "base", "fields": [{"name": "name", "type": "text"}]}),
        )
        .await;
        let books = collection(
            store,
            json!({"name": "books", "type": "base", "fields": [
                {"name": "title", "type": "text"},
                {"name": "author", "type": "relation", "collectionId": authors.id,
                 "maxSelect": 1, "cascadeDelete": true},
                {"name": "editors", "type": "relation", "collectionId": authors.id,
                 "maxSelect": 5}
            ]}),
        )
        .await;
        let ann = create_one(store, &authors, json!({"name": "ann"})).await;
        let bob = create_one(store, &authors, json!({"name": "bob"})).await;
        let missing = store
            .write(
                vec![create(
                    &books,
                    json!({"title": "x", "author": "nosuchrecord00"}),
                )],
                req(),
            )
            .await
            .expect_err("a missing relation target");
        assert_eq!(
            field_code(&missing, "author").as_deref(),
            Some("validation_missing_rel_records"),
            "{missing:?}"
        );
        create_one(
            store,
            &books,
            json!({"title": "by ann", "author": ann, "editors": [bob]}),
        )
        .await;
        create_one(
            store,
            &books,
            json!({"title": "by bob", "author": bob, "editors": [ann, bob]}),
        )
        .await;
        store
            .write(
                vec![WriteOp::Delete {
                    collection: authors.clone(),
                    id: ann.clone(),
                    access: Access::Unrestricted,
                }],
                req(),
            )
            .await
            .expect("delete ann");
        // Ann's book went with her; she left the other book's editors.
        assert_eq!(
            list(store, &books, "", "").await,
            (vec![json!("by bob")], 1)
        );
        let left = store
            .get_records(&books, vec![], Access::Unrestricted, req())
            .await
            .expect("none asked");
        assert!(left.is_empty());
        assert_eq!(rows(store, &books).await[0]["editors"], json!([bob]));
    }

    pub async fn a_duplicate_is_validation_not_unique(store: &Store) {
        let c = posts(store).await;
        create_one(store, &c, json!({"title": "same"})).await;
        let e = store
            .write(vec![create(&c, json!({"title": "same"}))], req())
            .await
            .expect_err("a duplicate title");
        assert_eq!(
            field_code(&e, "title").as_deref(),
            Some("validation_not_unique"),
            "{e:?}"
        );
        assert_eq!(list(store, &c, "", "").await.1, 1);
    }

    pub async fn the_create_rule_is_checked_on_the_new_row(store: &Store) {
        let c = posts(store).await;
        let rule = Arc::new(basalt_schema::filter::parse("views > 5").expect("rule"));
        let refused = store
            .write(
                vec![WriteOp::Create {
                    collection: c.clone(),
                    input: obj(json!({"title": "low", "views": 1})),
                    access: Access::Rule(rule.clone()),
                    uploads: vec![],
                }],
                req(),
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::RuleFailed)),
            "{refused:?}"
        );
        store
            .write(
                vec![WriteOp::Create {
                    collection: c.clone(),
                    input: obj(json!({"title": "high", "views": 9})),
                    access: Access::Rule(rule),
                    uploads: vec![],
                }],
                req(),
            )
            .await
            .expect("the rule holds");
        assert_eq!(list(store, &c, "", "").await, (vec![json!("high")], 1));
    }

    pub async fn point_reads_and_params_read_what_was_stored(store: &Store) {
        let c = posts(store).await;
        let id = create_one(
            store,
            &c,
            json!({"title": "t", "views": 2.5, "tags": ["b", "a"]}),
        )
        .await;
        let got = store
            .get_record(&c, &id, Access::Unrestricted, req())
            .await
            .expect("get")
            .expect("found");
        assert_eq!(
            (&got["title"], &got["views"], &got["tags"]),
            (&json!("t"), &json!(2.5), &json!(["b", "a"]))
        );
        let written = store
            .view_row(&c, &id, |row| {
                (0..4)
                    .map(|i| serde_json::to_string(&row.json(i)).expect("json"))
                    .collect::<Vec<_>>()
            })
            .await
            .expect("view")
            .expect("found");
        let decoded: Vec<String> = c.fields[..4]
            .iter()
            .map(|f| got[&f.name].to_string())
            .collect();
        assert_eq!(written, decoded);
        assert!(
            store
                .view_row(&c, "nosuchrecord00", |_| ())
                .await
                .expect("view")
                .is_none()
        );
        assert_eq!(store.get_param("k").await.expect("get"), None);
        store
            .set_param("k", json!({"a": [1, "x"]}))
            .await
            .expect("set");
        store.set_param("k", json!({"a": [2]})).await.expect("set");
        assert_eq!(
            store.get_param("k").await.expect("get"),
            Some(json!({"a": [2]}))
        );
        // The first value stored wins; later callers read it.
        for v in ["first", "second"] {
            assert_eq!(
                store.param_or_insert("once", json!(v)).await.expect("init"),
                json!("first")
            );
        }
    }

    pub async fn a_field_changing_storage_keeps_its_values(store: &Store) {
        let c = posts(store).await;
        create_one(
            store,
            &c,
            json!({"title": "x", "views": 20, "tags": ["a", "b"]}),
        )
        .await;
        let retyped = |c: &Collection, views: Value, max_select: i64| {
            let mut doc = serde_json::to_value(c).expect("doc");
            for f in doc["fields"].as_array_mut().expect("fields") {
                match f["name"].as_str() {
                    Some("views") => {
                        let id = f["id"].clone();
                        *f = views.clone();
                        f["id"] = id;
                    }
                    Some("tags") => f["maxSelect"] = json!(max_select),
                    _ => {}
                }
            }
            serde_json::from_value::<Collection>(doc).expect("collection")
        };
        // A number becomes its text, an array its last item.
        let c = store
            .update_collection(
                &c.id,
                retyped(&c, json!({"name": "views", "type": "text"}), 1),
            )
            .await
            .expect("to single values");
        let page = store
            .get_records(&c, vec![], Access::Unrestricted, req())
            .await
            .expect("none");
        assert!(page.is_empty());
        let r = rows(store, &c).await.remove(0);
        assert_eq!((&r["views"], &r["tags"]), (&json!("20"), &json!("b")));
        // And back: text that reads as a number becomes it, a value a one-item array.
        let c = store
            .update_collection(
                &c.id,
                retyped(&c, json!({"name": "views", "type": "number"}), 2),
            )
            .await
            .expect("to multiple values");
        let r = rows(store, &c).await.remove(0);
        assert_eq!((&r["views"], &r["tags"]), (&json!(20), &json!(["b"])));
    }

    pub async fn auth_emails_are_unique_without_case(store: &Store) {
        let users = store.schema().by_name("users").cloned().expect("users");
        let user = |email: &str| {
            create(
                &users,
                json!({"email": email, "password": "$2a$10$0123456789012345678901234567890123456789012345678901"}),
            )
        };
        store
            .write(vec![user("Ann@Example.com")], req())
            .await
            .expect("first");
        let e = store
            .write(vec![user("ann@EXAMPLE.com")], req())
            .await
            .expect_err("the same email in another case");
        assert_eq!(
            field_code(&e, "email").as_deref(),
            Some("validation_not_unique"),
            "{e:?}"
        );
        let found = store
            .find_auth_record(&users, "email", "ANN@example.COM")
            .await
            .expect("find")
            .expect("found");
        assert_eq!(found["email"], json!("Ann@Example.com"));
        assert!(
            store
                .find_auth_record(&users, "email", "bob@example.com")
                .await
                .expect("find")
                .is_none()
        );
    }

    pub async fn truncate_and_import_change_what_they_name(store: &Store) {
        let c = posts(store).await;
        create_one(store, &c, json!({"title": "a"})).await;
        create_one(store, &c, json!({"title": "b"})).await;
        store.truncate_collection("posts").await.expect("truncate");
        assert_eq!(list(store, &c, "", "").await, (vec![], 0));
        let notes: Collection = serde_json::from_value(json!({
            "name": "notes", "type": "base", "fields": [{"name": "body", "type": "text"}]
        }))
        .expect("document");
        let bad: Collection = serde_json::from_value(json!({
            "name": "bad name!", "type": "base", "fields": []
        }))
        .expect("document");
        let refused = store
            .import_collections(vec![notes.clone(), bad], true)
            .await
            .expect_err("an invalid name");
        assert!(matches!(refused, StoreError::Validation(_)), "{refused:?}");
        assert!(store.schema().by_name("notes").is_none());
        assert!(store.schema().by_name("posts").is_some());
        store
            .import_collections(vec![notes], true)
            .await
            .expect("import");
        let schema = store.schema();
        assert!(schema.by_name("posts").is_none());
        let notes = schema.by_name("notes").cloned().expect("notes");
        create_one(store, &notes, json!({"body": "hi"})).await;
        // System collections stay; the rest not listed went.
        assert!(schema.by_name("_superusers").is_some());
        assert!(schema.by_name("users").is_none());
    }

    pub async fn snapshot_checks_judge_the_record_given(store: &Store) {
        let c = posts(store).await;
        let check = |rule: &str, filter: Option<&str>| basalt_store::SnapshotCheck {
            rule: Some(Arc::new(basalt_schema::filter::parse(rule).expect("rule"))),
            filter: filter.map(|f| Arc::new(basalt_schema::filter::parse(f).expect("filter"))),
            request: req(),
        };
        let record = Arc::new(obj(json!({
            "id": "r00000000000001", "title": "Hello", "views": 7, "tags": ["a", "c"]
        })));
        let verdicts = store
            .record_matches(
                c,
                record,
                vec![
                    check("views > 5", None),
                    check("views > 5", Some("title ~ 'hell'")),
                    check("tags:each ?= 'c'", Some("views = 8")),
                    check("nosuchfield = 1", None),
                ],
            )
            .await
            .expect("checks");
        let got: Vec<Option<bool>> = verdicts.into_iter().map(Result::ok).collect();
        assert_eq!(got, [Some(true), Some(true), Some(false), None]);
    }

    pub async fn concurrent_writes_all_land(store: &Store) {
        let c = posts(store).await;
        let shared = create_one(store, &c, json!({"title": "shared"})).await;
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let (store, c, shared) = (store.clone(), c.clone(), shared.clone());
                tokio::spawn(async move {
                    create_one(&store, &c, json!({"title": format!("t{i}"), "views": i})).await;
                    store
                        .write(
                            vec![WriteOp::Update {
                                collection: c.clone(),
                                id: shared,
                                input: obj(json!({"views": i})),
                                access: Access::Unrestricted,
                                uploads: vec![],
                            }],
                            req(),
                        )
                        .await
                        .expect("update the shared record");
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(list(store, &c, "title ~ 't%'", "").await.1, 12);
        let (views, total) = list(
            store,
            &c,
            "title = 'shared' && views >= 0 && views < 12",
            "",
        )
        .await;
        assert_eq!((views, total), (vec![json!("shared")], 1));
    }
}

store_suite!(sqlite, crate::open_sqlite);
store_suite!(postgres, crate::open_postgres);

/// PostgreSQL only: a database set up before is recognised, not set up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reopens_an_existing_database() {
    let Some(schema) = PgSchema::create("suite").await else {
        return;
    };
    let first = Store::open_postgres(pg_config(schema.url()))
        .await
        .expect("open");
    let made: Collection = serde_json::from_value(
        json!({"name": "kept", "type": "base", "fields": [{"name": "a", "type": "text"}]}),
    )
    .expect("document");
    first.create_collection(made).await.expect("create");
    first.close().await;
    let again = Store::open_postgres(pg_config(schema.url()))
        .await
        .expect("reopen");
    let names: Vec<String> = again
        .schema()
        .collections()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "users").count(),
        1,
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "kept"), "{names:?}");
    again.close().await;
}

/// PostgreSQL only: a URL asking for TLS is refused, never silently sent in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_tls_url_it_cannot_honour() {
    let Some(url) = basalt_testkit::pg::url() else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let refused = Store::open_postgres(pg_config(format!("{url}{sep}sslmode=require"))).await;
    match refused {
        Err(StoreError::Internal(why)) => assert!(why.contains("sslmode=require"), "{why}"),
        Err(other) => panic!("unexpected error: {other:?}"),
        Ok(_) => panic!("a TLS URL was accepted"),
    }
}
