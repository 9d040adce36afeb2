//! `basalt serve`: opens the store, builds the API and serves it until SIGINT/SIGTERM,
//! then lets in-flight requests finish (bounded) and closes the database cleanly. A
//! database writer that stops for good shuts the server down the same way and the process
//! exits non-zero, so its supervisor restarts it (`/api/health` answers 503 meanwhile).
//! A staged restore stops it the same way (in-flight requests finish, the database closes)
//! and the process then re-executes itself; the new image completes the restore before
//! it opens the database, as PocketBase restarts itself after a restore.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use basalt_api::{ApiConfig, ApiState};
use basalt_store::{PgConfig, Store, StoreConfig};

use crate::config::Config;

/// What `/api/backups`, the backup schedule and `basalt backup` answer on PostgreSQL: the
/// database is not a file of the data dir, so a backup zip cannot hold it.
pub const PG_BACKUPS_REFUSED: &str = "Backups are not supported with a PostgreSQL database \
    (database_url) yet: back the database up with pg_dump and the files separately.";

/// The `_params` key of the token signing secret on PostgreSQL, when `secret` is unset:
/// every node of a deployment signs and verifies with the one the first node stored.
const PG_SECRET_PARAM: &str = "basalt_signing_secret";

/// Marks a data dir whose records live in PostgreSQL. Without it, a start that forgot the
/// URL would make an empty SQLite database there, and its file sweep would then remove
/// every stored file as named by no record.
const PG_MARKER: &str = ".database_is_postgresql";

/// The database the configuration names: PostgreSQL at `database_url`, or SQLite in the
/// data dir (the default; refused in a data dir marked as PostgreSQL's).
pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let change_log = basalt_store::ChangeLogRetention {
        max_age: (cfg.change_log_max_age > 0)
            .then(|| std::time::Duration::from_secs(cfg.change_log_max_age)),
        max_rows: (cfg.change_log_max_rows > 0).then_some(cfg.change_log_max_rows),
        ..Default::default()
    };
    let marker = cfg.dir.join(PG_MARKER);
    if let Some(url) = &cfg.database_url {
        // The URL may hold a password: the error names the database by neither.
        let store = Store::open_postgres(PgConfig {
            url: url.clone(),
            max_connections: cfg.db_readers,
            change_log,
        })
        .await
        .context("opening the PostgreSQL database (database_url)")?;
        std::fs::create_dir_all(&cfg.dir)
            .and_then(|()| {
                std::fs::write(
                    &marker,
                    "The records of this data dir's files are in PostgreSQL (database_url).\n",
                )
            })
            .with_context(|| format!("writing {}", marker.display()))?;
        return Ok(store);
    }
    if marker.exists() && !cfg.dir.join("data.db").exists() {
        anyhow::bail!(
            "{} holds the files of a deployment on PostgreSQL: pass --database-url (or \
             BASALT_DATABASE_URL), or remove {} to start an empty SQLite database there",
            cfg.dir.display(),
            marker.display()
        );
    }
    Store::open(StoreConfig {
        data_dir: cfg.dir.clone(),
        readers: cfg.db_readers,
        writer_queue: cfg.db_writer_queue,
        synchronous_full: cfg.db_sync_full,
        change_log,
    })
    .await
    .with_context(|| format!("opening the database in {}", cfg.dir.display()))
}

/// The backups of this configuration: the data dir's, or refused on PostgreSQL.
pub fn backups(cfg: &Config) -> basalt_service::backups::Backups {
    use basalt_service::backups::Backups;
    if cfg.database_url.is_some() {
        Backups::refused(&cfg.dir, PG_BACKUPS_REFUSED)
    } else {
        Backups::new(&cfg.dir)
    }
}

