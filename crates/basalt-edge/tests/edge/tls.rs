//! TLS termination: SNI picks the certificate, ALPN negotiates HTTP/2 or HTTP/1.1, HSTS is
//! added, and a reload swaps certificates without rebinding. Certificates come from rcgen.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::support::upstreams::*;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct TestCert {
    der: CertificateDer<'static>,
}

fn write_cert(dir: &Path, name: &str) -> TestCert {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("cert");
    std::fs::write(dir.join(format!("{name}.pem")), ck.cert.pem()).expect("write cert");
    std::fs::write(
        dir.join(format!("{name}.key")),
        ck.signing_key.serialize_pem(),
    )
    .expect("write key");
    TestCert {
        der: ck.cert.der().clone(),
    }
}

fn connector(roots: &[&TestCert], alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.der.clone()).expect("root");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(store)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// Connects with SNI `name`; returns the certificate served and the negotiated ALPN.
async fn handshake(
    addr: SocketAddr,
    name: &str,
    roots: &[&TestCert],
    alpn: &[&[u8]],
) -> Result<
    (
        tokio_rustls::client::TlsStream<TcpStream>,
        CertificateDer<'static>,
    ),
    String,
> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let tls = connector(roots, alpn)
        .connect(server_name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let cert = tls.get_ref().1.peer_certificates().expect("certs")[0].clone();
    Ok((tls, cert))
}

fn tls_config(dir: &Path, upstream: SocketAddr, names: &[&str]) -> String {
    let certs: String = names
        .iter()
        .map(|n| {
            format!(
                "[[edge.listeners.tls]]\nserver_names = [\"{n}\"]\ncert = \"{0}/{n}.pem\"\nkey = \"{0}/{n}.key\"\n",
                dir.display()
            )
        })
        .collect();
    format!(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\nhsts_max_age = 31536000\n{certs}[[edge.routes]]\npool = \"p\"\n[edge.pools.p]\ntargets = [{{ address = \"{upstream}\" }}]\n"
    )
}

#[tokio::test]
async fn sni_selects_the_certificate_and_alpn_negotiates_h2() {
    let dir = tempfile::tempdir().expect("dir");
    let (a, b) = (
        write_cert(dir.path(), "a.test"),
        write_cert(dir.path(), "b.test"),
    );
    let up = upstream("u").await;
    let (_edge, addr) = edge(&tls_config(dir.path(), up.addr, &["a.test", "b.test"])).await;

    let (_, served) = handshake(addr, "a.test", &[&a], &[b"http/1.1"])
        .await
        .expect("a");
    assert_eq!(served, a.der);
    let (mut tls, served) = handshake(addr, "b.test", &[&b], &[b"http/1.1"])
        .await
        .expect("b");
    assert_eq!(served, b.der);
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET /over-tls HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    tls.read_to_string(&mut out).await.ok();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("strict-transport-security: max-age=31536000"),
        "{out}"
    );
    assert!(out.contains("x-seen-x-forwarded-proto: https"), "{out}");
    // The framing guard also protects HTTP/1.1 over TLS.
    let (mut tls, _) = handshake(addr, "b.test", &[&b], &[b"http/1.1"])
        .await
        .expect("b");
    tls.write_all(
        b"POST / HTTP/1.1\r\nHost: b.test\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    )
    .await
    .expect("write");
    let mut out = String::new();
    tls.read_to_string(&mut out).await.ok();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");

    // HTTP/2 over TLS by ALPN.
    let (tls, _) = handshake(addr, "a.test", &[&a], &[b"h2", b"http/1.1"])
        .await
        .expect("h2");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            http::Request::builder()
                .uri("https://a.test/h2")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("req"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-seen-path"], "/h2");
    assert_eq!(up.hits(), 2);

    // An unknown name without a default certificate fails the handshake.
    assert!(handshake(addr, "c.test", &[&a, &b], &[]).await.is_err());
}

#[tokio::test]
async fn a_reload_swaps_certificates_on_the_same_socket() {
    let dir = tempfile::tempdir().expect("dir");
    let a = write_cert(dir.path(), "a.test");
    let up = upstream("u").await;
    let (edge, addr) = edge(&tls_config(dir.path(), up.addr, &["a.test"])).await;
    assert!(handshake(addr, "a.test", &[&a], &[]).await.is_ok());
    let a2 = write_cert(dir.path(), "a.test"); // same name, new key and certificate
    let cfg = edge_config::parse(&tls_config(dir.path(), up.addr, &["a.test"])).expect("cfg");
    edge.apply(cfg).await.expect("reload");
    assert_eq!(edge.local_addrs()[0], addr, "the socket was kept");
    let (_, served) = handshake(addr, "a.test", &[&a2], &[])
        .await
        .expect("new cert");
    assert_eq!(served, a2.der);
    // A missing certificate file is rejected and the running one stays.
    let broken = tls_config(dir.path(), up.addr, &["a.test"]).replace("a.test.pem", "missing.pem");
    let err = edge
        .apply(edge_config::parse(&broken).expect("parses"))
        .await
        .expect_err("rejected");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let (_, served) = handshake(addr, "a.test", &[&a2], &[])
        .await
        .expect("still serving");
    assert_eq!(served, a2.der);
}
