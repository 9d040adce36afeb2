//! The mail of the auth flows: a collection's template rendered with the application's
//! name and URL (from the `meta` settings, never from request headers) and delivered in
//! the background over the `smtp` settings, so an answer never waits for, or reveals,
//! whether a mail went out.

use basalt_auth::{Mailer, OutgoingMail, SmtpSettings, render_template};
use basalt_schema::collection::EmailTemplate;
use basalt_store::Record;
use serde_json::Value;

use crate::Services;
use crate::error::ServiceResult;

/// What the mail of one request needs from the settings.
pub(super) struct MailSettings {
    app_name: String,
    app_url: String,
    smtp: Option<SmtpSettings>,
}

/// Reads the settings once per request (before any lookup, so known and unknown
/// addresses cost the same).
pub(super) async fn mail_settings(svc: &Services) -> ServiceResult<MailSettings> {
    let s = crate::settings::load(svc).await?;
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let meta = &s["meta"];
    let smtp = &s["smtp"];
    let enabled = smtp["enabled"].as_bool().unwrap_or(false);
    Ok(MailSettings {
        app_name: str_of(&meta["appName"]),
        app_url: str_of(&meta["appURL"]).trim_end_matches('/').to_string(),
        smtp: enabled.then(|| SmtpSettings {
            host: str_of(&smtp["host"]),
            port: smtp["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(587),
            username: str_of(&smtp["username"]),
            password: str_of(&smtp["password"]),
            tls: smtp["tls"].as_bool().unwrap_or(false),
            require_tls: smtp["requireTLS"].as_bool().unwrap_or(false),
            local_name: str_of(&smtp["localName"]),
            sender_name: str_of(&meta["senderName"]),
            sender_address: str_of(&meta["senderAddress"]),
        }),
    })
}

/// Renders `template` for `record` and sends it to `to` in the background.
pub(super) fn send(
    settings: &MailSettings,
    template: &EmailTemplate,
    to: &str,
    record: &Record,
    extra: &[(&str, &str)],
) {
    let Some(smtp) = settings.smtp.clone() else {
        tracing::warn!(
            kind = template.subject.as_str(),
            "smtp is not enabled in the settings: auth mail not sent"
        );
        return;
    };
    let mut vars: Vec<(&str, &str)> = vec![
        ("APP_NAME", settings.app_name.as_str()),
        ("APP_URL", settings.app_url.as_str()),
    ];
    vars.extend_from_slice(extra);
    let mail = OutgoingMail {
        to: to.to_string(),
        subject: render_template(&template.subject, &vars, record, false),
        html: render_template(&template.body, &vars, record, true),
    };
    tokio::spawn(async move {
        if let Err(e) = Mailer.send(&smtp, mail).await {
            tracing::warn!(error = %e, "auth mail not delivered");
        }
    });
}