/// Record files on local disk in PocketBase's layout (`<dir>/storage/`), uploads spooled
/// in `<dir>/.upload_spool/` (anonymous files: nothing is left there by a crash). A stored
/// file promises what a commit does: fsynced with `db_sync_full`, else it survives a
/// process crash as a `synchronous=NORMAL` commit does.
pub fn files(cfg: &Config) -> anyhow::Result<basalt_service::files::Files> {
    let spool_dir = cfg.dir.join(".upload_spool");
    std::fs::create_dir_all(&spool_dir)
        .with_context(|| format!("creating {}", spool_dir.display()))?;
    Ok(basalt_service::files::Files::new(
        Arc::new(basalt_files::LocalStorage::with_durability(
            cfg.dir.join("storage"),
            file_durability(cfg),
        )),
        spool_dir,
    ))
}

/// The promise a stored file makes: the database's (`db_sync_full`).
pub fn file_durability(cfg: &Config) -> basalt_files::Durability {
    if cfg.db_sync_full {
        basalt_files::Durability::PowerLoss
    } else {
        basalt_files::Durability::Process
    }
}

/// The configured secret, or the one generated on first start: in `<dir>/secret.key` on
/// SQLite, in the database on PostgreSQL (so that every node of a deployment has it).
async fn signing_secret(cfg: &Config, store: &Store) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = &cfg.secret {
        return Ok(s.as_bytes().to_vec());
    }
    if cfg.database_url.is_some() {
        let fresh = serde_json::Value::String(basalt_schema::id::random_id(64));
        let kept = store
            .param_or_insert(PG_SECRET_PARAM, fresh)
            .await
            .context("reading the signing secret from the database")?;
        return match kept.as_str() {
            Some(s) if s.len() >= 32 => Ok(s.as_bytes().to_vec()),
            _ => anyhow::bail!(
                "the signing secret kept in the database ({PG_SECRET_PARAM} in _params) is not a string of at least 32 characters"
            ),
        };
    }
    let path = cfg.dir.join("secret.key");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().as_bytes().to_vec());
    }
    let secret = basalt_schema::id::random_id(64);
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(secret.into_bytes())
}

/// Trusted proxies and the per-minute auth limits of the configuration.
fn auth_limits(cfg: &Config) -> anyhow::Result<basalt_api::AuthLimits> {
    let per_minute = |n: u32| {
        (n > 0)
            .then(|| basalt_net::Quota::new(n, Duration::from_secs(60)))
            .transpose()
    };
    Ok(basalt_api::AuthLimits::new(basalt_api::AuthLimitsConfig {
        trusted_proxies: basalt_net::TrustedProxies::new(
            basalt_net::IpSet::parse(&cfg.trusted_proxies).context("trusted_proxies")?,
        ),
        per_ip: per_minute(cfg.auth_rate_per_ip)?,
        per_identity: per_minute(cfg.auth_rate_per_identity)?,
    }))
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested: finishing in-flight requests");
}

/// Why serving ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT/SIGTERM.
    Signal,
    /// The store's writer stopped (its reason).
    WriterStopped(String),
    /// A restore was staged: drain, close and restart the process to complete it.
    Restart,
}

/// Resolves on SIGINT/SIGTERM, once the store's writer stopped, or once a restore asks
/// for the restart that completes it.
async fn stop_requested(store: &Store, backups: &basalt_service::backups::Backups) -> Stop {
    tokio::select! {
        () = shutdown_signal() => Stop::Signal,
        why = store.writer_stopped() => {
            tracing::error!(reason = %why, "the database writer stopped: shutting down so a supervisor restarts the process");
            Stop::WriterStopped(why)
        }
        () = backups.restart_requested() => {
            tracing::warn!("a restore was staged: finishing in-flight requests, then restarting");
            Stop::Restart
        }
    }
}

/// What `serve` ended with: an error (a non-zero exit) when the writer stopped; `true`
/// when the process must restart (to complete a restore).
fn served(stop: Stop) -> anyhow::Result<bool> {
    match stop {
        Stop::WriterStopped(why) => anyhow::bail!("the database writer stopped: {why}"),
        Stop::Signal => Ok(false),
        Stop::Restart => Ok(true),
    }
}

