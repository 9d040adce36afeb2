//! Configuration, staged: `basalt.toml` -> `BASALT_*` environment -> command-line flags,
//! into one struct that rejects unknown keys, then `validate()`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// Every option of `basalt serve`. Secrets are never logged (see the `Debug` impl).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`BASALT_HTTP`). Default `127.0.0.1:8090`.
    pub http: String,
    /// Data directory holding `data.db` and the generated secret (`BASALT_DIR`); with
    /// `database_url` it holds only the local record files (`storage/`), the upload spool
    /// and the lock. Default `basalt_data`.
    pub dir: PathBuf,
    /// PostgreSQL instead of the embedded SQLite database (`BASALT_DATABASE_URL`,
    /// `--database-url`): `postgres://user:password@host:port/db`, the tables in the first
    /// schema of the search path (`?options=-csearch_path%3Dname`). Plain TCP only: a URL
    /// whose `sslmode` asks for TLS is refused. Several servers on one URL share the data;
    /// the signing secret, when `secret` is unset, is kept in the database. A secret (it may
    /// hold a password), never logged. Default none: SQLite in `dir`.
    pub database_url: Option<String>,
    /// Allowed CORS origins, `*` for any (`BASALT_CORS_ORIGINS`, comma-separated). Default `["*"]`.
    pub cors_origins: Vec<String>,
    /// Largest accepted request body in bytes (`BASALT_BODY_LIMIT`). Default 32 MiB.
    pub body_limit: usize,
    /// Seconds a request may run (`BASALT_REQUEST_TIMEOUT`); a multipart upload instead
    /// fails only after this long without a byte of its body. Default 60.
    pub request_timeout: u64,
    /// Reader connections; 0 (the default) derives from the CPU count (`BASALT_DB_READERS`).
    /// With `database_url`: the pool's connections (0: four per CPU).
    pub db_readers: usize,
    /// Capacity of the writer queue (`BASALT_DB_WRITER_QUEUE`); SQLite only. Default 1024.
    pub db_writer_queue: usize,
    /// `PRAGMA synchronous=FULL` instead of NORMAL (`BASALT_DB_SYNC_FULL`): each commit waits
    /// for the WAL to reach the disk, so an acknowledged write also survives an OS crash or
    /// power loss; NORMAL (the default promise) survives a process crash (`kill -9`) but may
    /// lose the last writes to an OS crash or power loss, never corrupting the database.
    /// Uploaded files on local disk follow it: fsynced (file and directory) only when true.
    /// See docs/durability.md. SQLite only (PostgreSQL's own `synchronous_commit` decides
    /// there). Default false.
    pub db_sync_full: bool,
    /// Seconds the change log (`_changes`, the outbox of record changes) keeps an entry;
    /// 0 keeps entries whatever their age (`BASALT_CHANGE_LOG_MAX_AGE`). Default 604800 (7 days).
    pub change_log_max_age: u64,
    /// Newest change-log entries kept; 0 keeps any number (`BASALT_CHANGE_LOG_MAX_ROWS`).
    /// Default 100000.
    pub change_log_max_rows: u64,
    /// Log as JSON lines (`BASALT_JSON_LOGS`, `--json-logs`). Default false.
    pub json_logs: bool,
    /// Log filter, e.g. `info` or `basalt=debug` (`BASALT_LOG`). Default `info`.
    pub log: String,
    /// Token signing secret (`BASALT_SECRET`); generated into `<dir>/secret.key` when unset.
    pub secret: Option<String>,
    /// Seconds in-flight requests get to finish on shutdown (`BASALT_SHUTDOWN_GRACE`). Default 10.
    pub shutdown_grace: u64,
    /// Earlier token signing secrets still accepted when verifying tokens, never used to
    /// sign (`BASALT_PREVIOUS_SECRETS`, comma-separated). Rotate by making the current
    /// secret the first previous one; drop it once its tokens may have expired. Default none.
    pub previous_secrets: Vec<String>,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed; the client is
    /// the rightmost address not in this list (`BASALT_TRUSTED_PROXIES`, comma-separated).
    /// Default none: the client is the TCP peer.
    pub trusted_proxies: Vec<String>,
    /// Auth requests (logins, OTP, verification and reset) per client address per minute;
    /// 0 disables (`BASALT_AUTH_RATE_PER_IP`). Default 60.
    pub auth_rate_per_ip: u32,
    /// Auth requests per identity (email, username, OTP id) per minute; 0 disables
    /// (`BASALT_AUTH_RATE_PER_IDENTITY`). Default 20.
    pub auth_rate_per_identity: u32,
    /// Bearer token that `/metrics` requires (`BASALT_METRICS_TOKEN`; at least 16 characters, no whitespace): requests without `Authorization: Bearer TOKEN` get a 401. A secret, never logged. Default none: `/metrics` is open.
    pub metrics_token: Option<String>,
    /// Who may read the OpenAPI document `/api/openapi.json` (`BASALT_OPENAPI`): `all`
    /// (anyone, every route), `reachable` (superusers see every route; anyone else the
    /// collections and actions whose rule is not superusers-only) or `superusers`. Rule
    /// text shows to superusers only. Default `reachable`.
    pub openapi: String,
    /// The edge (`[edge]`: listeners, routes, pools, limits; see docs/edge.md). When set, `serve` answers on the edge's listeners instead of `http`, and `basalt proxy` runs it alone. Default none.
    pub edge: Option<basalt_edge::EdgeConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("http", &self.http)
            .field("dir", &self.dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field("cors_origins", &self.cors_origins)
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("db_readers", &self.db_readers)
            .field("db_writer_queue", &self.db_writer_queue)
            .field("db_sync_full", &self.db_sync_full)
            .field("change_log_max_age", &self.change_log_max_age)
            .field("change_log_max_rows", &self.change_log_max_rows)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("previous_secrets", &self.previous_secrets.len())
            .field("trusted_proxies", &self.trusted_proxies)
            .field("auth_rate_per_ip", &self.auth_rate_per_ip)
            .field("auth_rate_per_identity", &self.auth_rate_per_identity)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("openapi", &self.openapi)
            .field("edge", &self.edge.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: "127.0.0.1:8090".into(),
            dir: PathBuf::from("basalt_data"),
            database_url: None,
            cors_origins: vec!["*".into()],
            body_limit: 32 << 20,
            request_timeout: 60,
            db_readers: 0,
            db_writer_queue: 1024,
            db_sync_full: false,
            change_log_max_age: 7 * 86_400,
            change_log_max_rows: 100_000,
            json_logs: false,
            log: "info".into(),
            secret: None,
            shutdown_grace: 10,
            previous_secrets: vec![],
            trusted_proxies: vec![],
            auth_rate_per_ip: 60,
            auth_rate_per_identity: 20,
            metrics_token: None,
            openapi: "reachable".into(),
            edge: None,
        }
    }
}

