//! `basalt typegen`: reads the data directory's collections and writes their types
//! (`basalt_api::typegen`) to a file or standard output.

use std::path::Path;

use anyhow::{Context, bail};

use crate::config::Config;

pub async fn run(cfg: &Config, lang: &str, out: Option<&Path>) -> anyhow::Result<()> {
    if !basalt_api::typegen::LANGUAGES.contains(&lang) {
        bail!(
            "--lang {lang:?} is not supported; supported: {}",
            basalt_api::typegen::LANGUAGES.join(", ")
        );
    }
    // Never create an empty database where the user meant an existing one.
    if cfg.database_url.is_none() && !cfg.dir.join("data.db").is_file() {
        bail!("no database in {}: pass --dir DATA_DIR", cfg.dir.display());
    }
    let store = crate::serve::open_store(cfg).await?;
    let text = basalt_api::typegen::typescript(&store.schema());
    store.close().await;
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}
