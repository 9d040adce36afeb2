//! The operations of Basalt with typed inputs and outputs, whatever protocol asks for
//! them: records (rules chosen and checked, visibility, expand, auth-record input), batch
//! writes as one transaction, the auth flows (password, OTP, MFA, sessions, email flows,
//! sign-in alerts, their mail, OAuth2 sign-in and account linking), collections, the settings document,
//! the request logs,
//! record files (uploads, downloads, deletion after commit, the orphan sweep) and backups. REST
//! (`basalt-api`) and any other protocol are thin adapters over the same functions: they
//! turn their request into a [`Caller`], a [`RequestMeta`] and an input, and render the
//! output or the [`ServiceError`].
//!
//! It never knows HTTP (no axum, hyper, tower or `http` types: no headers, status codes
//! or routes), wire formats beyond PocketBase's error `data`, or configuration: the binary
//! hands it a [`Services`] of ready handles.

pub mod auth;
pub mod backups;
pub mod batch;
mod caller;
pub mod collections;
pub mod crons;
mod error;
pub mod files;
pub mod logs;
mod password;
pub mod pocketbase_import;
pub mod record_caching;
pub mod records;
pub mod settings;
pub mod tokens;

use std::sync::Arc;

use basalt_auth::TokenKeys;
use basalt_store::Store;

pub use caller::{Caller, RequestMeta, request_info, resolve_token};
pub use error::{ErrorKind, ServiceError, ServiceResult, validation_data};
pub use password::PasswordPool;

/// The handles every operation runs on; cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    /// Shared: protocols clone the handles per request, and the keys would otherwise
    /// allocate.
    pub keys: Arc<TokenKeys>,
    /// Where password hashes are computed (bounded, off the async runtime).
    pub passwords: PasswordPool,
    /// Outbound client for OAuth2 provider calls.
    pub oauth2: basalt_oauth2::ProviderClient,
    /// Record files: their storage and the upload spool.
    pub files: files::Files,
    /// Backups of the data dir, and the restart a restore asks for.
    pub backups: backups::Backups,
    /// The cron jobs running now, so a job never overlaps itself.
    pub crons: crons::Crons,
    /// The request log (`auxiliary.db`) and the `logs` settings it follows.
    pub logs: logs::RequestLogs,
    /// The `recordCaching` settings, resolved to collection ids.
    pub record_caching: Arc<record_caching::RecordCaching>,
}
