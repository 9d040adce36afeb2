//! HTTP caching against a real scripted origin: fresh hits, expiry and revalidation (304),
//! Vary, what is never stored, stale-while-revalidate, stale-if-error, the cache lock,
//! invalidation by unsafe methods, purge by URL and tag, and reload validation.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::cache_origin::*;

const CACHED: &str = "cache = { zone = \"z\" }";

async fn cached_edge(o: &Origin) -> (basalt_edge::Edge, String) {
    let (edge, addr) = edge(&config(o.addr, "", CACHED)).await;
    (edge, format!("http://{addr}"))
}

/// Polls until `f` holds (bounded: 5 s).
async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn a_fresh_response_is_served_from_the_cache() {
    let o = origin().await;
    o.set("/a", script(&[("cache-control", "max-age=60")], "alpha"));
    let (_edge, base) = cached_edge(&o).await;
    let c = client();
    let first = get(&c, &format!("{base}/a"), &[]).await;
    assert_eq!((first.status, first.x_cache.as_str()), (200, "MISS"));
    assert_eq!(
        first.headers["cache-status"],
        "basalt; fwd=uri-miss; stored"
    );
    for _ in 0..5 {
        let g = get(&c, &format!("{base}/a"), &[]).await;
        assert_eq!((g.status, g.x_cache.as_str()), (200, "HIT"));
        assert_eq!(&g.body[..], b"alpha");
        assert!(g.headers.contains_key("age"));
    }
    assert_eq!(o.hits("/a"), 1);
    // HEAD is answered from the stored GET.
    let r = c.head(format!("{base}/a")).send().await.expect("head");
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.headers()["content-length"], "5");
    assert!(r.bytes().await.expect("body").is_empty());
    assert_eq!(o.hits("/a"), 1);
    // only-if-cached: a stored fresh response, or a 504 without asking the origin.
    let oic = [("cache-control", "only-if-cached")];
    assert_eq!(get(&c, &format!("{base}/a"), &oic).await.x_cache, "HIT");
    assert_eq!(get(&c, &format!("{base}/never"), &oic).await.status, 504);
    assert_eq!(o.hits("/never"), 0);
    // A different query string is a different URL.
    get(&c, &format!("{base}/a?x=1"), &[]).await;
    assert_eq!(o.hits("/a"), 2);
}

