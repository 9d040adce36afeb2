//! `GET /api/realtime`: the Server-Sent Events stream. The first event is `PB_CONNECT`
//! with the client id; every event carries `id:<clientId>` as PocketBase's do. Idle
//! streams get comment keep-alives; a disconnect (slow consumer, shutdown) ends the stream
//! with a final `PB_DISCONNECT` event naming the reason.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use basalt_realtime::{ClientHandle, Transport};
use futures_util::stream;
use serde_json::json;

use crate::ApiState;

/// Interval of comment lines that keep proxies and the client from timing out. Not reset
/// per event: resetting 10k timers on every fan-out costs more than the odd extra line.
const KEEPALIVE: Duration = Duration::from_secs(25);

/// One event, in a buffer of exactly its size (this runs once per subscriber per event:
/// no formatting machinery, one allocation).
fn frame(client_id: &str, event: &str, data: &str) -> Bytes {
    let parts: [&[u8]; 7] = [
        b"id:",
        client_id.as_bytes(),
        b"\nevent:",
        event.as_bytes(),
        b"\ndata:",
        data.as_bytes(),
        b"\n\n",
    ];
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.extend_from_slice(p);
    }
    Bytes::from(out)
}

enum Phase {
    Connect,
    Live,
    Done,
}

pub(crate) async fn connect(State(state): State<ApiState>) -> Response {
    let handle = state.realtime.connect(Transport::Sse);
    let keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let events = stream::unfold(
        (handle, Phase::Connect, keepalive),
        |(mut h, phase, mut tick): (ClientHandle, Phase, tokio::time::Interval)| async move {
            match phase {
                Phase::Done => None,
                Phase::Connect => {
                    let data = json!({"clientId": h.id()}).to_string();
                    let b = frame(h.id(), "PB_CONNECT", &data);
                    Some((Ok::<_, std::io::Error>(b), (h, Phase::Live, tick)))
                }
                Phase::Live => {
                    let next = tokio::select! {
                        d = h.next() => Some(d),
                        _ = tick.tick() => None,
                    };
                    match next {
                        None => Some((Ok(Bytes::from_static(b":\n\n")), (h, Phase::Live, tick))),
                        Some(Ok(d)) => {
                            let b = frame(h.id(), &d.topic, &d.data);
                            h.delivered(&d);
                            Some((Ok(b), (h, Phase::Live, tick)))
                        }
                        Some(Err(reason)) => {
                            let data = json!({"reason": reason}).to_string();
                            let b = frame(h.id(), "PB_DISCONNECT", &data);
                            Some((Ok(b), (h, Phase::Done, tick)))
                        }
                    }
                }
            }
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=UTF-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}
