//! One-time codes by email: `request-otp` stores a hashed code in `_otps` and mails it,
//! answering an `otpId` even for unknown addresses (one that leads nowhere);
//! `auth-with-otp` accepts a code once, before it expires, and burns it after
//! [`MAX_ATTEMPTS`] wrong tries.

use std::sync::Arc;

use basalt_schema::RequestInfo;
use basalt_store::{Access, WriteOp};
use serde_json::{Map, Value, json};

use super::outbox::{mail_settings, send};
use super::system::{age_secs, delete_system_record, purge_expired, system_collection};
use super::{
    AuthOutcome, Origin, Throttle, auth_collection, finish_auth, load_record, required,
    system_update,
};
use crate::Services;
use crate::error::{ServiceError, ServiceResult};
use crate::tokens::{options, text};

/// Wrong codes a request may try before it is burnt.
const MAX_ATTEMPTS: i64 = 5;

fn not_enabled() -> ServiceError {
    ServiceError::forbidden("The collection is not configured to allow OTP authentication.")
}

/// Mails a code for `email` (empty when absent) of `collection`; answers the `otpId` to
/// sign in with, one that leads nowhere for an unknown address.
pub async fn request_otp(
    svc: &Services,
    throttle: &dyn Throttle,
    collection: &str,
    email: &str,
) -> ServiceResult<String> {
    let c = auth_collection(svc, collection)?;
    let opts = options(&c);
    if !opts.otp.enabled {
        return Err(not_enabled());
    }
    let email = required("email", email)?;
    throttle.admit(&c, "requestOTP", Some(email)).await?;
    let settings = mail_settings(svc).await?;
    let code = basalt_auth::otp_code(usize::try_from(opts.otp.length).unwrap_or(8));
    // Hashing happens for known and unknown addresses alike: same work, same time.
    let hash = svc.passwords.hash(code.clone()).await?;
    let record = svc
        .store
        .find_auth_record(&c, "email", email)
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to request OTP."))?;
    let Some(record) = record else {
        return Ok(basalt_schema::id::random_id(15));
    };
    let otps = system_collection(svc, "_otps")?;
    purge_expired(svc, &otps, &c.id, text(&record, "id"), opts.otp.duration).await;
    let input = Map::from_iter([
        ("collectionRef".into(), Value::String(c.id.clone())),
        (
            "recordRef".into(),
            Value::String(text(&record, "id").into()),
        ),
        ("password".into(), Value::String(hash)),
        (
            "sentTo".into(),
            Value::String(text(&record, "email").into()),
        ),
        ("attempts".into(), json!(0)),
    ]);
    let op = WriteOp::Create {
        uploads: Vec::new(),
        collection: otps,
        input,
        access: Access::Unrestricted,
    };
    let otp = svc
        .store
        .write(vec![op], Arc::new(RequestInfo::default()))
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to request OTP."))?
        .pop()
        .flatten()
        .ok_or_else(ServiceError::internal)?;
    let otp_id = text(&otp, "id").to_string();
    send(
        &settings,
        &opts.otp.email_template,
        text(&record, "email"),
        &record,
        &[("OTP", &code), ("OTP_ID", &otp_id)],
    );
    Ok(otp_id)
}

/// A sign-in with a mailed code.
#[derive(Debug, Clone)]
pub struct OtpLogin {
    pub collection: String,
    /// Empty when absent.
    pub otp_id: String,
    /// The code; empty when absent.
    pub password: String,
    /// The pending second factor this login completes.
    pub mfa_id: Option<String>,
    pub origin: Origin,
}

pub async fn auth_with_otp(
    svc: &Services,
    throttle: &dyn Throttle,
    input: OtpLogin,
) -> ServiceResult<AuthOutcome> {
    let c = auth_collection(svc, &input.collection)?;
    let opts = options(&c);
    if !opts.otp.enabled {
        return Err(not_enabled());
    }
    let otp_id = required("otpId", &input.otp_id)?.to_string();
    let code = required("password", &input.password)?.to_string();
    throttle.admit(&c, "authWithOTP", Some(&otp_id)).await?;
    let failed = || ServiceError::bad_request("Invalid or expired OTP.");
    let otps = system_collection(svc, "_otps")?;
    let Some(otp) = load_record(svc, &otps, &otp_id).await? else {
        svc.passwords.dummy(code).await;
        return Err(failed());
    };
    if text(&otp, "collectionRef") != c.id {
        svc.passwords.dummy(code).await;
        return Err(failed());
    }
    let attempts = otp.get("attempts").and_then(Value::as_i64).unwrap_or(0);
    if age_secs(&otp) > opts.otp.duration || attempts >= MAX_ATTEMPTS {
        delete_system_record(svc, &otps, &otp_id).await;
        return Err(failed());
    }
    if !svc
        .passwords
        .verify(code, text(&otp, "password").to_string())
        .await
    {
        if attempts + 1 >= MAX_ATTEMPTS {
            delete_system_record(svc, &otps, &otp_id).await;
        } else {
            let input = Map::from_iter([("attempts".to_string(), json!(attempts + 1))]);
            system_update(svc, &otps, &otp_id, input, "Invalid or expired OTP.").await?;
        }
        return Err(failed());
    }
    // Single use: gone before the session starts.
    delete_system_record(svc, &otps, &otp_id).await;
    let mut record = load_record(svc, &c, text(&otp, "recordRef"))
        .await?
        .ok_or_else(failed)?;
    let sent_to = text(&otp, "sentTo");
    if !record
        .get("verified")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        && !sent_to.is_empty()
        && sent_to.eq_ignore_ascii_case(text(&record, "email"))
    {
        // The code reached the record's address: that proves it. Whoever set the password
        // of an unverified record may not own the address (an account pre-registered with
        // someone else's email), so that password stops working, as in PocketBase.
        let random = svc.passwords.hash(basalt_schema::id::random_id(40)).await?;
        let input = Map::from_iter([
            ("verified".to_string(), Value::Bool(true)),
            ("password".to_string(), Value::String(random)),
            (
                "tokenKey".to_string(),
                Value::String(basalt_schema::id::random_id(50)),
            ),
        ]);
        record = system_update(
            svc,
            &c,
            text(&record, "id"),
            input,
            "Failed to authenticate.",
        )
        .await?;
    }
    let mfa_id = input.mfa_id.as_deref().filter(|s| !s.is_empty());
    finish_auth(svc, &c, record, "otp", mfa_id, input.origin, None).await
}
