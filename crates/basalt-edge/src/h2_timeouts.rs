//! Client timeouts for HTTP/2 connections, whose bytes the framing guard passes unchecked:
//! a connection that starts no request within `header_timeout` of opening (a stalled or
//! partial HEADERS frame included), or sits with nothing in flight for `idle_timeout`
//! after a request, is closed.
//!
//! hyper's HTTP/2 server has no header-read timeout and its keep-alive pings only catch
//! dead peers; a live client could hold a connection (and its buffers) forever by never
//! finishing a request. The check is coarse on purpose: it reads the connection's
//! request counters a few times per timeout instead of touching every frame.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use crate::wire::guard::{ConnState, GuardLimits};

/// Resolves when an HTTP/2 connection has overstayed its header or idle timeout; never
/// resolves for an HTTP/1 connection (the framing guard owns those timeouts).
pub async fn expired(conn: &ConnState, limits: GuardLimits) {
    let mut seen = conn.requests_started();
    let mut since = Instant::now();
    loop {
        let limit = if seen == 0 {
            limits.header_timeout
        } else {
            limits.idle_timeout
        };
        tokio::time::sleep_until(since + limit).await;
        let started = conn.requests_started();
        if !conn.http2.load(Ordering::Acquire) {
            if started > 0 {
                // An HTTP/1 request was served: only the first head may open HTTP/2.
                return std::future::pending().await;
            }
            // Nothing yet; the guard's timeouts apply until a preface turns up.
            since = Instant::now();
            continue;
        }
        if started != seen || conn.in_flight.load(Ordering::Acquire) > 0 {
            // Active during the period: the timeout starts again from now, so a
            // connection closes between one and two timeouts after its last request.
            seen = started;
            since = Instant::now();
            continue;
        }
        return;
    }
}
