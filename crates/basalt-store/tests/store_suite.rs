//! The store conformance suite: what every storage backend must do, written once against
//! the public `Store` API and instantiated per backend by `store_suite!` (quickwit's
//! metastore suite is the model). SQLite runs it today; the PostgreSQL engine (issue 18)
//! adds its line at the bottom, with `BASALT_TEST_PG_URL`, when `Store` can open it.
//!
//! Each case takes an open store with the default collections and nothing else.

use std::sync::Arc;

use basalt_schema::{Collection, RequestInfo};
use basalt_store::{
    Access, Author, ChangeAction, ListQuery, SortKey, Store, StoreConfig, StoreError, WriteOp,
};
use serde_json::{Map, Value, json};

/// An open store and whatever keeps it alive (a temporary directory, a database schema).
pub struct Opened {
    pub store: Store,
    _keep: Box<dyn std::any::Any + Send>,
}

pub async fn open_sqlite() -> Opened {
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
    Opened {
        store,
        _keep: Box::new(dir),
    }
}

/// The suite's cases, each for `$open`'s backend.
macro_rules! store_suite {
    ($backend:ident, $open:path) => {
        mod $backend {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn writes_then_lists_with_filter_sort_and_total() {
                crate::cases::writes_then_lists_with_filter_sort_and_total(&$open().await.store)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_failed_batch_stores_nothing() {
                crate::cases::a_failed_batch_stores_nothing(&$open().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn change_events_follow_commit_order() {
                crate::cases::change_events_follow_commit_order(&$open().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_schema_change_keeps_the_records() {
                crate::cases::a_schema_change_keeps_the_records(&$open().await.store).await;
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
}

store_suite!(sqlite, crate::open_sqlite);
