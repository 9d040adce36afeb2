//! Automatic certificates over ACME (RFC 8555) for TLS listeners: an issuer per `acme`
//! section that serves the stored certificate, renews it in the background before expiry
//! and swaps the new one into the SNI resolver without touching listeners or connections.
//!
//! Several nodes may share one store: the lease (`lease.rs`) lets only one of them talk to
//! the CA for a name, the others re-read the store every `poll_interval` and pick the new
//! certificate up. HTTP-01 challenges are answered on the plain-HTTP listeners before
//! routing and before the HTTPS redirect (`answer_http01`).

mod lease;
mod order;
mod settings;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use http::{HeaderValue, Request, Response, StatusCode, header};
use rustls::sign::CertifiedKey;

use crate::body::{Body, full};
use crate::config::AcmeConfig;
use crate::error::EdgeError;
use crate::metrics::EdgeMetrics;
pub use settings::AcmeSettings;

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
/// How long a lease lasts without refresh: a crashed issuer blocks others at most this long.
const LEASE_TTL: Duration = Duration::from_secs(120);
const LEASE_REFRESH: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The certificate the SNI resolver serves for an issuer's names; swapped on renewal.
pub type CertSlot = Arc<ArcSwapOption<CertifiedKey>>;
/// TLS-ALPN-01 validation certificates by DNS name (RFC 8737).
pub type AlpnCerts = Arc<Mutex<HashMap<String, Arc<CertifiedKey>>>>;
/// The ALPN protocol of TLS-ALPN-01 handshakes; such a connection ends after the handshake.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// What is known about the certificate being served.
struct Served {
    not_after: i64,
    serial: String,
    names: Vec<String>,
    modified: Option<SystemTime>,
}

