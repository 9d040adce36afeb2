//! Conditional record reads (issue 21, item 1): view and list answers carry a strong
//! `ETag` hashed from the answer this requester gets and the collection's
//! `Cache-Control` (`recordCaching` in the settings, `private, no-cache` by default);
//! a matching `If-None-Match` is answered 304 with no body.

use basalt_testkit::TestServer;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");

/// Status, headers and body of a GET with an optional token and `If-None-Match`.
async fn get(
    s: &TestServer,
    path: &str,
    token: Option<&str>,
    if_none_match: Option<&str>,
) -> (u16, HeaderMap, String) {
    let mut req = s.http.get(s.url(path));
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    if let Some(tag) = if_none_match {
        req = req.header("If-None-Match", tag);
    }
    let res = req.send().await.expect("send");
    let status = res.status().as_u16();
    let h = res.headers().clone();
    (status, h, res.text().await.expect("body"))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .map_or("", |v| v.to_str().expect("ascii header"))
}

/// The answer's tag, checked strong: a quoted opaque tag without `W/`.
fn etag(h: &HeaderMap) -> String {
    let tag = header(h, "etag");
    assert!(
        tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"'),
        "not a strong tag: {tag:?}"
    );
    tag.to_string()
}

async fn create(s: &TestServer, su: &str, collection: &str, body: Value) -> String {
    let (st, r) = s
        .call(
            "POST",
            &format!("/api/collections/{collection}/records"),
            Some(su),
            Some(body),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    r["id"].as_str().expect("id").to_string()
}

async fn patch(s: &TestServer, su: &str, path: &str, body: Value) -> (u16, Value) {
    s.call("PATCH", path, Some(su), Some(body)).await
}

/// `authors` and `posts` (open rules, `posts.author` a relation to `authors`) with one
/// of each; returns (author id, post id).
async fn authors_and_posts(s: &TestServer, su: &str) -> (String, String) {
    let (st, authors) = s
        .call(
            "POST",
            "/api/collections",
            Some(su),
            Some(json!({"name": "authors", "listRule": "", "viewRule": "",
                "fields": [{"name": "name", "type": "text"}]})),
        )
        .await;
    assert_eq!(st, 200, "{authors}");
    let (st, posts) = s
        .call(
            "POST",
            "/api/collections",
            Some(su),
            Some(json!({"name": "posts", "listRule": "", "viewRule": "",
                "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "author", "type": "relation", "collectionId": authors["id"], "maxSelect": 1}
                ]})),
        )
        .await;
    assert_eq!(st, 200, "{posts}");
    let author = create(s, su, "authors", json!({"name": "Ada"})).await;
    let post = create(s, su, "posts", json!({"title": "one", "author": author})).await;
    (author, post)
}

