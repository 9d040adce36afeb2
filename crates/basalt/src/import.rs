//! `basalt import pocketbase PB_DATA_DIR`: refuses to run while PocketBase has that
//! directory's database open (Linux: any process holding `data.db`, its `-wal` or
//! `-shm` open, found under `/proc/*/fd`) or while a Basalt server holds the target
//! data dir, then runs `basalt_service::pocketbase_import` with progress on stderr and
//! prints its verification report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use basalt_service::pocketbase_import::{ImportReport, ImportSource};
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum ImportAction {
    /// Imports a PocketBase (v0.23+) data directory (`pb_data`): collections, records,
    /// superusers, OAuth2 links, settings and stored files. Running it again gives the
    /// same data. PocketBase's tokens are not honoured: users sign in again, with their
    /// old passwords.
    Pocketbase {
        /// PocketBase's data directory (holding `data.db` and `storage/`).
        pb_data: PathBuf,
        /// Name of the environment variable holding PocketBase's `--encryptionEnv` key,
        /// when PocketBase ran with one (its settings are then encrypted).
        #[arg(long)]
        encryption_env: Option<String>,
    },
}

pub async fn run(cfg: &Config, action: ImportAction) -> anyhow::Result<()> {
    let ImportAction::Pocketbase {
        pb_data,
        encryption_env,
    } = action;
    let encryption_key = match encryption_env {
        Some(var) => Some(
            std::env::var(&var)
                .with_context(|| format!("--encryption-env: the variable {var} is not set"))?,
        ),
        None => None,
    };
    if !pb_data.join("data.db").is_file() {
        bail!(
            "{} has no data.db: not a PocketBase data directory",
            pb_data.display()
        );
    }
    if let Some(pids) = processes_holding(&pb_data)? {
        bail!(
            "PocketBase is running on {} (process {}): stop it first, so the import reads a \
             consistent database",
            pb_data.display(),
            pids.join(", ")
        );
    }
    let _lock = crate::data_lock::exclusive(&cfg.dir, "stop it before importing into it")?;
    let store = crate::serve::open_store(cfg).await?;
    let storage: Arc<dyn basalt_files::Storage> =
        Arc::new(basalt_files::LocalStorage::new(cfg.dir.join("storage")));
    let source = ImportSource {
        dir: pb_data.clone(),
        encryption_key,
    };
    let mut progress = |line: &str| eprintln!("import: {line}");
    let res = basalt_service::pocketbase_import::run(&store, storage, &source, &mut progress).await;
    store.close().await;
    let report = res.map_err(|e| anyhow::anyhow!("import failed: {e}"))?;
    print_report(&report, &pb_data, &cfg.dir);
    Ok(())
}

fn print_report(r: &ImportReport, from: &Path, into: &Path) {
    println!("imported {} into {}", from.display(), into.display());
    println!(
        "collections: {} imported; settings: {}; files: {} copied, {} already there",
        r.collections_imported,
        if r.settings_imported {
            "imported"
        } else {
            "none"
        },
        r.files_copied,
        r.files_present
    );
    println!("verification (records per collection, PocketBase -> Basalt):");
    for c in &r.collections {
        let status = if c.target >= c.source {
            "ok"
        } else {
            "MISSING"
        };
        println!(
            "  {:<24} {:>9} -> {:>9}  {status}  written {}, samples {}/{} identical (sha256 {})",
            c.name, c.source, c.target, c.imported, c.sample_matches, c.sampled, c.sample_checksum
        );
    }
    if r.skipped.is_empty() {
        println!("skipped: nothing");
    } else {
        println!("skipped ({}):", r.skipped.len());
        for s in &r.skipped {
            println!("  {}: {}", s.what, s.reason);
        }
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    println!(
        "note: tokens PocketBase issued are not honoured: users and superusers sign in again \
         (their passwords work; each bcrypt hash becomes argon2id at its first sign-in)"
    );
}

/// Processes running PocketBase on `pb_data`, `None` when there are none. Linux
/// (`/proc`): a process holding one of its database files open, or a `serve` whose data
/// dir (`--dir`, else PocketBase's default `pb_data` beside its executable or in its
/// working directory) is this one. Both are needed: PocketBase closes database
/// connections that stay idle, so an idle server may hold no file open at all.
fn processes_holding(pb_data: &Path) -> anyhow::Result<Option<Vec<String>>> {
    let dir = pb_data
        .canonicalize()
        .with_context(|| format!("reading {}", pb_data.display()))?;
    let files: Vec<PathBuf> = ["data.db", "data.db-wal", "data.db-shm", "auxiliary.db"]
        .iter()
        .map(|n| dir.join(n))
        .collect();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        eprintln!(
            "import: warning: /proc is not readable, so whether PocketBase still runs on {} \
             cannot be checked: make sure it is stopped",
            pb_data.display()
        );
        return Ok(None);
    };
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let holds_file = std::fs::read_dir(p.path().join("fd")).is_ok_and(|fds| {
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|link| files.contains(&link))
        });
        if holds_file || serves_dir(&p.path(), &dir) {
            found.push(pid);
        }
    }
    Ok((!found.is_empty()).then_some(found))
}

/// Whether process `proc` (its `/proc` entry) is a `serve` on data dir `dir`.
fn serves_dir(proc: &Path, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(proc.join("cmdline")) else {
        return false;
    };
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if !args.iter().any(|a| a == "serve") {
        return false;
    }
    let cwd = std::fs::read_link(proc.join("cwd")).unwrap_or_default();
    let mut given = None;
    for (i, a) in args.iter().enumerate() {
        if let Some(v) = a.strip_prefix("--dir=") {
            given = Some(v.to_string());
        } else if a == "--dir" {
            given = args.get(i + 1).cloned();
        }
    }
    let candidates: Vec<PathBuf> = match given {
        Some(d) => vec![cwd.join(d)],
        None => {
            let exe_dir = std::fs::read_link(proc.join("exe"))
                .ok()
                .and_then(|e| e.parent().map(Path::to_path_buf));
            let script_dir = args
                .first()
                .map(|a| cwd.join(a))
                .and_then(|e| e.parent().map(Path::to_path_buf));
            [exe_dir, script_dir, Some(cwd.clone())]
                .into_iter()
                .flatten()
                .map(|d| d.join("pb_data"))
                .collect()
        }
    };
    candidates
        .iter()
        .filter_map(|c| c.canonicalize().ok())
        .any(|c| c == dir)
}
