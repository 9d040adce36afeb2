//! Dev-only test helpers: runs the real `basalt` binary on a free loopback port with a
//! temporary data directory, and talks to it over HTTP. Never used by production code.
//!
//! With `BASALT_TEST_DATABASE=postgres` (and `BASALT_TEST_PG_URL`, see [`pg`]) every
//! [`TestServer`] runs on PostgreSQL instead, each in a fresh schema of its own, so the
//! same integration tests exercise both engines; [`TestServer::start_on_postgres`] picks
//! PostgreSQL for one test whatever that variable says.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod damage;
pub mod files;
pub mod images;
pub mod multipart;
pub mod pg;
pub mod s3;
pub mod smtp;

pub const SUPERUSER_EMAIL: &str = "root@example.com";
pub const SUPERUSER_PASSWORD: &str = "Root-pass-123";

/// A running server; killed (and its data removed) on drop.
pub struct TestServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Holds the server's log, apart from its data directory.
    logs: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// Extra environment of `serve` (configuration under test), kept across restarts.
    env: Vec<(String, String)>,
    /// The PostgreSQL schema the server runs on (dropped after the server is killed).
    pg: Option<pg::PgSchema>,
    pub http: reqwest::Client,
}

/// Whether the test servers run on PostgreSQL (`BASALT_TEST_DATABASE=postgres`). Any
/// other value than `postgres` or `sqlite` fails the test, so a typo is not a silent run
/// on SQLite.
pub fn servers_on_postgres() -> bool {
    match std::env::var("BASALT_TEST_DATABASE").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("BASALT_TEST_DATABASE={other:?}: use sqlite or postgres"),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18090)
}

impl TestServer {
    /// Creates a superuser with the CLI, then starts `serve` and waits for health.
    pub async fn start(bin: &str) -> TestServer {
        Self::start_with_env(bin, &[]).await
    }

    /// Like [`TestServer::start`], with `BASALT_*` variables for `serve`.
    pub async fn start_with_env(bin: &str, env: &[(&str, &str)]) -> TestServer {
        let pg = if servers_on_postgres() {
            let schema = pg::PgSchema::create("srv").await;
            Some(schema.expect("BASALT_TEST_DATABASE=postgres needs BASALT_TEST_PG_URL"))
        } else {
            None
        };
        Self::start_inner(bin, env, pg).await
    }

    /// A server on a fresh PostgreSQL schema whatever `BASALT_TEST_DATABASE` says;
    /// `None` (the test passes with a notice) without `BASALT_TEST_PG_URL`, see [`pg::url`].
    pub async fn start_on_postgres(bin: &str, env: &[(&str, &str)]) -> Option<TestServer> {
        let schema = pg::PgSchema::create("srv").await?;
        Some(Self::start_inner(bin, env, Some(schema)).await)
    }

    /// A second server (its own data dir and port) on this one's database: PostgreSQL
    /// only, as two processes never share a SQLite data dir.
    pub async fn start_peer(&self, env: &[(&str, &str)]) -> TestServer {
        let url = self
            .pg
            .as_ref()
            .map(pg::PgSchema::url)
            .expect("a peer shares a PostgreSQL database");
        let mut env: Vec<(&str, &str)> = env.to_vec();
        env.push(("BASALT_DATABASE_URL", &url));
        Self::start_inner(self.bin.to_str().expect("utf-8 path"), &env, None).await
    }

    /// The database URL when the server runs on PostgreSQL.
    pub fn database_url(&self) -> Option<String> {
        self.pg.as_ref().map(pg::PgSchema::url)
    }

    async fn start_inner(bin: &str, env: &[(&str, &str)], pg: Option<pg::PgSchema>) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(schema) = &pg {
            env.push(("BASALT_DATABASE_URL".into(), schema.url()));
        }
        let status = Command::new(bin)
            .args([
                "superuser",
                "upsert",
                SUPERUSER_EMAIL,
                SUPERUSER_PASSWORD,
                "--dir",
            ])
            .arg(dir.path())
            // Only the database of the test's configuration: the rest is `serve`'s.
            .envs(
                env.iter()
                    .filter(|(k, _)| k == "BASALT_DATABASE_URL")
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .stderr(Stdio::null())
            .status()
            .expect("run superuser upsert");
        assert!(status.success(), "superuser upsert failed");
        let mut s = TestServer {
            bin: PathBuf::from(bin),
            dir,
            logs: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            child: None,
            env,
            pg,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        s.spawn().await;
        s
    }

    /// The running server's process id (0 when it is not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the server's log (stderr, `BASALT_LOG=warn` unless the test sets it) goes,
    /// across restarts.
    fn log_path(&self) -> PathBuf {
        self.logs.path().join("stderr.log")
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log file");
        let child = Command::new(&self.bin)
            .args([
                "serve",
                "--http",
                &format!("127.0.0.1:{}", self.port),
                "--dir",
            ])
            .arg(self.dir.path())
            .env("BASALT_LOG", "warn")
            .env("BASALT_BODY_LIMIT", "1048576")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn basalt serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(self.url("/api/health")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("basalt did not become healthy");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The Prometheus exposition at `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// `kill -9` the server.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        false
    }

    /// Starts the server again on the same data directory.
    /// Sets (or replaces) a variable for the next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    pub async fn token(&self, collection: &str, identity: &str, password: &str) -> String {
        let r: Value = self
            .http
            .post(self.url(&format!("/api/collections/{collection}/auth-with-password")))
            .json(&json!({"identity": identity, "password": password}))
            .send()
            .await
            .expect("auth request")
            .json()
            .await
            .expect("auth json");
        r["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {r}"))
            .to_string()
    }

    pub async fn superuser_token(&self) -> String {
        self.token("_superusers", SUPERUSER_EMAIL, SUPERUSER_PASSWORD)
            .await
    }

    /// Sends a request with an optional token and JSON body; returns status and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}
