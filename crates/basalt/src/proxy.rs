//! `basalt proxy`: the edge alone, without a database, from the `[edge]` section of the
//! configuration file; SIGHUP re-reads the file, SIGINT/SIGTERM shut down gracefully.
//! Also the edge plumbing `basalt serve` shares: the reload source and the signal loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use basalt_edge::{ConfigSource, Edge, EdgeError};

use crate::config::Config;

pub async fn run(cfg: Config, file: Option<PathBuf>) -> anyhow::Result<()> {
    let file = file.context("basalt proxy needs --config FILE with an [edge] section")?;
    let edge_cfg = cfg
        .edge
        .clone()
        .with_context(|| format!("{} has no [edge] section", file.display()))?;
    let edge = Edge::start(edge_cfg, None, Some(reload_source(file)))
        .await
        .context("starting the edge")?;
    for a in edge.local_addrs() {
        tracing::info!(address = %a, "basalt proxy serving");
    }
    run_until_shutdown(&edge, crate::serve::shutdown_signal()).await;
    edge.shutdown(Duration::from_secs(cfg.shutdown_grace)).await;
    tracing::info!("edge stopped; bye");
    Ok(())
}

/// Re-reads the whole configuration (file, then environment) and takes its `[edge]`.
pub fn reload_source(file: PathBuf) -> ConfigSource {
    Arc::new(move || {
        let cfg = Config::load(Some(&file)).map_err(|e| EdgeError::Config(format!("{e:#}")))?;
        cfg.edge
            .ok_or_else(|| EdgeError::Config(format!("{} has no [edge] section", file.display())))
    })
}

/// Serves until `stop` resolves (SIGINT/SIGTERM, or the database writer stopping), reloading
/// on SIGHUP, and returns what `stop` gave. A rejected reload is logged and the running
/// configuration stays.
pub async fn run_until_shutdown<T>(edge: &Edge, stop: impl std::future::Future<Output = T>) -> T {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::pin!(stop);
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        tokio::select! {
            why = &mut stop => return why,
            _ = hangup => match edge.reload().await {
                Ok(()) => tracing::info!("configuration reloaded (SIGHUP)"),
                Err(e) => tracing::error!(error = %e, "reload rejected; the running configuration stays"),
            },
        }
    }
}
