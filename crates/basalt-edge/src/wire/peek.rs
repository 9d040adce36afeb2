//! The look at a fresh connection's first request head that decides who serves it: the
//! head is peeked at, never consumed, so whoever does not take the connection (hyper,
//! most of the time) reads it whole from the socket as if nobody had looked.
//!
//! Why peek rather than read and replay: the connection goes on to hyper unwrapped, with
//! no replay buffer kept for its whole life. The edge's fast path reads instead, because
//! it serves most requests itself and hands hyper the bytes it read through the guard.

use tokio::net::TcpStream;

use super::head::{self, Parsed, Request};

/// Longest head looked at; a longer one (huge cookies) is left to hyper.
pub const MAX_PEEK: usize = 4096;
/// Most headers a peeked head may have; one with more is left to hyper.
const MAX_HEADERS: usize = 48;

/// Waits for the first bytes of `stream` and judges the complete, plain head at their
/// front with `take` (`None`, or a head not plain or not whole in the first segment:
/// the connection is left untouched for hyper). Heads not starting with `prefix` are
/// passed over before any parsing. Nothing is consumed either way; the taker reads the
/// head's `len` bytes off the socket itself.
pub async fn first_head<T>(
    stream: &TcpStream,
    prefix: &[u8],
    take: impl FnOnce(&Request<'_>) -> Option<T>,
) -> Option<T> {
    stream.readable().await.ok()?;
    // On the heap: an array here would grow every connection task by its size for life.
    let mut buf = vec![0u8; MAX_PEEK];
    let n = stream.peek(&mut buf).await.ok()?;
    judge(&buf[..n], prefix, take)
}

/// [`first_head`]'s verdict on bytes already peeked.
pub fn judge<T>(
    bytes: &[u8],
    prefix: &[u8],
    take: impl FnOnce(&Request<'_>) -> Option<T>,
) -> Option<T> {
    // Almost every connection is decided here, without parsing.
    if !bytes.starts_with(prefix) {
        return None;
    }
    let mut slots = head::request_slots();
    match head::parse_request(bytes, &mut slots, MAX_PEEK, MAX_HEADERS) {
        Parsed::Plain(req) => take(&req),
        Parsed::Partial | Parsed::Other => None,
    }
}
