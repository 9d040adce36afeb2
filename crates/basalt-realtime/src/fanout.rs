//! The fan-out: each committed change, in commit order, goes to every subscription that
//! matches it and whose access rule (and own filter) holds for the subscriber's identity
//! at that moment. Subscribers with identical inputs (identity and topic string, options
//! included) form a group checked and rendered once; each check runs against the change's
//! own record snapshot on the reader pool.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use basalt_schema::request::AuthInfo;
use basalt_schema::{Collection, RequestInfo, RuleSlot};
use basalt_store::{ChangeAction, ChangeEvent, Record, SnapshotCheck};
use futures_util::FutureExt;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::client::{Client, Delivery};
use crate::hub::DeliveredTally;
use crate::{Hub, Subscription, Target};

/// Shapes a record the way the record API would answer this subscriber (hidden fields,
/// email visibility, the subscription's `expand` and `fields`). The API layer implements
/// it; the hub never knows the wire format of records.
pub trait RecordRenderer: Send + Sync + 'static {
    fn render<'a>(
        &'a self,
        collection: &'a Arc<Collection>,
        record: &'a Record,
        auth: Option<&'a AuthInfo>,
        subscription: &'a Subscription,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + 'a>>;
}

/// Groups at least this large are offered on two threads at once.
const PARALLEL_FROM: usize = 2048;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Hub {
    /// Delivers committed changes until the store's event bus closes. Spawn it once. It
    /// listens from the call on, not from the spawned task's first poll, so no change
    /// committed in between is missed.
    pub fn run(self, renderer: Arc<dyn RecordRenderer>) -> impl Future<Output = ()> + Send {
        let changes = self.store().subscribe_changes();
        self.deliver(changes, renderer)
    }

    async fn deliver(
        self,
        mut changes: tokio::sync::broadcast::Receiver<Arc<ChangeEvent>>,
        renderer: Arc<dyn RecordRenderer>,
    ) {
        loop {
            match changes.recv().await {
                Ok(event) => {
                    // A panic while delivering one event (a renderer's, a rule check's)
                    // loses that event only: the fan-out, which every subscriber depends
                    // on, goes on with the next.
                    let delivery = AssertUnwindSafe(self.fan_out(&event, renderer.as_ref()));
                    if let Err(panic) = delivery.catch_unwind().await {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        let record = event.record.get("id").and_then(Value::as_str);
                        tracing::error!(
                            collection = %event.collection.name,
                            record = record.unwrap_or_default(),
                            panic = %what,
                            "realtime fan-out panicked: this event was not delivered"
                        );
                        self.metrics().realtime_dropped("panic", 1);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // The bus holds thousands of events: falling that far behind means the
                    // fan-out cannot keep up. Say so loudly and count what was lost.
                    tracing::error!(missed, "realtime fan-out fell behind: events were lost");
                    self.metrics().realtime_dropped("lagged", missed);
                }
                Err(RecvError::Closed) => break,
            }
        }
    }

    /// Keeps identities in step with their auth records: a deleted record disconnects its
    /// clients, a changed tokenKey (password change, revocation) drops the identity, any
    /// other update refreshes what `@request.auth.*` sees.
    fn follow_auth_record(&self, event: &ChangeEvent) {
        let c = &event.collection;
        let id = event
            .record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let token_key = event.record.get("tokenKey").and_then(Value::as_str);
        let mut changed = false;
        for client in self.clients() {
            let mut state = client.state();
            let Some(identity) = &mut state.identity else {
                continue;
            };
            if identity.auth.collection_id != c.id || identity.record_id() != id {
                continue;
            }
            changed = true;
            match event.action {
                ChangeAction::Delete => {
                    state.identity = None;
                    drop(state);
                    client.disconnect("the auth record was deleted");
                }
                _ if identity.token_key() != token_key => state.identity = None,
                _ => {
                    let mut record = event.record.clone();
                    record.insert("collectionId".into(), Value::String(c.id.clone()));
                    record.insert("collectionName".into(), Value::String(c.name.clone()));
                    identity.auth.record = record;
                }
            }
        }
        if changed {
            self.groups_changed();
        }
    }

    pub(crate) async fn fan_out(&self, event: &ChangeEvent, renderer: &dyn RecordRenderer) {
        let started = std::time::Instant::now();
        let c = &event.collection;
        if c.is_auth() {
            self.follow_auth_record(event);
        }
        let record_id = event
            .record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let now = unix_now();
        let groups = self.groups_for(c, record_id, now);
        if groups.is_empty() {
            return;
        }
        let schema = self.store().schema();
        let Some(rules) = schema.rules(&c.id) else {
            return;
        };
        let mut allowed = Vec::new();
        let mut checked = Vec::new();
        let mut checks = Vec::new();
        for g in groups {
            let slot = match g.subscription.target {
                Target::Record(..) => &rules.view,
                _ => &rules.list,
            };
            let superuser = g.identity.as_ref().is_some_and(|i| i.auth.is_superuser);
            let mut rule = None;
            if !superuser {
                match slot {
                    RuleSlot::Locked => continue,
                    RuleSlot::Open => {}
                    RuleSlot::Expr(e) => rule = Some(e.clone()),
                }
            }
            let filter = match &g.subscription.filter {
                None => None,
                Some(Ok(f)) => Some(f.clone()),
                Some(Err(e)) => {
                    tracing::debug!(topic = %g.subscription.topic, error = %e, "subscription filter does not parse");
                    self.metrics()
                        .realtime_dropped("rule_error", g.clients.len() as u64);
                    continue;
                }
            };
            if rule.is_none() && filter.is_none() {
                allowed.push(g);
                continue;
            }
            checks.push(SnapshotCheck {
                rule,
                filter,
                request: Arc::new(RequestInfo {
                    auth: g.identity.as_ref().map(|i| i.auth.clone()),
                    body: Default::default(),
                    query: g.subscription.query.clone(),
                    headers: g.subscription.headers.clone(),
                    method: "GET".into(),
                    context: "realtime".into(),
                }),
            });
            checked.push(g);
        }
        if !checks.is_empty() {
            let record = Arc::new(event.record.clone());
            match self.store().record_matches(c.clone(), record, checks).await {
                Ok(verdicts) => {
                    for (g, verdict) in checked.into_iter().zip(verdicts) {
                        match verdict {
                            Ok(true) => allowed.push(g),
                            Ok(false) => {}
                            Err(e) => {
                                // This group's rule failed to evaluate: skip only its
                                // subscribers.
                                tracing::warn!(topic = %g.subscription.topic, error = %e, "realtime rule check failed");
                                self.metrics()
                                    .realtime_dropped("rule_error", g.clients.len() as u64);
                            }
                        }
                    }
                }
                Err(e) => {
                    let n: usize = checked.iter().map(|g| g.clients.len()).sum();
                    tracing::error!(error = %e, subscribers = n, "realtime rule checks could not run");
                    self.metrics().realtime_dropped("rule_error", n as u64);
                }
            }
        }
        for g in allowed {
            let auth = g.identity.as_ref().map(|i| &i.auth);
            let record = match renderer
                .render(c, &event.record, auth, &g.subscription)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(topic = %g.subscription.topic, error = %e, "realtime record rendering failed");
                    self.metrics()
                        .realtime_dropped("render_error", g.clients.len() as u64);
                    continue;
                }
            };
            let data = json!({"action": event.action.as_str(), "record": record}).to_string();
            let delivery = Arc::new(Delivery {
                topic: g.subscription.topic.clone(),
                data: Arc::from(data),
                committed_at: Some(event.committed_at),
            });
            self.offer_all(g.clients, delivery).await;
        }
        // Where a fan-out's time goes, for `BASALT_LOG=basalt_realtime=debug`.
        tracing::debug!(
            commit_to_start_us = started.duration_since(event.committed_at).as_micros() as u64,
            queued_us = started.elapsed().as_micros() as u64,
            "fan-out queued"
        );
    }

    /// Offers one delivery to every client of a group. A large group is split in two
    /// halves offered at once on two threads: most of the cost is the socket writes the
    /// transports do per client, and both cores can do them. Returns once every client
    /// has it, so the next event starts after this one (order per client holds).
    async fn offer_all(&self, clients: Arc<Vec<Arc<Client>>>, delivery: Arc<Delivery>) {
        if clients.len() < PARALLEL_FROM {
            let mut tally = DeliveredTally::default();
            for client in clients.iter() {
                self.offer(client, &delivery, &mut tally);
            }
            self.record_delivered(&tally);
            return;
        }
        let half = clients.len() / 2;
        let hub = self.clone();
        let other_delivery = delivery.clone();
        let other_clients = clients.clone();
        // Each half tallies on its own: nothing shared is written per subscriber.
        let other = tokio::task::spawn_blocking(move || {
            let mut tally = DeliveredTally::default();
            for client in &other_clients[half..] {
                hub.offer(client, &other_delivery, &mut tally);
            }
            hub.record_delivered(&tally);
        });
        let mut tally = DeliveredTally::default();
        for client in &clients[..half] {
            self.offer(client, &delivery, &mut tally);
        }
        self.record_delivered(&tally);
        if let Err(e) = other.await {
            tracing::error!(error = %e, "realtime fan-out half failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use basalt_telemetry::Metrics;

    use super::*;
    use crate::{HubConfig, Transport};

    /// Takes every delivery, counting them.
    struct CountingSink(Arc<AtomicUsize>);

    impl crate::DirectSink for CountingSink {
        fn try_deliver(&self, _: &Delivery) -> bool {
            self.0.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    fn metric(text: &str, name: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_split_fan_out_counts_each_delivery_once_in_the_metrics() {
        let (store, _dir) = crate::test_store().await;
        let metrics = Arc::new(Metrics::new());
        let hub = Hub::new(store, metrics.clone(), HubConfig::default());
        let written = Arc::new(AtomicUsize::new(0));
        // Large enough for the two-thread split, plus one client without a direct sink
        // whose delivery is queued (and counted by its transport, not here).
        let n = PARALLEL_FROM + 5;
        let mut handles = Vec::new();
        for _ in 0..n {
            let h = hub.connect(Transport::Sse);
            h.attach_direct(Arc::new(CountingSink(written.clone())));
            handles.push(h);
        }
        let mut queued = hub.connect(Transport::Sse);
        let mut clients = hub.clients();
        assert_eq!(clients.len(), n + 1);
        clients.sort_by_key(|c| c.direct_attached());
        let delivery = Arc::new(Delivery {
            topic: Arc::from("c/*"),
            data: Arc::from("{}"),
            committed_at: Some(std::time::Instant::now()),
        });
        for _ in 0..2 {
            hub.offer_all(Arc::new(clients.clone()), delivery.clone())
                .await;
        }
        assert_eq!(written.load(Ordering::Relaxed), 2 * n);
        let text = metrics.render();
        let direct = (2 * n) as f64;
        assert_eq!(
            metric(&text, "basalt_realtime_events_delivered_total"),
            direct
        );
        assert_eq!(
            metric(&text, "basalt_realtime_fanout_latency_seconds_count"),
            direct
        );
        for _ in 0..2 {
            let d = queued.next().await.expect("queued delivery");
            assert_eq!(&*d.topic, "c/*");
        }
        drop(handles);
    }

    /// Renders like the API, but panics on the first record it is asked for; counts calls.
    struct PanicsOnce(Arc<AtomicUsize>);

    impl RecordRenderer for PanicsOnce {
        fn render<'a>(
            &'a self,
            _: &'a Arc<Collection>,
            record: &'a Record,
            _: Option<&'a AuthInfo>,
            _: &'a Subscription,
        ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + 'a>> {
            let first = self.0.fetch_add(1, Ordering::SeqCst) == 0;
            Box::pin(async move {
                assert!(!first, "a renderer bug");
                Ok(Value::Object(record.clone()))
            })
        }
    }

    /// Regression (issue 16): a panic inside the fan-out ended its task for good, so no
    /// subscriber heard of any later write while the server answered as healthy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_on_one_event_does_not_stop_the_fan_out() {
        let (store, _dir) = crate::test_store().await;
        let c: Collection = serde_json::from_value(json!({"name": "notes", "listRule": "",
            "fields": [{"name": "n", "type": "number"}]}))
        .expect("document");
        let c = store.create_collection(c).await.expect("collection");
        let hub = Hub::new(
            store.clone(),
            Arc::new(Metrics::new()),
            HubConfig::default(),
        );
        let renders = Arc::new(AtomicUsize::new(0));
        let fan_out = tokio::spawn(hub.clone().run(Arc::new(PanicsOnce(renders.clone()))));
        let mut client = hub.connect(Transport::Sse);
        hub.set_subscriptions(client.id(), &["notes/*".into()])
            .expect("subscribe");
        for n in [1, 2] {
            let input = json!({"n": n}).as_object().cloned().unwrap_or_default();
            store
                .write(
                    vec![basalt_store::WriteOp::Create {
                        uploads: Vec::new(),
                        collection: c.clone(),
                        input,
                        access: basalt_store::Access::Unrestricted,
                    }],
                    Arc::new(RequestInfo::default()),
                )
                .await
                .expect("write");
        }
        let d = tokio::time::timeout(std::time::Duration::from_secs(10), client.next())
            .await
            .expect("the second write reaches the subscriber")
            .expect("delivery");
        assert!(d.data.contains("\"n\":2"), "{}", d.data);
        // The first write's rendering did panic: the path under test was taken.
        assert_eq!(renders.load(Ordering::SeqCst), 2);
        assert!(!fan_out.is_finished());
        fan_out.abort();
    }
}
