//! The mail flows end to end against a real SMTP server (aiosmtpd, started by each test):
//! verification, password reset, email change, OTP and MFA, following the links and
//! codes in the received mails, and replaying them to see them refused.

use basalt_testkit::TestServer;
use basalt_testkit::smtp::SmtpSink;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const APP_URL: &str = "https://app.example.test";
const PASSWORD: &str = "User-pass-123";

struct Setup {
    s: TestServer,
    sink: SmtpSink,
    su: String,
}

async fn setup() -> Setup {
    let sink = SmtpSink::start();
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, body) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({
                "meta": {"appName": "Acme", "appURL": APP_URL, "senderName": "Acme", "senderAddress": "no-reply@example.test"},
                "smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port, "password": "smtp-secret"}
            })),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(
        !body.to_string().contains("smtp-secret"),
        "settings never show the SMTP password"
    );
    Setup { s, sink, su }
}

async fn user(s: &TestServer, su: &str, email: &str) -> String {
    let (st, r) = s
        .call(
            "POST",
            "/api/collections/users/records",
            Some(su),
            Some(json!({"email": email, "password": PASSWORD, "passwordConfirm": PASSWORD})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    r["id"].as_str().expect("id").to_string()
}

async fn login(s: &TestServer, identity: &str, password: &str) -> (u16, Value) {
    s.call(
        "POST",
        "/api/collections/users/auth-with-password",
        None,
        Some(json!({"identity": identity, "password": password})),
    )
    .await
}

/// The token at the end of the mailed link `{APP_URL}/_/#/auth/{action}/{TOKEN}`.
fn link_token(mail: &Value, action: &str) -> String {
    let html = mail["html"].as_str().expect("html part");
    let prefix = format!("{APP_URL}/_/#/auth/{action}/");
    let start = html
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in {html}"))
        + prefix.len();
    html[start..].split('"').next().expect("token").to_string()
}

fn mails_to(mails: &[Value], to: &str) -> Vec<Value> {
    mails
        .iter()
        .filter(|m| {
            m["to"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t == to))
        })
        .cloned()
        .collect()
}

async fn post(s: &TestServer, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    s.call("POST", path, token, Some(body)).await
}

#[tokio::test]
async fn verification_link_verifies_once_and_is_built_from_the_app_url() {
    let Setup { s, sink, su } = setup().await;
    let id = user(&s, &su, "ann@example.com").await;
    // A forged Host header must not leak into the link.
    let res = s
        .http
        .post(s.url("/api/collections/users/request-verification"))
        .header("X-Forwarded-Host", "evil.example")
        .json(&json!({"email": "ann@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 204);
    let (st, _) = post(
        &s,
        "/api/collections/users/request-verification",
        None,
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!(st, 204, "unknown addresses get the same answer");
    let (st, _) = post(
        &s,
        "/api/collections/users/request-verification",
        None,
        json!({"email": "not-an-email"}),
    )
    .await;
    assert_eq!(st, 400);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["subject"], "Verify your Acme email");
    assert!(
        !mails[0]["html"]
            .as_str()
            .unwrap_or_default()
            .contains("evil.example")
    );
    let token = link_token(&mails[0], "confirm-verification");
    // A verification token is no session.
    let (st, _) = post(
        &s,
        "/api/collections/users/auth-refresh",
        Some(&token),
        json!({}),
    )
    .await;
    assert_eq!(st, 401);
    let (st, body) = post(
        &s,
        "/api/collections/users/confirm-verification",
        None,
        json!({"token": token}),
    )
    .await;
    assert_eq!(st, 204, "{body}");
    let (_, rec) = s
        .call(
            "GET",
            &format!("/api/collections/users/records/{id}"),
            Some(&su),
            None,
        )
        .await;
    assert_eq!(rec["verified"], true);
    let (st, body) = post(
        &s,
        "/api/collections/users/confirm-verification",
        None,
        json!({"token": token}),
    )
    .await;
    assert_eq!(st, 400, "a replayed verification token fails: {body}");
    assert_eq!(body["data"]["token"]["code"], "validation_invalid_token");
}

#[tokio::test]
async fn password_reset_from_the_mail_works_once_and_ends_old_sessions() {
    let Setup { s, sink, su } = setup().await;
    user(&s, &su, "bob@example.com").await;
    let (_, auth) = login(&s, "bob@example.com", PASSWORD).await;
    let old_session = auth["token"].as_str().expect("token").to_string();
    let (st, _) = post(
        &s,
        "/api/collections/users/request-password-reset",
        None,
        json!({"email": "bob@example.com"}),
    )
    .await;
    assert_eq!(st, 204);
    let (st, _) = post(
        &s,
        "/api/collections/users/request-password-reset",
        None,
        json!({"email": "ghost@example.com"}),
    )
    .await;
    assert_eq!(st, 204);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails_to(&mails, "bob@example.com").len(), 1);
    assert_eq!(mails.len(), 1, "nothing is sent to unknown addresses");
    let token = link_token(&mails[0], "confirm-password-reset");
    let (st, _) = post(
        &s,
        "/api/collections/users/auth-refresh",
        Some(&token),
        json!({}),
    )
    .await;
    assert_eq!(st, 401, "a reset token is no session");
    let (st, body) = post(
        &s,
        "/api/collections/users/confirm-password-reset",
        None,
        json!({"token": token, "password": "New-pass-456", "passwordConfirm": "other-pass-456"}),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(
        body["data"]["passwordConfirm"]["code"],
        "validation_values_mismatch"
    );
    let (st, body) = post(
        &s,
        "/api/collections/users/confirm-password-reset",
        None,
        json!({"token": token, "password": "New-pass-456", "passwordConfirm": "New-pass-456"}),
    )
    .await;
    assert_eq!(st, 204, "{body}");
    assert_eq!(login(&s, "bob@example.com", PASSWORD).await.0, 400);
    assert_eq!(login(&s, "bob@example.com", "New-pass-456").await.0, 200);
    let (st, _) = post(
        &s,
        "/api/collections/users/auth-refresh",
        Some(&old_session),
        json!({}),
    )
    .await;
    assert_eq!(st, 401, "sessions from before the reset end");
    let (st, _) = post(
        &s,
        "/api/collections/users/confirm-password-reset",
        None,
        json!({"token": token, "password": "Third-pass-789", "passwordConfirm": "Third-pass-789"}),
    )
    .await;
    assert_eq!(st, 400, "a replayed reset token fails");
    assert_eq!(login(&s, "bob@example.com", "New-pass-456").await.0, 200);
}

#[tokio::test]
async fn email_change_needs_the_mailed_token_and_the_password_once() {
    let Setup { s, sink, su } = setup().await;
    user(&s, &su, "cid@example.com").await;
    user(&s, &su, "taken@example.com").await;
    let (_, auth) = login(&s, "cid@example.com", PASSWORD).await;
    let session = auth["token"].as_str().expect("token").to_string();
    let (st, _) = post(
        &s,
        "/api/collections/users/request-email-change",
        None,
        json!({"newEmail": "x@example.com"}),
    )
    .await;
    assert_eq!(st, 401, "only a signed-in record may ask");
    let (st, _) = post(
        &s,
        "/api/collections/users/request-email-change",
        Some(&session),
        json!({"newEmail": "taken@example.com"}),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _) = post(
        &s,
        "/api/collections/users/request-email-change",
        Some(&session),
        json!({"newEmail": "cid.new@example.com"}),
    )
    .await;
    assert_eq!(st, 204);
    let mails = sink.wait_for(1).await;
    let to_new = mails_to(&mails, "cid.new@example.com");
    assert_eq!(to_new.len(), 1, "{mails:?}");
    let token = link_token(&to_new[0], "confirm-email-change");
    let (st, _) = post(
        &s,
        "/api/collections/users/confirm-email-change",
        None,
        json!({"token": token, "password": "wrong-pass-1"}),
    )
    .await;
    assert_eq!(st, 400);
    let (st, body) = post(
        &s,
        "/api/collections/users/confirm-email-change",
        None,
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(st, 204, "{body}");
    assert_eq!(login(&s, "cid@example.com", PASSWORD).await.0, 400);
    let (st, auth) = login(&s, "cid.new@example.com", PASSWORD).await;
    assert_eq!(st, 200);
    assert_eq!(auth["record"]["verified"], true);
    let (st, _) = post(
        &s,
        "/api/collections/users/confirm-email-change",
        None,
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(st, 400, "a replayed email change token fails");
    let (st, _) = post(
        &s,
        "/api/collections/users/auth-refresh",
        Some(&session),
        json!({}),
    )
    .await;
    assert_eq!(st, 401, "the change ends old sessions");
}

async fn enable(s: &TestServer, su: &str, options: Value) {
    let (st, body) = s
        .call("PATCH", "/api/collections/users", Some(su), Some(options))
        .await;
    assert_eq!(st, 200, "{body}");
}

fn otp_code(mail: &Value) -> String {
    let html = mail["html"].as_str().expect("html");
    let start = html.find("<strong>").expect("code") + "<strong>".len();
    let end = html[start..].find("</strong>").expect("code end") + start;
    html[start..end].to_string()
}

async fn request_otp(s: &TestServer, email: &str) -> String {
    let (st, body) = post(
        s,
        "/api/collections/users/request-otp",
        None,
        json!({"email": email}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    body["otpId"].as_str().expect("otpId").to_string()
}

async fn auth_otp(s: &TestServer, otp_id: &str, code: &str) -> (u16, Value) {
    post(
        s,
        "/api/collections/users/auth-with-otp",
        None,
        json!({"otpId": otp_id, "password": code}),
    )
    .await
}

#[tokio::test]
async fn otp_codes_are_single_use_and_burn_after_five_wrong_tries() {
    let Setup { s, sink, su } = setup().await;
    user(&s, &su, "dee@example.com").await;
    let (st, _) = post(
        &s,
        "/api/collections/users/request-otp",
        None,
        json!({"email": "dee@example.com"}),
    )
    .await;
    assert_eq!(st, 403, "OTP is off by default (as PocketBase answers)");
    enable(
        &s,
        &su,
        json!({"otp": {"enabled": true, "duration": 180, "length": 8}}),
    )
    .await;
    let (_, methods) = s
        .call("GET", "/api/collections/users/auth-methods", None, None)
        .await;
    assert_eq!(methods["otp"], json!({"enabled": true, "duration": 180}));

    let otp_id = request_otp(&s, "dee@example.com").await;
    let mails = sink.wait_for(1).await;
    let code = otp_code(&mails[0]);
    assert_eq!(code.len(), 8);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..4 {
        assert_eq!(auth_otp(&s, &otp_id, wrong).await.0, 400);
    }
    let (st, body) = auth_otp(&s, &otp_id, &code).await;
    assert_eq!(st, 200, "four wrong tries leave the code usable: {body}");
    assert_eq!(body["record"]["email"], "dee@example.com");
    assert_eq!(
        body["record"]["verified"], true,
        "the code proved the address"
    );
    assert_eq!(
        login(&s, "dee@example.com", PASSWORD).await.0,
        400,
        "the password set before the address was proved no longer works (pre-registration takeover)"
    );
    assert_eq!(
        auth_otp(&s, &otp_id, &code).await.0,
        400,
        "a used code fails"
    );

    let otp_id = request_otp(&s, "dee@example.com").await;
    let mails = sink.wait_for(2).await;
    let code = otp_code(&mails[1]);
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..5 {
        assert_eq!(auth_otp(&s, &otp_id, wrong).await.0, 400);
    }
    assert_eq!(
        auth_otp(&s, &otp_id, &code).await.0,
        400,
        "five wrong tries burn the code"
    );

    let ghost = request_otp(&s, "ghost@example.com").await;
    assert_eq!(ghost.len(), 15, "unknown addresses get an id too");
    assert_eq!(auth_otp(&s, &ghost, "12345678").await.0, 400);
    let (_, list) = s
        .call("GET", "/api/collections/_otps/records", Some(&su), None)
        .await;
    assert!(
        !list.to_string().contains("$argon2"),
        "stored codes are hashed and never shown: {list}"
    );
}

#[tokio::test]
async fn mfa_requires_a_second_different_method() {
    let Setup { s, sink, su } = setup().await;
    let eve = user(&s, &su, "eve@example.com").await;
    // Verified already, so the OTP factor leaves her password alone.
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/api/collections/users/records/{eve}"),
            Some(&su),
            Some(json!({"verified": true})),
        )
        .await;
    assert_eq!(st, 200);
    enable(
        &s,
        &su,
        json!({"otp": {"enabled": true}, "mfa": {"enabled": true, "duration": 600, "rule": ""}}),
    )
    .await;
    let (st, first) = login(&s, "eve@example.com", PASSWORD).await;
    assert_eq!(st, 401, "{first}");
    let mfa_id = first["mfaId"].as_str().expect("mfaId").to_string();
    assert!(first.get("token").is_none());
    let (st, _) = post(
        &s,
        "/api/collections/users/auth-with-password",
        None,
        json!({"identity": "eve@example.com", "password": PASSWORD, "mfaId": mfa_id}),
    )
    .await;
    assert_eq!(st, 400, "the second factor must be another method");
    let otp_id = request_otp(&s, "eve@example.com").await;
    let mails = sink.wait_for(1).await;
    let code = otp_code(&mails[0]);
    let (st, body) = s
        .call(
            "POST",
            &format!("/api/collections/users/auth-with-otp?mfaId={mfa_id}"),
            None,
            Some(json!({"otpId": otp_id, "password": code})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(body["token"].as_str().is_some_and(|t| !t.is_empty()));
    let (st, _) = post(
        &s,
        "/api/collections/users/auth-with-password",
        None,
        json!({"identity": "eve@example.com", "password": PASSWORD, "mfaId": mfa_id}),
    )
    .await;
    assert_eq!(st, 400, "an mfaId is single use");
    // A rule that does not select the record skips MFA.
    enable(
        &s,
        &su,
        json!({"mfa": {"enabled": true, "duration": 600, "rule": "verified = false"}}),
    )
    .await;
    let (st, body) = login(&s, "eve@example.com", PASSWORD).await;
    assert_eq!(st, 200, "eve is verified, outside the rule: {body}");
}

#[tokio::test]
async fn otp_codes_expire_and_expired_ones_are_purged() {
    let Setup { s, sink, su } = setup().await;
    user(&s, &su, "old@example.com").await;
    enable(
        &s,
        &su,
        json!({"otp": {"enabled": true, "duration": 10, "length": 6}}),
    )
    .await;
    let otp_id = request_otp(&s, "old@example.com").await;
    let code = otp_code(&sink.wait_for(1).await[0]);
    let _abandoned = request_otp(&s, "old@example.com").await;
    // Bounded wait past the ten-second lifetime.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    assert_eq!(
        auth_otp(&s, &otp_id, &code).await.0,
        400,
        "an expired code fails"
    );
    let _ = request_otp(&s, "old@example.com").await;
    let (st, list) = s
        .call("GET", "/api/collections/_otps/records", Some(&su), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        list["totalItems"], 1,
        "the abandoned expired code was purged: {list}"
    );
}

async fn login_as(s: &TestServer, agent: &str) -> u16 {
    s.http
        .post(s.url("/api/collections/users/auth-with-password"))
        .header("User-Agent", agent)
        .json(&json!({"identity": "fay@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_sign_in_from_a_new_origin_mails_an_alert() {
    let Setup { s, sink, su } = setup().await;
    user(&s, &su, "fay@example.com").await;
    assert_eq!(login_as(&s, "laptop-browser").await, 200);
    assert_eq!(login_as(&s, "laptop-browser").await, 200);
    assert_eq!(login_as(&s, "unknown-device").await, 200);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["subject"], "New sign-in to your Acme account");
    assert!(
        mails[0]["html"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown-device")
    );
    assert_eq!(login_as(&s, "unknown-device").await, 200);
    // A later mail as a marker: by then a second alert would have been sent as well.
    let (st, _) = post(
        &s,
        "/api/collections/users/request-password-reset",
        None,
        json!({"email": "fay@example.com"}),
    )
    .await;
    assert_eq!(st, 204);
    let mails = sink.wait_for(2).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(
        mails[1]["subject"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Reset"),
        "a known origin is no news"
    );
    let (_, origins) = s
        .call(
            "GET",
            "/api/collections/_authOrigins/records",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(
        origins["totalItems"], 3,
        "superuser + two of fay's: {origins}"
    );
}

#[tokio::test]
async fn templates_are_customisable_per_collection() {
    let Setup { s, sink, su } = setup().await;
    let id = user(&s, &su, "gil@example.com").await;
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/api/collections/users/records/{id}"),
            Some(&su),
            Some(json!({"name": "Gil <b>"})),
        )
        .await;
    assert_eq!(st, 200);
    enable(&s, &su, json!({"resetPasswordTemplate": {
        "subject": "{APP_NAME} reset for {RECORD:name}",
        "body": "<p>Dear {RECORD:name} ({RECORD:email}), go to {APP_URL}/reset?t={TOKEN} {RECORD:tokenKey}</p>"
    }}))
    .await;
    let (st, _) = post(
        &s,
        "/api/collections/users/request-password-reset",
        None,
        json!({"email": "gil@example.com"}),
    )
    .await;
    assert_eq!(st, 204);
    let mail = &sink.wait_for(1).await[0];
    assert_eq!(mail["subject"], "Acme reset for Gil <b>");
    let html = mail["html"].as_str().unwrap_or_default();
    assert!(
        html.starts_with(
            "<p>Dear Gil &lt;b&gt; (gil@example.com), go to https://app.example.test/reset?t=ey"
        ),
        "{html}"
    );
    assert!(
        html.ends_with(" </p>"),
        "the tokenKey is never rendered: {html}"
    );
}

/// `smtp.requireTLS` (our extension): the sink speaks plaintext SMTP and offers no
/// STARTTLS, so under it the mail is not sent and the failure is logged; the same request
/// without it is delivered, so the first mail was refused, not late (issue 15).
#[tokio::test]
async fn require_tls_refuses_a_server_without_starttls() {
    let Setup { s, sink, su } = setup().await;
    user(&s, &su, "tls@example.com").await;
    let (st, body) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"smtp": {"requireTLS": "yes"}})),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        body["data"]["smtp"]["requireTLS"]["code"], "validation_invalid_value",
        "{body}"
    );
    let (st, body) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"smtp": {"requireTLS": true}})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["smtp"]["requireTLS"], true);
    let request = json!({"email": "tls@example.com"});
    let path = "/api/collections/users/request-verification";
    assert_eq!(post(&s, path, None, request.clone()).await.0, 204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !s.log().contains("auth mail not delivered") {
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery failure logged: {}",
            s.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(s.log().contains("STARTTLS"), "{}", s.log());
    assert!(
        sink.messages().is_empty(),
        "sent in clear: {:?}",
        sink.messages()
    );

    let (st, _) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"smtp": {"requireTLS": false}})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(post(&s, path, None, request).await.0, 204);
    assert_eq!(sink.wait_for(1).await.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "the refused mail arrived after all"
    );
}
