//! `basalt serve`: opens the store, builds the API and serves it until SIGINT/SIGTERM,
//! then lets in-flight requests finish (bounded) and closes the database cleanly.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use basalt_api::{ApiConfig, ApiState};
use basalt_store::{Store, StoreConfig};

use crate::config::Config;

pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Store::open(StoreConfig {
        data_dir: cfg.dir.clone(),
        readers: cfg.db_readers,
        writer_queue: cfg.db_writer_queue,
        synchronous_full: cfg.db_sync_full,
    })
    .await
    .with_context(|| format!("opening the database in {}", cfg.dir.display()))
}

/// The configured secret, or the one generated on first start in `<dir>/secret.key`.
fn signing_secret(cfg: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = &cfg.secret {
        return Ok(s.as_bytes().to_vec());
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

async fn shutdown_signal() {
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

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    let keys = basalt_auth::TokenKeys::new(signing_secret(&cfg)?);
    let hash_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let metrics = Arc::new(basalt_telemetry::Metrics::new());
    let realtime = basalt_realtime::Hub::new(
        store.clone(),
        metrics.clone(),
        basalt_realtime::HubConfig::default(),
    );
    let state = ApiState {
        store: store.clone(),
        keys,
        metrics,
        passwords: basalt_api::PasswordPool::new(hash_threads),
        realtime: realtime.clone(),
    };
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
    };
    let fanout = tokio::spawn(
        realtime
            .clone()
            .run(basalt_api::realtime_renderer(state.clone())),
    );
    let app = basalt_api::router(state, &api);
    let listener = tokio::net::TcpListener::bind(&cfg.http)
        .await
        .with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(address = %listener.local_addr()?, dir = %cfg.dir.display(), "basalt serving");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(listener, app, async {
        let _ = rx.await;
    }));
    shutdown_signal().await;
    // Open realtime streams end with a final event, so graceful shutdown is not held up
    // by connections that never finish on their own.
    realtime.shutdown();
    let _ = tx.send(());
    match tokio::time::timeout(Duration::from_secs(cfg.shutdown_grace), server).await {
        Ok(res) => res.context("server task")?,
        Err(_) => tracing::warn!("in-flight requests did not finish in time"),
    }
    fanout.abort();
    store.close().await;
    tracing::info!("database closed; bye");
    Ok(())
}