#[tokio::test]
async fn an_expired_entry_is_revalidated_with_its_etag() {
    let o = origin().await;
    o.set(
        "/r",
        script(
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
            "body-{version}",
        ),
    );
    let (edge, base) = cached_edge(&o).await;
    let c = client();
    assert_eq!(get(&c, &format!("{base}/r"), &[]).await.x_cache, "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The origin's body would differ now, but a 304 keeps the stored one.
    o.state.version.store(7, Ordering::SeqCst);
    let g = get(&c, &format!("{base}/r"), &[]).await;
    assert_eq!((g.status, g.x_cache.as_str()), (200, "REVALIDATED"));
    assert_eq!(&g.body[..], b"body-0");
    assert_eq!(o.state.not_modified.load(Ordering::SeqCst), 1);
    assert!(
        o.state
            .seen_if_none_match
            .lock()
            .expect("lock")
            .iter()
            .any(|v| v.contains("\"v1\""))
    );
    // Refreshed: fresh again without asking the origin.
    let g = get(&c, &format!("{base}/r"), &[]).await;
    assert_eq!(g.x_cache, "HIT");
    assert_eq!(o.hits("/r"), 2);
    // A client's own matching validator gets a 304 from the cache.
    let g = get(&c, &format!("{base}/r"), &[("if-none-match", "\"v1\"")]).await;
    assert_eq!((g.status, g.x_cache.as_str()), (304, "HIT"));
    assert_eq!(o.hits("/r"), 2);
    let series = "basalt_edge_cache_revalidations_total{outcome=\"not_modified\",zone=\"z\"}";
    assert_eq!(metric(&edge, series).await, 1.0);
    let series = "basalt_edge_cache_requests_total{result=\"revalidated\",zone=\"z\"}";
    assert_eq!(metric(&edge, series).await, 1.0);
}

#[tokio::test]
async fn vary_keeps_one_entry_per_header_value() {
    let o = origin().await;
    o.set(
        "/v",
        script(
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
            "lang={lang}",
        ),
    );
    let (_edge, base) = cached_edge(&o).await;
    let c = client();
    let url = format!("{base}/v");
    for _ in 0..3 {
        for lang in ["fr", "en"] {
            let g = get(&c, &url, &[("accept-language", lang)]).await;
            assert_eq!(String::from_utf8_lossy(&g.body), format!("lang={lang}"));
        }
    }
    assert_eq!(o.hits("/v"), 2);
    let g = get(&c, &url, &[("accept-language", "de")]).await;
    assert_eq!((g.x_cache.as_str(), &g.body[..]), ("MISS", &b"lang=de"[..]));
    assert_eq!(o.hits("/v"), 3);
}

#[tokio::test]
async fn private_and_personal_responses_are_never_stored() {
    let o = origin().await;
    o.set(
        "/nostore",
        script(&[("cache-control", "no-store, max-age=60")], "x"),
    );
    o.set(
        "/private",
        script(&[("cache-control", "private, max-age=60")], "x"),
    );
    o.set(
        "/cookie",
        script(
            &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
            "x",
        ),
    );
    o.set("/auth", script(&[("cache-control", "max-age=60")], "x"));
    o.set(
        "/authpublic",
        script(&[("cache-control", "public, max-age=60")], "x"),
    );
    o.set(
        "/nocache",
        script(&[("cache-control", "no-cache"), ("etag", "\"n\"")], "x"),
    );
    let (_edge, base) = cached_edge(&o).await;
    let c = client();
    for path in ["/nostore", "/private", "/cookie"] {
        for _ in 0..2 {
            let g = get(&c, &format!("{base}{path}"), &[]).await;
            assert_eq!(g.x_cache, "MISS", "{path}");
        }
        assert_eq!(o.hits(path), 2, "{path}");
    }
    for _ in 0..2 {
        get(
            &c,
            &format!("{base}/auth"),
            &[("authorization", "Bearer t")],
        )
        .await;
        get(
            &c,
            &format!("{base}/authpublic"),
            &[("authorization", "Bearer t")],
        )
        .await;
    }
    assert_eq!(
        o.hits("/auth"),
        2,
        "authorised without public is not stored"
    );
    assert_eq!(
        o.hits("/authpublic"),
        1,
        "public allows storing an authorised response"
    );
    // no-cache: stored, but every use asks the origin first (here: 304).
    for _ in 0..3 {
        assert_eq!(get(&c, &format!("{base}/nocache"), &[]).await.status, 200);
    }
    assert_eq!(o.hits("/nocache"), 3);
    assert_eq!(o.state.not_modified.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let o = origin().await;
    o.set(
        "/s",
        script(
            &[("cache-control", "max-age=1, stale-while-revalidate=30")],
            "v{version}",
        ),
    );
    o.state.delay_ms.store(0, Ordering::SeqCst);
    let (edge, base) = cached_edge(&o).await;
    let c = client();
    let url = format!("{base}/s");
    assert_eq!(&get(&c, &url, &[]).await.body[..], b"v0");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    o.state.version.store(1, Ordering::SeqCst);
    // The refresh is slow, so every request below finds the entry stale.
    o.state.delay_ms.store(1000, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move { get(&c, &url, &[]).await }));
    }
    for t in tasks {
        let g = t.await.expect("task");
        assert_eq!((g.x_cache.as_str(), &g.body[..]), ("STALE", &b"v0"[..]));
    }
    eventually(|| o.hits("/s") == 2).await;
    // Until the refresh lands the entry is served stale; then it is fresh with the new body.
    let mut stale_after = 0;
    for _ in 0..50 {
        let g = get(&c, &url, &[]).await;
        if g.x_cache == "HIT" {
            assert_eq!(&g.body[..], b"v1");
            break;
        }
        assert_eq!((g.x_cache.as_str(), &g.body[..]), ("STALE", &b"v0"[..]));
        stale_after += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(o.hits("/s"), 2, "one background revalidation");
    let series = "basalt_edge_cache_requests_total{result=\"stale\",zone=\"z\"}";
    assert_eq!(metric(&edge, series).await, 10.0 + f64::from(stale_after));
    let series = "basalt_edge_cache_requests_total{result=\"hit\",zone=\"z\"}";
    assert_eq!(metric(&edge, series).await, 1.0);
}

#[tokio::test]
async fn stale_if_error_serves_the_stored_response_when_the_origin_fails() {
    let o = origin().await;
    o.set(
        "/e",
        script(&[("cache-control", "max-age=1, stale-if-error=60")], "kept"),
    );
    o.set("/plain", script(&[("cache-control", "max-age=1")], "gone"));
    o.set(
        "/strict",
        script(
            &[(
                "cache-control",
                "max-age=1, stale-if-error=60, must-revalidate",
            )],
            "strict",
        ),
    );
    let (edge, base) = cached_edge(&o).await;
    let c = client();
    get(&c, &format!("{base}/e"), &[]).await;
    get(&c, &format!("{base}/plain"), &[]).await;
    get(&c, &format!("{base}/strict"), &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    o.state.fail_status.store(503, Ordering::SeqCst);
    let g = get(&c, &format!("{base}/e"), &[]).await;
    assert_eq!((g.status, g.x_cache.as_str()), (200, "STALE"));
    assert_eq!(&g.body[..], b"kept");
    // Without stale-if-error the failure reaches the client.
    assert_eq!(get(&c, &format!("{base}/plain"), &[]).await.status, 503);
    // must-revalidate wins over stale-if-error.
    assert_eq!(get(&c, &format!("{base}/strict"), &[]).await.status, 503);
    let series = "basalt_edge_cache_revalidations_total{outcome=\"error\",zone=\"z\"}";
    assert_eq!(metric(&edge, series).await, 3.0);
}

#[tokio::test]
async fn concurrent_cold_requests_reach_the_origin_once() {
    let o = origin().await;
    o.set("/cold", script(&[("cache-control", "max-age=60")], "once"));
    o.state.delay_ms.store(300, Ordering::SeqCst);
    let (_edge, base) = cached_edge(&o).await;
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (c, url) = (c.clone(), format!("{base}/cold"));
        tasks.push(tokio::spawn(async move { get(&c, &url, &[]).await }));
    }
    let mut hits = 0;
    for t in tasks {
        let g = t.await.expect("task");
        assert_eq!((g.status, &g.body[..]), (200, &b"once"[..]));
        hits += usize::from(g.x_cache == "HIT");
    }
    assert_eq!(o.hits("/cold"), 1);
    assert_eq!(hits, 49);
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_url() {
    let o = origin().await;
    o.set("/u", script(&[("cache-control", "max-age=60")], "u"));
    let (_edge, base) = cached_edge(&o).await;
    let c = client();
    get(&c, &format!("{base}/u"), &[]).await;
    assert_eq!(get(&c, &format!("{base}/u"), &[]).await.x_cache, "HIT");
    let r = c
        .post(format!("{base}/u"))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(r.headers()["x-cache"], "BYPASS");
    assert_eq!(get(&c, &format!("{base}/u"), &[]).await.x_cache, "MISS");
    // Ranges bypass the cache.
    let g = get(&c, &format!("{base}/u"), &[("range", "bytes=0-0")]).await;
    assert_eq!(g.x_cache, "BYPASS");
}

#[tokio::test]
async fn purge_by_url_and_by_tag() {
    let o = origin().await;
    o.set(
        "/p1",
        script(
            &[("cache-control", "max-age=60"), ("cache-tag", "t1, shared")],
            "1",
        ),
    );
    o.set(
        "/p2",
        script(
            &[("cache-control", "max-age=60"), ("cache-tag", "shared")],
            "2",
        ),
    );
    let (edge, base) = cached_edge(&o).await;
    let admin = format!("http://{}", edge.admin_addr().expect("admin"));
    let c = client();
    let purge = |body: &'static str| {
        let (c, admin) = (c.clone(), admin.clone());
        async move {
            let r = c
                .post(format!("{admin}/cache/purge"))
                .body(body)
                .send()
                .await
                .expect("purge");
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.expect("json"))
        }
    };
    for p in ["/p1", "/p2"] {
        get(&c, &format!("{base}{p}"), &[]).await;
        assert_eq!(get(&c, &format!("{base}{p}"), &[]).await.x_cache, "HIT");
    }
    let (s, v) = purge(r#"{"url": "http://127.0.0.1/p1"}"#).await;
    assert_eq!((s, v["purged"].as_u64()), (200, Some(1)));
    assert_eq!(get(&c, &format!("{base}/p1"), &[]).await.x_cache, "MISS");
    assert_eq!(get(&c, &format!("{base}/p2"), &[]).await.x_cache, "HIT");
    // A URL with a port (and any case of scheme and host), given as `key`, finds it too.
    get(&c, &format!("{base}/p1"), &[]).await;
    let (s, v) = purge(r#"{"key": "HTTP://127.0.0.1:1/p1"}"#).await;
    assert_eq!((s, v["purged"].as_u64()), (200, Some(1)));
    assert_eq!(get(&c, &format!("{base}/p1"), &[]).await.x_cache, "MISS");
    let (s, v) = purge(r#"{"tag": "shared", "zone": "z"}"#).await;
    assert_eq!((s, v["purged"].as_u64()), (200, Some(2)));
    assert_eq!(get(&c, &format!("{base}/p1"), &[]).await.x_cache, "MISS");
    assert_eq!(get(&c, &format!("{base}/p2"), &[]).await.x_cache, "MISS");
    // Bad purge bodies get a 4xx in the error shape.
    let (s, v) = purge(r#"{"url": "x", "tag": "y"}"#).await;
    assert_eq!(s, 400);
    assert_eq!(v["status"], 400);
    assert_eq!(purge("not json").await.0, 400);
    assert_eq!(purge(r#"{"tag": "t", "zone": "nope"}"#).await.0, 404);
    assert_eq!(o.hits("/p1"), 4);
}

#[tokio::test]
async fn bodies_over_max_object_stream_through_uncached() {
    let o = origin().await;
    let big = "b".repeat(200_000);
    o.set("/big", script(&[("cache-control", "max-age=60")], &big));
    let (_edge, addr) = edge(&config(o.addr, "max_object = \"64KB\"", CACHED)).await;
    let c = client();
    for _ in 0..2 {
        let g = get(&c, &format!("http://{addr}/big"), &[]).await;
        assert_eq!(g.body.len(), 200_000);
        assert_eq!(g.x_cache, "MISS");
    }
    assert_eq!(o.hits("/big"), 2);
}

#[tokio::test]
async fn a_large_streamed_body_is_passed_on_before_the_origin_finishes() {
    let o = origin().await;
    let (_edge, addr) = edge(&config(o.addr, "max_object = \"64KB\"", CACHED)).await;
    let c = client();
    for _ in 0..2 {
        let mut r = c
            .get(format!("http://{addr}/stream"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.headers()["x-cache"], "MISS");
        // The origin holds its second half back until the client saw the first: an edge
        // buffering the whole body would never get here.
        let mut got = 0;
        while got < 100_000 {
            let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
                .await
                .expect("first half arrives while the origin waits")
                .expect("chunk")
                .expect("not the end");
            got += chunk.len();
        }
        o.state.stream_gate.notify_one();
        while let Some(chunk) = r.chunk().await.expect("chunk") {
            got += chunk.len();
        }
        assert_eq!(got, 200_000);
    }
    assert_eq!(o.hits("/stream"), 2);
}

#[tokio::test]
async fn invalid_cache_settings_are_rejected_and_the_old_ones_keep_serving() {
    let o = origin().await;
    o.set("/k", script(&[("cache-control", "max-age=60")], "k"));
    let (edge, base) = cached_edge(&o).await;
    let c = client();
    get(&c, &format!("{base}/k"), &[]).await;
    for (zone, route) in [
        ("memory_max = \"lots\"", CACHED),
        ("max_object = \"2GB\"", CACHED),
        ("tag_header = \"bad header\"", CACHED),
        ("", "cache = { zone = \"missing\" }"),
        ("", "compress = { level = 12 }"),
        ("", "compress = { encodings = [\"lzma\"] }"),
    ] {
        let cfg = edge_config::parse(&config(o.addr, zone, route)).expect("toml");
        let err = edge.apply(cfg).await.expect_err(zone).to_string();
        assert!(err.contains("invalid edge configuration"), "{err}");
    }
    assert!(edge_config::parse(&config(o.addr, "bogus = 1", CACHED)).is_err());
    // The running zone kept its entry, and so does a valid reload leaving the zone as it was.
    assert_eq!(get(&c, &format!("{base}/k"), &[]).await.x_cache, "HIT");
    let same = edge_config::parse(&config(o.addr, "", CACHED)).expect("toml");
    edge.apply(same).await.expect("valid reload");
    assert_eq!(get(&c, &format!("{base}/k"), &[]).await.x_cache, "HIT");
    assert_eq!(o.hits("/k"), 1);
}