/// Completes a restore a previous run staged (or discards an unfinished staging) before
/// anything opens the database.
fn finish_restore(cfg: &Config) -> anyhow::Result<()> {
    use basalt_service::backups::restore::{Pending, complete_pending};
    match complete_pending(&cfg.dir).context("completing a staged restore")? {
        Pending::None => {}
        Pending::Discarded => {
            tracing::warn!("an unfinished restore staging was discarded: the data is unchanged");
        }
        Pending::Completed => tracing::warn!("a staged restore was completed"),
    }
    Ok(())
}

/// Serves until a signal, a stopped writer or a restore's restart; `Ok(true)` when the
/// process must restart.
pub async fn run(cfg: Config, file: Option<std::path::PathBuf>) -> anyhow::Result<bool> {
    let _lock = crate::data_lock::shared(&cfg.dir)?;
    if cfg.database_url.is_none() {
        finish_restore(&cfg)?;
    }
    let store = open_store(&cfg).await?;
    let backups = backups(&cfg);
    let previous = cfg
        .previous_secrets
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let keys = basalt_auth::TokenKeys::with_previous(signing_secret(&cfg, &store).await?, previous);
    let [k0, k1, k2, k3, k4, k5, k6, k7, ..] = keys.derived_key("basalt record answer fingerprint");
    let fingerprint_seed = u64::from_le_bytes([k0, k1, k2, k3, k4, k5, k6, k7]);
    let hash_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let metrics = Arc::new(basalt_telemetry::Metrics::new());
    let realtime = basalt_realtime::Hub::new(
        store.clone(),
        metrics.clone(),
        basalt_realtime::HubConfig::default(),
    );
    let state = ApiState {
        service: basalt_service::Services {
            store: store.clone(),
            keys: Arc::new(keys),
            passwords: basalt_service::PasswordPool::new(hash_threads),
            oauth2: basalt_oauth2::ProviderClient::new(Duration::from_secs(30))?,
            files: files(&cfg)?,
            backups: backups.clone(),
            crons: Default::default(),
            logs: basalt_service::logs::RequestLogs::new(Some(
                // Each node's own file, on PostgreSQL too (see ARCHITECTURE.md, PostgreSQL).
                basalt_store::logs::LogStore::open(&cfg.dir)
                    .map_err(|e| anyhow::anyhow!("opening the request log: {e}"))?,
            )),
            record_caching: Arc::new(basalt_service::record_caching::RecordCaching::new(
                fingerprint_seed,
            )),
        },
        metrics,
        realtime: realtime.clone(),
        limits: auth_limits(&cfg)?,
    };
    // The settings' `s3` section decides where record files go from the first request on.
    basalt_service::files::apply_settings(&state.service)
        .await
        .map_err(|e| anyhow::anyhow!("applying the file storage settings: {}", e.message))?;
    basalt_service::logs::apply_settings(&state.service)
        .await
        .map_err(|e| anyhow::anyhow!("applying the logs settings: {}", e.message))?;
    // The settings' `recordCaching` section: the `Cache-Control` of record answers.
    basalt_service::record_caching::apply_settings(&state.service)
        .await
        .map_err(|e| anyhow::anyhow!("applying the record caching settings: {}", e.message))?;
    // A diagnostic for WebSocket conformance suites only (see docs/realtime-websocket.md).
    let ws_echo = std::env::var("BASALT_WS_ECHO").is_ok_and(|v| v == "1");
    if ws_echo {
        tracing::warn!(
            "BASALT_WS_ECHO=1: /api/realtime/ws echoes messages instead of serving realtime"
        );
    }
    let api = ApiConfig {
        cors_origins: cfg.cors_origins.clone(),
        body_limit_bytes: cfg.body_limit,
        request_timeout: Duration::from_secs(cfg.request_timeout),
        ws_echo,
        metrics_token: cfg
            .metrics_token
            .as_deref()
            .map(basalt_api::MetricsToken::new),
        openapi: cfg
            .openapi
            .parse()
            .map_err(|e| anyhow::anyhow!("openapi: {e}"))?,
    };
    let fanout = tokio::spawn(
        realtime
            .clone()
            .run(basalt_api::realtime_renderer(state.clone())),
    );
    // The cron jobs: maintenance, the backup schedule (`backups.cron`) and the orphan
    // sweep (now, then hourly).
    let schedule = tokio::spawn(basalt_service::crons::run_schedule(state.service.clone()));
    let logs = state.service.logs.clone();
    let app = basalt_api::router(state, &api);
    if let Some(edge_cfg) = cfg.edge.clone() {
        let res = serve_behind_edge(&cfg, edge_cfg, file, app, &realtime, &store, &backups).await;
        fanout.abort();
        schedule.abort();
        let _ = tokio::time::timeout(Duration::from_secs(5), logs.flush()).await;
        store.close().await;
        tracing::info!("database closed; bye");
        return served(res?);
    }
    let listener = tokio::net::TcpListener::bind(&cfg.http)
        .await
        .with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(
        address = %listener.local_addr()?,
        dir = %cfg.dir.display(),
        database = if cfg.database_url.is_some() { "postgresql" } else { "sqlite" },
        "basalt serving"
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(listener, app, async {
        let _ = rx.await;
    }));
    let stop = stop_requested(&store, &backups).await;
    // Open realtime streams end with a final event, so graceful shutdown is not held up
    // by connections that never finish on their own.
    realtime.shutdown();
    let _ = tx.send(());
    match tokio::time::timeout(Duration::from_secs(cfg.shutdown_grace), server).await {
        Ok(res) => res.context("server task")?,
        Err(_) => tracing::warn!("in-flight requests did not finish in time"),
    }
    fanout.abort();
    schedule.abort();
    // The request log entries still queued are written before the process ends.
    let _ = tokio::time::timeout(Duration::from_secs(5), logs.flush()).await;
    store.close().await;
    tracing::info!("database closed; bye");
    served(stop)
}

