//! Realtime against the real binary: SSE framing and the subscription endpoint's answers,
//! the WebSocket protocol, slow-consumer disconnects, no events for a failed batch, commit
//! order per record, and shutdown with open streams.

use std::time::Duration;

use basalt_testkit::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const WAIT: Duration = Duration::from_secs(10);

/// One SSE event: (id, event name, data).
type Event = (String, String, String);

/// Reads an SSE response frame by frame (comment frames skipped).
struct Sse {
    res: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(s: &TestServer) -> (Sse, String) {
        let res = reqwest::Client::new()
            .get(s.url("/api/realtime"))
            .send()
            .await
            .expect("connect");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"],
            "text/event-stream; charset=UTF-8"
        );
        let mut sse = Sse {
            res,
            buf: String::new(),
        };
        let (id, name, data) = sse.next().await.expect("PB_CONNECT");
        assert_eq!(name, "PB_CONNECT");
        assert_eq!(data, format!("{{\"clientId\":\"{id}\"}}"));
        (sse, id)
    }

    /// The next event, or `None` when the stream ended or nothing came within `WAIT`.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                if frame.starts_with(':') {
                    continue;
                }
                let (mut id, mut name, mut data) = (String::new(), String::new(), String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.to_string();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = v.to_string();
                    }
                }
                return Some((id, name, data));
            }
            match tokio::time::timeout(WAIT, self.res.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }
}

async fn subscribe(s: &TestServer, client: &str, token: Option<&str>, topics: &[&str]) -> u16 {
    let (st, body) = s
        .call(
            "POST",
            "/api/realtime",
            token,
            Some(json!({"clientId": client, "subscriptions": topics})),
        )
        .await;
    assert!(st == 204 || body.is_object(), "{st} {body}");
    st
}

