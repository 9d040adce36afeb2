//! The HTTP/1.1 accept loop: each connection served by hyper's HTTP/1 server (with
//! upgrades, for WebSockets), TCP_NODELAY for realtime streams, a bound on blocked writes
//! (`basalt_edge::wire::stall`), and a graceful shutdown
//! that stops accepting and waits for open connections to finish.
//! Realtime SSE streams (`GET /api/realtime`) are recognised first and served by
//! `sse_direct`, outside hyper.
//!
//! Why not `axum::serve`: its protocol-sniffing connection (HTTP/1 or cleartext HTTP/2)
//! costs about 8 KB more per connection, which is most of the difference between 10k idle
//! realtime subscribers fitting in ~150 MB or not. Cleartext HTTP/2 (h2c) is therefore not
//! served; HTTP/2 belongs to the TLS-terminating edge.

use std::time::Duration;

use basalt_api::ApiService;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use basalt_edge::wire::stall::StallGuard;

/// Serves `app` on `listener` until `stop` resolves, then waits for open connections.
pub async fn serve(
    listener: TcpListener,
    app: ApiService,
    stop: impl std::future::Future<Output = ()>,
) {
    // `stopping` tells connections to finish; every connection task holds a `done`
    // receiver, so `done_tx.closed()` resolves once the last one ended.
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning; connections in flight
                // free descriptors as they finish.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Realtime events are small writes that must leave at once.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stopping = stopping_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            // Realtime SSE streams skip hyper and its per-connection buffers; the stream
            // ends on its own at shutdown (the hub sends PB_DISCONNECT first).
            // A client that connects and stays silent must not hold shutdown up: before
            // its first byte the connection is dropped as soon as the server stops.
            let sniffed = tokio::select! {
                sniffed = crate::sse_direct::sniff(&stream, peer) => sniffed,
                _ = stopping.changed() => {
                    drop(done);
                    return;
                }
            };
            if let Some(req) = sniffed {
                crate::sse_direct::serve(stream, req, app).await;
                drop(done);
                return;
            }
            // Handlers read the peer as axum's ConnectInfo: the client address behind
            // trusted proxies keys the auth rate limits.
            let service = TowerToHyperService::new(app.with_peer(peer));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(StallGuard::new(stream)), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopping.changed() => {
                    // Finish the response in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}