/// `serve` with an `[edge]` section: the edge owns the listeners and hands requests routed
/// with `api = true` to the API router in-process (no socket between them).
async fn serve_behind_edge(
    cfg: &Config,
    edge_cfg: basalt_edge::EdgeConfig,
    file: Option<std::path::PathBuf>,
    app: basalt_api::ApiService,
    realtime: &basalt_realtime::Hub,
    store: &Store,
    backups: &basalt_service::backups::Backups,
) -> anyhow::Result<Stop> {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    // The edge hands over the connection's peer; the API reads it as axum's ConnectInfo
    // (the auth rate limits key on the client address behind trusted proxies).
    let app = ServiceExt::<axum::http::Request<basalt_edge::Body>>::map_request(
        app,
        |mut r: axum::http::Request<basalt_edge::Body>| {
            if let Some(peer) = r.extensions().get::<std::net::SocketAddr>().copied() {
                r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            }
            r
        },
    );
    let api: basalt_edge::ApiService = tower::util::BoxCloneSyncService::new(ServiceExt::<
        axum::http::Request<basalt_edge::Body>,
    >::map_response(
        app,
        |r: axum::response::Response| {
            r.map(|b| {
                b.map_err(|e| -> basalt_edge::BoxError { Box::new(e) })
                    .boxed_unsync()
            })
        },
    ));
    let source = file.map(crate::proxy::reload_source);
    let edge = basalt_edge::Edge::start(edge_cfg, Some(api), source)
        .await
        .context("starting the edge")?;
    for a in edge.local_addrs() {
        tracing::info!(address = %a, dir = %cfg.dir.display(), "basalt serving behind the edge");
    }
    let stop = crate::proxy::run_until_shutdown(&edge, stop_requested(store, backups)).await;
    // Open realtime streams end first, so they do not hold the edge's drain up.
    realtime.shutdown();
    edge.shutdown(Duration::from_secs(cfg.shutdown_grace)).await;
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_files_promise_what_commits_promise() {
        let mut cfg = Config::default();
        assert!(!cfg.db_sync_full);
        assert_eq!(file_durability(&cfg), basalt_files::Durability::Process);
        cfg.db_sync_full = true;
        assert_eq!(file_durability(&cfg), basalt_files::Durability::PowerLoss);
    }
}
