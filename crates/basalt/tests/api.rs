//! The real `basalt` binary driven over HTTP: collections, records, filters, expand,
//! rules, batch, auth, settings, errors, CORS, limits, metrics, shutdown and crashes.

use basalt_testkit::TestServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A blog schema: users (bootstrap) <- posts (author, tags) <- comments.
async fn blog(s: &TestServer, su: &str) -> (String, String) {
    let (st, tags) = s
        .call(
            "POST",
            "/api/collections",
            Some(su),
            Some(json!({"name": "tags", "listRule": "", "viewRule": "",
        "fields": [{"name": "label", "type": "text"}]})),
        )
        .await;
    assert_eq!(st, 200, "{tags}");
    let (st, posts) = s.call("POST", "/api/collections", Some(su), Some(json!({"name": "posts",
        "listRule": "public = true || author = @request.auth.id", "viewRule": "public = true || author = @request.auth.id",
        "createRule": "@request.auth.id != '' && author = @request.auth.id", "updateRule": "author = @request.auth.id", "deleteRule": null,
        "fields": [
            {"name": "title", "type": "text", "required": true},
            {"name": "body", "type": "editor"},
            {"name": "views", "type": "number"},
            {"name": "public", "type": "bool"},
            {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
            {"name": "tags", "type": "relation", "collectionId": tags["id"], "maxSelect": 5},
            {"name": "meta", "type": "json"}
        ]}))).await;
    assert_eq!(st, 200, "{posts}");
    let (st, c) = s.call("POST", "/api/collections", Some(su), Some(json!({"name": "comments", "listRule": "", "viewRule": "",
        "fields": [{"name": "text", "type": "text"}, {"name": "post", "type": "relation", "collectionId": posts["id"], "maxSelect": 1, "cascadeDelete": true}]}))).await;
    assert_eq!(st, 200, "{c}");
    (
        tags["id"].as_str().unwrap_or_default().to_string(),
        posts["id"].as_str().unwrap_or_default().to_string(),
    )
}

async fn user(s: &TestServer, email: &str) -> (String, String) {
    let (st, u) = s.call("POST", "/api/collections/users/records", None, Some(json!({"email": email, "password": "User-pass-123", "passwordConfirm": "User-pass-123", "name": email}))).await;
    assert_eq!(st, 200, "{u}");
    let token = s.token("users", email, "User-pass-123").await;
    (u["id"].as_str().unwrap_or_default().to_string(), token)
}

#[tokio::test]
async fn health_errors_and_unknown_routes_use_the_pocketbase_shape() {
    let s = TestServer::start(BIN).await;
    let (st, body) = s.call("GET", "/api/health", None, None).await;
    assert_eq!((st, body["code"].as_i64()), (200, Some(200)));
    for (method, path, want) in [
        ("GET", "/api/nope", 404),
        ("GET", "/api/collections/missing/records", 404),
        ("GET", "/api/collections", 401),
        ("POST", "/api/collections/users/auth-with-password", 400),
        ("PUT", "/api/health", 404),
    ] {
        let (st, body) = s.call(method, path, None, Some(json!({}))).await;
        assert_eq!(st, want, "{method} {path}: {body}");
        assert_eq!(body["status"], json!(want), "{body}");
        assert!(
            body["message"].is_string() && body["data"].is_object(),
            "{body}"
        );
    }
    let res = s
        .http
        .post(s.url("/api/collections/users/records"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 400);
    // A declared body over the limit is refused before it is read (raw socket, so the
    // client is not still writing when the server answers).
    let addr = s.url("").trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/collections/users/records HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        2 << 20
    );
    tokio::io::AsyncWriteExt::write_all(&mut sock, head.as_bytes())
        .await
        .expect("write");
    let mut reply = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut sock, &mut reply)
        .await
        .expect("read");
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("\"status\":413"), "{reply}");
}

