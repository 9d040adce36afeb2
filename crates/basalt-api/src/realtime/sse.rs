//! `GET /api/realtime`: the Server-Sent Events stream. The first event is `PB_CONNECT`
//! with the client id; every event carries `id:<clientId>` as PocketBase's do. Idle
//! streams get comment keep-alives; a disconnect (slow consumer, shutdown) ends the stream
//! with a final `PB_DISCONNECT` event naming the reason.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use basalt_realtime::{ClientHandle, Transport};
use futures_util::stream;
use serde_json::json;

use super::direct::{DirectSocket, SseSink, StreamSocket, frame_parts};
use crate::ApiState;

/// Interval of comment lines that keep proxies and the client from timing out. Not reset
/// per event: resetting 10k timers on every fan-out costs more than the odd extra line.
const KEEPALIVE: Duration = Duration::from_secs(25);

/// One event, in a buffer of exactly its size (this runs once per subscriber per event:
/// no formatting machinery, one allocation).
fn frame(client_id: &str, event: &str, data: &str) -> Bytes {
    let parts = frame_parts(client_id, event, data);
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

pub(crate) async fn connect(
    State(state): State<ApiState>,
    direct: Option<Extension<DirectSocket>>,
) -> Response {
    let handle = state.realtime.connect(Transport::Sse);
    if let Some(Extension(DirectSocket(socket))) = direct {
        // The server owns the socket: this stream writes to it itself and yields nothing.
        // A failed write ends the body with the error: the socket is then past saving,
        // no closing chunk is attempted.
        let events = stream::unfold(Some((handle, socket)), |st| async move {
            let (h, socket) = st?;
            match serve_direct(h, socket).await {
                Ok(()) => None,
                Err(e) => Some((Err::<Bytes, _>(e), None)),
            }
        });
        return sse_response(Body::from_stream(events));
    }
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
    sse_response(Body::from_stream(events))
}

fn sse_response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=UTF-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

/// The stream on a socket the fan-out may also write to: PB_CONNECT, then deliveries that
/// had to be queued, keep-alives and the final PB_DISCONNECT, each after whatever the
/// fan-out wrote before it. Ends when the client is disconnected or a write fails.
async fn serve_direct(mut h: ClientHandle, socket: Arc<dyn StreamSocket>) -> std::io::Result<()> {
    let id: Arc<str> = Arc::from(h.id());
    let data = json!({"clientId": &*id}).to_string();
    write(&*socket, &frame_parts(&id, "PB_CONNECT", &data), false).await?;
    h.attach_direct(Arc::new(SseSink::new(&id, socket.clone())));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        let written = tokio::select! {
            d = h.next() => match d {
                Ok(d) => {
                    let r = write(&*socket, &frame_parts(&id, &d.topic, &d.data), true).await;
                    h.delivered(&d);
                    r
                }
                Err(reason) => {
                    let data = json!({"reason": reason}).to_string();
                    return write(&*socket, &frame_parts(&id, "PB_DISCONNECT", &data), false).await;
                }
            },
            _ = tick.tick() => write(&*socket, &[b":\n\n"], false).await,
            () = socket.flush_wanted() => socket.flush().await,
        };
        written?;
    }
}

async fn write(socket: &dyn StreamSocket, parts: &[&[u8]], dequeued: bool) -> std::io::Result<()> {
    socket.send(parts, dequeued)?;
    socket.flush().await
}