pub struct AcmeIssuer {
    config: AcmeConfig,
    pub settings: AcmeSettings,
    pub slot: CertSlot,
    served: Mutex<Option<Served>>,
    /// HTTP-01 token -> key authorization, while an order is open.
    challenges: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01 validation certificates by DNS name, while an order is open; shared
    /// with the listener's SNI resolver.
    pub alpn_certs: AlpnCerts,
    started: AtomicBool,
    /// Set when the edge shuts down: the renewal task ends before its next round.
    stopped: AtomicBool,
    owner: String,
    metrics: Arc<EdgeMetrics>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl AcmeIssuer {
    /// Validates the section and serves what the store already holds, if still valid.
    /// An issuer of `previous` with the same section is kept, with its certificate and task.
    pub fn build(
        listen: &str,
        config: &AcmeConfig,
        previous: &[Arc<AcmeIssuer>],
        metrics: &Arc<EdgeMetrics>,
    ) -> Result<Arc<Self>, EdgeError> {
        let settings = AcmeSettings::validate(listen, config)?;
        if let Some(same) = previous.iter().find(|i| i.config == *config) {
            return Ok(same.clone());
        }
        let issuer = Self {
            config: config.clone(),
            settings,
            slot: Arc::new(ArcSwapOption::empty()),
            served: Mutex::new(None),
            challenges: Mutex::new(HashMap::new()),
            alpn_certs: Arc::new(Mutex::new(HashMap::new())),
            started: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            owner: format!("{:016x}-{}", rand::random::<u64>(), std::process::id()),
            metrics: metrics.clone(),
        };
        issuer.load_from_store();
        Ok(Arc::new(issuer))
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    pub fn domains(&self) -> &[String] {
        &self.settings.domains
    }

    /// The serial of the certificate being served (hex), if any.
    pub fn serving_serial(&self) -> Option<String> {
        self.lock_served().as_ref().map(|s| s.serial.clone())
    }

    fn lock_served(&self) -> std::sync::MutexGuard<'_, Option<Served>> {
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_challenges(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.challenges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes an answer in memory and in the store, so every node sharing the store can
    /// answer the CA, whichever of them its request reaches.
    fn put_challenge(&self, token: &str, key_authorization: &str) {
        self.lock_challenges()
            .insert(token.to_string(), key_authorization.to_string());
        if let Some(path) = shared_challenge(&self.settings.store, token) {
            let written = std::fs::create_dir_all(path.parent().unwrap_or(&self.settings.store))
                .and_then(|()| store::write_atomic(&path, key_authorization.as_bytes(), false));
            if let Err(e) = written {
                tracing::warn!(error = %e, "acme challenge not shared through the store");
            }
        }
    }

    fn lock_alpn(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CertifiedKey>>> {
        self.alpn_certs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves a TLS-ALPN-01 validation certificate for `name`: self-signed, for that name
    /// only, with the critical acmeIdentifier extension holding SHA-256 of the key
    /// authorization (RFC 8737 section 3).
    fn put_alpn_challenge(&self, name: &str, digest: &[u8]) -> Result<(), String> {
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
            .map_err(|e| format!("validation certificate: {e}"))?;
        params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
        let key = rcgen::KeyPair::generate().map_err(|e| format!("validation key: {e}"))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("validation certificate: {e}"))?;
        let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signing = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(der)
            .map_err(|e| format!("validation key: {e}"))?;
        let certified = CertifiedKey::new(vec![cert.der().clone()], signing);
        self.lock_alpn()
            .insert(name.to_string(), Arc::new(certified));
        Ok(())
    }

    fn remove_alpn_challenge(&self, name: &str) {
        self.lock_alpn().remove(name);
    }

    fn remove_challenge(&self, token: &str) {
        self.lock_challenges().remove(token);
        if let Some(path) = shared_challenge(&self.settings.store, token) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Serves the store's certificate when it is new to this node, valid and covers the
    /// configured names. Returns whether the served certificate changed.
    fn load_from_store(&self) -> bool {
        let files = store::cert_files(&self.settings.store, self.settings.primary());
        let modified = store::modified(&files.chain);
        if modified.is_none() {
            return false;
        }
        if let Some(s) = &*self.lock_served()
            && s.modified == modified
        {
            return false;
        }
        let cert = match store::load(&files) {
            Ok(c) => c,
            Err(e) => {
                // A node may be halfway through writing the pair; the next poll retries.
                tracing::debug!(error = %e, name = self.settings.primary(), "stored certificate not usable yet");
                return false;
            }
        };
        if cert.not_after <= now_secs() {
            return false;
        }
        if !self.settings.domains.iter().all(|d| cert.names.contains(d)) {
            return false;
        }
        if self
            .lock_served()
            .as_ref()
            .is_some_and(|s| s.serial == cert.serial && s.modified == cert.modified)
        {
            return false;
        }
        self.slot.store(Some(cert.key.clone()));
        for d in &self.settings.domains {
            self.metrics.acme_expiry(d, cert.not_after);
        }
        tracing::info!(
            name = self.settings.primary(),
            serial = %cert.serial,
            not_after = cert.not_after,
            "acme certificate loaded"
        );
        *self.lock_served() = Some(Served {
            not_after: cert.not_after,
            serial: cert.serial,
            names: cert.names,
            modified: cert.modified,
        });
        true
    }

    /// Time until the served certificate is due for renewal (zero when due or absent).
    fn until_due(&self) -> Duration {
        let served = self.lock_served();
        let Some(s) = served.as_ref() else {
            return Duration::ZERO;
        };
        if !self.settings.domains.iter().all(|d| s.names.contains(d)) {
            return Duration::ZERO;
        }
        let due = s.not_after - self.settings.renew_before.as_secs().min(i64::MAX as u64) as i64;
        Duration::from_secs(u64::try_from(due - now_secs()).unwrap_or(0))
    }

    /// One round: pick up what the store holds, issue if due and the lease is ours.
    /// Returns how long to wait before the next round.
    async fn round(self: &Arc<Self>, failures: &mut u32) -> Duration {
        let poll = self.settings.poll_interval;
        self.load_from_store();
        let until_due = self.until_due();
        if !until_due.is_zero() {
            return until_due.min(poll);
        }
        let lease = Arc::new(lease::Lease::new(
            &self.settings.store,
            self.settings.primary(),
            &self.owner,
            LEASE_TTL,
        ));
        match blocking({
            let l = lease.clone();
            move || l.acquire()
        })
        .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(
                    name = self.settings.primary(),
                    "another node holds the acme lease"
                );
                return poll;
            }
            Err(e) => {
                tracing::warn!(error = %e, name = self.settings.primary(), "acme lease unavailable");
                return poll;
            }
        }
        // Another node may have finished just before we took the lease.
        if self.load_from_store() && !self.until_due().is_zero() {
            let _ = blocking(move || lease.release()).await;
            return poll;
        }
        let refresher = tokio::spawn({
            let lease = lease.clone();
            async move {
                loop {
                    tokio::time::sleep(LEASE_REFRESH).await;
                    let l = lease.clone();
                    if !matches!(blocking(move || l.refresh()).await, Ok(true)) {
                        tracing::warn!("acme lease lost while issuing");
                        return;
                    }
                }
            }
        });
        let result = self.issue_and_store().await;
        refresher.abort();
        let _ = blocking(move || lease.release()).await;
        let name = self.settings.primary();
        match result {
            Ok(()) => {
                *failures = 0;
                self.metrics.acme_issued(name, true);
                poll
            }
            Err(e) => {
                *failures = failures.saturating_add(1);
                self.metrics.acme_issued(name, false);
                let backoff = poll
                    .saturating_mul(1 << (*failures).min(12))
                    .min(MAX_BACKOFF)
                    .max(poll);
                tracing::warn!(
                    error = %e,
                    name,
                    failures = *failures,
                    retry_in_ms = backoff.as_millis() as u64,
                    "acme issuance failed; the current certificate keeps serving"
                );
                backoff
            }
        }
    }

    async fn issue_and_store(&self) -> Result<(), String> {
        let issued = order::issue(self).await.map_err(|e| e.to_string())?;
        // Refuse to store what could not be served.
        let parsed = store::parse(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())?;
        let files = store::cert_files(&self.settings.store, self.settings.primary());
        // Key first: a node reading between the two renames sees a mismatched pair, refuses
        // it and retries on its next poll, never serving a wrong key.
        store::write_atomic(&files.key, issued.key_pem.as_bytes(), true)
            .and_then(|()| store::write_atomic(&files.chain, issued.chain_pem.as_bytes(), false))
            .map_err(|e| format!("store: {e}"))?;
        tracing::info!(name = self.settings.primary(), serial = %parsed.serial, "acme certificate issued");
        if !self.load_from_store() {
            return Err("the issued certificate could not be loaded back from the store".into());
        }
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// Starts the issuer's renewal task once; it ends when no snapshot holds the issuer.
pub fn spawn(issuer: &Arc<AcmeIssuer>) {
    if issuer.started.swap(true, Ordering::AcqRel) {
        return;
    }
    let weak: Weak<AcmeIssuer> = Arc::downgrade(issuer);
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let Some(issuer) = weak.upgrade() else {
                return;
            };
            if issuer.stopped.load(Ordering::Acquire) {
                return;
            }
            let wait = issuer.round(&mut failures).await;
            drop(issuer);
            tokio::time::sleep(wait).await;
        }
    });
}

/// Where an open challenge's answer is shared; `None` for anything that is not a token
/// (base64url, RFC 8555 section 8.1), so a request can never name another file.
fn shared_challenge(store: &std::path::Path, token: &str) -> Option<std::path::PathBuf> {
    let is_token = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    is_token.then(|| store.join("challenges").join(token))
}

/// Answers `GET /.well-known/acme-challenge/TOKEN` for an open order of any issuer, this
/// node's or (through the shared store) another node's.
pub async fn answer_http01<B>(
    issuers: &[Arc<AcmeIssuer>],
    req: &Request<B>,
) -> Option<Response<Body>> {
    let token = req.uri().path().strip_prefix(CHALLENGE_PREFIX)?;
    let mut answer = issuers
        .iter()
        .find_map(|i| i.lock_challenges().get(token).cloned());
    if answer.is_none() {
        for i in issuers {
            let path = shared_challenge(&i.settings.store, token)?;
            if let Ok(bytes) = tokio::fs::read(&path).await
                && bytes.len() <= 1024
            {
                answer = Some(String::from_utf8_lossy(&bytes).into_owned());
                break;
            }
        }
    }
    let answer = answer?;
    let mut resp = Response::new(full(answer));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_name_a_shared_challenge_file() {
        let store = std::path::Path::new("/store");
        assert_eq!(
            shared_challenge(store, "aB3-_x"),
            Some(store.join("challenges").join("aB3-_x"))
        );
        for bad in [
            "",
            "../account.json",
            "a/b",
            "a.b",
            "%2e%2e",
            &"a".repeat(300),
        ] {
            assert_eq!(shared_challenge(store, bad), None, "{bad}");
        }
    }
}
