//! Password hashing off the async runtime on a small dedicated pool, one thread per CPU.
//! Each argon2id hash holds 19 MiB while it runs: a login burst on the shared blocking
//! pool ran hundreds at once and grew the process by gigabytes (measured: 15 GB peak RSS at
//! 128 concurrent logins). Here excess requests queue instead. A worker keeps its working
//! memory while jobs are queued and frees it when the queue is empty, so an idle server
//! does not hold 19 MiB per worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{ServiceError, ServiceResult};

type Job = Box<dyn FnOnce() + Send>;

/// The hashing pool; cheap to clone.
#[derive(Clone)]
pub struct PasswordPool {
    jobs: mpsc::Sender<Job>,
    /// Jobs sent and not yet taken by a worker.
    queued: Arc<AtomicUsize>,
}

impl PasswordPool {
    /// Starts `threads` workers (at least one). They stop when the last handle is dropped.
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let queued = queued.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("basalt-password-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => {
                                queued.fetch_sub(1, Ordering::AcqRel);
                                job();
                                if queued.load(Ordering::Acquire) == 0 {
                                    basalt_auth::release_work_memory();
                                }
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password worker");
            }
        }
        Self { jobs: tx, queued }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> ServiceResult<T> {
        let (tx, rx) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                ServiceError::internal()
            })?;
        rx.await.map_err(|_| ServiceError::internal())
    }

    pub async fn hash(&self, plain: String) -> ServiceResult<String> {
        self.run(move || basalt_auth::hash_password(&plain))
            .await?
            .map_err(|_| ServiceError::internal())
    }

    /// Whether `plain` matches `hash`; anything unusable is a mismatch.
    pub async fn verify(&self, plain: String, hash: String) -> bool {
        self.run(move || basalt_auth::verify_password(&plain, &hash).unwrap_or(false))
            .await
            .unwrap_or(false)
    }

    /// The cost of a verification, for identities that do not exist.
    pub async fn dummy(&self, plain: String) {
        let _ = self.run(move || basalt_auth::dummy_verify(&plain)).await;
    }
}
