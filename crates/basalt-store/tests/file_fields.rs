//! File fields in the store: their columns, records without files, the `avatar` field of
//! the default `users` collection and system migration 5 that adds it to older data dirs.

use std::sync::Arc;

use basalt_schema::{Collection, FieldKind, RequestInfo};
use basalt_store::{Access, Store, StoreConfig, WriteOp};
use serde_json::{Map, Value, json};

fn cfg(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_path_buf(),
        readers: 2,
        writer_queue: 64,
        synchronous_full: false,
        change_log: Default::default(),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn records_with_file_fields_round_trip_without_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(cfg(dir.path())).await.expect("open");
    let c = store
        .create_collection(
            serde_json::from_value(json!({"name": "docs", "fields": [
                {"name": "title", "type": "text"},
                {"name": "one", "type": "file"},
                {"name": "many", "type": "file", "maxSelect": 3, "thumbs": ["10x10"]}]}))
            .expect("doc"),
        )
        .await
        .expect("create collection");
    let req = Arc::new(RequestInfo::default());
    let write = |input: Value| {
        let (store, c, req) = (&store, c.clone(), req.clone());
        async move {
            store
                .write(
                    vec![WriteOp::Create {
                        uploads: Vec::new(),
                        collection: c,
                        input: obj(input),
                        access: Access::Unrestricted,
                    }],
                    req,
                )
                .await
        }
    };
    let created = write(json!({"title": "t"}))
        .await
        .expect("create")
        .pop()
        .flatten()
        .expect("record");
    assert_eq!(created["one"], json!(""));
    assert_eq!(created["many"], json!([]));
    let id = created["id"].as_str().expect("id").to_string();
    let viewed = store
        .get_record(&c, &id, Access::Unrestricted, req.clone())
        .await
        .expect("view")
        .expect("found");
    assert_eq!(viewed["one"], json!(""));
    assert_eq!(viewed["many"], json!([]));
    // A body cannot name files the record does not hold.
    let err = write(json!({"one": "x.txt"}))
        .await
        .expect_err("invalid file");
    assert!(
        format!("{err:?}").contains("validation_invalid_file"),
        "{err:?}"
    );
    store.close().await;

    // The columns: TEXT for a single file, a JSON array for several.
    let conn = rusqlite::Connection::open(dir.path().join("data.db")).expect("db");
    let (one, many): (String, String) = conn
        .query_row("SELECT one, many FROM docs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("row");
    assert_eq!((one.as_str(), many.as_str()), ("", "[]"));
}

fn avatar_of(c: &Collection) -> Option<&basalt_schema::Field> {
    c.fields.iter().find(|f| f.name == "avatar")
}

#[tokio::test]
async fn fresh_users_collection_has_pocketbase_avatar() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(cfg(dir.path())).await.expect("open");
    let users = store.schema().by_name("users").cloned().expect("users");
    let avatar = avatar_of(&users).expect("avatar");
    // As a fresh PocketBase 0.40 exports it.
    assert_eq!(
        serde_json::to_value(avatar).expect("json"),
        json!({"id": "file376926767", "name": "avatar", "system": false, "hidden": false,
               "presentable": false, "help": "", "type": "file", "required": false,
               "maxSelect": 1, "maxSize": 0,
               "mimeTypes": ["image/jpeg", "image/png", "image/svg+xml", "image/gif", "image/webp"],
               "thumbs": [], "protected": false})
    );
    let names: Vec<&str> = users.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "password",
            "tokenKey",
            "email",
            "emailVisibility",
            "verified",
            "name",
            "avatar",
            "created",
            "updated"
        ]
    );
    store.close().await;
}

/// Turns a data dir back into one made before migration 5, with `users` rewritten by `edit`.
fn before_migration_5(dir: &std::path::Path, edit: impl Fn(&mut Value)) {
    let conn = rusqlite::Connection::open(dir.join("data.db")).expect("db");
    let doc: String = conn
        .query_row(
            "SELECT doc FROM _collections WHERE id = '_pb_users_auth_'",
            [],
            |r| r.get(0),
        )
        .expect("users doc");
    let mut doc: Value = serde_json::from_str(&doc).expect("json");
    if let Some(fields) = doc["fields"].as_array_mut() {
        fields.retain(|f| f["name"] != "avatar");
    }
    edit(&mut doc);
    conn.execute_batch(
        "ALTER TABLE users DROP COLUMN avatar; DELETE FROM _migrations WHERE version >= 5",
    )
    .expect("drop avatar");
    conn.execute(
        "UPDATE _collections SET doc = ? WHERE id = '_pb_users_auth_'",
        [doc.to_string()],
    )
    .expect("save doc");
}

#[tokio::test]
async fn migration_5_adds_avatar_to_older_users_collections() {
    let dir = tempfile::tempdir().expect("tmp");
    Store::open(cfg(dir.path()))
        .await
        .expect("open")
        .close()
        .await;
    before_migration_5(dir.path(), |_| {});
    let store = Store::open(cfg(dir.path())).await.expect("migrate");
    let users = store.schema().by_name("users").cloned().expect("users");
    assert!(
        matches!(avatar_of(&users).map(|f| &f.kind), Some(FieldKind::File(o)) if o.max_select == 1)
    );
    let pos = users.fields.iter().position(|f| f.name == "avatar");
    assert_eq!(
        pos,
        users
            .fields
            .iter()
            .position(|f| f.name == "name")
            .map(|i| i + 1)
    );
    store.close().await;
    let conn = rusqlite::Connection::open(dir.path().join("data.db")).expect("db");
    let cols: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('users') WHERE name = 'avatar'",
            [],
            |r| r.get(0),
        )
        .expect("columns");
    assert_eq!(cols, 1);
}

#[tokio::test]
async fn migration_5_leaves_a_users_own_avatar_field_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    Store::open(cfg(dir.path()))
        .await
        .expect("open")
        .close()
        .await;
    before_migration_5(dir.path(), |doc| {
        if let Some(fields) = doc["fields"].as_array_mut() {
            fields.push(json!({"id": "text1", "name": "Avatar", "type": "text"}));
        }
    });
    let conn = rusqlite::Connection::open(dir.path().join("data.db")).expect("db");
    conn.execute_batch("ALTER TABLE users ADD COLUMN Avatar TEXT NOT NULL DEFAULT ''")
        .expect("own column");
    drop(conn);
    let store = Store::open(cfg(dir.path())).await.expect("migrate");
    let users = store.schema().by_name("users").cloned().expect("users");
    let own: Vec<_> = users
        .fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("avatar"))
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].type_name(), "text");
    store.close().await;
}
