//! Who uses a data dir: every `serve` holds a shared lock on `<dir>/.basalt.lock` for its
//! life (the lock goes with the process, also on a kill -9 or the exec of a restart), and
//! the commands that replace or remove data (`backup create|restore`, `files sweep`)
//! take it exclusively, so they refuse to run under a server.

use std::fs::File;
use std::path::Path;

use anyhow::Context;

fn open(dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(".basalt.lock");
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Held by a server while it runs.
pub fn shared(dir: &Path) -> anyhow::Result<File> {
    let f = open(dir)?;
    f.lock_shared().context("locking the data dir")?;
    Ok(f)
}

/// Held by a command that must not run beside a server; fails when one runs.
pub fn exclusive(dir: &Path, what: &str) -> anyhow::Result<File> {
    let f = open(dir)?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!("a server is running on {}: {what}", dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("locking the data dir"),
    }
}
