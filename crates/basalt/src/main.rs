//! The `basalt` binary: the CLI, configuration and wiring (the composition root). The only
//! place that reads the environment and picks concrete implementations.

mod backup;
mod check;
mod config;
mod data_lock;
mod http;
mod import;
mod proxy;
mod serve;
mod sse_direct;
mod superuser;
mod typegen;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "basalt",
    version,
    about = "An open-source backend in one binary"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (overrides the file and BASALT_DIR).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    /// PostgreSQL database to use instead of SQLite in the data directory, e.g.
    /// postgres://basalt@db/basalt (overrides the file and BASALT_DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP server.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8090.
        #[arg(long)]
        http: Option<String>,
        /// Log as JSON lines.
        #[arg(long)]
        json_logs: bool,
    },
    /// Runs the edge alone (reverse proxy, load balancer, TLS front; no database) from the
    /// `[edge]` section of `--config`. SIGHUP reloads the file.
    Proxy {
        /// Log as JSON lines.
        #[arg(long)]
        json_logs: bool,
    },
    /// Manages superusers.
    Superuser {
        #[command(subcommand)]
        action: superuser::Action,
    },
    /// Applies pending system migrations and exits.
    Migrate,
    /// Writes types of every collection's records for a client language (`ts`: TypeScript
    /// for the official PocketBase SDK's generics) from the data directory's collections.
    Typegen {
        /// The language; only `ts` is written.
        #[arg(long)]
        lang: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Checks the database file's integrity (SQLite's `quick_check`; `--full` runs
    /// `integrity_check`, which also compares every index with its table). Read-only, safe
    /// while `serve` runs. Exits 0 when sound, 2 with the problems listed when damaged,
    /// 1 when the check could not run.
    Check {
        /// Run the full `integrity_check` (slower on large databases).
        #[arg(long)]
        full: bool,
    },
    /// Makes or restores backups of the data dir (no server may run on it; a running
    /// server has `/api/backups`).
    Backup {
        #[command(subcommand)]
        action: backup::BackupAction,
    },
    /// Imports another server's data into the data dir (no server may run on it):
    /// `pocketbase PB_DATA_DIR`.
    Import {
        #[command(subcommand)]
        action: import::ImportAction,
    },
    /// Record files: `sweep` reports and removes stored files no record names.
    Files {
        #[command(subcommand)]
        action: backup::FilesAction,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut cfg = config::Config::load(cli.config.as_deref())?;
    if let Some(d) = cli.dir {
        cfg.dir = d;
    }
    if let Some(u) = cli.database_url {
        cfg.database_url = Some(u);
    }
    if let Command::Serve { http: Some(h), .. } = &cli.command {
        cfg.http = h.clone();
    }
    if let Command::Serve {
        json_logs: true, ..
    }
    | Command::Proxy { json_logs: true } = &cli.command
    {
        cfg.json_logs = true;
    }
    let cfg = cfg.validate()?;
    if let Command::Check { full } = cli.command {
        if cfg.database_url.is_some() {
            anyhow::bail!(
                "basalt check reads the SQLite database file; with database_url check the \
                 PostgreSQL database with its own tools (e.g. the amcheck extension)"
            );
        }
        return check::run(&cfg.dir, full);
    }
    basalt_telemetry::init_logging(cfg.json_logs, &cfg.log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let restart = rt.block_on(async move {
        match cli.command {
            Command::Serve { .. } => serve::run(cfg, cli.config).await,
            Command::Backup { action } => backup::run(&cfg, action).await.map(|()| false),
            Command::Files { action } => backup::files(&cfg, action).await.map(|()| false),
            Command::Import { action } => import::run(&cfg, action).await.map(|()| false),
            Command::Proxy { .. } => proxy::run(cfg, cli.config).await.map(|()| false),
            Command::Superuser { action } => superuser::run(&cfg, action).await.map(|()| false),
            Command::Check { .. } => Ok(false),
            Command::Typegen { lang, out } => typegen::run(&cfg, &lang, out.as_deref())
                .await
                .map(|()| false),
            Command::Migrate => {
                let store = serve::open_store(&cfg).await?;
                store.close().await;
                eprintln!("migrations applied");
                Ok(false)
            }
        }
    })?;
    if restart {
        // Every task and connection is gone with the runtime; the new image completes the
        // staged restore before it opens the database (the process id stays the same).
        rt.shutdown_timeout(std::time::Duration::from_secs(5));
        return Err(restart_self());
    }
    Ok(())
}

/// Replaces the process with a fresh run of the same command line; returns only on failure.
#[cfg(unix)]
fn restart_self() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return anyhow::anyhow!("restarting after a restore: {e}"),
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    anyhow::anyhow!("restarting after a restore: {err} (start the server again to complete it)")
}

#[cfg(not(unix))]
fn restart_self() -> anyhow::Error {
    anyhow::anyhow!("a restore was staged: start the server again to complete it")
}
