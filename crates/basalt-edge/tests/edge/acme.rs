//! ACME against Pebble, Let's Encrypt's test CA: a certificate issued over a really answered
//! HTTP-01 challenge, served by SNI and verified against Pebble's root, renewed and swapped
//! on a running listener, loaded from the store at start; and two edges sharing a store
//! placing exactly one order. Skips (saying so) only when the `pebble` binary is missing;
//! `.ci/run` installs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_edge::Edge;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{edge_config, upstreams};

const NAME: &str = "acme.basalt.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// Pebble and its DNS (pebble-challtestsrv answering every name with 127.0.0.1), killed on drop.
struct Pebble {
    children: Vec<Child>,
    directory: String,
    management: SocketAddr,
    /// The test CA that signed Pebble's own HTTPS certificate (PEM file and DER).
    https_root: PathBuf,
    https_root_der: CertificateDer<'static>,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Pebble {
    /// `None` (after printing why) when Pebble is not installed.
    async fn start(dir: &Path, http_port: u16, tls_port: u16, always_valid: bool) -> Option<Self> {
        let (Some(pebble), Some(dns)) = (which("pebble"), which("pebble-challtestsrv")) else {
            eprintln!(
                "SKIPPED: pebble / pebble-challtestsrv not installed (apt-get install pebble; .ci/run does)"
            );
            return None;
        };
        // Pebble's HTTPS certificate, signed by a CA the test trusts.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "basalt test ca");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let https_root = dir.join("pebble-https-ca.pem");
        std::fs::write(&https_root, ca.pem()).unwrap();
        std::fs::write(dir.join("pebble-https.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("pebble-https.key"), leaf_key.serialize_pem()).unwrap();

        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let dns_port = free_udp_port();
        let config = serde_json::json!({"pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": dir.join("pebble-https.pem"),
            "privateKey": dir.join("pebble-https.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| Stdio::from(std::fs::File::create(dir.join(name)).unwrap());
        let mut children = Vec::new();
        children.push(
            Command::new(dns)
                .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{}", free_port())])
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .stdout(log("challtestsrv.log"))
                .stderr(log("challtestsrv.err"))
                .spawn()
                .unwrap(),
        );
        let mut cmd = Command::new(pebble);
        cmd.arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order validates its challenges again, so renewal is tested in full.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"));
        if always_valid {
            cmd.env("PEBBLE_VA_ALWAYS_VALID", "1");
        }
        children.push(cmd.spawn().unwrap());
        let pebble = Self {
            children,
            directory: format!("https://{listen}/dir"),
            management,
            https_root_der: CertificateDer::from_pem_file(&https_root).unwrap(),
            https_root,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(listen).await.is_err()
            || TcpStream::connect(management).await.is_err()
        {
            assert!(
                Instant::now() < deadline,
                "pebble did not start; see {}",
                dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(pebble)
    }

    /// The root Pebble issues under, from its management API.
    async fn issuing_root(&self) -> CertificateDer<'static> {
        let tls = connect(
            self.management,
            "127.0.0.1",
            std::slice::from_ref(&self.https_root_der),
        )
        .await
        .expect("pebble management over tls");
        let body = http_get(tls, "/roots/0", "127.0.0.1").await;
        CertificateDer::from_pem_slice(body.as_bytes()).expect("root PEM from /roots/0")
    }
}

fn client_config(roots: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// A TLS connection whose chain rustls verified against `roots` for `name`.
async fn connect(
    addr: SocketAddr,
    name: &str,
    roots: &[CertificateDer<'static>],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(client_config(roots));
    tokio::time::timeout(Duration::from_secs(5), connector.connect(server_name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())
}

fn leaf_serial(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let leaf = &tls.get_ref().1.peer_certificates().expect("peer chain")[0];
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    parsed.tbs_certificate.raw_serial_as_string()
}

/// The serial the edge serves for `name`, once a chain verifying to `root` is served.
async fn wait_served(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    not: Option<&str>,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(tls) = connect(addr, NAME, std::slice::from_ref(root)).await {
            let serial = leaf_serial(&tls);
            if Some(serial.as_str()) != not {
                return serial;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no (new) certificate served in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One HTTP/1.1 request with `connection: close`; returns the body.
async fn http_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    path: &str,
    host: &str,
) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn edge_toml(
    http_port: u16,
    tls_port: u16,
    pebble: &Pebble,
    store: &Path,
    acme_extra: &str,
) -> String {
    format!(
        r#"[edge]
[[edge.listeners]]
listen = "127.0.0.1:{http_port}"
redirect_https_port = {tls_port}
[[edge.listeners]]
listen = "127.0.0.1:{tls_port}"
[edge.listeners.acme]
directory = "{dir}"
contact = ["mailto:ops@basalt.test"]
domains = ["{NAME}", "www.{NAME}"]
store = "{store}"
ca_root = "{root}"
{acme_extra}
[[edge.routes]]
name = "hello"
redirect = {{ to = "https://example.com/", status = 302 }}
"#,
        dir = pebble.directory,
        store = store.display(),
        root = pebble.https_root.display(),
    )
}

/// The value of a metric line (`name{labels} value`) in `/metrics` text; 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_over_http01_serves_by_sni_renews_on_a_running_listener_and_reloads_from_store() {
    let dir = tempfile::tempdir().unwrap();
    let (http_port, tls_port) = (free_port(), free_port());
    let Some(pebble) = Pebble::start(dir.path(), http_port, tls_port, false).await else {
        return;
    };
    let store = dir.path().join("store");
    // A renewal window longer than Pebble's certificates live: every round renews.
    let toml = edge_toml(
        http_port,
        tls_port,
        &pebble,
        &store,
        "renew_before = \"36500d\"\npoll_interval = \"1s\"",
    );
    let edge = Edge::start(edge_config::parse(&toml).unwrap(), None, None)
        .await
        .unwrap();
    let tls_addr: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let http_addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();

    let root = pebble.issuing_root().await;
    let first = wait_served(tls_addr, &root, None).await;
    // The chain verifies to Pebble's root for both names, and not to an unrelated root.
    connect(
        tls_addr,
        &format!("www.{NAME}"),
        std::slice::from_ref(&root),
    )
    .await
    .unwrap();
    assert!(
        connect(tls_addr, NAME, std::slice::from_ref(&pebble.https_root_der))
            .await
            .is_err()
    );

    // A connection opened now keeps working across the swap.
    let mut held = connect(tls_addr, NAME, std::slice::from_ref(&root))
        .await
        .unwrap();
    held.write_all(format!("GET / HTTP/1.1\r\nhost: {NAME}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = held.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 302"));

    let second = wait_served(tls_addr, &root, Some(&first)).await;
    assert_ne!(
        first, second,
        "renewal serves a new certificate without a restart"
    );
    held.write_all(
        format!("GET / HTTP/1.1\r\nhost: {NAME}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), held.read_to_end(&mut rest)).await;
    assert!(
        String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 302"),
        "the old connection still serves"
    );

    // Plain HTTP still redirects; a token nobody asked for is not answered.
    let r = upstreams::raw(http_addr, format!("GET /.well-known/acme-challenge/nope HTTP/1.1\r\nhost: {NAME}\r\nconnection: close\r\n\r\n").as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 308"), "{r}");

    let m = edge.metrics().render();
    assert!(
        metric(
            &m,
            &format!("basalt_edge_acme_issuance_total{{name=\"{NAME}\",result=\"success\"}}")
        ) >= 2.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            &format!(
                "basalt_edge_acme_certificate_expiry_timestamp_seconds{{name=\"www.{NAME}\"}}"
            )
        ) > 1.0e9,
        "{m}"
    );
    assert!(
        metric(
            &m,
            &format!("basalt_edge_acme_orders_total{{name=\"{NAME}\"}}")
        ) >= 2.0,
        "{m}"
    );

    // The store: account, chain, and a private key only its owner reads.
    assert!(store.join("account.json").is_file());
    assert!(store.join(format!("{NAME}.crt.pem")).is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["account.json".to_string(), format!("{NAME}.key.pem")] {
            let mode = std::fs::metadata(store.join(&f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    edge.shutdown(Duration::from_secs(1)).await;
    drop(edge);
    drop(pebble);

    // A restart serves the stored certificate at once, with the CA gone.
    let stored_serial = {
        let pem = std::fs::read(store.join(format!("{NAME}.crt.pem"))).unwrap();
        let leaf = CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
        parsed.tbs_certificate.raw_serial_as_string()
    };
    let toml = format!(
        r#"[edge]
[[edge.listeners]]
listen = "127.0.0.1:0"
[edge.listeners.acme]
directory = "https://127.0.0.1:{dead}/dir"
domains = ["{NAME}", "www.{NAME}"]
store = "{store}"
"#,
        dead = free_port(),
        store = store.display()
    );
    let restarted = Edge::start(edge_config::parse(&toml).unwrap(), None, None)
        .await
        .unwrap();
    let addr = restarted.local_addrs()[0];
    let tls = connect(addr, NAME, std::slice::from_ref(&root))
        .await
        .unwrap();
    assert_eq!(leaf_serial(&tls), stored_serial);
    assert_eq!(
        metric(
            &restarted.metrics().render(),
            "basalt_edge_acme_orders_total"
        ),
        0.0
    );
    restarted.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_over_tls_alpn01_on_the_tls_listener_alone() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on Pebble's HTTP port: only the TLS listener can prove the names.
    let (http_port, tls_port) = (free_port(), free_port());
    let Some(pebble) = Pebble::start(dir.path(), http_port, tls_port, false).await else {
        return;
    };
    let toml = format!(
        r#"[edge]
[[edge.listeners]]
listen = "127.0.0.1:{tls_port}"
[edge.listeners.acme]
directory = "{dir}"
domains = ["{NAME}"]
store = "{store}"
ca_root = "{root}"
challenge = "tls-alpn-01"
poll_interval = "1s"
[[edge.routes]]
redirect = {{ to = "https://example.com/", status = 302 }}
"#,
        dir = pebble.directory,
        store = dir.path().join("store").display(),
        root = pebble.https_root.display(),
    );
    let edge = Edge::start(edge_config::parse(&toml).unwrap(), None, None)
        .await
        .unwrap();
    let root = pebble.issuing_root().await;
    let addr = edge.local_addrs()[0];
    wait_served(addr, &root, None).await;
    let tls = connect(addr, NAME, std::slice::from_ref(&root))
        .await
        .unwrap();
    let r = http_get(tls, "/", NAME).await;
    assert!(r.is_empty(), "a redirect has no body");
    let m = edge.metrics().render();
    assert_eq!(
        metric(
            &m,
            &format!("basalt_edge_acme_issuance_total{{name=\"{NAME}\",result=\"success\"}}")
        ),
        1.0,
        "{m}"
    );
    edge.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_sharing_a_store_place_one_order_and_both_serve_it() {
    let dir = tempfile::tempdir().unwrap();
    let (http_port, tls_port) = (free_port(), free_port());
    // Pebble validates against edge A's plain port only, and edge B starts first and takes
    // the lease: A must answer B's challenge through the shared store.
    let Some(pebble) = Pebble::start(dir.path(), http_port, tls_port, false).await else {
        return;
    };
    let store = dir.path().join("shared-store");
    let mut edges = Vec::new();
    for plain in [free_port(), http_port] {
        let toml = format!(
            r#"[edge]
[[edge.listeners]]
listen = "127.0.0.1:{plain}"
[[edge.listeners]]
listen = "127.0.0.1:{tls}"
[edge.listeners.acme]
directory = "{dir}"
domains = ["{NAME}"]
store = "{store}"
ca_root = "{root}"
poll_interval = "200ms"
"#,
            tls = free_port(),
            dir = pebble.directory,
            store = store.display(),
            root = pebble.https_root.display(),
        );
        edges.push(
            Edge::start(edge_config::parse(&toml).unwrap(), None, None)
                .await
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !store.join(format!("{NAME}.lease")).exists()
            && !store.join(format!("{NAME}.crt.pem")).exists()
        {
            assert!(Instant::now() < deadline, "the first edge takes the lease");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let root = pebble.issuing_root().await;
    let b = wait_served(edges[0].local_addrs()[1], &root, None).await;
    let a = wait_served(edges[1].local_addrs()[1], &root, None).await;
    assert_eq!(a, b, "both nodes serve the one certificate");
    // Several more poll rounds: nobody orders again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let series = format!("basalt_edge_acme_orders_total{{name=\"{NAME}\"}}");
    let orders: Vec<f64> = edges
        .iter()
        .map(|e| metric(&e.metrics().render(), &series))
        .collect();
    assert_eq!(
        orders,
        [1.0, 0.0],
        "exactly one order reached the CA, from the lease holder"
    );
    assert!(
        !store.join(format!("{NAME}.lease")).exists(),
        "the lease is given up after issuing"
    );
    for e in &edges {
        e.shutdown(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn a_failing_ca_is_retried_with_backoff_while_the_stored_certificate_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec![NAME.to_string()]).unwrap();
    std::fs::write(store.join(format!("{NAME}.crt.pem")), ck.cert.pem()).unwrap();
    std::fs::write(
        store.join(format!("{NAME}.key.pem")),
        ck.signing_key.serialize_pem(),
    )
    .unwrap();
    // Always due (rcgen's certificates run to the year 4096), and the CA is unreachable:
    // every round fails.
    let toml = format!(
        r#"[edge]
[[edge.listeners]]
listen = "127.0.0.1:0"
[edge.listeners.acme]
directory = "https://127.0.0.1:{dead}/dir"
domains = ["{NAME}"]
store = "{store}"
renew_before = "9999999d"
poll_interval = "100ms"
"#,
        dead = free_port(),
        store = store.display()
    );
    let edge = Edge::start(edge_config::parse(&toml).unwrap(), None, None)
        .await
        .unwrap();
    let series = format!("basalt_edge_acme_issuance_total{{name=\"{NAME}\",result=\"failure\"}}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&edge.metrics().render(), &series) < 2.0 {
        assert!(
            Instant::now() < deadline,
            "failures are retried: {}",
            edge.metrics().render()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tls = connect(edge.local_addrs()[0], NAME, &[ck.cert.der().clone()])
        .await
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(ck.cert.der().as_ref()).unwrap();
    assert_eq!(
        leaf_serial(&tls),
        parsed.tbs_certificate.raw_serial_as_string()
    );
    // Backoff doubles from 100 ms: within a second there are a handful of tries, not ten.
    let before = metric(&edge.metrics().render(), &series);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = metric(&edge.metrics().render(), &series) - before;
    assert!(during <= 4.0, "{during} attempts in a second: no backoff");
    edge.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_invalid_acme_section_is_refused_at_load_and_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |extra: &str| {
        format!(
            "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n[edge.listeners.acme]\ndirectory = \"https://127.0.0.1:1/dir\"\nstore = \"{}\"\n{extra}\n",
            dir.path().display()
        )
    };
    for (extra, says) in [
        ("domains = [\"*.example.com\"]", "wildcard"),
        ("domains = []", "at least one"),
        (
            "domains = [\"a.example\"]\nrenew_before = \"soon\"",
            "renew_before",
        ),
        (
            "domains = [\"a.example\"]\nchallenge = \"dns-01\"",
            "unknown variant",
        ),
    ] {
        let e = match edge_config::parse(&bad(extra)) {
            Err(e) => e.to_string(),
            Ok(cfg) => Edge::start(cfg, None, None)
                .await
                .err()
                .expect("refused")
                .to_string(),
        };
        assert!(e.contains(says), "{e} should say {says}");
    }
    let (edge, addr) = upstreams::edge(
        "[edge]\n[[edge.listeners]]\nlisten = \"127.0.0.1:0\"\n[[edge.routes]]\nredirect = { to = \"https://example.com/\", status = 302 }\n",
    )
    .await;
    let mut cfg = edge_config::parse(&bad("domains = [\"*.example.com\"]")).unwrap();
    cfg.listeners[0].listen = addr.to_string();
    let e = edge.apply(cfg).await.unwrap_err().to_string();
    assert!(e.contains("wildcard"), "{e}");
    let r = upstreams::raw(
        addr,
        b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 302"),
        "the old configuration keeps serving: {r}"
    );
    edge.shutdown(Duration::from_secs(1)).await;
}
