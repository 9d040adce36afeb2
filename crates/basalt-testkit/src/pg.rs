//! A PostgreSQL schema of a test's own on the throwaway cluster `scripts/pg.sh` starts
//! (its URL in `BASALT_TEST_PG_URL`), dropped when the test is done. Without that URL a
//! test says so and passes locally; under `CI=true` it fails, as CI must run them.

use std::sync::atomic::{AtomicU32, Ordering};

/// `BASALT_TEST_PG_URL`, or `None` (locally, with a notice) when it is unset.
pub fn url() -> Option<String> {
    let Ok(url) = std::env::var("BASALT_TEST_PG_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "BASALT_TEST_PG_URL is unset: CI must run the PostgreSQL tests (.ci/run starts \
             scripts/pg.sh)"
        );
        eprintln!(
            "notice: BASALT_TEST_PG_URL is unset; this PostgreSQL test is skipped (start one \
             with `bash scripts/pg.sh start`)"
        );
        return None;
    };
    Some(url)
}

/// A schema named `<prefix>_<pid>_<n>_<nanos>`; dropped on drop.
pub struct PgSchema {
    url: String,
    name: String,
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

impl PgSchema {
    /// A fresh schema on `BASALT_TEST_PG_URL`'s database (`None`: no URL, see [`url`]).
    /// Schemas of this prefix left by test processes that died first go.
    pub async fn create(prefix: &str) -> Option<PgSchema> {
        let url = url()?;
        let client = connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        let stale = client
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)",
                &[&format!("{prefix}_")],
            )
            .await
            .expect("schemas");
        for name in stale.iter().map(|r| r.get::<_, String>(0)) {
            let pid = name[prefix.len() + 1..]
                .split('_')
                .next()
                .unwrap_or_default();
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await;
            }
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("{prefix}_{}_{n}_{nanos}", std::process::id());
        client
            .batch_execute(&format!("CREATE SCHEMA \"{name}\""))
            .await
            .expect("schema");
        Some(PgSchema { url, name })
    }

    /// The database's URL, without the schema.
    pub fn database_url(&self) -> &str {
        &self.url
    }

    /// The URL of a connection whose search path is this schema (what it creates lands
    /// there).
    pub fn url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.url, self.name)
    }

    /// A connection whose search path is this schema.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url()).await.expect("connect")
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: the schema goes on a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = connect(&url).await {
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}
