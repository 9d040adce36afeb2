//! Compression through the edge against a real origin: gzip, brotli and zstd bodies decoded
//! by independent decoders equal the original; q-values pick the encoding; ranges, small
//! bodies, `no-transform`, HEAD and already-encoded responses are left alone; a cached
//! identity body is compressed per client.

use std::io::Read;

use crate::support::cache_origin::*;

fn text() -> String {
    (0..400)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog\n"))
        .collect()
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("brotli");
        }
        "zstd" => out = zstd::stream::decode_all(body).expect("zstd"),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

async fn compressing_edge(o: &Origin, route_extra: &str) -> (basalt_edge::Edge, String) {
    let (edge, addr) = edge(&config(o.addr, "", route_extra)).await;
    (edge, format!("http://{addr}"))
}

fn header<'a>(g: &'a Got, name: &str) -> &'a str {
    g.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn each_encoding_decodes_to_the_original() {
    let o = origin().await;
    let original = text();
    o.set(
        "/t",
        script(
            &[
                ("content-type", "text/plain; charset=utf-8"),
                ("etag", "\"abc\""),
            ],
            &original,
        ),
    );
    let (_edge, base) = compressing_edge(&o, "compress = { min_size = 1024 }").await;
    let c = client();
    for enc in ["gzip", "br", "zstd"] {
        let g = get(&c, &format!("{base}/t"), &[("accept-encoding", enc)]).await;
        assert_eq!(g.status, 200);
        assert_eq!(header(&g, "content-encoding"), enc);
        assert!(
            header(&g, "vary")
                .to_ascii_lowercase()
                .contains("accept-encoding")
        );
        assert_eq!(header(&g, "etag"), "W/\"abc\"");
        assert!(
            g.body.len() < original.len() / 3,
            "{enc}: {} bytes",
            g.body.len()
        );
        assert_eq!(decode(enc, &g.body), original.as_bytes(), "{enc}");
    }
}

#[tokio::test]
async fn q_values_choose_the_encoding() {
    let o = origin().await;
    o.set(
        "/t",
        script(&[("content-type", "application/json")], &text()),
    );
    let (_edge, base) = compressing_edge(&o, "compress = {}").await;
    let c = client();
    for (accept, want) in [
        ("gzip;q=0.5, br;q=0.9", "br"),
        ("br;q=0, gzip", "gzip"),
        ("zstd, gzip;q=0.8", "zstd"),
        ("gzip, br, zstd", "br"),
        ("*;q=0.1, br;q=0, zstd;q=0", "gzip"),
        ("identity", ""),
        ("deflate", ""),
    ] {
        let g = get(&c, &format!("{base}/t"), &[("accept-encoding", accept)]).await;
        assert_eq!(header(&g, "content-encoding"), want, "{accept}");
        if want.is_empty() {
            assert_eq!(g.body.len(), text().len());
        } else {
            assert_eq!(decode(want, &g.body), text().as_bytes());
        }
    }
    // No Accept-Encoding at all: identity.
    let g = get(&c, &format!("{base}/t"), &[]).await;
    assert_eq!(header(&g, "content-encoding"), "");
}

#[tokio::test]
async fn responses_that_must_stay_as_they_are() {
    let o = origin().await;
    let t = text();
    o.set("/small", script(&[("content-type", "text/plain")], "tiny"));
    o.set(
        "/notransform",
        script(
            &[
                ("content-type", "text/plain"),
                ("cache-control", "no-transform"),
            ],
            &t,
        ),
    );
    o.set(
        "/encoded",
        script(
            &[("content-type", "text/plain"), ("content-encoding", "gzip")],
            &t,
        ),
    );
    o.set("/image", script(&[("content-type", "image/png")], &t));
    o.set(
        "/events",
        script(&[("content-type", "text/event-stream")], &t),
    );
    o.set("/range", script(&[("content-type", "text/plain")], &t));
    let (_edge, base) = compressing_edge(&o, "compress = {}").await;
    let c = client();
    let ae = [("accept-encoding", "gzip, br, zstd")];
    for path in ["/small", "/notransform", "/image", "/events"] {
        let g = get(&c, &format!("{base}{path}"), &ae).await;
        assert_eq!(header(&g, "content-encoding"), "", "{path}");
    }
    // Already encoded upstream: passed through untouched.
    let g = get(&c, &format!("{base}/encoded"), &ae).await;
    assert_eq!(header(&g, "content-encoding"), "gzip");
    assert_eq!(&g.body[..], t.as_bytes());
    // A range answer (206) is never compressed.
    let g = get(
        &c,
        &format!("{base}/range"),
        &[ae[0], ("range", "bytes=0-9")],
    )
    .await;
    assert_eq!((g.status, header(&g, "content-encoding")), (206, ""));
    assert_eq!(&g.body[..], &t.as_bytes()[..10]);
    // HEAD: no encoding either.
    let r = c
        .head(format!("{base}/range"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("head");
    assert!(r.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn a_cached_identity_body_is_compressed_per_client() {
    let o = origin().await;
    let t = text();
    o.set(
        "/c",
        script(
            &[
                ("content-type", "text/css"),
                ("cache-control", "max-age=60"),
            ],
            &t,
        ),
    );
    let (_edge, base) =
        compressing_edge(&o, "cache = { zone = \"z\" }\ncompress = { level = 9 }").await;
    let c = client();
    for enc in ["gzip", "br", "zstd", "gzip"] {
        let g = get(&c, &format!("{base}/c"), &[("accept-encoding", enc)]).await;
        assert_eq!(header(&g, "content-encoding"), enc);
        assert_eq!(decode(enc, &g.body), t.as_bytes());
    }
    let g = get(&c, &format!("{base}/c"), &[]).await;
    assert_eq!((g.x_cache.as_str(), g.body.len()), ("HIT", t.len()));
    assert_eq!(o.hits("/c"), 1);
}

#[tokio::test]
async fn api_responses_are_compressed_too() {
    let api = tower::util::BoxCloneSyncService::new(tower::service_fn(
        |_req: http::Request<basalt_edge::Body>| async {
            let mut r = http::Response::new(basalt_edge::body::full(text()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok::<_, std::convert::Infallible>(r)
        },
    ));
    let toml = "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n[[edge.routes]]\napi = true\ncompress = { encodings = [\"gzip\"] }\n";
    let cfg = edge_config::parse(toml).expect("config");
    let edge = basalt_edge::Edge::start(cfg, Some(api), None)
        .await
        .expect("edge");
    let addr = edge.local_addrs()[0];
    let g = get(
        &client(),
        &format!("http://{addr}/api/x"),
        &[("accept-encoding", "br, gzip;q=0.5")],
    )
    .await;
    assert_eq!(header(&g, "content-encoding"), "gzip");
    assert_eq!(decode("gzip", &g.body), text().as_bytes());
}
