//! File fields over HTTP before uploads are wired: collections with file fields are
//! created, validated, exported and imported with PocketBase's shape and answers; records
//! with them list, view and create without files; a JSON body naming a file is refused
//! as PocketBase refuses it; the default `users` collection has PocketBase's `avatar`.

use basalt_testkit::TestServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

fn field<'a>(collection: &'a Value, name: &str) -> &'a Value {
    collection["fields"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn file_fields_over_http() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;

    // Bad options: PocketBase 0.40's codes, keyed by the field's index.
    let (st, e) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(
                json!({"name": "bad", "fields": [{"name": "doc", "type": "file",
                "maxSelect": -1, "thumbs": ["100x100", "abc", "0x0"]}]}),
            ),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    let doc = &e["data"]["fields"]["1"];
    assert_eq!(
        doc["maxSelect"]["code"],
        "validation_min_greater_equal_than_required"
    );
    assert_eq!(doc["thumbs"]["1"]["code"], "validation_match_invalid");
    assert_eq!(doc["thumbs"]["1"]["message"], "Must be in a valid format.");
    assert_eq!(doc["thumbs"]["2"]["code"], "validation_not_in_invalid");
    assert!(doc["thumbs"].get("0").is_none(), "{e}");

    let (st, docs) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "docs", "listRule": "", "viewRule": "", "createRule": "",
                "updateRule": "", "fields": [
                {"name": "title", "type": "text"},
                {"name": "one", "type": "file", "maxSize": 10, "mimeTypes": ["text/plain"]},
                {"name": "many", "type": "file", "maxSelect": 2, "thumbs": ["10x10t"], "protected": true}]})),
        )
        .await;
    assert_eq!(st, 200, "{docs}");
    assert_eq!(
        field(&docs, "many"),
        &json!({"id": "file1941626468", "name": "many", "type": "file", "system": false,
                "hidden": false, "presentable": false, "help": "", "required": false,
                "maxSelect": 2, "maxSize": 0, "mimeTypes": [], "thumbs": ["10x10t"],
                "protected": true})
    );

    // Records without files.
    let (st, r) = s
        .call(
            "POST",
            "/api/collections/docs/records",
            None,
            Some(json!({"title": "t", "one": ""})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!((&r["one"], &r["many"]), (&json!(""), &json!([])));
    let id = r["id"].as_str().expect("id").to_string();
    let (st, v) = s
        .call(
            "GET",
            &format!("/api/collections/docs/records/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((&v["one"], &v["many"]), (&json!(""), &json!([])));
    let (st, list) = s
        .call("GET", "/api/collections/docs/records", None, None)
        .await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["items"][0]["many"], json!([]));
    // Filters and sorts read file fields as they read other single and multiple fields.
    for (filter, hits) in [
        ("one = ''", 1),
        ("one != ''", 0),
        ("many:length = 0", 1),
        ("many ?= 'x.txt'", 0),
        ("many:each != 'x.txt'", 1),
    ] {
        let path = format!(
            "/api/collections/docs/records?sort=-one,many&filter={}",
            filter
                .replace(' ', "%20")
                .replace('?', "%3F")
                .replace('\'', "%27")
                .replace('=', "%3D")
                .replace('!', "%21")
                .replace(':', "%3A")
        );
        let (st, list) = s.call("GET", &path, None, None).await;
        assert_eq!(st, 200, "{filter}: {list}");
        assert_eq!(list["totalItems"], hits, "{filter}: {list}");
    }

    // A JSON body naming files: PocketBase answers exactly this.
    let (st, e) = s
        .call(
            "POST",
            "/api/collections/docs/records",
            None,
            Some(json!({"one": "x.txt", "many": ["a.txt"]})),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        e["data"]["one"],
        json!({"code": "validation_invalid_file", "message": "Invalid new files: [x.txt].",
               "params": {"invalidFiles": ["x.txt"]}})
    );
    assert_eq!(e["data"]["many"]["code"], "validation_invalid_file");
    let (st, e) = s
        .call(
            "PATCH",
            &format!("/api/collections/docs/records/{id}"),
            None,
            Some(json!({"many+": "evil.txt"})),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        e["data"]["many"]["message"],
        "Invalid new files: [evil.txt]."
    );

    // The default users collection carries PocketBase's avatar, and users records show it.
    let (st, users) = s
        .call("GET", "/api/collections/users", Some(&su), None)
        .await;
    assert_eq!(st, 200, "{users}");
    assert_eq!(field(&users, "avatar")["type"], "file");
    assert_eq!(field(&users, "avatar")["maxSelect"], 1);
    let (st, u) = s
        .call(
            "POST",
            "/api/collections/users/records",
            None,
            Some(
                json!({"email": "ann@example.com", "password": "passpass123",
                        "passwordConfirm": "passpass123"}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["avatar"], "");

    // Export, then import the same collections: file fields survive the round trip.
    let (st, all) = s
        .call("GET", "/api/collections?perPage=500", Some(&su), None)
        .await;
    assert_eq!(st, 200, "{all}");
    let mut exported: Vec<Value> = all["items"].as_array().cloned().unwrap_or_default();
    for c in &mut exported {
        if c["name"] == "docs"
            && let Some(fields) = c["fields"].as_array_mut()
        {
            fields.push(json!({"name": "extra", "type": "file", "maxSelect": 3}));
        }
    }
    let (st, e) = s
        .call(
            "PUT",
            "/api/collections/import",
            Some(&su),
            Some(json!({"collections": exported, "deleteMissing": false})),
        )
        .await;
    assert_eq!(st, 204, "{e}");
    let (_, docs) = s
        .call("GET", "/api/collections/docs", Some(&su), None)
        .await;
    assert_eq!(field(&docs, "extra")["maxSelect"], 3);
    assert_eq!(field(&docs, "many")["protected"], true);
    let (st, v) = s
        .call(
            "GET",
            &format!("/api/collections/docs/records/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["extra"], json!([]));
}