#[tokio::test]
async fn view_and_list_answer_304_when_if_none_match_names_their_tag() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (_, post) = authors_and_posts(&s, &su).await;
    let view = format!("/api/collections/posts/records/{post}");
    // The hot path (no query, anonymous), the router (a query) and a list.
    for path in [
        view.clone(),
        format!("{view}?expand=author"),
        "/api/collections/posts/records".to_string(),
        "/api/collections/posts/records?expand=author&sort=-title".to_string(),
    ] {
        let (st, h, body) = get(&s, &path, None, None).await;
        assert_eq!(st, 200, "{path}: {body}");
        assert_eq!(header(&h, "cache-control"), "private, no-cache", "{path}");
        assert_eq!(header(&h, "content-type"), "application/json", "{path}");
        let tag = etag(&h);
        // The same answer again: the same tag.
        let (_, again, _) = get(&s, &path, None, None).await;
        assert_eq!(etag(&again), tag, "{path}");
        let weak = format!("W/{tag}");
        let listed = format!("\"other\", {tag}");
        for condition in [tag.as_str(), weak.as_str(), listed.as_str(), "*"] {
            let (st, h304, body) = get(&s, &path, None, Some(condition)).await;
            assert_eq!(st, 304, "{path} with {condition}");
            assert_eq!(body, "", "{path}: a 304 has no body");
            assert_eq!(etag(&h304), tag, "{path}: a 304 repeats the tag");
            assert_eq!(header(&h304, "cache-control"), "private, no-cache");
        }
        for condition in ["\"other\"", "W/\"other\", \"more\"", "garbage"] {
            let (st, _, body) = get(&s, &path, None, Some(condition)).await;
            assert_eq!(st, 200, "{path} with {condition}");
            assert!(!body.is_empty());
        }
    }
    // Errors carry no tag.
    let (st, h, _) = get(&s, "/api/collections/posts/records/nope", None, Some("*")).await;
    assert_eq!(st, 404);
    assert_eq!(header(&h, "etag"), "");
    // 4 paths × 4 matching and 3 stale conditions.
    let metrics = s.metrics_text().await;
    for (result, n) in [("not_modified", 16), ("modified", 12)] {
        let line = format!("basalt_records_revalidations_total{{result=\"{result}\"}} {n}");
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn the_tag_changes_with_the_record_and_with_an_expanded_relation() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (author, post) = authors_and_posts(&s, &su).await;
    let view = format!("/api/collections/posts/records/{post}");
    let expanded = format!("{view}?expand=author");
    let list = "/api/collections/posts/records?expand=author";
    let tag_of = |path: String| {
        let s = &s;
        async move { etag(&get(s, &path, None, None).await.1) }
    };
    let (plain0, expanded0, list0) = (
        tag_of(view.clone()).await,
        tag_of(expanded.clone()).await,
        tag_of(list.into()).await,
    );
    assert_ne!(plain0, expanded0);

    // Only the expanded author changes: the plain view keeps its tag, the others not.
    let (st, r) = patch(
        &s,
        &su,
        &format!("/api/collections/authors/records/{author}"),
        json!({"name": "Grace"}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(tag_of(view.clone()).await, plain0);
    let expanded1 = tag_of(expanded.clone()).await;
    assert_ne!(expanded1, expanded0);
    assert_ne!(tag_of(list.into()).await, list0);
    let (st, _, body) = get(&s, &expanded, None, Some(&expanded0)).await;
    assert_eq!(st, 200, "an old tag revalidates to the new answer");
    assert!(body.contains("Grace"), "{body}");

    // The record itself changes: every tag moves.
    let (st, r) = patch(&s, &su, &view, json!({"title": "two"})).await;
    assert_eq!(st, 200, "{r}");
    let plain2 = tag_of(view.clone()).await;
    assert_ne!(plain2, plain0);
    assert_ne!(tag_of(expanded.clone()).await, expanded1);
    let (st, _, _) = get(&s, &view, None, Some(&plain0)).await;
    assert_eq!(st, 200);
    let (st, _, _) = get(&s, &view, None, Some(&plain2)).await;
    assert_eq!(st, 304);
}

#[tokio::test]
async fn another_user_whose_answer_differs_gets_no_304() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    // Anyone signed in may view users; an address shows to its owner only.
    let (st, r) = patch(
        &s,
        &su,
        "/api/collections/users",
        json!({"viewRule": "@request.auth.id != ''", "listRule": "@request.auth.id != ''"}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let mut ids = vec![];
    for email in ["a@example.com", "b@example.com"] {
        ids.push(
            create(
                &s,
                &su,
                "users",
                json!({"email": email, "password": "password123", "passwordConfirm": "password123"}),
            )
            .await,
        );
    }
    let a = s.token("users", "a@example.com", "password123").await;
    let b = s.token("users", "b@example.com", "password123").await;
    for path in [
        format!("/api/collections/users/records/{}", ids[0]),
        "/api/collections/users/records?sort=email".to_string(),
    ] {
        let (st, h, body) = get(&s, &path, Some(&a), None).await;
        assert_eq!(st, 200, "{body}");
        assert!(body.contains("a@example.com"), "{body}");
        let tag_a = etag(&h);
        let (st, _, _) = get(&s, &path, Some(&a), Some(&tag_a)).await;
        assert_eq!(st, 304, "{path}: A's own tag");
        let (st, hb, body) = get(&s, &path, Some(&b), Some(&tag_a)).await;
        assert_eq!(st, 200, "{path}: B's answer differs from A's");
        assert!(!body.contains("a@example.com"), "{body}");
        assert_ne!(etag(&hb), tag_a);
        let (st, _, _) = get(&s, &path, None, Some(&tag_a)).await;
        assert_ne!(st, 304, "{path}: anonymous gets no 304 either");
    }
}

/// Checks the `Cache-Control` (and `Vary`) of `collection`'s view (plain and expanded,
/// record `post`) and list answers and of their 304s.
async fn check(s: &TestServer, post: &str, collection: &str, want: &str) {
    let view = format!("/api/collections/{collection}/records/{post}");
    let mut paths = vec![format!("/api/collections/{collection}/records")];
    if collection != "authors" {
        paths.push(view.clone());
        paths.push(format!("{view}?expand=author"));
    }
    for path in paths {
        let (st, h, body) = get(s, &path, None, None).await;
        assert_eq!(st, 200, "{path}: {body}");
        assert_eq!(header(&h, "cache-control"), want, "{path}");
        let reusable = want.contains("max-age");
        assert_eq!(
            header(&h, "vary").contains("authorization"),
            reusable,
            "{path}"
        );
        let (st, h, _) = get(s, &path, None, Some(&etag(&h))).await;
        assert_eq!(st, 304, "{path}");
        assert_eq!(header(&h, "cache-control"), want, "{path}: 304");
    }
}

#[tokio::test]
async fn cache_control_is_set_per_collection_in_the_settings() {
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (_, post) = authors_and_posts(&s, &su).await;
    let (st, r) = patch(
        &s,
        &su,
        "/api/settings",
        json!({"recordCaching": {"posts": {"cacheControl": "Private,  max-age=60"}}}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        r["recordCaching"],
        json!({"posts": {"cacheControl": "private, max-age=60"}}),
        "saved normalised"
    );
    check(&s, &post, "posts", "private, max-age=60").await;
    check(&s, &post, "authors", "private, no-cache").await;

    // Kept across a restart, and followed through a rename.
    s.restart().await;
    let su = s.superuser_token().await;
    check(&s, &post, "posts", "private, max-age=60").await;
    let (st, r) = patch(
        &s,
        &su,
        "/api/collections/posts",
        json!({"name": "articles"}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let (_, settings) = s.call("GET", "/api/settings", Some(&su), None).await;
    assert_eq!(
        settings["recordCaching"],
        json!({"articles": {"cacheControl": "private, max-age=60"}})
    );
    check(&s, &post, "articles", "private, max-age=60").await;

    // `null` takes an entry out; the answers go back to the default.
    let (st, r) = patch(
        &s,
        &su,
        "/api/settings",
        json!({"recordCaching": {"articles": null}}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["recordCaching"], json!({}));
    check(&s, &post, "articles", "private, no-cache").await;

    // A deleted collection takes its entry with it.
    let (st, r) = patch(
        &s,
        &su,
        "/api/settings",
        json!({"recordCaching": {"authors": {"cacheControl": "no-store"}}}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    check(&s, &post, "authors", "no-store").await;
    let (st, _) = s
        .call("DELETE", "/api/collections/articles", Some(&su), None)
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .call("DELETE", "/api/collections/authors", Some(&su), None)
        .await;
    assert_eq!(st, 204);
    let (_, settings) = s.call("GET", "/api/settings", Some(&su), None).await;
    assert_eq!(settings["recordCaching"], json!({}));
}

#[tokio::test]
async fn bad_record_caching_settings_are_refused_naming_them() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    authors_and_posts(&s, &su).await;
    let cases = [
        (
            json!({"nope": {"cacheControl": "private"}}),
            json!(["nope"]),
        ),
        (
            json!({"Posts": {"cacheControl": "private"}}),
            json!(["Posts"]),
        ),
        (
            json!({"posts": {"cacheControl": "public, max-age=60"}}),
            json!(["posts", "cacheControl"]),
        ),
        (
            json!({"posts": {"cacheControl": "max-age=60"}}),
            json!(["posts", "cacheControl"]),
        ),
        (
            json!({"posts": {"cacheControl": "private, max-age=soon"}}),
            json!(["posts", "cacheControl"]),
        ),
        (
            json!({"posts": {"cacheControl": 60}}),
            json!(["posts", "cacheControl"]),
        ),
        (json!({"posts": {"ttl": 60}}), json!(["posts", "ttl"])),
        (json!({"posts": "private"}), json!(["posts"])),
        (json!("private"), json!([])),
    ];
    for (section, path) in cases {
        let (st, r) = patch(&s, &su, "/api/settings", json!({"recordCaching": section})).await;
        assert_eq!(st, 400, "{section}: {r}");
        let mut at = &r["data"]["recordCaching"];
        for key in path.as_array().expect("path") {
            at = &at[key.as_str().expect("key")];
        }
        assert_eq!(at["code"], "validation_invalid_value", "{section}: {r}");
        assert!(at["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
    }
    let (_, settings) = s.call("GET", "/api/settings", Some(&su), None).await;
    assert!(
        settings.get("recordCaching").is_none(),
        "nothing saved: {settings}"
    );
    // Only superusers change it.
    let (st, _) = s
        .call(
            "PATCH",
            "/api/settings",
            None,
            Some(json!({"recordCaching": {"posts": {"cacheControl": "private"}}})),
        )
        .await;
    assert_eq!(st, 401);
}
