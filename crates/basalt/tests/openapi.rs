//! `/api/openapi.json`: generated from the collections as they stand, per reader. Anonymous
//! readers see the collections and actions their rules reach and never a rule's text;
//! superusers (raw or `Bearer` token) see everything; a collection change shows at once;
//! `BASALT_OPENAPI=superusers` closes it to others. The document's validity as OpenAPI 3.1
//! and the server's conformance to it are checked by `scripts/openapi.sh`.

use basalt_testkit::TestServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

async fn document(s: &TestServer, auth: Option<&str>) -> (u16, Value) {
    s.call("GET", "/api/openapi.json", auth, None).await
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

#[tokio::test]
async fn the_document_follows_the_schema_and_the_reader() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "notes", "listRule": "", "viewRule": "",
                "createRule": "@request.auth.id != '' && secretFlag = true",
                "fields": [
                {"name": "title", "type": "text", "required": true, "max": 20},
                {"name": "secretFlag", "type": "bool", "hidden": true},
                {"name": "mood", "type": "select", "values": ["ok", "meh"], "maxSelect": 1},
                {"name": "tags", "type": "select", "values": ["a", "b"], "maxSelect": 2},
                {"name": "who", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 3}]})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let (st, _) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "vault", "fields": [{"name": "x", "type": "text"}]})),
        )
        .await;
    assert_eq!(st, 200);

    let (st, anon) = document(&s, None).await;
    assert_eq!(st, 200, "{anon}");
    assert_eq!(anon["openapi"], "3.1.0");
    let paths = &anon["paths"];
    assert!(paths["/api/collections/notes/records"]["get"].is_object());
    assert!(paths["/api/collections/notes/records"]["post"].is_object());
    // Update and delete are superusers-only: not reachable, not listed.
    assert!(paths["/api/collections/notes/records/{id}"]["patch"].is_null());
    assert!(paths["/api/collections/vault/records"].is_null(), "{paths}");
    assert!(paths["/api/settings"].is_null());
    assert!(paths["/api/collections/users/auth-with-password"]["post"].is_object());
    // A rule's text is for superusers: others learn that a rule decides, not how.
    let text = anon.to_string();
    assert!(
        !text.contains("secretFlag"),
        "hidden field or rule text leaked"
    );
    assert!(text.contains("restricted by the collection's rule"));

    let record = schema(&anon, "notesRecord");
    assert_eq!(
        record["properties"]["mood"]["enum"],
        json!(["ok", "meh", ""])
    );
    assert_eq!(record["properties"]["tags"]["type"], "array");
    assert_eq!(
        record["properties"]["expand"]["properties"]["who"]["items"]["$ref"],
        "#/components/schemas/usersRecord"
    );
    let users = schema(&anon, "usersRecord");
    assert!(users["properties"]["password"].is_null());
    assert!(users["properties"]["tokenKey"].is_null());
    let create = schema(&anon, "notesCreate");
    assert_eq!(create["required"], json!(["title"]));
    assert_eq!(create["properties"]["title"]["maxLength"], 20);
    assert!(schema(&anon, "notesUpdate")["properties"]["tags+"].is_object());
    assert!(
        schema(&anon, "usersCreate")["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("passwordConfirm")))
    );

    // Superusers, with the raw token or the Bearer form, see everything.
    for auth in [su.clone(), format!("Bearer {su}")] {
        let (st, full) = document(&s, Some(&auth)).await;
        assert_eq!(st, 200);
        assert!(full["paths"]["/api/collections/vault/records"]["get"].is_object());
        assert!(full["paths"]["/api/settings"]["patch"].is_object());
        assert!(
            schema(&full, "notesRecord")["properties"]["secretFlag"].is_object(),
            "superusers see hidden fields"
        );
        assert!(full.to_string().contains("secretFlag = true"));
    }

    // A collection change shows in the next document.
    let (st, _) = s
        .call(
            "PATCH",
            "/api/collections/vault",
            Some(&su),
            Some(json!({"listRule": ""})),
        )
        .await;
    assert_eq!(st, 200);
    let (_, anon) = document(&s, None).await;
    assert!(anon["paths"]["/api/collections/vault/records"]["get"].is_object());
}

