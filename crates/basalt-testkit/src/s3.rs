//! A real S3 server for tests: `moto_server` (PyPI `moto[server]`, which `.ci/run`
//! installs) on a loopback port, killed on drop, with the few bucket operations tests
//! need to see what was stored; and [`CutProxy`], which puts it out of reach in the
//! middle of an upload.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use serde_json::{Value, json};

/// A running `moto_server`.
pub struct Moto {
    child: Option<Child>,
    port: u16,
    http: reqwest::Client,
}

impl Moto {
    /// Starts `moto_server` on 127.0.0.1, or `None` (with a note) when it is not
    /// installed.
    pub async fn start() -> Option<Moto> {
        let port = crate::free_port();
        let mut m = Moto {
            child: None,
            port,
            http: reqwest::Client::new(),
        };
        if let Err(e) = m.spawn().await {
            eprintln!("moto_server not available ({e}): the S3 tests are skipped");
            return None;
        }
        Some(m)
    }

    async fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "moto_server did not listen on 127.0.0.1:{} within 30 s",
            self.port
        );
    }

    /// Stops the server (an S3 outage); [`Moto::resume`] starts a fresh, empty one on
    /// the same port.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn resume(&mut self) {
        self.spawn().await.expect("restart moto_server");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Multipart uploads begun in `bucket` and neither completed nor aborted.
    pub async fn pending_uploads(&self, bucket: &str) -> usize {
        let xml = self
            .http
            .get(format!("{}/{bucket}?uploads", self.endpoint()))
            .send()
            .await
            .expect("list multipart uploads")
            .text()
            .await
            .expect("uploads body");
        xml.matches("<UploadId>").count()
    }

    /// Creates `bucket` (moto takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let res = self
            .http
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .expect("create bucket");
        assert!(res.status().is_success(), "creating bucket {bucket}");
    }

    /// PocketBase's `s3` settings section for `bucket` (path style).
    pub fn settings(&self, bucket: &str) -> Value {
        json!({"enabled": true, "bucket": bucket, "region": "us-east-1",
               "endpoint": self.endpoint(), "accessKey": "test", "secret": "test",
               "forcePathStyle": true})
    }

    /// Every key in `bucket`, sorted.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let xml = self
            .http
            .get(format!(
                "{}/{bucket}?list-type=2&max-keys=1000",
                self.endpoint()
            ))
            .send()
            .await
            .expect("list bucket")
            .text()
            .await
            .expect("list body");
        let mut out: Vec<String> = xml
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect();
        out.sort();
        out
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback TCP proxy in front of an S3 server. Armed, it cuts every connection that
/// has carried more than `limit` bytes towards the server, both ways at once: S3 going
/// away while an upload's body is streaming. Unarmed it passes everything. Stops on drop.
pub struct CutProxy {
    port: u16,
    armed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16, limit: u64) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let armed = Arc::new(AtomicBool::new(false));
        let flag = armed.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, upstream, limit, flag.clone()));
            }
        });
        CutProxy { port, armed, task }
    }

    /// Cuts connections past the limit from now on (`false`: passes them again).
    pub fn arm(&self, on: bool) {
        self.armed.store(on, Ordering::SeqCst);
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(client: TcpStream, upstream: u16, limit: u64, armed: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    });
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        sent += n as u64;
        if armed.load(Ordering::SeqCst) && sent > limit {
            // Dropping both halves of both sockets ends the connection mid-request.
            back.abort();
            return;
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    drop(to_server);
    let _ = back.await;
}
