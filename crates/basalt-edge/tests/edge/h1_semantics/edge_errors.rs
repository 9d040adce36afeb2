//! The edge's own refusals (404 no route, 429 rate limit, 413 body too large) on a
//! keep-alive connection: the next request on it is served.

use super::*;

/// Routes `/open` and `/limited` (rate limited to one request a minute per client) to
/// `up`, nothing else; request bodies up to 100 bytes.
fn guarded_routes(up: SocketAddr) -> String {
    format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n\
         [[edge.routes]]\nname = \"open\"\npath_prefix = \"/open\"\npool = \"p\"\n\
         [[edge.routes]]\nname = \"limited\"\npath_prefix = \"/limited\"\npool = \"p\"\n\
         [edge.pools.p]\ntargets = [{{ address = \"{up}\" }}]\n\
         [edge.limits]\nmax_body_bytes = 100\n\
         [[edge.rate_limits]]\nname = \"one\"\nburst = 1\nperiod_ms = 60000\nroutes = [\"limited\"]\n"
    )
}

#[tokio::test]
async fn the_edges_own_404_keeps_the_connection() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge(&guarded_routes(up.addr)).await;
    let mut c = Wire::connect(addr).await;
    for _ in 0..2 {
        let r = c.get("/nowhere").await;
        assert_pocketbase_error(&r, 404);
        answers_next(&mut c, "/open", "/open", "after a 404").await;
    }
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn the_edges_own_429_keeps_the_connection() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge(&guarded_routes(up.addr)).await;
    let mut c = Wire::connect(addr).await;
    let first = c.get("/limited").await;
    assert_eq!(
        (first.status(), first.body_text().as_str()),
        (200, "/limited")
    );
    for _ in 0..2 {
        let r = c.get("/limited").await;
        assert_pocketbase_error(&r, 429);
        assert!(r.head.has("retry-after"), "{:?}", r.head);
        answers_next(&mut c, "/open", "/open", "after a 429").await;
    }
    assert_eq!(up.requests(), 3);
}

/// A declared length over the limit is refused before the body is read; the body the
/// client sent anyway must not be taken for the next request.
#[tokio::test]
async fn the_edges_own_413_keeps_the_connection() {
    let up = raw_upstream(echo_target).await;
    let (_edge, addr) = edge(&guarded_routes(up.addr)).await;
    let mut c = Wire::connect(addr).await;
    let body = "GET /smuggled HTTP/1.1\r\nHost: edge.test\r\n\r\n".repeat(5);
    assert!(body.len() > 100);
    c.send(
        format!(
            "POST /open HTTP/1.1\r\nHost: edge.test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    let r = c.final_response("POST").await;
    assert_pocketbase_error(&r, 413);
    answers_next(&mut c, "/open", "/open", "after a 413").await;
    assert_eq!(up.requests(), 1, "{:?}", up.seen());
}
