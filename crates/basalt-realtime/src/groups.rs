//! Who sees a collection's events the same way: subscribers grouped by identity and topic
//! string, and the cache that keeps a collection's grouping while nothing it depends on
//! has changed.
//!
//! Why a cache: grouping visits every connected client (its lock, its subscriptions, its
//! identity), which with 10k subscribers is a serial pass over memory that is no longer
//! in cache before the first event can be written. Between subscription changes the
//! answer is the same, so it is kept per collection and dropped on any change.
//!
//! What keeps it true: every change to a client's subscriptions or identity, and every
//! unregistration, bumps the hub's generation (and clears the cache) after it is made; a
//! grouping is reused only under the generation it was made in, and only until the first
//! identity in it expires (an expired token makes its client anonymous at delivery time).
//! A collection that has single-record subscriptions is not cached: their match depends
//! on the record.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use basalt_schema::Collection;

use crate::client::{Client, Identity};
use crate::{Hub, Subscription};

/// Subscribers that see one event the same way.
#[derive(Clone)]
pub(crate) struct Group {
    pub subscription: Arc<Subscription>,
    /// The identity at grouping time, `None` when anonymous or expired.
    pub identity: Option<Identity>,
    pub clients: Arc<Vec<Arc<Client>>>,
}

/// (identity key, topic string): subscribers with equal keys see an event the same way.
type GroupKey = (String, Arc<str>);

/// One collection's grouping, as made under `generation`.
pub(crate) struct CachedGroups {
    generation: u64,
    collection_name: String,
    /// Unix seconds at which the first identity in it expires.
    valid_until: i64,
    groups: Vec<Group>,
}