impl Config {
    /// Reads the file (if any), then overlays `BASALT_*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn num<T: std::str::FromStr>(k: &str, v: String) -> anyhow::Result<T> {
            v.parse()
                .map_err(|_| anyhow::anyhow!("{k}: invalid number {v:?}"))
        }
        fn flag(v: &str) -> bool {
            matches!(v, "1" | "true" | "yes" | "on")
        }
        if let Some(v) = get("BASALT_HTTP") {
            self.http = v;
        }
        if let Some(v) = get("BASALT_DIR") {
            self.dir = v.into();
        }
        if let Some(v) = get("BASALT_DATABASE_URL").filter(|v| !v.is_empty()) {
            self.database_url = Some(v);
        }
        if let Some(v) = get("BASALT_CORS_ORIGINS") {
            self.cors_origins = v.split(',').map(|s| s.trim().to_string()).collect();
        }
        if let Some(v) = get("BASALT_BODY_LIMIT") {
            self.body_limit = num("BASALT_BODY_LIMIT", v)?;
        }
        if let Some(v) = get("BASALT_REQUEST_TIMEOUT") {
            self.request_timeout = num("BASALT_REQUEST_TIMEOUT", v)?;
        }
        if let Some(v) = get("BASALT_DB_READERS") {
            self.db_readers = num("BASALT_DB_READERS", v)?;
        }
        if let Some(v) = get("BASALT_DB_WRITER_QUEUE") {
            self.db_writer_queue = num("BASALT_DB_WRITER_QUEUE", v)?;
        }
        if let Some(v) = get("BASALT_DB_SYNC_FULL") {
            self.db_sync_full = flag(&v);
        }
        if let Some(v) = get("BASALT_CHANGE_LOG_MAX_AGE") {
            self.change_log_max_age = num("BASALT_CHANGE_LOG_MAX_AGE", v)?;
        }
        if let Some(v) = get("BASALT_CHANGE_LOG_MAX_ROWS") {
            self.change_log_max_rows = num("BASALT_CHANGE_LOG_MAX_ROWS", v)?;
        }
        if let Some(v) = get("BASALT_JSON_LOGS") {
            self.json_logs = flag(&v);
        }
        if let Some(v) = get("BASALT_LOG") {
            self.log = v;
        }
        if let Some(v) = get("BASALT_SECRET") {
            self.secret = Some(v);
        }
        if let Some(v) = get("BASALT_SHUTDOWN_GRACE") {
            self.shutdown_grace = num("BASALT_SHUTDOWN_GRACE", v)?;
        }
        fn list(v: &str) -> Vec<String> {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }
        if let Some(v) = get("BASALT_PREVIOUS_SECRETS") {
            self.previous_secrets = list(&v);
        }
        if let Some(v) = get("BASALT_TRUSTED_PROXIES") {
            self.trusted_proxies = list(&v);
        }
        if let Some(v) = get("BASALT_AUTH_RATE_PER_IP") {
            self.auth_rate_per_ip = num("BASALT_AUTH_RATE_PER_IP", v)?;
        }
        if let Some(v) = get("BASALT_AUTH_RATE_PER_IDENTITY") {
            self.auth_rate_per_identity = num("BASALT_AUTH_RATE_PER_IDENTITY", v)?;
        }
        if let Some(v) = get("BASALT_METRICS_TOKEN") {
            self.metrics_token = Some(v);
        }
        if let Some(v) = get("BASALT_OPENAPI") {
            self.openapi = v;
        }
        Ok(())
    }

    pub fn validate(self) -> anyhow::Result<Self> {
        if self.http.parse::<std::net::SocketAddr>().is_err() {
            bail!(
                "http: {:?} is not an address like 127.0.0.1:8090",
                self.http
            );
        }
        if self.body_limit < 1024 {
            bail!("body_limit: must be at least 1024 bytes");
        }
        if self.request_timeout == 0 {
            bail!("request_timeout: must be at least 1 second");
        }
        if self.db_writer_queue == 0 {
            bail!("db_writer_queue: must be at least 1");
        }
        if let Some(url) = &self.database_url {
            check_database_url(url)?;
            // SQLite's writer options mean nothing to PostgreSQL: refused, not ignored.
            let sqlite_only = Config::default();
            if self.db_writer_queue != sqlite_only.db_writer_queue {
                bail!("db_writer_queue: applies to SQLite only, not with database_url");
            }
            if self.db_sync_full {
                bail!(
                    "db_sync_full: applies to SQLite only, not with database_url (set \
                     synchronous_commit in PostgreSQL)"
                );
            }
        }
        if self.secret.as_ref().is_some_and(|s| s.len() < 32) {
            bail!("secret: must be at least 32 characters");
        }
        if self.previous_secrets.iter().any(|s| s.len() < 32) {
            bail!("previous_secrets: each must be at least 32 characters");
        }
        if let Err(e) = basalt_net::IpSet::parse(&self.trusted_proxies) {
            bail!("trusted_proxies: {e}");
        }
        if let Some(t) = &self.metrics_token {
            if t.chars().count() < 16 {
                bail!("metrics_token: must be at least 16 characters");
            }
            if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!("metrics_token: must not contain whitespace or control characters");
            }
        }
        if let Err(e) = self.openapi.parse::<basalt_api::OpenApiAccess>() {
            bail!("openapi: {e}");
        }
        Ok(self)
    }
}