async fn notes(s: &TestServer, su: &str) {
    let (st, body) = s
        .call(
            "POST",
            "/api/collections",
            Some(su),
            Some(
                json!({"name": "notes", "listRule": "", "viewRule": "", "createRule": "",
                "updateRule": "",
                "fields": [{"name": "title", "type": "text", "required": true},
                           {"name": "n", "type": "number"}, {"name": "blob", "type": "editor"}]}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{body}");
}

async fn create(s: &TestServer, body: Value) -> Value {
    let (st, rec) = s
        .call("POST", "/api/collections/notes/records", None, Some(body))
        .await;
    assert_eq!(st, 200, "{rec}");
    rec
}

#[tokio::test]
async fn sse_framing_and_subscription_answers() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    notes(&s, &su).await;
    let (mut sse, id) = Sse::open(&s).await;
    assert_eq!(id.len(), 40);

    // PocketBase's answers: 400 without a client id, 404 for an unknown one.
    let (st, err) = s
        .call(
            "POST",
            "/api/realtime",
            None,
            Some(json!({"subscriptions": []})),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(err["data"]["clientId"]["code"], "validation_required");
    assert_eq!(subscribe(&s, "missing", None, &["notes/*"]).await, 404);
    let long = "x".repeat(2501);
    assert_eq!(subscribe(&s, &id, None, &[long.as_str()]).await, 400);
    assert_eq!(subscribe(&s, &id, None, &["a/b/c"]).await, 400);

    // Bound to the superuser, the client refuses another identity (or none).
    assert_eq!(subscribe(&s, &id, Some(&su), &["notes/*"]).await, 204);
    assert_eq!(subscribe(&s, &id, None, &["notes/*"]).await, 403);

    let rec = create(&s, json!({"title": "hello"})).await;
    let (eid, name, data) = sse.next().await.expect("event");
    assert_eq!((eid.as_str(), name.as_str()), (id.as_str(), "notes/*"));
    let data: Value = serde_json::from_str(&data).expect("json");
    assert_eq!(data["action"], "create");
    assert_eq!(data["record"], {
        let mut r = rec.clone();
        r.as_object_mut().map(|o| o.remove("expand"));
        r
    });

    // The client's subscription list is replaced: now only the record topic.
    let rid = rec["id"].as_str().unwrap_or_default();
    let topic = format!("notes/{rid}");
    assert_eq!(subscribe(&s, &id, Some(&su), &[topic.as_str()]).await, 204);
    create(&s, json!({"title": "not for this topic"})).await;
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/api/collections/notes/records/{rid}"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (_, name, data) = sse.next().await.expect("delete event");
    assert_eq!(name, topic);
    let data: Value = serde_json::from_str(&data).expect("json");
    assert_eq!(data["action"], "delete");
    assert_eq!(
        data["record"]["title"], "hello",
        "a delete carries the record as it was"
    );
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// The next text message as JSON (pings and pongs skipped).
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("json");
        }
    }
}

#[tokio::test]
async fn websocket_protocol() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    notes(&s, &su).await;
    let url = s.url("/api/realtime/ws").replace("http://", "ws://");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let hello = recv(&mut ws).await;
    assert_eq!(hello["type"], "connected");
    assert_eq!(hello["clientId"].as_str().map(str::len), Some(40));

    send(
        &mut ws,
        json!({"type": "subscribe", "id": 1, "topics": ["notes/*"]}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"type": "ack", "id": 1}));
    send(
        &mut ws,
        json!({"type": "subscribe", "id": 2, "topics": ["a/b/c"]}),
    )
    .await;
    let e = recv(&mut ws).await;
    assert_eq!(
        (e["type"].clone(), e["id"].clone()),
        (json!("error"), json!(2))
    );
    send(&mut ws, json!({"type": "dance", "id": 3})).await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    send(
        &mut ws,
        json!({"type": "auth", "id": 4, "token": "not-a-token"}),
    )
    .await;
    let e = recv(&mut ws).await;
    assert_eq!(
        (e["type"].clone(), e["message"].clone()),
        (json!("error"), json!("invalid or expired token"))
    );
    send(&mut ws, json!({"type": "auth", "id": 5, "token": su})).await;
    assert_eq!(recv(&mut ws).await, json!({"type": "ack", "id": 5}));

    let rec = create(&s, json!({"title": "over ws"})).await;
    let ev = recv(&mut ws).await;
    assert_eq!(ev["type"], "event");
    assert_eq!(ev["topic"], "notes/*");
    assert_eq!(ev["action"], "create");
    assert_eq!(ev["record"]["id"], rec["id"]);

    send(
        &mut ws,
        json!({"type": "unsubscribe", "id": 6, "topics": ["notes/*"]}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"type": "ack", "id": 6}));
    let rid = rec["id"].as_str().unwrap_or_default().to_string();
    send(
        &mut ws,
        json!({"type": "subscribe", "id": 7, "topics": [format!("notes/{rid}")]}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"type": "ack", "id": 7}));
    create(&s, json!({"title": "unsubscribed"})).await;
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/api/collections/notes/records/{rid}"),
            None,
            Some(json!({"title": "changed"})),
        )
        .await;
    assert_eq!(st, 200);
    let ev = recv(&mut ws).await;
    assert_eq!(
        (ev["topic"].clone(), ev["record"]["title"].clone()),
        (json!(format!("notes/{rid}")), json!("changed")),
        "the create after unsubscribing was not delivered"
    );
    ws.close(None).await.expect("close");
}

/// Reads a chunked response from a raw socket until its last chunk or EOF (bounded);
/// returns the text and whether the server closed the connection.
async fn read_to_end(sock: &mut tokio::net::TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = tokio::time::Instant::now() + limit;
    let mut eof = false;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
        if n == 0 {
            eof = true;
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.ends_with(b"\r\n0\r\n\r\n") {
            break;
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), eof)
}

