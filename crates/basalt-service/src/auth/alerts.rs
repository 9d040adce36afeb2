//! Sign-in alerts: every session start remembers its origin (a fingerprint of client
//! address and user agent) in `_authOrigins`; a sign-in from an origin the record never
//! used, when it has used others before, mails the collection's `authAlert` template.
//! The mail goes out in the background so a login never waits for SMTP.

use std::net::IpAddr;
use std::sync::Arc;

use basalt_schema::{Collection, RequestInfo};
use basalt_store::{Access, Record, WriteOp};
use serde_json::{Map, Value};

use super::outbox::{mail_settings, send};
use super::system::{record_entries, system_collection};
use crate::Services;
use crate::error::{ServiceError, ServiceResult};
use crate::tokens::{options, text};

/// Where a sign-in comes from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub ip: IpAddr,
    pub user_agent: String,
}

impl Origin {
    /// From the client's address and user agent (kept to 300 characters).
    pub fn new(ip: IpAddr, user_agent: &str) -> Self {
        let user_agent = user_agent.chars().take(300).collect();
        Self { ip, user_agent }
    }
}

/// Remembers the origin of a session that just started, alerting on a new one. Awaited
/// (two indexed reads and at most one write, small next to the password hash) so
/// back-to-back logins see each other's origins; the mail itself goes out in the
/// background. A failure is logged and never fails the login.
pub(super) async fn remember(svc: &Services, c: &Arc<Collection>, record: &Record, origin: Origin) {
    if let Err(e) = remember_now(svc, c, record, &origin).await {
        tracing::warn!(
            status = e.kind.status(),
            "could not record the sign-in origin"
        );
    }
}

async fn remember_now(
    svc: &Services,
    c: &Arc<Collection>,
    record: &Record,
    origin: &Origin,
) -> ServiceResult<()> {
    let sys = system_collection(svc, "_authOrigins")?;
    let ip = origin.ip.to_string();
    let fingerprint = basalt_auth::origin_fingerprint(&ip, &origin.user_agent);
    let id = text(record, "id");
    let (_, known) =
        record_entries(svc, &sys, &c.id, id, Some(("fingerprint", &fingerprint)), 1).await?;
    if known > 0 {
        return Ok(());
    }
    let (_, others) = record_entries(svc, &sys, &c.id, id, None, 1).await?;
    let input = Map::from_iter([
        ("collectionRef".into(), Value::String(c.id.clone())),
        ("recordRef".into(), Value::String(id.to_string())),
        ("fingerprint".into(), Value::String(fingerprint)),
    ]);
    let op = WriteOp::Create {
        uploads: Vec::new(),
        collection: sys,
        input,
        access: Access::Unrestricted,
    };
    svc.store
        .write(vec![op], Arc::new(RequestInfo::default()))
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to authenticate."))?;
    let alert = options(c).auth_alert;
    // The first origin of a record is no news; later new ones are.
    if others > 0 && alert.enabled && !text(record, "email").is_empty() {
        let settings = mail_settings(svc).await?;
        let info = format!("{ip}, {}", origin.user_agent);
        send(
            &settings,
            &alert.email_template,
            text(record, "email"),
            record,
            &[("ALERT_INFO", &info)],
        );
    }
    Ok(())
}
