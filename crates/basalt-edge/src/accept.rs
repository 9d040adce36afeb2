//! Accepting TCP connections, for the HTTP listeners (`listener`) and the L4 stream
//! listeners (`l4::tcp`) alike.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The next accepted connection, or `None` once `stopped` changes. A failed accept (out of
/// file descriptors and similar) is logged and retried after a pause instead of spinning.
pub(crate) async fn next_connection(
    listener: &TcpListener,
    stopped: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return None,
        };
        match accepted {
            Ok(a) => return Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}
