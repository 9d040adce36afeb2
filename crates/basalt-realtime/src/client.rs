//! One connected client: its id, the identity its subscriptions run as, its subscriptions,
//! and the bounded queue of messages waiting for its transport.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use basalt_schema::request::AuthInfo;
use tokio::sync::{Notify, mpsc};

use crate::Subscription;
use crate::hub::Hub;

/// How a client is connected; a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    WebSocket,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::WebSocket => "websocket",
        }
    }
}

/// Who a client's subscriptions run as: the auth record its token resolved to, and when
/// that token expires (after which the client counts as anonymous again).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub auth: AuthInfo,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Identity {
    pub fn record_id(&self) -> &str {
        self.auth
            .record
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }

    pub(crate) fn token_key(&self) -> Option<&str> {
        self.auth.record.get("tokenKey").and_then(|v| v.as_str())
    }

    /// `collectionId/recordId`: equal for two identities of the same auth record.
    pub fn key(&self) -> String {
        format!("{}/{}", self.auth.collection_id, self.record_id())
    }
}

/// One message for one client: an event named `topic` with a JSON `data` payload, shared
/// by every client of a fan-out group.
#[derive(Debug)]
pub struct Delivery {
    pub topic: Arc<str>,
    /// The JSON text of the payload (`{"action":...,"record":...}` for record events).
    pub data: Arc<str>,
    /// When the change behind it committed; `None` for direct sends.
    pub committed_at: Option<Instant>,
}

/// `repr(C)` with the direct sink first: it sits next to the mutex's lock word, on the
/// cache line the fan-out already loaded while grouping, so handing each subscriber its
/// event touches one line fewer (10k subscribers' state does not stay in cache).
#[derive(Default)]
#[repr(C)]
pub(crate) struct ClientState {
    /// Set by transports that write from the fan-out directly; cleared when they end.
    pub direct: Option<Arc<dyn DirectSink>>,
    pub identity: Option<Identity>,
    pub subscriptions: HashMap<Arc<str>, Arc<Subscription>>,
}

/// A transport that can take a delivery straight from the fan-out, without waking its
/// task: one non-blocking write instead of a queue hop and a task switch per subscriber.
pub trait DirectSink: Send + Sync + 'static {
    /// Sends `d` now when nothing queued for this client is still waiting to go out (so
    /// order is kept) and the transport can take it without blocking; false when it must
    /// go through the queue instead (the transport then counts it as queued, in order).
    fn try_deliver(&self, d: &Delivery) -> bool;
}

pub(crate) struct Client {
    pub id: Arc<str>,
    pub transport: Transport,
    state: Mutex<ClientState>,
    pub queue: mpsc::Sender<Arc<Delivery>>,
    /// Why the client is being disconnected, once it is; then `closing` is notified.
    reason: Mutex<Option<String>>,
    closing: Notify,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(id: Arc<str>, transport: Transport, queue: mpsc::Sender<Arc<Delivery>>) -> Self {
        Self {
            id,
            transport,
            state: Mutex::new(ClientState::default()),
            queue,
            reason: Mutex::new(None),
            closing: Notify::new(),
        }
    }

    /// The state, even when a panicking holder poisoned it (it holds no invariants that a
    /// panic could break halfway).
    pub fn state(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the transport to close with `reason`; the first reason wins.
    pub fn disconnect(&self, reason: &str) -> bool {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_some() {
            return false;
        }
        *r = Some(reason.to_string());
        drop(r);
        self.closing.notify_one();
        true
    }

    /// Hands `d` to the attached direct sink, if any; true when it went out that way.
    /// The sink is used under the lock rather than cloned out: no reference count
    /// traffic per subscriber.
    pub fn try_direct(&self, d: &Delivery) -> bool {
        self.state()
            .direct
            .as_ref()
            .is_some_and(|sink| sink.try_deliver(d))
    }

    #[cfg(test)]
    pub fn direct_attached(&self) -> bool {
        self.state().direct.is_some()
    }

    fn set_direct(&self, sink: Option<Arc<dyn DirectSink>>) {
        self.state().direct = sink;
    }

    pub fn disconnect_reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What a transport holds while its client is connected. Dropping it unregisters the
/// client.
pub struct ClientHandle {
    pub(crate) client: Arc<Client>,
    pub(crate) queue: mpsc::Receiver<Arc<Delivery>>,
    pub(crate) hub: Hub,
}

impl ClientHandle {
    pub fn id(&self) -> &str {
        &self.client.id
    }

    /// The next message, or `Err(reason)` once the client must be disconnected (slow
    /// consumer, server shutdown, auth record deleted).
    pub async fn next(&mut self) -> Result<Arc<Delivery>, String> {
        if let Some(reason) = self.client.disconnect_reason() {
            return Err(reason);
        }
        tokio::select! {
            biased;
            _ = self.client.closing.notified() => {
                Err(self.client.disconnect_reason().unwrap_or_else(|| "disconnected".into()))
            }
            msg = self.queue.recv() => {
                msg.ok_or_else(|| "disconnected".into())
            }
        }
    }

    /// Lets the fan-out hand deliveries to `sink` itself while the client's queue is empty.
    pub fn attach_direct(&self, sink: Arc<dyn DirectSink>) {
        self.client.set_direct(Some(sink));
    }

    /// Records that a message reached the transport (for the fan-out latency metric).
    pub fn delivered(&self, d: &Delivery) {
        self.hub.observe_delivered(d);
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        // The sink holds the transport's socket: let it close with the stream.
        self.client.set_direct(None);
        self.hub.unregister(&self.client);
    }
}
