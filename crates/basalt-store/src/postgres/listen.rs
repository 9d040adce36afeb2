//! What other nodes of a deployment change: each node holds one connection of its own
//! (outside the pool) that LISTENs on `basalt_schema`, which every collection change
//! notifies in its transaction, and on `basalt_changes`, which every record write
//! notifies (`feed`); both are delivered at commit. On a schema notification, and
//! whenever that connection was (re)established — notifications sent meanwhile are
//! lost —, the node reloads its snapshot from `_collections` under its schema lock, so no
//! write of its own runs against a table that changed shape, and drops its prepared
//! statements. Record changes are read when this node's write committed, on their
//! notification and once a second.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_postgres::{AsyncMessage, NoTls};

use super::feed::{CHANGES_CHANNEL, Feed};
use super::{Inner, Postgres, pg_err, system};
use crate::StoreError;

/// The channel collection changes notify.
pub(super) const SCHEMA_CHANNEL: &str = "basalt_schema";

/// How often the change log is read without a notification (and the store checked still
/// open), and how long the listener waits before connecting again after losing it.
const TICK: Duration = Duration::from_secs(1);

impl Postgres {
    /// Listens for other nodes' changes until the store closes or is dropped.
    pub(super) fn spawn_listener(&self, config: tokio_postgres::Config, mut feed: Feed) {
        let weak = Arc::downgrade(&self.inner);
        let kick = self.feed_kick();
        tokio::spawn(async move {
            while open(&weak).is_some() {
                if let Err(e) = listen(&weak, &config, &kick, &mut feed).await {
                    tracing::warn!(error = %e, "listening for other nodes' changes failed; retrying");
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

/// What a notification asks for.
enum News {
    Schema,
    Changes,
}

/// One connection's life: LISTEN, catch up on what was missed before, then follow the
/// notifications. Returns when the connection ends (an error) or the store closed (`Ok`).
async fn listen(
    weak: &Weak<Inner>,
    config: &tokio_postgres::Config,
    kick: &tokio::sync::Notify,
    feed: &mut Feed,
) -> Result<(), StoreError> {
    let (client, mut conn) = config.connect(NoTls).await.map_err(pg_err)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<News>();
    // The connection delivers notifications only while it is polled.
    let driver = tokio::spawn(async move {
        while let Some(Ok(msg)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            let AsyncMessage::Notification(n) = msg else {
                continue;
            };
            let news = match n.channel() {
                SCHEMA_CHANNEL => News::Schema,
                CHANGES_CHANNEL => News::Changes,
                _ => continue,
            };
            if tx.send(news).is_err() {
                return;
            }
        }
    });
    let res = async {
        client
            .batch_execute(&format!(
                "LISTEN {SCHEMA_CHANNEL}; LISTEN {CHANGES_CHANNEL}"
            ))
            .await
            .map_err(pg_err)?;
        let mut schema_due = true;
        loop {
            let Some(pg) = open(weak) else {
                return Ok(());
            };
            if schema_due {
                pg.reload_schema().await?;
            }
            // Every turn: on a notification, and once a second without one.
            pg.catch_up(feed).await?;
            drop(pg);
            schema_due = false;
            tokio::select! {
                got = rx.recv() => {
                    let Some(first) = got else {
                        return Err(StoreError::Unavailable(
                            "the listener's connection ended".into(),
                        ));
                    };
                    // Several notifications in a row: one reload and one read cover them.
                    let mut news = vec![first];
                    while let Ok(n) = rx.try_recv() {
                        news.push(n);
                    }
                    schema_due = news.iter().any(|n| matches!(n, News::Schema));
                }
                () = kick.notified() => {}
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }
    .await;
    driver.abort();
    res
}
