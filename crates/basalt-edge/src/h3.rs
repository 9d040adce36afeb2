//! HTTP/3 over QUIC (cargo feature `http3`): a UDP endpoint on the port of each TLS listener
//! with `http3 = true`, the listener's certificates (file and ACME) with ALPN `h3`, and every
//! request handed to the same `service::handle` as HTTP/1 and HTTP/2.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes};
use http::{Request, Response, header};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::{mpsc, watch};

use crate::Shared;
use crate::body::BoxError;
use crate::snapshot::ListenerRuntime;
use crate::wire::guard::ConnState;

/// A request body fed from the QUIC stream by a reading task.
struct StreamedBody(mpsc::Receiver<Result<Bytes, BoxError>>);

impl http_body::Body for StreamedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|r| r.map(|r| r.map(Frame::data)))
    }
}

/// The listener's rustls config with ALPN `h3`, as QUIC wants it.
fn quic_config(rt: &ListenerRuntime) -> std::io::Result<quinn::ServerConfig> {
    let Some(acceptor) = &rt.tls else {
        return Err(std::io::Error::other("http3 needs tls"));
    };
    let mut tls = (**acceptor.config()).clone();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| std::io::Error::other(format!("http3: {e}")))?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

pub fn start(
    local: SocketAddr,
    runtime: Arc<ArcSwap<ListenerRuntime>>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut current = runtime.load_full();
    let endpoint = quinn::Endpoint::server(quic_config(&current)?, local)?;
    tracing::info!(address = %local, "edge listening for http3");
    tokio::spawn(async move {
        // A reload may bring new certificates: picked up for the next handshakes.
        let mut reloads = tokio::time::interval(Duration::from_secs(1));
        loop {
            let incoming = tokio::select! {
                i = endpoint.accept() => i,
                _ = stopped.changed() => break,
                _ = reloads.tick() => {
                    let latest = runtime.load_full();
                    if !Arc::ptr_eq(&latest, &current) {
                        match quic_config(&latest) {
                            Ok(c) => endpoint.set_server_config(Some(c)),
                            Err(e) => tracing::warn!(error = %e, "http3 config not updated"),
                        }
                        current = latest;
                    }
                    continue;
                }
            };
            let Some(incoming) = incoming else {
                break;
            };
            let (rt, shared) = (runtime.load_full(), shared.clone());
            tokio::spawn(async move {
                if let Err(e) = connection(incoming, rt, shared).await {
                    tracing::debug!(error = %e, "http3 connection ended with an error");
                }
            });
        }
        endpoint.close(0u32.into(), b"shutting down");
    });
    Ok(())
}

async fn connection(
    incoming: quinn::Incoming,
    rt: Arc<ListenerRuntime>,
    shared: Arc<Shared>,
) -> Result<(), BoxError> {
    let conn = tokio::time::timeout(rt.limits.header_timeout, incoming)
        .await
        .map_err(|_| "quic handshake timed out")??;
    let peer = conn.remote_address();
    let mut h3 = h3::server::builder()
        // The same head limit as HTTP/1 and HTTP/2 on this listener.
        .max_field_section_size(rt.limits.max_header_bytes as u64)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await?;
    while let Some(resolver) = h3.accept().await? {
        let (rt, shared) = (rt.clone(), shared.clone());
        tokio::spawn(async move {
            let result = async {
                let (req, stream) = resolver.resolve_request().await?;
                request(req, stream, rt, shared, peer).await
            }
            .await;
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "http3 request ended with an error");
            }
        });
    }
    Ok(())
}

async fn request(
    req: Request<()>,
    stream: h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
    rt: Arc<ListenerRuntime>,
    shared: Arc<Shared>,
    peer: SocketAddr,
) -> Result<(), BoxError> {
    let (mut send, mut recv) = stream.split();
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            match recv.recv_data().await {
                Ok(Some(mut chunk)) => {
                    let bytes = chunk.copy_to_bytes(chunk.remaining());
                    if tx.send(Ok(bytes)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(Box::new(e) as BoxError)).await;
                    return;
                }
            }
        }
    });
    let req = req.map(|()| StreamedBody(rx));
    let resp = match crate::service::handle(shared, ConnState::new(), rt, peer, req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let (mut parts, mut body) = resp.into_parts();
    // Connection-specific fields do not exist in HTTP/3 (RFC 9114 section 4.2).
    for h in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HeaderName::from_static("keep-alive"),
    ] {
        parts.headers.remove(h);
    }
    send.send_response(Response::from_parts(parts, ())).await?;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            send.send_data(data).await?;
        }
    }
    send.finish().await?;
    Ok(())
}