/// What can be told of a database URL before connecting: its scheme, that it parses,
/// and no TLS asked for (the PostgreSQL engine speaks plain TCP only). The message never
/// repeats the URL, which may hold a password.
fn check_database_url(url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!("database_url: must start with postgres:// or postgresql://");
    }
    basalt_store::PgConfig::check_url(url).map_err(|e| anyhow::anyhow!("database_url: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<Config>("htp = \"x\"").is_err());
        let c: Config = toml::from_str("http = \"127.0.0.1:9000\"\ndb_readers = 3").expect("valid");
        assert_eq!(c.db_readers, 3);
    }

    #[test]
    fn env_overrides_file_and_validation_catches_bad_values() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "BASALT_HTTP").then(|| "127.0.0.1:7000".to_string()))
            .expect("env");
        assert_eq!(c.http, "127.0.0.1:7000");
        assert!(c.clone().validate().is_ok());
        let mut bad = Config::default();
        assert!(
            bad.apply_env(|k| (k == "BASALT_BODY_LIMIT").then(|| "lots".to_string()))
                .is_err()
        );
        bad.http = "nowhere".into();
        assert!(bad.validate().is_err());
        assert!(
            !format!(
                "{:?}",
                Config {
                    secret: Some("s".repeat(40)),
                    metrics_token: Some("m".repeat(20)),
                    ..Config::default()
                }
            )
            .contains("sss")
        );
        assert!(
            !format!(
                "{:?}",
                Config {
                    metrics_token: Some("m".repeat(20)),
                    ..Config::default()
                }
            )
            .contains("mmm")
        );
    }

    #[test]
    fn the_metrics_token_comes_from_the_environment_and_must_be_long() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "BASALT_METRICS_TOKEN").then(|| "t".repeat(16)))
            .expect("env");
        assert_eq!(c.metrics_token.as_deref(), Some("tttttttttttttttt"));
        assert!(c.validate().is_ok());
        for bad in ["short", "with a space in it here"] {
            let c = Config {
                metrics_token: Some(bad.into()),
                ..Config::default()
            };
            let e = c.validate().expect_err("refused").to_string();
            assert!(e.starts_with("metrics_token:"), "{e}");
        }
    }
}
