//! A damaged page is reported, not only answered 500: the error is `Corrupt`, the store's
//! health counts it, and `check_database` names the damage (issue 16).

use std::sync::Arc;

use basalt_schema::{Collection, RequestInfo};
use basalt_store::{Access, ListQuery, Store, StoreConfig, StoreError, WriteOp, check_database};
use serde_json::json;

fn cfg(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_path_buf(),
        readers: 2,
        writer_queue: 64,
        synchronous_full: false,
        change_log: Default::default(),
    }
}

fn list(c: &Arc<Collection>) -> ListQuery {
    ListQuery {
        collection: c.clone(),
        filter: None,
        access: Access::Unrestricted,
        sort: vec![],
        author: basalt_store::Author::Client,
        page: 1,
        per_page: 1000,
        skip_total: false,
        request: Arc::new(RequestInfo::default()),
    }
}

#[tokio::test]
async fn a_damaged_page_is_reported_and_check_names_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(cfg(dir.path())).await.expect("open");
    let c = store
        .create_collection(
            serde_json::from_value(
                json!({"name": "notes", "fields": [{"name": "title", "type": "text"}]}),
            )
            .expect("doc"),
        )
        .await
        .expect("create");
    for i in 0..20 {
        store
            .write(
                vec![WriteOp::Create {
                    uploads: Vec::new(),
                    collection: c.clone(),
                    input: json!({"title": format!("note {i}")})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    access: Access::Unrestricted,
                }],
                Arc::new(RequestInfo::default()),
            )
            .await
            .expect("write");
    }
    store.close().await;
    let sound = check_database(dir.path(), false).expect("check");
    assert!(sound.ok(), "{:?}", sound.problems);

    basalt_testkit::damage::damage_root_page(&dir.path().join("data.db"), "notes");

    let store = Store::open(cfg(dir.path())).await.expect("reopen");
    assert!(store.health().is_healthy());
    let c = store.schema().by_name("notes").cloned().expect("notes");
    let res = store.list_records(list(&c)).await;
    assert!(matches!(res, Err(StoreError::Corrupt(_))), "{res:?}");
    let h = store.health();
    assert_eq!(h.corruption_errors, 1);
    assert!(!h.is_healthy());
    store.close().await;

    for full in [false, true] {
        let report = check_database(dir.path(), full).expect("check");
        assert!(!report.ok(), "full={full}: the damage was not found");
        assert!(
            report.problems.iter().any(|p| p.contains("page")),
            "full={full}: no page named in {:?}",
            report.problems
        );
    }
}

#[test]
fn checking_a_missing_database_is_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    assert!(check_database(dir.path(), false).is_err());
}

#[test]
fn a_file_that_is_not_a_database_is_reported_damaged() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("data.db"), vec![0x5A; 8192]).expect("write");
    let report = check_database(dir.path(), false).expect("check");
    assert!(!report.ok());
}