#[tokio::test]
async fn records_crud_filters_sort_paging_fields_and_modifiers() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (tags_id, _) = blog(&s, &su).await;
    let (uid, _) = user(&s, "ann@example.com").await;
    let mut tag_ids = vec![];
    for l in ["red", "blue"] {
        let (_, t) = s
            .call(
                "POST",
                "/api/collections/tags/records",
                Some(&su),
                Some(json!({"label": l})),
            )
            .await;
        tag_ids.push(t["id"].as_str().unwrap_or_default().to_string());
    }
    assert!(!tags_id.is_empty());
    for i in 0..25 {
        let (st, r) = s
            .call(
                "POST",
                "/api/collections/posts/records",
                Some(&su),
                Some(json!({
            "title": format!("post {i:02}"), "views": i, "public": i % 2 == 0, "author": uid,
            "tags": if i % 3 == 0 { json!([tag_ids[0], tag_ids[1]]) } else { json!([tag_ids[1]]) },
            "meta": {"n": i}, "body": "<p>Some <b>rich</b> text here</p>"})),
            )
            .await;
        assert_eq!(st, 200, "{r}");
    }
    let q = |f: &str| {
        format!(
            "/api/collections/posts/records?perPage=100&filter={}",
            urlencode(f)
        )
    };
    for (filter, count) in [
        ("views >= 20", 5),
        ("views > 5 && public = true", 10),
        ("(views < 2 || views > 23) && public = false", 1),
        ("title ~ 'post 1'", 10),
        ("title !~ 'post'", 0),
        ("tags.label ?= 'red'", 9),
        ("tags.label = 'blue'", 16),
        ("author.email = 'ann@example.com'", 25),
        ("meta.n = 7", 1),
        ("tags:length = 2", 9),
        ("views < @year", 25),
        ("title:lower = 'post 03'", 1),
    ] {
        let (st, body) = s.call("GET", &q(filter), Some(&su), None).await;
        assert_eq!(st, 200, "{filter}: {body}");
        assert_eq!(body["totalItems"], json!(count), "{filter}");
    }
    let (st, page) = s
        .call(
            "GET",
            "/api/collections/posts/records?page=2&perPage=10&sort=-views,title",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        (
            page["page"].clone(),
            page["totalItems"].clone(),
            page["totalPages"].clone()
        ),
        (json!(2), json!(25), json!(3))
    );
    assert_eq!(page["items"][0]["views"], json!(14));
    let (_, skip) = s
        .call(
            "GET",
            "/api/collections/posts/records?skipTotal=1&perPage=5",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(
        (
            skip["totalItems"].clone(),
            skip["items"].as_array().map(Vec::len)
        ),
        (json!(-1), Some(5))
    );
    let (_, f) = s.call("GET", "/api/collections/posts/records?perPage=1&sort=views&fields=id,title,body:excerpt(9,true)", Some(&su), None).await;
    let item = &f["items"][0];
    assert_eq!(item.as_object().map(|o| o.len()), Some(3), "{item}");
    assert_eq!(item["body"], json!("Some rich..."));
    let first = page["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (st, upd) = s
        .call(
            "PATCH",
            &format!("/api/collections/posts/records/{first}"),
            Some(&su),
            Some(json!({"views+": 5, "tags-": tag_ids[1]})),
        )
        .await;
    assert_eq!(st, 200, "{upd}");
    assert_eq!(upd["views"], json!(19));
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/api/collections/posts/records/{first}"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .call(
            "GET",
            &format!("/api/collections/posts/records/{first}"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, e) = s
        .call(
            "POST",
            "/api/collections/posts/records",
            Some(&su),
            Some(json!({"views": "abc"})),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        e["data"]["title"]["code"],
        json!("validation_required"),
        "{e}"
    );
}

#[tokio::test]
async fn rules_apply_to_every_action_and_to_expand() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    blog(&s, &su).await;
    let (ann, ann_t) = user(&s, "ann@example.com").await;
    let (bob, bob_t) = user(&s, "bob@example.com").await;
    let create = |t: &str, author: &str, public: bool| {
        let (t, author) = (t.to_string(), author.to_string());
        let s = &s;
        async move {
            s.call(
                "POST",
                "/api/collections/posts/records",
                Some(&t),
                Some(json!({"title": "t", "author": author, "public": public})),
            )
            .await
        }
    };
    let (st, private) = create(&ann_t, &ann, false).await;
    assert_eq!(st, 200, "{private}");
    let (st, _) = create(&ann_t, &ann, true).await;
    assert_eq!(st, 200);
    let (st, e) = create(&bob_t, &ann, true).await;
    assert_eq!(st, 400, "create rule rejects another author: {e}");
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/posts/records",
            None,
            Some(json!({"title": "anon"})),
        )
        .await;
    assert_eq!(st, 400);
    let pid = private["id"].as_str().unwrap_or_default().to_string();
    let (_, list) = s
        .call("GET", "/api/collections/posts/records", None, None)
        .await;
    assert_eq!(list["totalItems"], json!(1), "anonymous sees public only");
    let (_, list) = s
        .call("GET", "/api/collections/posts/records", Some(&ann_t), None)
        .await;
    assert_eq!(list["totalItems"], json!(2));
    let (st, _) = s
        .call(
            "GET",
            &format!("/api/collections/posts/records/{pid}"),
            Some(&bob_t),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/api/collections/posts/records/{pid}"),
            Some(&bob_t),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/api/collections/posts/records/{pid}"),
            Some(&ann_t),
            Some(json!({"title": "mine"})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/api/collections/posts/records/{pid}"),
            Some(&ann_t),
            None,
        )
        .await;
    assert_eq!(st, 403, "a null delete rule is superusers only");
    // A filter cannot see around the rule, nor can a filter on a hidden field.
    let (_, l) = s
        .call(
            "GET",
            &format!(
                "/api/collections/posts/records?filter={}",
                urlencode(&format!("id = '{pid}'"))
            ),
            None,
            None,
        )
        .await;
    assert_eq!(l["totalItems"], json!(0));
    let (st, _) = s
        .call(
            "GET",
            &format!(
                "/api/collections/users/records?filter={}",
                urlencode("password != ''")
            ),
            Some(&ann_t),
            None,
        )
        .await;
    assert_eq!(st, 400);
    // Comments are public, but expanding their post obeys the posts view rule.
    let (st, c) = s
        .call(
            "POST",
            "/api/collections/comments/records",
            Some(&su),
            Some(json!({"text": "hi", "post": pid})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    let path = "/api/collections/comments/records?expand=post,post.author";
    let (_, anon) = s.call("GET", path, None, None).await;
    assert_eq!(anon["items"][0]["expand"], json!({}), "{anon}");
    let (_, own) = s.call("GET", path, Some(&ann_t), None).await;
    assert_eq!(own["items"][0]["expand"]["post"]["id"], json!(pid));
    assert_eq!(
        own["items"][0]["expand"]["post"]["expand"]["author"]["id"],
        json!(ann)
    );
    let (_, back) = s
        .call(
            "GET",
            &format!("/api/collections/posts/records/{pid}?expand=comments_via_post"),
            Some(&ann_t),
            None,
        )
        .await;
    assert_eq!(back["expand"]["comments_via_post"][0]["text"], json!("hi"));
    // Users see their own email, not others'.
    let (_, me) = s
        .call(
            "GET",
            &format!("/api/collections/users/records/{ann}"),
            Some(&ann_t),
            None,
        )
        .await;
    assert_eq!(me["email"], json!("ann@example.com"));
    assert!(me.get("password").is_none() && me.get("tokenKey").is_none());
    let (st, _) = s
        .call(
            "GET",
            &format!("/api/collections/users/records/{ann}"),
            Some(&bob_t),
            None,
        )
        .await;
    assert_eq!(st, 404);
    assert!(!bob.is_empty());
}

/// Regression (issue 15): expand followed a hidden relation field for anyone, forward and
/// back, showing the ids the field hides (PocketBase does too); `@collection` in a
/// client's filter read any collection.
#[tokio::test]
async fn hidden_relations_and_superuser_only_filters_stay_closed() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, sec) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "sec", "listRule": "", "viewRule": "",
            "fields": [{"name": "t", "type": "text"}]})),
        )
        .await;
    assert_eq!(st, 200, "{sec}");
    let (st, p) = s
        .call("POST", "/api/collections", Some(&su), Some(json!({"name": "p", "listRule": "", "viewRule": "",
            "fields": [{"name": "title", "type": "text"},
                {"name": "hrel", "type": "relation", "collectionId": sec["id"], "maxSelect": 1, "hidden": true}]})))
        .await;
    assert_eq!(st, 200, "{p}");
    let (_, s1) = s
        .call(
            "POST",
            "/api/collections/sec/records",
            Some(&su),
            Some(json!({"t": "x"})),
        )
        .await;
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/p/records",
            Some(&su),
            Some(json!({"title": "a", "hrel": s1["id"]})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, l) = s
        .call("GET", "/api/collections/p/records?expand=hrel", None, None)
        .await;
    assert_eq!(st, 200);
    assert!(l["items"][0]["expand"]["hrel"].is_null(), "{l}");
    assert!(l["items"][0].get("hrel").is_none(), "{l}");
    let (_, l) = s
        .call(
            "GET",
            "/api/collections/sec/records?expand=p_via_hrel",
            None,
            None,
        )
        .await;
    assert!(l["items"][0]["expand"]["p_via_hrel"].is_null(), "{l}");
    let (_, l) = s
        .call(
            "GET",
            "/api/collections/p/records?expand=hrel",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(l["items"][0]["expand"]["hrel"]["t"], json!("x"), "{l}");
    // A hidden field in a filter is an invalid query, alike for every value.
    for f in ["hrel.t%20%3D%20'x'", "hrel.t%20%3D%20'y'"] {
        let (st, e) = s
            .call(
                "GET",
                &format!("/api/collections/p/records?filter={f}"),
                None,
                None,
            )
            .await;
        assert_eq!(st, 400, "{e}");
    }
    // `@collection` and `@request` are for superusers, as in PocketBase.
    for (f, what) in [
        (
            "%40collection._superusers.email%20%3F~%20'root%25'",
            "@collection",
        ),
        ("%40request.auth.id%20%3D%20''", "@request"),
    ] {
        let (st, e) = s
            .call(
                "GET",
                &format!("/api/collections/p/records?filter={f}"),
                None,
                None,
            )
            .await;
        assert_eq!(st, 403, "{e}");
        assert_eq!(
            e,
            json!({"status": 403, "message": format!("Only superusers can filter by {what}."), "data": {}})
        );
        let (st, l) = s
            .call(
                "GET",
                &format!("/api/collections/p/records?filter={f}"),
                Some(&su),
                None,
            )
            .await;
        assert_eq!(st, 200, "{l}");
    }
}

