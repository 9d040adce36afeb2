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

/// Longest `id:<clientId>\nevent:` kept inline in the sink (hub ids are 40 characters).
const INLINE_HEAD: usize = 64;

/// What the fan-out writes through for one SSE client. The head of every event it writes
/// (`id:<clientId>\nevent:`) is kept inside the sink itself: with 10k subscribers, the
/// client id in an allocation of its own was one more cache miss per subscriber.
pub(crate) struct SseSink {
    socket: Arc<dyn StreamSocket>,
    head: EventHead,
}

enum EventHead {
    Inline { len: u8, bytes: [u8; INLINE_HEAD] },
    Heap(Box<[u8]>),
}

impl SseSink {
    pub(crate) fn new(client_id: &str, socket: Arc<dyn StreamSocket>) -> Self {
        let mut head = Vec::with_capacity(client_id.len() + 10);
        head.extend_from_slice(b"id:");
        head.extend_from_slice(client_id.as_bytes());
        head.extend_from_slice(b"\nevent:");
        let head = match u8::try_from(head.len()) {
            Ok(len) if head.len() <= INLINE_HEAD => {
                let mut bytes = [0u8; INLINE_HEAD];
                bytes[..head.len()].copy_from_slice(&head);
                EventHead::Inline { len, bytes }
            }
            _ => EventHead::Heap(head.into_boxed_slice()),
        };
        Self { socket, head }
    }

    fn head(&self) -> &[u8] {
        match &self.head {
            EventHead::Inline { len, bytes } => &bytes[..usize::from(*len)],
            EventHead::Heap(b) => b,
        }
    }
}

impl DirectSink for SseSink {
    fn try_deliver(&self, d: &Delivery) -> bool {
        self.socket.try_send(&[
            self.head(),
            d.topic.as_bytes(),
            b"\ndata:",
            d.data.as_bytes(),
            b"\n\n",
        ])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records what it was asked to write.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<u8>>);

    impl StreamSocket for Recorded {
        fn try_send(&self, parts: &[&[u8]]) -> bool {
            let mut out = self.0.lock().unwrap();
            for p in parts {
                out.extend_from_slice(p);
            }
            true
        }
        fn send(&self, parts: &[&[u8]], _: bool) -> io::Result<()> {
            self.try_send(parts);
            Ok(())
        }
        fn flush(&self) -> BoxFuture<'_, io::Result<()>> {
            Box::pin(async { Ok(()) })
        }
        fn flush_wanted(&self) -> BoxFuture<'_, ()> {
            Box::pin(std::future::pending())
        }
    }

    #[test]
    fn a_direct_event_is_framed_like_a_queued_one_for_short_and_long_ids() {
        for id in ["a".repeat(40), "b".repeat(200)] {
            let socket = Arc::new(Recorded::default());
            let sink = SseSink::new(&id, socket.clone());
            let d = Delivery {
                topic: Arc::from("notes/*"),
                data: Arc::from(r#"{"action":"create"}"#),
                committed_at: None,
            };
            assert!(sink.try_deliver(&d));
            let want: Vec<u8> = frame_parts(&id, &d.topic, &d.data).concat();
            assert_eq!(*socket.0.lock().unwrap(), want);
        }
    }
}
