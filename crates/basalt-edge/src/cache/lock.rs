//! The cache lock: concurrent misses for one key send a single request upstream; the others
//! wait (bounded) for it to finish and then look in the cache again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::locked;

#[derive(Default)]
pub struct Coalescer {
    inflight: Arc<Mutex<HashMap<String, watch::Receiver<()>>>>,
}

pub enum Turn {
    /// This request fetches; others wait until the guard is dropped.
    Leader(LeaderGuard),
    /// Another request is fetching; `changed()` returns (with an error) when it is done.
    Follower(watch::Receiver<()>),
}

pub struct LeaderGuard {
    key: String,
    inflight: Arc<Mutex<HashMap<String, watch::Receiver<()>>>>,
    _done: watch::Sender<()>,
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        // The sender drops right after this, which wakes every waiter.
        locked(&self.inflight).remove(&self.key);
    }
}

impl Coalescer {
    pub fn acquire(&self, key: &str) -> Turn {
        let mut map = locked(&self.inflight);
        if let Some(rx) = map.get(key) {
            return Turn::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        map.insert(key.to_string(), rx);
        Turn::Leader(LeaderGuard {
            key: key.to_string(),
            inflight: self.inflight.clone(),
            _done: tx,
        })
    }
}