#[tokio::test]
async fn injection_attempts_are_rejected_and_change_nothing() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    blog(&s, &su).await;
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/posts/records",
            Some(&su),
            Some(json!({"title": "safe"})),
        )
        .await;
    assert_eq!(st, 200);
    for (param, payload) in [
        ("filter", "title = 'x'; DROP TABLE posts; --"),
        ("filter", "1=1) OR (1=1"),
        ("filter", "title = \"\" OR 1=1 --"),
        ("sort", "(SELECT 1)"),
        ("sort", "title; DROP TABLE posts"),
        ("fields", "id,(select password from _superusers)"),
        ("expand", "author) UNION SELECT * FROM _superusers --"),
        ("perPage", "1; DROP TABLE posts"),
    ] {
        let (st, body) = s
            .call(
                "GET",
                &format!(
                    "/api/collections/posts/records?{param}={}",
                    urlencode(payload)
                ),
                Some(&su),
                None,
            )
            .await;
        assert_eq!(st, 400, "{param}={payload}: {body}");
    }
    let (st, body) = s
        .call(
            "GET",
            &format!(
                "/api/collections/posts/records?filter={}",
                urlencode("title = \"x' OR '1'='1\"")
            ),
            Some(&su),
            None,
        )
        .await;
    assert_eq!((st, body["totalItems"].clone()), (200, json!(0)));
    let (_, all) = s
        .call("GET", "/api/collections/posts/records", Some(&su), None)
        .await;
    assert_eq!(all["totalItems"], json!(1));
}

