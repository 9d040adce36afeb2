//! The registry of connected clients and what transports and the API ask of it: connect,
//! bind an identity, set or change subscriptions, send to one client, shut down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use basalt_schema::id::random_id;
use basalt_store::Store;
use basalt_telemetry::Metrics;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::{Client, ClientHandle, Delivery, Identity, Transport};
use crate::groups::CachedGroups;
use crate::{MAX_SUBSCRIPTIONS, RealtimeError, Subscription};

/// Tuning of the hub; the binary picks the values.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Messages one client may have waiting; when full the client is disconnected.
    pub queue_capacity: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 256,
        }
    }
}

/// The realtime service; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

pub(crate) struct HubInner {
    pub config: HubConfig,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub clients: RwLock<HashMap<Arc<str>, Arc<Client>>>,
    subscriptions: AtomicI64,
    shutting_down: AtomicBool,
    /// Bumped by every change the fan-out's grouping depends on (see `groups`).
    pub generation: AtomicU64,
    /// Groupings per collection id, valid under `generation`.
    pub group_cache: Mutex<HashMap<String, CachedGroups>>,
}

impl Hub {
    pub fn new(store: Store, metrics: Arc<Metrics>, config: HubConfig) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                config,
                store,
                metrics,
                clients: RwLock::new(HashMap::new()),
                subscriptions: AtomicI64::new(0),
                shutting_down: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                group_cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Every connected client, for one fan-out pass.
    pub(crate) fn clients(&self) -> Vec<Arc<Client>> {
        self.inner
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn client(&self, id: &str) -> Result<Arc<Client>, RealtimeError> {
        self.inner
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or(RealtimeError::UnknownClient)
    }

    /// Registers a new client with a fresh id. After shutdown began, the client is
    /// created already disconnected, so its transport closes at once.
    pub fn connect(&self, transport: Transport) -> ClientHandle {
        let (tx, rx) = mpsc::channel(self.inner.config.queue_capacity.max(1));
        let id: Arc<str> = Arc::from(random_id(40));
        let client = Arc::new(Client::new(id.clone(), transport, tx));
        self.inner
            .clients
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, client.clone());
        self.inner
            .metrics
            .realtime_client_connected(transport.as_str(), 1);
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            client.disconnect("server shutting down");
        }
        ClientHandle {
            client,
            queue: rx,
            hub: self.clone(),
        }
    }

    pub(crate) fn unregister(&self, client: &Client) {
        let removed = self
            .inner
            .clients
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&client.id);
        if removed.is_some() {
            self.groups_changed();
            let n = client.state().subscriptions.len() as i64;
            self.adjust_subscriptions(-n);
            self.inner
                .metrics
                .realtime_client_connected(client.transport.as_str(), -1);
        }
    }

    fn adjust_subscriptions(&self, delta: i64) {
        let now = self.inner.subscriptions.fetch_add(delta, Ordering::Relaxed) + delta;
        self.inner.metrics.set_realtime_subscriptions(now);
    }

    /// Binds `identity` to the client, as PocketBase does on each subscription request:
    /// once a client has an identity, a request with another (or none) is refused.
    pub fn bind_identity(
        &self,
        client_id: &str,
        identity: Option<Identity>,
    ) -> Result<(), RealtimeError> {
        let client = self.client(client_id)?;
        let mut state = client.state();
        // An expired identity no longer binds the client.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if let Some(old) = state.identity.as_ref().filter(|i| i.expires_at > now)
            && identity.as_ref().map(Identity::key) != Some(old.key())
        {
            return Err(RealtimeError::IdentityMismatch);
        }
        state.identity = identity;
        drop(state);
        self.groups_changed();
        Ok(())
    }

    /// Replaces the client's identity unconditionally (the WebSocket `auth` message).
    pub fn set_identity(
        &self,
        client_id: &str,
        identity: Option<Identity>,
    ) -> Result<(), RealtimeError> {
        let client = self.client(client_id)?;
        client.state().identity = identity;
        self.groups_changed();
        Ok(())
    }

    /// Replaces all of the client's subscriptions (PocketBase's `POST /api/realtime`).
    /// Nothing changes when a topic is invalid.
    pub fn set_subscriptions(
        &self,
        client_id: &str,
        topics: &[String],
    ) -> Result<(), RealtimeError> {
        let client = self.client(client_id)?;
        let parsed = parse_all(topics)?;
        if parsed.len() > MAX_SUBSCRIPTIONS {
            return Err(RealtimeError::TooManySubscriptions);
        }
        let mut state = client.state();
        let before = state.subscriptions.len() as i64;
        state.subscriptions = parsed.into_iter().map(|s| (s.topic.clone(), s)).collect();
        let after = state.subscriptions.len() as i64;
        drop(state);
        self.groups_changed();
        self.adjust_subscriptions(after - before);
        Ok(())
    }

    /// Adds subscriptions to the client's existing ones.
    pub fn subscribe(&self, client_id: &str, topics: &[String]) -> Result<(), RealtimeError> {
        let client = self.client(client_id)?;
        let parsed = parse_all(topics)?;
        let mut state = client.state();
        let before = state.subscriptions.len() as i64;
        let fresh = parsed
            .iter()
            .filter(|s| !state.subscriptions.contains_key(&s.topic))
            .count();
        if state.subscriptions.len() + fresh > MAX_SUBSCRIPTIONS {
            return Err(RealtimeError::TooManySubscriptions);
        }
        for s in parsed {
            state.subscriptions.insert(s.topic.clone(), s);
        }
        let after = state.subscriptions.len() as i64;
        drop(state);
        self.groups_changed();
        self.adjust_subscriptions(after - before);
        Ok(())
    }

    /// Removes the named subscriptions (exact topic strings); unknown ones are ignored.
    pub fn unsubscribe(&self, client_id: &str, topics: &[String]) -> Result<(), RealtimeError> {
        let client = self.client(client_id)?;
        let mut state = client.state();
        let before = state.subscriptions.len() as i64;
        for t in topics {
            state.subscriptions.remove(t.as_str());
        }
        let after = state.subscriptions.len() as i64;
        drop(state);
        self.groups_changed();
        self.adjust_subscriptions(after - before);
        Ok(())
    }

    /// Sends `data` as an event named `topic` to one client, when it is connected and
    /// subscribed to `topic` (with or without options). True when it was queued.
    pub fn send_to_client(&self, client_id: &str, topic: &str, data: Value) -> bool {
        let Ok(client) = self.client(client_id) else {
            return false;
        };
        let subscribed = client
            .state()
            .subscriptions
            .values()
            .find(|s| &*s.topic == topic || s.base() == topic)
            .map(|s| s.topic.clone());
        let Some(name) = subscribed else {
            return false;
        };
        let delivery = Arc::new(Delivery {
            topic: name,
            data: Arc::from(data.to_string()),
            committed_at: None,
        });
        let mut tally = DeliveredTally::default();
        let offered = self.offer(&client, &delivery, &mut tally);
        self.record_delivered(&tally);
        offered
    }

    /// Hands the delivery to the client's direct sink, or queues it without waiting; a
    /// full queue disconnects the client (it is too slow) so the fan-out never blocks on
    /// it. Direct deliveries are counted in `tally` (recorded once per batch); queued
    /// ones are counted by their transport when it writes them.
    pub(crate) fn offer(
        &self,
        client: &Client,
        delivery: &Arc<Delivery>,
        tally: &mut DeliveredTally,
    ) -> bool {
        if client.try_direct(delivery) {
            tally.add(delivery);
            return true;
        }
        match client.queue.try_send(delivery.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if client.disconnect("slow consumer: the outgoing queue is full") {
                    tracing::warn!(client = %client.id, "realtime client too slow: disconnected");
                    self.inner.metrics.realtime_slow_consumer();
                }
                // Out of the fan-out at once, even while its transport is still stuck
                // writing to a peer that does not read.
                self.unregister(client);
                self.inner.metrics.realtime_dropped("slow_consumer", 1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    pub(crate) fn record_delivered(&self, tally: &DeliveredTally) {
        if tally.count > 0 {
            self.inner.metrics.realtime_delivered(tally.count);
        }
        if !tally.latencies.is_empty() {
            self.inner
                .metrics
                .observe_realtime_fanout_many(&tally.latencies);
        }
    }

    pub(crate) fn observe_delivered(&self, d: &Delivery) {
        self.inner.metrics.realtime_delivered(1);
        if let Some(at) = d.committed_at {
            self.inner
                .metrics
                .observe_realtime_fanout(at.elapsed().as_secs_f64());
        }
    }

    /// Disconnects every client (their transports end their streams cleanly) and refuses
    /// new ones from now on.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        for c in self.clients() {
            c.disconnect("server shutting down");
        }
    }

    /// Connected clients (all transports).
    pub fn client_count(&self) -> usize {
        self.inner
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Deliveries one fan-out pass made, recorded in the metrics once at its end.
#[derive(Default)]
pub(crate) struct DeliveredTally {
    count: u64,
    /// Seconds from commit to the write, one per delivery of a committed change.
    latencies: Vec<f64>,
}

impl DeliveredTally {
    fn add(&mut self, d: &Delivery) {
        self.count += 1;
        if let Some(at) = d.committed_at {
            self.latencies.push(at.elapsed().as_secs_f64());
        }
    }
}

fn parse_all(topics: &[String]) -> Result<Vec<Arc<Subscription>>, RealtimeError> {
    topics
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| Subscription::parse(t).map(Arc::new))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn hub(queue_capacity: usize) -> (Hub, tempfile::TempDir) {
        let (store, dir) = crate::test_store().await;
        let hub = Hub::new(
            store,
            Arc::new(Metrics::new()),
            HubConfig { queue_capacity },
        );
        (hub, dir)
    }

    #[tokio::test]
    async fn send_to_client_reaches_only_a_subscribed_connected_client() {
        let (hub, _dir) = hub(8).await;
        let mut h = hub.connect(Transport::Sse);
        let id = h.id().to_string();
        assert!(!hub.send_to_client(&id, "@oauth2", json!({"code": "x"})));
        hub.set_subscriptions(&id, &["@oauth2".into()])
            .expect("subscribe");
        assert!(hub.send_to_client(&id, "@oauth2", json!({"code": "x"})));
        let d = h.next().await.expect("delivery");
        assert_eq!((&*d.topic, &*d.data), ("@oauth2", r#"{"code":"x"}"#));
        assert!(!hub.send_to_client("unknown", "@oauth2", json!({})));
        drop(h);
        assert_eq!(hub.client_count(), 0);
        assert!(!hub.send_to_client(&id, "@oauth2", json!({})));
    }

    #[tokio::test]
    async fn a_full_queue_disconnects_the_client_with_a_reason() {
        let (hub, _dir) = hub(2).await;
        let mut h = hub.connect(Transport::WebSocket);
        let id = h.id().to_string();
        hub.subscribe(&id, &["@oauth2".into()]).expect("subscribe");
        assert!(hub.send_to_client(&id, "@oauth2", json!(1)));
        assert!(hub.send_to_client(&id, "@oauth2", json!(2)));
        assert!(
            !hub.send_to_client(&id, "@oauth2", json!(3)),
            "the third overflows"
        );
        assert_eq!(hub.client_count(), 0, "out of the fan-out at once");
        let reason = h.next().await.expect_err("disconnected");
        assert!(reason.contains("slow consumer"), "{reason}");
    }

    #[tokio::test]
    async fn identities_bind_once_and_subscriptions_are_bounded() {
        let (hub, _dir) = hub(8).await;
        let h = hub.connect(Transport::Sse);
        let id = h.id().to_string();
        let who = |rid: &str, expires_at: i64| Identity {
            auth: basalt_schema::request::AuthInfo {
                collection_id: "users".into(),
                record: serde_json::Map::from_iter([("id".into(), json!(rid))]),
                ..Default::default()
            },
            expires_at,
        };
        let later = i64::MAX / 2;
        hub.bind_identity(&id, Some(who("a", later))).expect("bind");
        hub.bind_identity(&id, Some(who("a", later)))
            .expect("same identity");
        assert_eq!(
            hub.bind_identity(&id, Some(who("b", later))),
            Err(RealtimeError::IdentityMismatch)
        );
        assert_eq!(
            hub.bind_identity(&id, None),
            Err(RealtimeError::IdentityMismatch)
        );
        // An expired identity no longer binds.
        hub.set_identity(&id, Some(who("a", 1))).expect("set");
        hub.bind_identity(&id, None)
            .expect("expired identity replaced");
        assert_eq!(
            hub.bind_identity("nope", None),
            Err(RealtimeError::UnknownClient)
        );
        let many: Vec<String> = (0..=MAX_SUBSCRIPTIONS).map(|i| format!("c/{i}")).collect();
        assert_eq!(
            hub.set_subscriptions(&id, &many),
            Err(RealtimeError::TooManySubscriptions)
        );
        assert!(hub.set_subscriptions(&id, &["bad/a/b".into()]).is_err());
    }
}
