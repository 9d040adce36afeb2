//! The emails of the auth flows: templates with PocketBase's placeholders rendered, and
//! delivery over SMTP (lettre, rustls). Settings are passed per message because the
//! operator changes them at runtime through `/api/settings`.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Map, Value};

use crate::AuthError;

/// PocketBase's `smtp` settings plus the sender from `meta`.
#[derive(Clone, Default)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// Implicit TLS (port 465 style); otherwise STARTTLS when the server offers it.
    pub tls: bool,
    /// Never deliver in clear (our extension `smtp.requireTLS`): without `tls`, STARTTLS
    /// is required, and a server that does not offer it (or fails the handshake) gets
    /// nothing but EHLO; the delivery fails.
    pub require_tls: bool,
    pub local_name: String,
    pub sender_name: String,
    pub sender_address: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("tls", &self.tls)
            .field("require_tls", &self.require_tls)
            .finish_non_exhaustive()
    }
}

/// One rendered email.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub html: String,
}

/// Sends mail; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Mailer;

impl Mailer {
    pub async fn send(&self, smtp: &SmtpSettings, mail: OutgoingMail) -> Result<(), AuthError> {
        let build = |e: &dyn std::fmt::Display| AuthError::MailBuild(e.to_string());
        let from: Mailbox = smtp
            .sender_address
            .parse()
            .map(|addr| Mailbox::new(Some(smtp.sender_name.clone()), addr))
            .map_err(|e| build(&e))?;
        let to: Mailbox = mail.to.parse().map_err(|e| build(&e))?;
        let text = html_to_text(&mail.html);
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(mail.html),
                    ),
            )
            .map_err(|e| build(&e))?;
        let tls_params = TlsParameters::new(smtp.host.clone()).map_err(|e| build(&e))?;
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(15)))
            .tls(if smtp.tls {
                Tls::Wrapper(tls_params)
            } else if smtp.require_tls {
                Tls::Required(tls_params)
            } else {
                Tls::Opportunistic(tls_params)
            });
        if !smtp.local_name.is_empty() {
            transport = transport.hello_name(ClientId::Domain(smtp.local_name.clone()));
        }
        if !smtp.username.is_empty() {
            transport = transport.credentials(Credentials::new(
                smtp.username.clone(),
                smtp.password.clone(),
            ));
        }
        transport
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| AuthError::MailSend(e.to_string()))
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Replaces `{NAME}` for each of `vars` and `{RECORD:field}` with the record's value.
/// Record values are user input: they are HTML-escaped when `html` is set.
pub fn render_template(
    template: &str,
    vars: &[(&str, &str)],
    record: &Map<String, Value>,
    html: bool,
) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    let mut rest = out.as_str();
    let mut rendered = String::with_capacity(out.len());
    while let Some(start) = rest.find("{RECORD:") {
        rendered.push_str(&rest[..start]);
        let after = &rest[start + 8..];
        let Some(end) = after.find('}') else {
            rendered.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let field = &after[..end];
        let value = match record.get(field) {
            // Secrets never leave through a template.
            _ if field == "password" || field == "tokenKey" => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        rendered.push_str(&if html { html_escape(&value) } else { value });
        rest = &after[end + 1..];
    }
    rendered.push_str(rest);
    rendered
}

/// A readable plain-text part: tags dropped, links kept as their addresses.
fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let tag = &rest[start..start + end + 1];
        if let Some(h) = tag.find("href=\"") {
            let href = &tag[h + 6..];
            if let Some(q) = href.find('"') {
                out.push_str(&href[..q]);
                out.push(' ');
            }
        }
        if tag.starts_with("</p") || tag.starts_with("<br") {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out.replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_record_fields_render_escaped() {
        let record = Map::from_iter([
            ("name".to_string(), Value::String("<b>Ann</b>".into())),
            ("tokenKey".to_string(), Value::String("secret".into())),
        ]);
        let out = render_template(
            "{APP_NAME}: {TOKEN} for {RECORD:name} {RECORD:missing}{RECORD:tokenKey} {RECORD:",
            &[("APP_NAME", "Acme"), ("TOKEN", "t.o.k")],
            &record,
            true,
        );
        assert_eq!(out, "Acme: t.o.k for &lt;b&gt;Ann&lt;/b&gt;  {RECORD:");
    }

    #[test]
    fn the_text_part_keeps_links() {
        let t = html_to_text("<p>Hi &amp; welcome</p><p><a href=\"http://x/y\">go</a></p>");
        assert!(t.contains("Hi & welcome\n"), "{t}");
        assert!(t.contains("http://x/y go"), "{t}");
    }
}
