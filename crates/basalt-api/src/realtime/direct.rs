//! Direct SSE delivery: the contract between the SSE handler and a server that owns the
//! stream's socket, so the fan-out can write each subscriber's event to it itself.
//!
//! Why: with 10k subscribers, waking one task per subscriber per event (queue hop, body
//! layers, chunk copy) cost as much CPU as the writes themselves. The fan-out now writes
//! an event straight to the socket when nothing queued for that client is still waiting;
//! otherwise it goes through the client's bounded queue and its task, in order.

use std::io;
use std::sync::Arc;

use basalt_realtime::{Delivery, DirectSink};
use futures_util::future::BoxFuture;

/// A stream's socket as the server exposes it: ordered writes of whole body chunks, each
/// made of `parts`, under one lock, never blocking.
pub trait StreamSocket: Send + Sync + 'static {
    /// Writes one chunk now when no queued delivery and no unsent bytes wait before it;
    /// otherwise counts one queued delivery (its `send(.., true)` comes later) and
    /// returns false.
    fn try_send(&self, parts: &[&[u8]]) -> bool;
    /// Writes one chunk after everything before it; what the socket does not take now is
    /// kept for [`StreamSocket::flush`]. `dequeued`: it is a delivery counted by
    /// `try_send`.
    fn send(&self, parts: &[&[u8]], dequeued: bool) -> io::Result<()>;
    /// Resolves once every byte written is out; errors when the peer stopped reading for
    /// too long.
    fn flush(&self) -> BoxFuture<'_, io::Result<()>>;
    /// Resolves when a write from the fan-out left bytes that only a flush can send.
    fn flush_wanted(&self) -> BoxFuture<'_, ()>;
}

/// Request extension the server sets on `GET /api/realtime` when it owns the socket.
#[derive(Clone)]
pub struct DirectSocket(pub Arc<dyn StreamSocket>);

/// The parts of one SSE event; `id:<clientId>` as PocketBase sends it.
pub(crate) fn frame_parts<'a>(client_id: &'a str, event: &'a str, data: &'a str) -> [&'a [u8]; 7] {
    [
        b"id:",
        client_id.as_bytes(),
        b"\nevent:",
        event.as_bytes(),
        b"\ndata:",
        data.as_bytes(),
        b"\n\n",
    ]
}

/// What the fan-out writes through for one SSE client.
pub(crate) struct SseSink {
    pub client_id: Arc<str>,
    pub socket: Arc<dyn StreamSocket>,
}

impl DirectSink for SseSink {
    fn try_deliver(&self, d: &Delivery) -> bool {
        self.socket
            .try_send(&frame_parts(&self.client_id, &d.topic, &d.data))
    }
}
