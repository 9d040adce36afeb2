//! `GET /api/realtime/ws`: the same subscriptions over a WebSocket, with the small JSON
//! protocol of docs/realtime-websocket.md. With the diagnostic echo option the endpoint
//! echoes messages instead (for the Autobahn conformance suite).

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use basalt_realtime::{ClientHandle, Delivery, RealtimeError, Transport};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{identity_of_headers, identity_of_token};
use crate::ApiState;

/// Interval of our pings; a peer silent for three intervals is gone.
const PING_EVERY: Duration = Duration::from_secs(25);
/// A write that cannot complete this long means the peer stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Protocol messages are small; anything larger is refused by the WebSocket layer.
const MAX_MESSAGE: usize = 64 * 1024;

/// Close codes (RFC 6455): going away (shutdown), policy violation (slow consumer).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Command {
    Auth {
        #[serde(default)]
        id: Option<Value>,
        #[serde(default)]
        token: Option<String>,
    },
    Subscribe {
        #[serde(default)]
        id: Option<Value>,
        topics: Vec<String>,
    },
    Unsubscribe {
        #[serde(default)]
        id: Option<Value>,
        topics: Vec<String>,
    },
}

pub(crate) async fn websocket(
    State(state): State<ApiState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let identity = match identity_of_headers(&state, &headers).await {
        Ok(identity) => identity,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let handle = state.realtime.connect(Transport::WebSocket);
            if identity.is_some() {
                let _ = state.realtime.set_identity(handle.id(), identity);
            }
            serve_client(state, handle, socket).await;
        })
}

enum Step {
    Incoming(Option<Result<Message, axum::Error>>),
    Outgoing(Result<std::sync::Arc<Delivery>, String>),
    Ping,
}

async fn send(socket: &mut WebSocket, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(msg)).await,
        Ok(Ok(()))
    )
}

fn text(v: Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

/// `{"type":"event","topic":...}` followed by the delivery's own `action`/`record` keys.
fn event_message(d: &Delivery) -> Message {
    let topic = Value::String(d.topic.to_string()).to_string();
    let body = d.data.strip_prefix('{').unwrap_or("}");
    let sep = if body.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    Message::Text(Utf8Bytes::from(format!(
        "{{\"type\":\"event\",\"topic\":{topic}{sep}{body}"
    )))
}

async fn serve_client(state: ApiState, mut handle: ClientHandle, mut socket: WebSocket) {
    let hello = json!({"type": "connected", "clientId": handle.id()});
    if !send(&mut socket, text(hello)).await {
        return;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        let step = tokio::select! {
            m = socket.recv() => Step::Incoming(m),
            d = handle.next() => Step::Outgoing(d),
            _ = ping.tick() => Step::Ping,
        };
        match step {
            Step::Incoming(Some(Ok(msg))) => {
                last_heard = Instant::now();
                let reply = match msg {
                    Message::Text(t) => Some(command(&state, &handle, t.as_str()).await),
                    Message::Binary(_) => Some(error(None, "binary messages are not supported")),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => None,
                };
                if let Some(r) = reply
                    && !send(&mut socket, text(r)).await
                {
                    break;
                }
            }
            Step::Incoming(_) => break,
            Step::Outgoing(Ok(d)) => {
                if !send(&mut socket, event_message(&d)).await {
                    break;
                }
                handle.delivered(&d);
            }
            Step::Outgoing(Err(reason)) => {
                let code = if reason.contains("shutting down") {
                    CLOSE_GOING_AWAY
                } else {
                    CLOSE_POLICY
                };
                // A close reason is limited to 123 bytes by the protocol.
                let reason: String = reason.chars().take(120).collect();
                let frame = CloseFrame {
                    code,
                    reason: Utf8Bytes::from(reason),
                };
                let _ = send(&mut socket, Message::Close(Some(frame))).await;
                break;
            }
            Step::Ping => {
                if last_heard.elapsed() > PING_EVERY * 3 {
                    break;
                }
                if !send(&mut socket, Message::Ping(Default::default())).await {
                    break;
                }
            }
        }
    }
}

fn ack(id: Option<Value>) -> Value {
    json!({"type": "ack", "id": id})
}

fn error(id: Option<Value>, message: &str) -> Value {
    json!({"type": "error", "id": id, "message": message})
}

fn realtime_error(id: Option<Value>, e: RealtimeError) -> Value {
    let message = match e {
        RealtimeError::UnknownClient => "the client is no longer registered".to_string(),
        RealtimeError::IdentityMismatch => "the identity differs from the client's".to_string(),
        RealtimeError::InvalidTopic(t) => format!("invalid topic: {t}"),
        RealtimeError::TooManySubscriptions => "too many subscriptions".to_string(),
    };
    error(id, &message)
}

async fn command(state: &ApiState, handle: &ClientHandle, raw: &str) -> Value {
    let cmd: Command = match serde_json::from_str(raw) {
        Ok(c) => c,
        Err(_) => {
            let id = serde_json::from_str::<Value>(raw)
                .ok()
                .and_then(|v| v.get("id").cloned());
            return error(id, "unknown or malformed message");
        }
    };
    let hub = &state.realtime;
    match cmd {
        Command::Auth { id, token } => {
            let token = token.unwrap_or_default();
            if token.trim().is_empty() {
                return match hub.set_identity(handle.id(), None) {
                    Ok(()) => ack(id),
                    Err(e) => realtime_error(id, e),
                };
            }
            match identity_of_token(state, &token).await {
                Err(e) => error(id, &e.message),
                Ok(None) => error(id, "invalid or expired token"),
                Ok(Some(identity)) => match hub.set_identity(handle.id(), Some(identity)) {
                    Ok(()) => ack(id),
                    Err(e) => realtime_error(id, e),
                },
            }
        }
        Command::Subscribe { id, topics } => match hub.subscribe(handle.id(), &topics) {
            Ok(()) => ack(id),
            Err(e) => realtime_error(id, e),
        },
        Command::Unsubscribe { id, topics } => match hub.unsubscribe(handle.id(), &topics) {
            Ok(()) => ack(id),
            Err(e) => realtime_error(id, e),
        },
    }
}

/// The diagnostic echo endpoint: the same WebSocket stack, echoing text and binary
/// messages, so a conformance suite can exercise framing, fragmentation and close
/// handling. Only routed when the operator turned it on.
pub(crate) async fn echo(upgrade: WebSocketUpgrade) -> Response {
    // Conformance cases send messages of up to 16 MiB in one frame.
    upgrade
        .max_frame_size(32 << 20)
        .max_message_size(64 << 20)
        .on_upgrade(|mut socket| async move {
            while let Some(Ok(msg)) = socket.recv().await {
                let reply = match msg {
                    Message::Text(_) | Message::Binary(_) => msg,
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if socket.send(reply).await.is_err() {
                    break;
                }
            }
        })
}
