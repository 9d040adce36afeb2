//! The edge through the real binary: `basalt proxy --config` in front of a real upstream
//! with SIGHUP reloads (an invalid file is rejected and the old configuration serves on),
//! and `basalt serve` with an `[edge]` section putting the API behind the edge in-process.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A minimal HTTP/1.1 upstream answering every request with `name` (bounded: it serves
/// until the test's runtime ends).
async fn upstream(name: &'static str) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut have = 0;
                loop {
                    match s.read(&mut buf[have..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have += n,
                    }
                    if buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                    if have == buf.len() {
                        return;
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

fn start(args: &[&str], config: &Path, dir: Option<&Path>) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_basalt"));
    cmd.args(args).arg("--config").arg(config);
    if let Some(d) = dir {
        cmd.arg("--dir").arg(d);
    }
    Process(
        cmd.env("BASALT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn basalt"),
    )
}

async fn get_text(url: &str) -> Option<(u16, String)> {
    let r = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let s = r.status().as_u16();
    Some((s, r.text().await.unwrap_or_default()))
}

/// Polls `url` until `want` answers or the bounded wait ends.
async fn wait_for(url: &str, want: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some((200, body)) = get_text(url).await
            && body.contains(want)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn proxy_config(port: u16, upstream: SocketAddr) -> String {
    format!(
        // Two workers, not one per core: the suites start many edges at once.
        "[edge]\nworkers = 2\n[[edge.listeners]]\nlisten = \"127.0.0.1:{port}\"\n[[edge.routes]]\npool = \"app\"\n[edge.pools.app]\ntargets = [{{ address = \"{upstream}\" }}]\n"
    )
}

#[tokio::test]
async fn basalt_proxy_serves_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().expect("dir");
    let (a, b) = (upstream("alpha").await, upstream("beta").await);
    let port = free_port();
    let cfg = dir.path().join("edge.toml");
    std::fs::write(&cfg, proxy_config(port, a)).expect("write");
    let p = start(&["proxy"], &cfg, None);
    let url = format!("http://127.0.0.1:{port}/");
    assert!(wait_for(&url, "alpha").await, "proxy never answered");

    std::fs::write(&cfg, proxy_config(port, b)).expect("write");
    p.signal("-HUP");
    assert!(
        wait_for(&url, "beta").await,
        "SIGHUP did not apply the new file"
    );

    // An invalid file is rejected; the running configuration keeps serving.
    std::fs::write(&cfg, "[edge]\n[[edge.routes]]\npool = \"missing\"\n").expect("write");
    p.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get_text(&url).await, Some((200, "beta".into())));
    // Clean exit on SIGTERM.
    p.signal("-TERM");
    let mut p = p;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Ok(Some(s)) = p.0.try_wait() {
            break s;
        }
        assert!(Instant::now() < deadline, "proxy did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success());
}

#[tokio::test]
async fn basalt_proxy_refuses_a_config_without_an_edge_section() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("basalt.toml");
    std::fs::write(&cfg, "log = \"warn\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["proxy", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [edge] section"));
}

#[tokio::test]
async fn basalt_serve_puts_the_edge_in_front_of_the_api() {
    let dir = tempfile::tempdir().expect("dir");
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::write(site.join("index.html"), "<p>front end</p>").expect("write");
    let app = upstream("app-service").await;
    let port = free_port();
    let cfg = dir.path().join("basalt.toml");
    std::fs::write(
        &cfg,
        format!(
            "[edge]\nworkers = 2\n[[edge.listeners]]\nlisten = \"127.0.0.1:{port}\"\n\
             [[edge.routes]]\nname = \"api\"\npath_prefix = \"/api\"\napi = true\n\
             [[edge.routes]]\nname = \"service\"\npath_prefix = \"/svc\"\npool = \"svc\"\n\
             [[edge.routes]]\nname = \"site\"\nstatic = {{ root = \"{}\", spa = true }}\n\
             [edge.pools.svc]\ntargets = [{{ address = \"{app}\" }}]\n",
            site.display()
        ),
    )
    .expect("write");
    let data = dir.path().join("data");
    let _p = start(&["serve"], &cfg, Some(&data));
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        wait_for(&format!("{base}/api/health"), "").await,
        "API behind the edge"
    );
    let (status, body) = get_text(&format!("{base}/api/collections/users/records"))
        .await
        .expect("records");
    // The users collection lists only for superusers/owners: PocketBase's answer, from the API.
    assert!(status == 200 || status == 403, "{status} {body}");
    assert!(
        body.contains("\"items\"") || body.contains("\"status\""),
        "{body}"
    );
    assert_eq!(
        get_text(&format!("{base}/svc/x")).await,
        Some((200, "app-service".into()))
    );
    assert_eq!(
        get_text(&format!("{base}/dashboard/settings")).await,
        Some((200, "<p>front end</p>".into()))
    );
}
