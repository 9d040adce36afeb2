//! Realtime record subscriptions as a service: the registry of connected clients (id,
//! identity, subscriptions, a bounded outgoing queue), topic parsing and matching, and the
//! fan-out of committed changes from the store's event bus, each checked against the
//! subscriber's access rules at delivery time.
//!
//! It must never know HTTP, SSE or WebSocket framing, or how a token is verified: the API
//! layer turns requests into [`Identity`] values and drains each client's queue onto its
//! own transport; it renders records through the [`RecordRenderer`] it hands in. A
//! transport may also attach a [`DirectSink`] that the fan-out writes through itself.

mod client;
mod error;
mod fanout;
mod groups;
mod hub;
mod topic;

pub use client::{ClientHandle, Delivery, DirectSink, Identity, Transport};
pub use error::RealtimeError;
pub use fanout::RecordRenderer;
pub use hub::{Hub, HubConfig};
pub use topic::{MAX_SUBSCRIPTIONS, MAX_TOPIC_LEN, Subscription, Target};

/// A store in a fresh temporary directory for the unit tests (the directory lives as long
/// as the returned guard).
#[cfg(test)]
pub(crate) async fn test_store() -> (basalt_store::Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = basalt_store::Store::open(basalt_store::StoreConfig {
        data_dir: dir.path().to_path_buf(),
        readers: 1,
        writer_queue: 8,
        synchronous_full: false,
        change_log: Default::default(),
    })
    .await
    .expect("store");
    (store, dir)
}