/// Opens a raw SSE connection that the test then stops reading; returns it and its id.
async fn raw_subscriber(s: &TestServer) -> (tokio::net::TcpStream, String) {
    let addr = s.url("").replace("http://", "");
    let mut sock = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    sock.write_all(
        format!("GET /api/realtime HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("request");
    let mut head = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, sock.read(&mut head))
        .await
        .expect("in time")
        .expect("read");
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    let id = head
        .split("\"clientId\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("client id")
        .to_string();
    assert_eq!(subscribe(s, &id, None, &["notes/*"]).await, 204);
    (sock, id)
}

/// Sends large events (12 per batch) until a slow consumer was disconnected; returns how
/// many were sent. `fast`, when given, must receive every one of them.
async fn flood_until_disconnect(s: &TestServer, su: &str, mut fast: Option<&mut Sse>) -> usize {
    let (st, _) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(su),
            Some(json!({"batch": {"enabled": true, "maxRequests": 12}})),
        )
        .await;
    assert_eq!(st, 200);
    let blob = "x".repeat(64 * 1024);
    let mut sent = 0;
    for _ in 0..200 {
        let reqs: Vec<Value> = (0..12)
            .map(|i| {
                json!({"method": "POST", "url": "/api/collections/notes/records",
                "body": {"title": format!("t{i}"), "blob": blob}})
            })
            .collect();
        let (st, out) = s
            .call(
                "POST",
                "/api/batch",
                Some(su),
                Some(json!({"requests": reqs})),
            )
            .await;
        assert_eq!(st, 200, "{out}");
        sent += 12;
        if let Some(f) = fast.as_deref_mut() {
            for _ in 0..12 {
                assert!(f.next().await.is_some(), "the fast client got every event");
            }
        }
        if metric(s, "basalt_realtime_slow_consumer_disconnects_total").await >= 1.0 {
            break;
        }
    }
    sent
}

async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = s.metrics_text().await;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_others_keep_receiving() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    notes(&s, &su).await;
    let (mut fast, fast_id) = Sse::open(&s).await;
    assert_eq!(subscribe(&s, &fast_id, None, &["notes/*"]).await, 204);
    // The slow client: a raw socket that stops reading after PB_CONNECT. Large events fill
    // the socket buffers, then its queue (256).
    let (mut slow, _) = raw_subscriber(&s).await;
    let sent = flood_until_disconnect(&s, &su, Some(&mut fast)).await;
    assert!(
        metric(&s, "basalt_realtime_slow_consumer_disconnects_total").await >= 1.0,
        "the slow client was disconnected after {sent} events"
    );
    assert!(
        metric(
            &s,
            "basalt_realtime_events_dropped_total{reason=\"slow_consumer\"}"
        )
        .await
            >= 1.0
    );
    // Reading now, it gets what was buffered, then the reason and the end of the response;
    // had its writes been blocked for the stall limit already, the server closed it instead.
    let (rest, eof) = read_to_end(&mut slow, Duration::from_secs(30)).await;
    let with_reason = rest.contains("event:PB_DISCONNECT\ndata:{\"reason\":\"slow consumer")
        && rest.ends_with("\r\n0\r\n\r\n");
    assert!(
        with_reason || eof,
        "the stream ended with the reason or was closed"
    );
    // The fast client still receives.
    create(&s, json!({"title": "after"})).await;
    let (_, _, data) = fast.next().await.expect("event after the disconnect");
    assert!(data.contains("\"title\":\"after\""));
}

