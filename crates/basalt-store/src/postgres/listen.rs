//! Other nodes' schema changes: each node holds one connection of its own (outside the
//! pool) that LISTENs on `basalt_schema`, which every collection change notifies in its
//! transaction (delivered at commit). On a notification, and whenever that connection
//! was (re)established — notifications sent meanwhile are lost —, the node reloads its
//! snapshot from `_collections` under its schema lock, so no write of its own runs
//! against a table that changed shape, and drops its prepared statements.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_postgres::{AsyncMessage, NoTls};

use super::{Inner, Postgres, pg_err, system};
use crate::StoreError;

/// The channel collection changes notify.
pub(super) const SCHEMA_CHANNEL: &str = "basalt_schema";

/// How often a listener without news checks that its store is still open, and how long
/// it waits before connecting again after losing its connection.
const TICK: Duration = Duration::from_secs(1);

impl Postgres {
    /// Listens for schema changes until the store closes or is dropped.
    pub(super) fn spawn_schema_listener(&self, config: tokio_postgres::Config) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while open(&weak).is_some() {
                if let Err(e) = listen(&weak, &config).await {
                    tracing::warn!(error = %e, "listening for schema changes failed; retrying");
                }
                tokio::time::sleep(TICK).await;
            }
        });
    }

    /// Replaces the snapshot with what `_collections` holds now.
    pub(super) async fn reload_schema(&self) -> Result<(), StoreError> {
        let _alone = self.inner.schema_lock.write().await;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let schema = system::load_schema(&tx).await?;
        tx.commit().await.map_err(pg_err)?;
        self.inner.pool.manager().statement_caches.clear();
        self.inner.schema.store(Arc::new(schema));
        Ok(())
    }
}

fn open(weak: &Weak<Inner>) -> Option<Postgres> {
    weak.upgrade()
        .filter(|i| !i.closed.load(Ordering::SeqCst))
        .map(|inner| Postgres { inner })
}

/// One connection's life: LISTEN, reload (what was missed before), then reload on every
/// notification. Returns when the connection ends (an error) or the store closed (`Ok`).
async fn listen(weak: &Weak<Inner>, config: &tokio_postgres::Config) -> Result<(), StoreError> {
    let (client, mut conn) = config.connect(NoTls).await.map_err(pg_err)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    // The connection delivers notifications only while it is polled.
    let driver = tokio::spawn(async move {
        while let Some(Ok(msg)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = msg
                && n.channel() == SCHEMA_CHANNEL
                && tx.send(()).is_err()
            {
                return;
            }
        }
    });
    let res = async {
        client
            .batch_execute(&format!("LISTEN {SCHEMA_CHANNEL}"))
            .await
            .map_err(pg_err)?;
        let mut due = true;
        loop {
            let Some(pg) = open(weak) else {
                return Ok(());
            };
            if due {
                pg.reload_schema().await?;
            }
            drop(pg);
            due = tokio::select! {
                got = rx.recv() => match got {
                    // Several changes in a row: one reload covers them all.
                    Some(()) => {
                        while rx.try_recv().is_ok() {}
                        true
                    }
                    None => {
                        return Err(StoreError::Unavailable(
                            "the schema listener's connection ended".into(),
                        ));
                    }
                },
                () = tokio::time::sleep(TICK) => false,
            };
        }
    }
    .await;
    driver.abort();
    res
}
