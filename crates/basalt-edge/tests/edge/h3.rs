//! HTTP/3 (cargo feature `http3`): a TLS listener with `http3 = true` answers over QUIC with
//! the same routes as over TCP, request bodies reach the upstream, and TCP responses
//! advertise it with `Alt-Svc`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::upstreams::*;
use bytes::{Buf, Bytes};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn client_tls(root: &CertificateDer<'static>, alpn: &[u8]) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    store.add(root.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg
}

/// One HTTP/3 request; returns status, headers and body.
async fn h3_request(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    method: &str,
    path: &str,
    body: &'static [u8],
) -> (u16, http::HeaderMap, String) {
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls(root, b"h3")).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint.connect(addr, "h3.test").unwrap().await.unwrap();
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    let drive = tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    let req = http::Request::builder()
        .method(method)
        .uri(format!("https://h3.test:{}{path}", addr.port()))
        .body(())
        .unwrap();
    let mut stream = send.send_request(req).await.unwrap();
    if !body.is_empty() {
        stream.send_data(Bytes::from_static(body)).await.unwrap();
    }
    stream.finish().await.unwrap();
    let resp = stream.recv_response().await.unwrap();
    let mut out = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        out.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    drop(send);
    drive.abort();
    endpoint.close(0u32.into(), b"done");
    (
        resp.status().as_u16(),
        resp.headers().clone(),
        String::from_utf8(out).unwrap(),
    )
}

/// A port free for both TCP and UDP on 127.0.0.1 (bounded tries).
fn free_tcp_and_udp_port() -> u16 {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_serves_the_same_routes_and_tcp_advertises_it() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["h3.test".to_string()]).unwrap();
    std::fs::write(dir.path().join("c.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("c.key"), ck.signing_key.serialize_pem()).unwrap();
    let root = ck.cert.der().clone();
    let up = upstream("u").await;
    let port = free_tcp_and_udp_port();
    let toml = format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:{port}\"\nhttp3 = true\n[[edge.listeners.tls]]\ncert = \"{0}/c.pem\"\nkey = \"{0}/c.key\"\n[[edge.routes]]\npool = \"p\"\n[edge.pools.p]\ntargets = [{{ address = \"{1}\" }}]\n",
        dir.path().display(),
        up.addr
    );
    let (edge, addr) = edge(&toml).await;

    let (status, headers, body) = h3_request(addr, &root, "GET", "/x?y=1", b"").await;
    assert_eq!(status, 200);
    assert_eq!(body, "u");
    assert_eq!(headers["x-seen-path"], "/x?y=1");
    let (status, headers, _) = h3_request(addr, &root, "POST", "/upload", b"twelve bytes").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-seen-body-len"], "12");
    assert_eq!(up.hits(), 2);

    // Over TCP the same listener says where HTTP/3 is.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client_tls(&root, b"http/1.1")))
        .connect(ServerName::try_from("h3.test").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: h3.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(
        text.contains(&format!("alt-svc: h3=\":{port}\"; ma=86400")),
        "{text}"
    );
    edge.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn http3_without_tls_or_with_port_zero_is_refused() {
    for listen in ["127.0.0.1:0", "127.0.0.1:1"] {
        let cfg = edge_config::parse(&format!(
            "[edge]\n[[edge.listeners]]\nlisten = \"{listen}\"\nhttp3 = true\n"
        ))
        .unwrap();
        let e = basalt_edge::Edge::start(cfg, None, None)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("http3 needs tls"), "{e}");
    }
}