/// Polls the connected-SSE-clients gauge until it equals `want` (bounded).
async fn wait_sse_clients(s: &TestServer, want: f64) -> f64 {
    let mut now = -1.0;
    for _ in 0..100 {
        now = metric(s, "basalt_realtime_clients{transport=\"sse\"}").await;
        if now == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    now
}

#[tokio::test]
async fn sse_streams_bypass_hyper_and_a_closed_peer_leaves_the_hub() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    notes(&s, &su).await;
    let addr = s.url("").replace("http://", "");
    // A complete head in one segment takes the direct path: head and PB_CONNECT arrive
    // together, chunked, and the connection is not offered for reuse.
    let mut sock = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    sock.write_all(
        format!("GET /api/realtime HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://app.test\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("request");
    let mut head = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, sock.read(&mut head))
        .await
        .expect("in time")
        .expect("read");
    let head = String::from_utf8_lossy(&head[..n]).to_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for h in [
        "content-type: text/event-stream",
        "transfer-encoding: chunked",
        "connection: close",
        "access-control-allow-origin: *",
        "event:pb_connect",
    ] {
        assert!(head.contains(h), "{h} missing in {head}");
    }
    assert_eq!(wait_sse_clients(&s, 1.0).await, 1.0);
    // The peer going away unregisters its client without any event being sent.
    drop(sock);
    assert_eq!(wait_sse_clients(&s, 0.0).await, 0.0);

    // A head split over two segments is hyper's, and still a working stream.
    let mut sock = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    sock.write_all(b"GET /api/realtime HTTP/1.1\r\nHo")
        .await
        .expect("first part");
    tokio::time::sleep(Duration::from_millis(200)).await;
    sock.write_all(format!("st: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("second part");
    let mut got = String::new();
    let mut buf = vec![0u8; 4096];
    while !got.contains("PB_CONNECT") {
        let n = tokio::time::timeout(WAIT, sock.read(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(!got.to_lowercase().contains("connection: close"), "{got}");
    assert_eq!(wait_sse_clients(&s, 1.0).await, 1.0);
    drop(sock);
    assert_eq!(wait_sse_clients(&s, 0.0).await, 0.0);
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_cut_off() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    notes(&s, &su).await;
    let (mut slow, _) = raw_subscriber(&s).await;
    flood_until_disconnect(&s, &su, None).await;
    // Its writes stay blocked past the stall limit (10 s): the server drops the connection.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (rest, eof) = read_to_end(&mut slow, Duration::from_secs(30)).await;
    assert!(eof, "the server closed the connection");
    assert!(
        !rest.ends_with("\r\n0\r\n\r\n"),
        "the response did not complete"
    );
}

#[tokio::test]
async fn a_failed_batch_publishes_nothing_and_updates_arrive_in_commit_order() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    notes(&s, &su).await;
    let (st, _) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"batch": {"enabled": true, "maxRequests": 10}})),
        )
        .await;
    assert_eq!(st, 200);
    let (mut sse, id) = Sse::open(&s).await;
    assert_eq!(subscribe(&s, &id, None, &["notes/*"]).await, 204);

    let failing = json!({"requests": [
        {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": "rolled back"}},
        {"method": "POST", "url": "/api/collections/notes/records", "body": {}}
    ]});
    let (st, _) = s.call("POST", "/api/batch", Some(&su), Some(failing)).await;
    assert_eq!(st, 400);
    let rec = create(&s, json!({"title": "counter", "n": 0})).await;
    let (_, _, data) = sse.next().await.expect("event");
    assert!(
        data.contains("\"title\":\"counter\""),
        "the first event is the later create, not the rolled-back one: {data}"
    );

    // Concurrent increments of one record: the events carry n = 1, 2, ... in order.
    let rid = rec["id"].as_str().unwrap_or_default().to_string();
    let updates = 40;
    let mut tasks = Vec::new();
    for _ in 0..updates {
        let (http, url) = (
            s.http.clone(),
            s.url(&format!("/api/collections/notes/records/{rid}")),
        );
        tasks.push(tokio::spawn(async move {
            http.patch(url)
                .json(&json!({"n+": 1}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("request"), 200);
    }
    let mut seen = Vec::new();
    for _ in 0..updates {
        let (_, _, data) = sse.next().await.expect("update event");
        let v: Value = serde_json::from_str(&data).expect("json");
        assert_eq!(v["action"], "update");
        seen.push(v["record"]["n"].as_i64().unwrap_or(-1));
    }
    assert_eq!(seen, (1..=updates).collect::<Vec<i64>>());
}

#[tokio::test]
async fn shutdown_closes_open_streams() {
    let mut s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    notes(&s, &su).await;
    let mut streams = Vec::new();
    for _ in 0..5 {
        let (sse, id) = Sse::open(&s).await;
        assert_eq!(subscribe(&s, &id, None, &["notes/*"]).await, 204);
        streams.push(sse);
    }
    let url = s.url("/api/realtime/ws").replace("http://", "ws://");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    assert!(s.terminate(), "the server exited cleanly and in time");
    for mut sse in streams {
        let (_, name, data) = sse.next().await.expect("a final event");
        assert_eq!(name, "PB_DISCONNECT");
        assert!(data.contains("shutting down"), "{data}");
        assert!(sse.next().await.is_none(), "the stream ended");
    }
    let mut close = None;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(WAIT, ws.next()).await {
        if let Message::Close(frame) = msg {
            close = frame;
            break;
        }
    }
    let frame = close.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1001);
    assert!(frame.reason.as_str().contains("shutting down"));
}

#[tokio::test]
async fn a_rule_that_errors_for_one_subscriber_skips_only_that_subscriber() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    notes(&s, &su).await;
    let (mut broken, broken_id) = Sse::open(&s).await;
    let (mut fine, fine_id) = Sse::open(&s).await;
    // The filter parses but names no field of the collection: its check fails to compile.
    let bad =
        "notes/*?options=%7B%22query%22%3A%7B%22filter%22%3A%22nosuchfield%20%3D%201%22%7D%7D";
    assert_eq!(
        subscribe(&s, &broken_id, None, &[bad, "notes/xyz"]).await,
        204
    );
    assert_eq!(subscribe(&s, &fine_id, None, &["notes/*"]).await, 204);
    create(&s, json!({"title": "one"})).await;
    let (_, name, _) = fine.next().await.expect("the other subscriber is served");
    assert_eq!(name, "notes/*");
    let before = metric(
        &s,
        "basalt_realtime_events_dropped_total{reason=\"rule_error\"}",
    )
    .await;
    assert!(before >= 1.0, "the failed check is counted");
    // The broken subscriber's other subscription still works.
    let rec = create(&s, json!({"title": "two"})).await;
    let rid = rec["id"].as_str().unwrap_or_default();
    let topic = format!("notes/{rid}");
    assert_eq!(
        subscribe(&s, &broken_id, None, &[bad, topic.as_str()]).await,
        204
    );
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/api/collections/notes/records/{rid}"),
            None,
            Some(json!({"title": "three"})),
        )
        .await;
    assert_eq!(st, 200);
    let (_, name, _) = broken.next().await.expect("the record topic is served");
    assert_eq!(name, topic);
}

#[tokio::test]
async fn shutdown_is_not_held_by_a_connection_that_never_sent_a_byte() {
    // The accept loop looks at a connection's first bytes (for direct SSE streams) before
    // hyper sees it; a client that connects and stays silent must not hold shutdown for
    // the whole grace period (set beyond terminate's own bound here).
    let mut s = TestServer::start_with_env(BIN, &[("BASALT_SHUTDOWN_GRACE", "60")]).await;
    let addr = s
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let silent = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    // The server has accepted it once an ordinary request on another connection is served.
    let res = reqwest::get(s.url("/api/health")).await.expect("health");
    assert_eq!(res.status(), 200);
    assert!(
        s.terminate(),
        "the server exited cleanly within terminate's bound"
    );
    drop(silent);
}

/// Two servers on one PostgreSQL database (issue 18): a write on either reaches a
/// subscriber on the other, once, in order per record, with its rules checked there; a
/// node's own writes are not delivered twice. Passes with a notice without
/// `BASALT_TEST_PG_URL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_reaches_subscribers_on_another() {
    let Some(a) = TestServer::start_on_postgres(BIN, &[]).await else {
        return;
    };
    let b = a.start_peer(&[]).await;
    let su = a.superuser_token().await;
    notes(&a, &su).await;
    let (mut sse, id) = Sse::open(&b).await;
    // B learns of the collection A made by A's notification: its subscription waits for it.
    let deadline = std::time::Instant::now() + WAIT;
    while subscribe(&b, &id, None, &["notes/*"]).await != 204 {
        assert!(std::time::Instant::now() < deadline, "B never served notes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let event = |data: &str| -> Value { serde_json::from_str(data).expect("json") };

    let rec = create(&a, json!({"title": "from A", "n": 1})).await;
    let rid = rec["id"].as_str().expect("id").to_string();
    let (_, name, data) = sse.next().await.expect("A's create on B");
    assert_eq!(name, "notes/*");
    let v = event(&data);
    assert_eq!(
        (v["action"].clone(), v["record"]["id"].clone()),
        (json!("create"), json!(rid))
    );
    assert_eq!(v["record"]["title"], "from A");

    // B's own write is delivered once, then A's next ones in order.
    let mine = create(&b, json!({"title": "from B"})).await;
    let (_, _, data) = sse.next().await.expect("B's own create");
    assert_eq!(event(&data)["record"]["id"], mine["id"]);
    for n in 2..=6 {
        let (st, _) = a
            .call(
                "PATCH",
                &format!("/api/collections/notes/records/{rid}"),
                None,
                Some(json!({"n": n})),
            )
            .await;
        assert_eq!(st, 200);
    }
    let (st, _) = a
        .call(
            "DELETE",
            &format!("/api/collections/notes/records/{rid}"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let mut seen = Vec::new();
    for _ in 2..=6 {
        let v = event(&sse.next().await.expect("A's update on B").2);
        assert_eq!(
            (v["action"].clone(), v["record"]["id"].clone()),
            (json!("update"), json!(rid)),
            "{v}"
        );
        seen.push(v["record"]["n"].as_i64().unwrap_or(-1));
    }
    // Each update event carries the row as that update left it.
    assert_eq!(seen, vec![2, 3, 4, 5, 6]);
    let v = event(&sse.next().await.expect("A's delete on B").2);
    assert_eq!(
        (v["action"].clone(), v["record"]["id"].clone()),
        (json!("delete"), json!(rid))
    );
    assert_eq!(v["record"]["title"], "from A", "the deleted row as it was");
}