/// Files and backups are described: the file download for anyone (the record's rule
/// decides), the backups routes for superusers only, and a collection with file fields
/// takes multipart bodies whose file fields are binary parts.
#[tokio::test]
async fn files_backups_and_multipart_bodies_are_described() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, c) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(
                json!({"name": "docs", "listRule": "", "viewRule": "", "createRule": "",
                "updateRule": "", "fields": [{"name": "title", "type": "text"},
                {"name": "one", "type": "file", "maxSelect": 1},
                {"name": "many", "type": "file", "maxSelect": 3}]}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let (_, anon) = document(&s, None).await;
    let (_, full) = document(&s, Some(&su)).await;
    for doc in [&anon, &full] {
        let file = &doc["paths"]["/api/files/{collection}/{recordId}/{filename}"];
        for method in ["get", "head"] {
            let o = &file[method];
            assert_eq!(o["security"], json!([{}]), "{o}");
            for status in ["200", "206", "304", "404", "416"] {
                assert!(o["responses"][status].is_object(), "{method} {status}: {o}");
            }
        }
        assert!(doc["paths"]["/api/files/token"]["post"].is_object());
        let create = &doc["paths"]["/api/collections/docs/records"]["post"]["requestBody"];
        assert_eq!(
            create["content"]["multipart/form-data"]["schema"]["$ref"],
            "#/components/schemas/docsCreateForm",
            "{create}"
        );
        assert!(create["content"]["application/json"].is_object());
        let form = schema(doc, "docsCreateForm");
        assert_eq!(form["properties"]["one"]["format"], "binary", "{form}");
        assert_eq!(form["properties"]["many"]["items"]["format"], "binary");
        assert_eq!(form["properties"]["many"]["maxItems"], 3);
        assert_eq!(form["properties"]["title"]["type"], "string");
        let update = schema(doc, "docsUpdateForm");
        assert!(
            update["properties"]["many+"]["oneOf"].is_array(),
            "{update}"
        );
    }
    // A collection without file fields takes JSON only.
    let plain = &full["paths"]["/api/collections/_superusers/records"]["post"]["requestBody"];
    assert!(plain["content"]["application/json"].is_object(), "{plain}");
    assert!(plain["content"]["multipart/form-data"].is_null(), "{plain}");
    assert!(anon["paths"]["/api/backups"].is_null());
    assert!(anon["paths"]["/api/settings/test/s3"].is_null());
    let paths = &full["paths"];
    assert_eq!(paths["/api/backups"]["get"]["operationId"], "list_backups");
    assert_eq!(
        paths["/api/backups"]["post"]["operationId"],
        "create_backup"
    );
    assert!(
        paths["/api/backups/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
            .is_object()
    );
    let download = &paths["/api/backups/{key}"]["get"];
    assert_eq!(download["security"], json!([{}]));
    assert_eq!(
        download["responses"]["200"]["content"]["application/zip"]["schema"]["format"],
        "binary"
    );
    assert!(paths["/api/backups/{key}"]["delete"].is_object());
    assert!(paths["/api/backups/{key}/restore"]["post"].is_object());
    assert!(paths["/api/settings/test/s3"]["post"].is_object());
}

#[tokio::test]
async fn superusers_only_documents_refuse_others_in_pocketbases_shape() {
    let s = TestServer::start_with_env(BIN, &[("BASALT_OPENAPI", "superusers")]).await;
    let (st, e) = document(&s, None).await;
    assert_eq!(st, 401, "{e}");
    assert_eq!(e["status"], 401);
    assert!(e["message"].is_string() && e["data"].is_object());
    let su = s.superuser_token().await;
    let (st, full) = document(&s, Some(&su)).await;
    assert_eq!(st, 200);
    assert!(full["paths"]["/api/settings"].is_object());
}

#[tokio::test]
async fn an_unknown_openapi_setting_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new(BIN)
        .args(["serve", "--http", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .env("BASALT_OPENAPI", "everyone")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("openapi"), "{err}");
}