#[tokio::test]
async fn batch_is_all_or_nothing_and_governed_by_settings() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    blog(&s, &su).await;
    let reqs = json!({"requests": [
        {"method": "POST", "url": "/api/collections/tags/records", "body": {"label": "one"}},
        {"method": "POST", "url": "/api/collections/tags/records", "body": {"label": "two"}}
    ]});
    let (st, _) = s
        .call("POST", "/api/batch", Some(&su), Some(reqs.clone()))
        .await;
    assert_eq!(st, 403, "batch is off by default");
    let (st, set) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"batch": {"enabled": true, "maxRequests": 3}})),
        )
        .await;
    assert_eq!((st, set["batch"]["enabled"].clone()), (200, json!(true)));
    let (st, out) = s.call("POST", "/api/batch", Some(&su), Some(reqs)).await;
    assert_eq!(st, 200, "{out}");
    let id = out[0]["body"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let failing = json!({"requests": [
        {"method": "PATCH", "url": format!("/api/collections/tags/records/{id}"), "body": {"label": "changed"}},
        {"method": "POST", "url": "/api/collections/posts/records", "body": {}}
    ]});
    let (st, err) = s.call("POST", "/api/batch", Some(&su), Some(failing)).await;
    assert_eq!(st, 400, "{err}");
    assert!(err["data"]["requests"]["1"].is_object(), "{err}");
    let (_, tag) = s
        .call(
            "GET",
            &format!("/api/collections/tags/records/{id}"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(
        tag["label"],
        json!("one"),
        "the failed batch changed nothing"
    );
    let too_many = json!({"requests": (0..4).map(|_| json!({"method": "POST", "url": "/api/collections/tags/records", "body": {}})).collect::<Vec<_>>()});
    let (st, _) = s
        .call("POST", "/api/batch", Some(&su), Some(too_many))
        .await;
    assert_eq!(st, 400);
    let (st, _) = s.call("GET", "/api/settings", None, None).await;
    assert_eq!(st, 401);
    // Passwords written through a batch are hashed like any other write.
    let users = json!({"requests": [
        {"method": "POST", "url": "/api/collections/users/records",
         "body": {"email": "batch@example.com", "password": "Batch-pass-123", "passwordConfirm": "Batch-pass-123"}}
    ]});
    let (st, out) = s.call("POST", "/api/batch", Some(&su), Some(users)).await;
    assert_eq!(st, 200, "{out}");
    let uid = out[0]["body"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    s.token("users", "batch@example.com", "Batch-pass-123")
        .await;
    let change = json!({"requests": [
        {"method": "PATCH", "url": format!("/api/collections/users/records/{uid}"),
         "body": {"password": "Batch-pass-456", "passwordConfirm": "Batch-pass-456"}}
    ]});
    let (st, out) = s.call("POST", "/api/batch", Some(&su), Some(change)).await;
    assert_eq!(st, 200, "{out}");
    s.token("users", "batch@example.com", "Batch-pass-456")
        .await;
}

#[tokio::test]
async fn auth_tokens_refresh_and_revoke() {
    let s = TestServer::start(BIN).await;
    let (id, token) = user(&s, "eve@example.com").await;
    let (st, r) = s
        .call(
            "POST",
            "/api/collections/users/auth-refresh",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["record"]["id"], json!(id));
    let (st, _) = s
        .call("POST", "/api/collections/users/auth-refresh", None, None)
        .await;
    assert_eq!(st, 401);
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/users/auth-with-password",
            None,
            Some(json!({"identity": "eve@example.com", "password": "wrong-pass-1"})),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/users/auth-with-password",
            None,
            Some(json!({"identity": "nobody@example.com", "password": "wrong-pass-1"})),
        )
        .await;
    assert_eq!(st, 400);
    let (st, m) = s
        .call("GET", "/api/collections/users/auth-methods", None, None)
        .await;
    assert_eq!((st, m["password"]["enabled"].clone()), (200, json!(true)));
    // Changing the password needs the old one and revokes existing tokens.
    let path = format!("/api/collections/users/records/{id}");
    let (st, _) = s
        .call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"password": "New-pass-1234", "passwordConfirm": "New-pass-1234"})),
        )
        .await;
    assert_eq!(st, 400);
    let (st, e) = s.call("PATCH", &path, Some(&token), Some(json!({"password": "New-pass-1234", "passwordConfirm": "New-pass-1234", "oldPassword": "User-pass-123"}))).await;
    assert_eq!(st, 200, "{e}");
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/users/auth-refresh",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(st, 401, "the old token is revoked");
    s.token("users", "eve@example.com", "New-pass-1234").await;
    let forged = format!("{}x", token);
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/users/auth-refresh",
            Some(&forged),
            None,
        )
        .await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn collections_api_migrates_and_keeps_data() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (_, tok) = user(&s, "u@example.com").await;
    let (st, _) = s.call("GET", "/api/collections", Some(&tok), None).await;
    assert_eq!(st, 403);
    let (st, c) = s.call("POST", "/api/collections", Some(&su), Some(json!({"name": "notes", "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]}))).await;
    assert_eq!(st, 200, "{c}");
    let (_, r) = s
        .call(
            "POST",
            "/api/collections/notes/records",
            Some(&su),
            Some(json!({"title": "keep me", "n": 3})),
        )
        .await;
    let mut fields = c["fields"].as_array().cloned().unwrap_or_default();
    for f in &mut fields {
        if f["name"] == json!("title") {
            f["name"] = json!("heading");
        }
    }
    fields.retain(|f| f["name"] != json!("n"));
    fields.push(json!({"name": "done", "type": "bool"}));
    let (st, c2) = s
        .call(
            "PATCH",
            "/api/collections/notes",
            Some(&su),
            Some(json!({"name": "memos", "fields": fields})),
        )
        .await;
    assert_eq!(st, 200, "{c2}");
    let (_, got) = s
        .call(
            "GET",
            &format!(
                "/api/collections/memos/records/{}",
                r["id"].as_str().unwrap_or_default()
            ),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(
        (got["heading"].clone(), got["done"].clone(), got.get("n")),
        (json!("keep me"), json!(false), None),
        "{got}"
    );
    let (st, e) = s
        .call(
            "POST",
            "/api/collections",
            Some(&su),
            Some(json!({"name": "bad name!"})),
        )
        .await;
    assert_eq!(st, 400);
    assert!(e["data"]["name"]["code"].is_string(), "{e}");
    let (st, _) = s
        .call("DELETE", "/api/collections/memos/truncate", Some(&su), None)
        .await;
    assert_eq!(st, 204);
    let (_, l) = s
        .call("GET", "/api/collections/memos/records", Some(&su), None)
        .await;
    assert_eq!(l["totalItems"], json!(0));
    let (st, v) = s.call("POST", "/api/collections", Some(&su), Some(json!({"name": "memo_view", "type": "view", "listRule": "", "viewQuery": "SELECT id, heading FROM memos"}))).await;
    if basalt_testkit::servers_on_postgres() {
        // A view's query is SQLite's SQL: refused on PostgreSQL, naming the query.
        assert_eq!(st, 400, "{v}");
        assert_eq!(
            v["data"]["viewQuery"]["code"], "validation_invalid_view_query",
            "{v}"
        );
    } else {
        assert_eq!(st, 200, "{v}");
        let (st, _) = s
            .call(
                "POST",
                "/api/collections/memo_view/records",
                Some(&su),
                Some(json!({})),
            )
            .await;
        assert_eq!(st, 400, "views are read-only");
        let (st, _) = s
            .call("DELETE", "/api/collections/memo_view", Some(&su), None)
            .await;
        assert_eq!(st, 204);
    }
    let (st, _) = s
        .call("DELETE", "/api/collections/_superusers", Some(&su), None)
        .await;
    assert_eq!(st, 400);
    let (st, e) = s.call("PUT", "/api/collections/import", Some(&su), Some(json!({"collections": [{"name": "imported", "fields": [{"name": "x", "type": "text"}]}]}))).await;
    assert_eq!(st, 204, "{e}");
    let (st, list) = s
        .call(
            "GET",
            &format!("/api/collections?filter={}", urlencode("name = 'imported'")),
            Some(&su),
            None,
        )
        .await;
    assert_eq!((st, list["totalItems"].clone()), (200, json!(1)));
}

#[tokio::test]
async fn cors_metrics_and_request_ids() {
    let s = TestServer::start(BIN).await;
    let res = s
        .http
        .get(s.url("/api/health"))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .expect("send");
    assert_eq!(
        res.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    assert!(res.headers().get("x-request-id").is_some());
    // The body is Prometheus's text format, and the header says so: a scraper told
    // OpenMetrics would demand its `# EOF` and reject the scrape.
    let res = s.http.get(s.url("/metrics")).send().await.expect("metrics");
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = s.metrics_text().await;
    assert!(text.contains("basalt_http_requests_total"), "{text}");
    assert!(text.contains("basalt_db_writer_queue_capacity"), "{text}");
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    assert!(text.contains("\nprocess_open_fds "), "{text}");
    // promtool validates the exposition when it is installed (CI installs it).
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).expect("write");
        }
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_and_kill_9_keep_acknowledged_writes() {
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    s.call(
        "POST",
        "/api/collections",
        Some(&su),
        Some(json!({"name": "acks", "fields": [{"name": "n", "type": "number"}]})),
    )
    .await;
    let mut acked = vec![];
    for i in 0..200 {
        let (st, r) = s
            .call(
                "POST",
                "/api/collections/acks/records",
                Some(&su),
                Some(json!({"n": i})),
            )
            .await;
        assert_eq!(st, 200);
        acked.push(r["id"].as_str().unwrap_or_default().to_string());
    }
    s.kill9();
    s.restart().await;
    let su = s.superuser_token().await;
    let (_, l) = s
        .call(
            "GET",
            "/api/collections/acks/records?perPage=1000",
            Some(&su),
            None,
        )
        .await;
    let stored = ids(&l);
    assert!(
        acked.iter().all(|id| stored.contains(id)),
        "lost writes after kill -9"
    );
    assert!(s.terminate(), "SIGTERM exits cleanly");
}

#[tokio::test]
async fn form_and_multipart_bodies_create_records() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    blog(&s, &su).await;
    let res = s
        .http
        .post(s.url("/api/collections/tags/records"))
        .header("Authorization", &su)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("label=from+a+form")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200);
    let r: Value = res.json().await.expect("json");
    assert_eq!(r["label"], json!("from a form"));
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"label\"\r\n\r\nmultipart\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{\"label\":\"from json payload\"}\r\n\
                --XyZ--\r\n";
    let res = s
        .http
        .post(s.url("/api/collections/tags/records"))
        .header("Authorization", &su)
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200);
    let r: Value = res.json().await.expect("json");
    assert_eq!(
        r["label"],
        json!("from json payload"),
        "@jsonPayload wins over earlier parts"
    );
    let file = "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nhi\r\n--XyZ--\r\n";
    let res = s
        .http
        .post(s.url("/api/collections/tags/records"))
        .header("Authorization", &su)
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(file)
        .send()
        .await
        .expect("send");
    assert_eq!(
        res.status().as_u16(),
        200,
        "a file part for a field that is no file field is ignored, as PocketBase 0.40 does"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Plain list pages (and those with a `fields` list of top-level names) are written from
/// the stored rows, every other answer from decoded records: for each kind of caller,
/// on an auth collection (email shown per record and to its owner, a hidden field) and on
/// a collection with every value kind, both roads must give the same items, keys in the
/// same order, and the same page numbers.
#[tokio::test]
async fn list_pages_written_from_rows_match_the_decoded_records() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, users) = s
        .call("GET", "/api/collections/users", Some(&su), None)
        .await;
    assert_eq!(st, 200, "{users}");
    let mut fields = users["fields"].as_array().cloned().unwrap_or_default();
    fields.push(json!({"name": "secret", "type": "text", "hidden": true}));
    let (st, body) = s
        .call(
            "PATCH",
            "/api/collections/users",
            Some(&su),
            Some(json!({"listRule": "", "fields": fields})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, kinds) = s.call("POST", "/api/collections", Some(&su), Some(json!({"name": "kinds", "listRule": "",
        "fields": [
            {"name": "title", "type": "text"}, {"name": "n", "type": "number"}, {"name": "ok", "type": "bool"},
            {"name": "meta", "type": "json"}, {"name": "when", "type": "date"}, {"name": "body", "type": "editor"},
            {"name": "site", "type": "url"}, {"name": "mail", "type": "email"},
            {"name": "one", "type": "select", "values": ["a", "b"], "maxSelect": 1},
            {"name": "many", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
            {"name": "who", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 5}
        ]}))).await;
    assert_eq!(st, 200, "{kinds}");
    let mut tokens = vec![("anonymous", None), ("superuser", Some(su.clone()))];
    let mut ids = vec![];
    for (i, (email, shown)) in [
        ("a@example.com", true),
        ("b@example.com", false),
        ("c@example.com", false),
    ]
    .into_iter()
    .enumerate()
    {
        let (st, u) = s
            .call(
                "POST",
                "/api/collections/users/records",
                Some(&su),
                Some(json!({
            "email": email, "emailVisibility": shown, "password": "User-pass-123",
            "passwordConfirm": "User-pass-123", "name": format!("n\"{i}\\\u{1}é"), "secret": "s"})),
            )
            .await;
        assert_eq!(st, 200, "{u}");
        ids.push(u["id"].as_str().unwrap_or_default().to_string());
        if i == 1 {
            tokens.push((
                "owner of b",
                Some(s.token("users", email, "User-pass-123").await),
            ));
        }
    }
    for (i, body) in [
        json!({"title": "plain", "n": 1.5, "ok": true, "meta": {"b": [1, 2], "a": null}, "when": "2024-01-02 03:04:05.678Z",
               "body": "<p>x</p>", "site": "https://example.com", "mail": "m@example.com", "one": "a", "many": ["c", "a"], "who": [ids[0], ids[2]]}),
        json!({"title": "tab\tquote\" \u{7f} 😀", "n": -3, "meta": "text", "many": ["b"], "who": [ids[1]]}),
        json!({}),
    ]
    .into_iter()
    .enumerate()
    {
        let (st, r) = s
            .call("POST", "/api/collections/kinds/records", Some(&su), Some(body))
            .await;
        assert_eq!(st, 200, "record {i}: {r}");
    }
    let keys = |v: &Value| -> Vec<Vec<String>> {
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        r.as_object()
                            .map(|o| o.keys().cloned().collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    for (who, token) in &tokens {
        for (query, fields) in [
            ("/api/collections/users/records?sort=name", ""),
            ("/api/collections/users/records?sort=name", "*"),
            (
                "/api/collections/users/records?sort=name",
                "email,id,secret,collectionName",
            ),
            ("/api/collections/kinds/records?sort=-n&perPage=2", ""),
            (
                "/api/collections/kinds/records?sort=-n&perPage=2&page=2&skipTotal=1",
                "",
            ),
            (
                "/api/collections/kinds/records?sort=-n",
                "meta,title,nothing,n",
            ),
            ("/api/collections/kinds/records?sort=-n", "nothing"),
            ("/api/collections/kinds/records?filter=n>100", ""),
        ] {
            // A nested path that names nothing sends the answer down the decoded road
            // without changing it.
            let (query, decoded_query) = if fields.is_empty() {
                (query.to_string(), format!("{query}&fields=*,zz.z"))
            } else {
                (
                    format!("{query}&fields={fields}"),
                    format!("{query}&fields={fields},zz.z"),
                )
            };
            let (st, rows) = s.call("GET", &query, token.as_deref(), None).await;
            let (st2, decoded) = s.call("GET", &decoded_query, token.as_deref(), None).await;
            assert_eq!((st, st2), (200, 200), "{who} {query}: {rows} / {decoded}");
            assert_eq!(rows, decoded, "{who} {query}");
            assert_eq!(keys(&rows), keys(&decoded), "{who} {query}");
        }
    }
    // What each caller sees of the users' emails, and that the hidden field never shows.
    let (_, anon) = s
        .call(
            "GET",
            "/api/collections/users/records?sort=name",
            None,
            None,
        )
        .await;
    let emails = |v: &Value| -> Vec<Option<String>> {
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["email"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(emails(&anon), [Some("a@example.com".into()), None, None]);
    let owner = tokens[2].1.as_deref();
    let (_, mine) = s
        .call(
            "GET",
            "/api/collections/users/records?sort=name",
            owner,
            None,
        )
        .await;
    assert_eq!(
        emails(&mine),
        [
            Some("a@example.com".into()),
            Some("b@example.com".into()),
            None
        ]
    );
    assert!(anon["items"][0].get("secret").is_none() && mine["items"][1].get("secret").is_none());
    let (_, all) = s
        .call(
            "GET",
            "/api/collections/users/records?sort=name",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(all["items"][2]["secret"], "s");
    assert_eq!(
        (all["totalItems"].as_i64(), all["totalPages"].as_i64()),
        (Some(3), Some(1))
    );
}
