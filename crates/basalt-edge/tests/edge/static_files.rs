//! The static-directory action over real sockets: content types, nosniff, ETag and
//! conditional requests, a byte range, precompressed siblings, SPA fallback, traversal.

use crate::support::upstreams::*;

async fn site() -> (tempfile::TempDir, basalt_edge::Edge, std::net::SocketAddr) {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("site");
    std::fs::create_dir_all(root.join("assets")).expect("mkdir");
    std::fs::write(root.join("index.html"), "<h1>shell</h1>").expect("write");
    std::fs::write(root.join("assets/app.js"), "console.log('hello world')").expect("write");
    std::fs::write(root.join("assets/app.js.br"), "BROTLI").expect("write");
    std::fs::write(root.join("assets/app.js.gz"), "GZIP").expect("write");
    std::fs::write(root.join("assets/data.bin"), "0123456789").expect("write");
    std::fs::write(dir.path().join("secret.txt"), "top secret").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt"))
        .expect("symlink");
    let cfg = format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n[[edge.routes]]\npath_prefix = \"/\"\nstatic = {{ root = \"{}\", spa = true, cache_control = \"public, max-age=60\" }}\n",
        root.display()
    );
    let (edge, addr) = edge(&cfg).await;
    (dir, edge, addr)
}

#[tokio::test]
async fn files_types_etags_and_conditional_requests() {
    let (_dir, _edge, addr) = site().await;
    let http = client();
    let r = http
        .get(format!("http://{addr}/assets/app.js"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "public, max-age=60");
    assert!(h.get("content-encoding").is_none());
    assert_eq!(r.text().await.expect("text"), "console.log('hello world')");
    let etag = h["etag"].to_str().expect("etag").to_string();
    let r = http
        .get(format!("http://{addr}/assets/app.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 304);
    let r = http
        .get(format!("http://{addr}/assets/app.js"))
        .header(
            "if-modified-since",
            h["last-modified"].to_str().expect("lm"),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 304);
    let r = http
        .head(format!("http://{addr}/assets/app.js"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "26");
}

#[tokio::test]
async fn ranges_and_precompressed_files() {
    let (_dir, _edge, addr) = site().await;
    let http = client();
    let r = http
        .get(format!("http://{addr}/assets/data.bin"))
        .header("range", "bytes=2-5")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-5/10");
    assert_eq!(r.text().await.expect("text"), "2345");
    let r = http
        .get(format!("http://{addr}/assets/data.bin"))
        .header("range", "bytes=50-")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10");
    for (accept, encoding, body) in [("gzip, br", "br", "BROTLI"), ("gzip", "gzip", "GZIP")] {
        let r = http
            .get(format!("http://{addr}/assets/app.js"))
            .header("accept-encoding", accept)
            .send()
            .await
            .expect("send");
        assert_eq!(r.headers()["content-encoding"], encoding);
        assert_eq!(r.headers()["vary"], "Accept-Encoding");
        assert_eq!(
            r.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(r.bytes().await.expect("bytes"), body.as_bytes());
    }
}

#[tokio::test]
async fn spa_fallback_and_missing_assets() {
    let (_dir, _edge, addr) = site().await;
    let http = client();
    let r = http
        .get(format!("http://{addr}/users/42"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.text().await.expect("text"), "<h1>shell</h1>");
    let r = http
        .get(format!("http://{addr}/missing.js"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let r = http
        .get(format!("http://{addr}/"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.text().await.expect("text"), "<h1>shell</h1>");
    let r = http
        .post(format!("http://{addr}/"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn traversal_never_leaves_the_root() {
    let (_dir, _edge, addr) = site().await;
    for path in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/link.txt",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let reply = raw(addr, req.as_bytes()).await;
        assert!(!reply.contains("top secret"), "{path}: {reply}");
        assert!(
            reply.starts_with("HTTP/1.1 400") || reply.starts_with("HTTP/1.1 404"),
            "{path}: {reply}"
        );
    }
}