impl Hub {
    /// Records that a client's subscriptions or identity changed, or that it left: no
    /// grouping made before is used again. Call after the change is made.
    pub(crate) fn groups_changed(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner
            .group_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The groups of subscribers an event on record `record_id` of `c` goes to, with the
    /// identities as they are at `now`.
    pub(crate) fn groups_for(&self, c: &Collection, record_id: &str, now: i64) -> Vec<Group> {
        let generation = self.inner.generation.load(Ordering::SeqCst);
        {
            let cache = self
                .inner
                .group_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(&c.id)
                && hit.generation == generation
                && hit.collection_name == c.name
                && now < hit.valid_until
            {
                return hit.groups.clone();
            }
        }
        let mut by_key: HashMap<GroupKey, (Group, Vec<Arc<Client>>)> = HashMap::new();
        let mut per_record = false;
        let mut valid_until = i64::MAX;
        for client in self.clients() {
            let state = client.state();
            if state.subscriptions.is_empty() {
                continue;
            }
            // An expired token no longer counts: the client is anonymous until it sends a
            // fresh one.
            let identity = state.identity.as_ref().filter(|i| i.expires_at > now);
            for sub in state.subscriptions.values() {
                per_record |= sub.targets_a_record_of(&c.name, &c.id);
                if !sub.matches(&c.name, &c.id, record_id) {
                    continue;
                }
                if let Some(i) = identity {
                    valid_until = valid_until.min(i.expires_at);
                }
                let key = (
                    identity.map(Identity::key).unwrap_or_default(),
                    sub.topic.clone(),
                );
                by_key
                    .entry(key)
                    .or_insert_with(|| {
                        let group = Group {
                            subscription: sub.clone(),
                            identity: identity.cloned(),
                            clients: Arc::default(),
                        };
                        (group, Vec::new())
                    })
                    .1
                    .push(client.clone());
            }
        }
        let groups: Vec<Group> = by_key
            .into_values()
            .map(|(group, clients)| Group {
                clients: Arc::new(clients),
                ..group
            })
            .collect();
        if !per_record {
            let mut cache = self
                .inner
                .group_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // A change during the pass makes this grouping stale already: not kept.
            if self.inner.generation.load(Ordering::SeqCst) == generation {
                cache.insert(
                    c.id.clone(),
                    CachedGroups {
                        generation,
                        collection_name: c.name.clone(),
                        valid_until,
                        groups: groups.clone(),
                    },
                );
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use basalt_schema::request::AuthInfo;
    use basalt_telemetry::Metrics;
    use serde_json::json;

    use super::*;
    use crate::{HubConfig, Transport};

    async fn hub() -> (Hub, tempfile::TempDir) {
        let (store, dir) = crate::test_store().await;
        let hub = Hub::new(store, Arc::new(Metrics::new()), HubConfig::default());
        (hub, dir)
    }

    fn notes() -> Collection {
        serde_json::from_value(json!({"id": "pbc_notes", "name": "notes"})).expect("collection")
    }

    fn user(id: &str, expires_at: i64) -> Identity {
        Identity {
            auth: AuthInfo {
                collection_id: "users".into(),
                record: serde_json::Map::from_iter([("id".into(), json!(id))]),
                ..Default::default()
            },
            expires_at,
        }
    }

    fn sizes(groups: &[Group]) -> Vec<(Option<String>, usize)> {
        let mut s: Vec<_> = groups
            .iter()
            .map(|g| (g.identity.as_ref().map(Identity::key), g.clients.len()))
            .collect();
        s.sort();
        s
    }

    #[tokio::test]
    async fn a_grouping_is_reused_until_a_subscription_changes() {
        let (hub, _dir) = hub().await;
        let c = notes();
        let a = hub.connect(Transport::Sse);
        let b = hub.connect(Transport::Sse);
        hub.set_subscriptions(a.id(), &["notes/*".into()]).unwrap();
        hub.set_subscriptions(b.id(), &["notes/*".into()]).unwrap();
        let first = hub.groups_for(&c, "r1", 100);
        assert_eq!(sizes(&first), [(None, 2)]);
        let again = hub.groups_for(&c, "r2", 100);
        assert!(Arc::ptr_eq(&first[0].clients, &again[0].clients), "reused");

        hub.unsubscribe(b.id(), &["notes/*".into()]).unwrap();
        assert_eq!(sizes(&hub.groups_for(&c, "r3", 100)), [(None, 1)]);
        hub.subscribe(b.id(), &["notes/*".into()]).unwrap();
        assert_eq!(sizes(&hub.groups_for(&c, "r4", 100)), [(None, 2)]);
        // A client that leaves is out at once.
        drop(a);
        assert_eq!(sizes(&hub.groups_for(&c, "r5", 100)), [(None, 1)]);
        drop(b);
        assert!(hub.groups_for(&c, "r6", 100).is_empty());
    }

    #[tokio::test]
    async fn an_identity_counts_until_its_token_expires_even_when_cached() {
        let (hub, _dir) = hub().await;
        let c = notes();
        let a = hub.connect(Transport::Sse);
        hub.bind_identity(a.id(), Some(user("u1", 200))).unwrap();
        hub.set_subscriptions(a.id(), &["notes/*".into()]).unwrap();
        let key = Some("users/u1".to_string());
        assert_eq!(sizes(&hub.groups_for(&c, "r1", 100)), [(key.clone(), 1)]);
        assert_eq!(sizes(&hub.groups_for(&c, "r2", 199)), [(key, 1)]);
        // Expired: anonymous from then on, though nothing else changed.
        assert_eq!(sizes(&hub.groups_for(&c, "r3", 200)), [(None, 1)]);
        // A fresh token binds it again.
        hub.bind_identity(a.id(), Some(user("u1", 500))).unwrap();
        assert_eq!(
            sizes(&hub.groups_for(&c, "r4", 300)),
            [(Some("users/u1".into()), 1)]
        );
        hub.set_identity(a.id(), None).unwrap();
        assert_eq!(sizes(&hub.groups_for(&c, "r5", 300)), [(None, 1)]);
    }

    #[tokio::test]
    async fn single_record_subscriptions_match_their_record_only() {
        let (hub, _dir) = hub().await;
        let c = notes();
        let a = hub.connect(Transport::Sse);
        let b = hub.connect(Transport::Sse);
        hub.set_subscriptions(a.id(), &["notes/r1".into()]).unwrap();
        hub.set_subscriptions(b.id(), &["notes/*".into()]).unwrap();
        assert_eq!(hub.groups_for(&c, "r1", 100).len(), 2);
        assert_eq!(sizes(&hub.groups_for(&c, "r2", 100)), [(None, 1)]);
        assert_eq!(hub.groups_for(&c, "r1", 100).len(), 2);
        // Another collection's events reach neither.
        let other: Collection =
            serde_json::from_value(json!({"id": "pbc_other", "name": "other"})).unwrap();
        assert!(hub.groups_for(&other, "r1", 100).is_empty());
    }
}
