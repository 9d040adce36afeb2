//! A real S3 server for tests: `moto_server` (PyPI `moto[server]`, which `.ci/run`
//! installs) on a loopback port, killed on drop, with the few bucket operations tests
//! need to see what was stored.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
