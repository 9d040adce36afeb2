//! The negative security suite of auth: tokens that must not open a session (forged,
//! `alg: none`, RS/HS confusion, expired, not yet valid, the wrong kind, revoked by a
//! password change or by key rotation), impersonation limits, secrets that must not
//! leak, no user enumeration, and rate limits that a spoofed `X-Forwarded-For` cannot
//! escape. Every case here is an attack that must be refused.

use basalt_auth::{TokenClaims, TokenKeys, TokenKind, TokenScope};
use basalt_testkit::TestServer;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const SECRET: &str = "server-secret-server-secret-server-secret";
const COLLECTION_SECRET: &str = "collection-secret-collection-secret-xyz";
const TOKEN_KEY: &str = "recordtokenkeyrecordtokenkeyrecordtokenkey12345678";
const PASSWORD: &str = "User-pass-123";

/// A server with a known signing secret, a `users` collection whose auth token secret is
/// known and a user whose tokenKey is known: everything needed to sign tokens exactly as
/// the server would, so each rejection below is due to the one property under test.
async fn known_keys() -> (TestServer, String, String) {
    let s = TestServer::start_with_env(BIN, &[("BASALT_SECRET", SECRET)]).await;
    let su = s.superuser_token().await;
    let (st, body) = s
        .call(
            "PATCH",
            "/api/collections/users",
            Some(&su),
            Some(json!({"authToken": {"duration": 3600, "secret": COLLECTION_SECRET}})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(
        !body.to_string().contains(COLLECTION_SECRET),
        "collection secrets never leave the server"
    );
    let (st, u) = s
        .call("POST", "/api/collections/users/records", Some(&su),
            Some(json!({"email": "ann@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD, "tokenKey": TOKEN_KEY})))
        .await;
    assert_eq!(st, 200, "{u}");
    (s, su, u["id"].as_str().expect("id").to_string())
}

fn claims(id: &str, kind: TokenKind, exp_in: i64) -> TokenClaims {
    let mut c = TokenClaims::new(kind, id, "_pb_users_auth_", exp_in);
    c.refreshable = true;
    c
}

fn sign_as_server(c: &TokenClaims) -> String {
    basalt_auth::issue_token(
        &TokenKeys::new(SECRET.as_bytes().to_vec()),
        c,
        TokenScope {
            collection_secret: COLLECTION_SECRET,
            record_key: TOKEN_KEY,
        },
    )
    .expect("sign")
}

/// A JWT with any header, HMAC-SHA256-signed with `key`.
fn hand_made(header: Value, c: &TokenClaims, key: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_string(c).expect("claims"))
    );
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(key),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("hmac");
    format!("{input}.{sig}")
}

async fn refresh(s: &TestServer, token: &str) -> u16 {
    s.call(
        "POST",
        "/api/collections/users/auth-refresh",
        Some(token),
        Some(json!({})),
    )
    .await
    .0
}

const PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----\n";

#[tokio::test]
async fn forged_and_malformed_tokens_are_rejected() {
    let (s, _su, id) = known_keys().await;
    let good = sign_as_server(&claims(&id, TokenKind::Auth, 600));
    assert_eq!(
        refresh(&s, &good).await,
        200,
        "control: a token signed with the right keys works"
    );

    let c = claims(&id, TokenKind::Auth, 600);
    let wrong_secret = basalt_auth::issue_token(
        &TokenKeys::new(b"not-the-server-secret-not-the-server-secret".to_vec()),
        &c,
        TokenScope {
            collection_secret: COLLECTION_SECRET,
            record_key: TOKEN_KEY,
        },
    )
    .expect("sign");
    let parts: Vec<&str> = good.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let none_upper = URL_SAFE_NO_PAD.encode(r#"{"alg":"None","typ":"JWT"}"#);
    let cases: Vec<(&str, String)> = vec![
        ("signature from another server secret", wrong_secret),
        ("payload edited after signing", {
            let mut forged = c.clone();
            forged.id = "someoneelse1234".into();
            format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(serde_json::to_string(&forged).expect("json")),
                parts[2]
            )
        }),
        (
            "alg none without signature",
            format!("{none_header}.{}.", parts[1]),
        ),
        (
            "alg None with the real signature",
            format!("{none_upper}.{}.{}", parts[1], parts[2]),
        ),
        (
            "RS256 header over an HS256 signature",
            hand_made(json!({"alg": "RS256", "typ": "JWT"}), &c, b"x"),
        ),
        (
            "RS256 header, HMAC keyed with a public key",
            hand_made(
                json!({"alg": "RS256", "typ": "JWT"}),
                &c,
                PUBLIC_KEY_PEM.as_bytes(),
            ),
        ),
        (
            "HS256 keyed with a public key",
            hand_made(
                json!({"alg": "HS256", "typ": "JWT"}),
                &c,
                PUBLIC_KEY_PEM.as_bytes(),
            ),
        ),
        (
            "HS512 header",
            hand_made(json!({"alg": "HS512", "typ": "JWT"}), &c, SECRET.as_bytes()),
        ),
        ("expired", sign_as_server(&claims(&id, TokenKind::Auth, -5))),
        ("not valid before a future time", {
            let mut early = claims(&id, TokenKind::Auth, 600);
            early.nbf = Some(chrono::Utc::now().timestamp() + 600);
            sign_as_server(&early)
        }),
        (
            "verification token as auth token",
            sign_as_server(&claims(&id, TokenKind::Verification, 600)),
        ),
        (
            "password reset token as auth token",
            sign_as_server(&claims(&id, TokenKind::PasswordReset, 600)),
        ),
        (
            "email change token as auth token",
            sign_as_server(&claims(&id, TokenKind::EmailChange, 600)),
        ),
        (
            "file token as auth token",
            sign_as_server(&claims(&id, TokenKind::File, 600)),
        ),
        ("auth token of another collection id", {
            let mut other = claims(&id, TokenKind::Auth, 600);
            other.collection_id = "pbc_3142635823".into();
            sign_as_server(&other)
        }),
        ("garbage", "a.b.c".into()),
        ("empty", String::new()),
    ];
    for (what, token) in &cases {
        assert_eq!(refresh(&s, token).await, 401, "{what} must be rejected");
        let (st, _) = s
            .call(
                "GET",
                &format!("/api/collections/users/records/{id}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(st, 404, "{what} must not see the record");
    }
    // An auth token is no verification or reset token either.
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/users/confirm-verification",
            None,
            Some(json!({"token": good})),
        )
        .await;
    assert_eq!(st, 400, "auth token as verification token");
    let (st, _) = s.call("POST", "/api/collections/users/confirm-password-reset", None,
        Some(json!({"token": good, "password": "New-pass-456", "passwordConfirm": "New-pass-456"}))).await;
    assert_eq!(st, 400, "auth token as password reset token");
}

#[tokio::test]
async fn tokens_end_with_a_password_change_and_a_new_collection_secret() {
    let (s, su, id) = known_keys().await;
    let token = s.token("users", "ann@example.com", PASSWORD).await;
    assert_eq!(refresh(&s, &token).await, 200);
    let (st, body) = s
        .call("PATCH", &format!("/api/collections/users/records/{id}"), Some(&token),
            Some(json!({"oldPassword": PASSWORD, "password": "New-pass-456", "passwordConfirm": "New-pass-456"})))
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        refresh(&s, &token).await,
        401,
        "a password change revokes every token"
    );
    let fresh = s.token("users", "ann@example.com", "New-pass-456").await;
    assert_eq!(refresh(&s, &fresh).await, 200);
    let (st, _) = s
        .call("PATCH", "/api/collections/users", Some(&su),
            Some(json!({"authToken": {"duration": 3600, "secret": "another-collection-secret-another-one"}})))
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        refresh(&s, &fresh).await,
        401,
        "a new collection secret revokes every auth token of the collection"
    );
}

#[tokio::test]
async fn rotated_server_secrets_verify_only_within_their_window() {
    let secret_a = "a".repeat(40);
    let secret_b = "b".repeat(40);
    let secret_c = "c".repeat(40);
    let mut s = TestServer::start_with_env(BIN, &[("BASALT_SECRET", &secret_a)]).await;
    let su = s.superuser_token().await;
    let (st, _) = s
        .call("POST", "/api/collections/users/records", Some(&su),
            Some(json!({"email": "rot@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD})))
        .await;
    assert_eq!(st, 200);
    let token_a = s.token("users", "rot@example.com", PASSWORD).await;
    s.set_env("BASALT_SECRET", &secret_b);
    s.set_env("BASALT_PREVIOUS_SECRETS", &secret_a);
    s.restart().await;
    assert_eq!(
        refresh(&s, &token_a).await,
        200,
        "the previous secret still verifies"
    );
    let token_b = s.token("users", "rot@example.com", PASSWORD).await;
    s.set_env("BASALT_SECRET", &secret_c);
    s.set_env("BASALT_PREVIOUS_SECRETS", &secret_b);
    s.restart().await;
    assert_eq!(
        refresh(&s, &token_a).await,
        401,
        "a secret dropped from the list no longer verifies"
    );
    assert_eq!(refresh(&s, &token_b).await, 200);
    s.set_env("BASALT_PREVIOUS_SECRETS", "");
    s.restart().await;
    assert_eq!(refresh(&s, &token_b).await, 401);
}

#[tokio::test]
async fn impersonation_is_for_superusers_and_not_refreshable() {
    let (s, su, id) = known_keys().await;
    let user = s.token("users", "ann@example.com", PASSWORD).await;
    let path = format!("/api/collections/users/impersonate/{id}");
    let (st, _) = s
        .call("POST", &path, None, Some(json!({"duration": 60})))
        .await;
    assert_eq!(st, 401);
    let (st, _) = s
        .call("POST", &path, Some(&user), Some(json!({"duration": 60})))
        .await;
    assert_eq!(st, 403, "a user cannot impersonate");
    let (st, _) = s
        .call("POST", &path, Some(&su), Some(json!({"duration": -1})))
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/users/impersonate/missing00000000",
            Some(&su),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 404);
    let (st, body) = s
        .call("POST", &path, Some(&su), Some(json!({"duration": 86400})))
        .await;
    assert_eq!(st, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    assert_eq!(body["record"]["id"], id.as_str());
    let claims = basalt_auth::decode_unverified(&token).expect("claims");
    assert!(!claims.refreshable);
    let ttl = claims.exp - chrono::Utc::now().timestamp();
    assert!(
        (86_000..=86_400).contains(&ttl),
        "the chosen duration: {ttl}"
    );
    let (st, _) = s
        .call(
            "GET",
            &format!("/api/collections/users/records/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(st, 200, "the impersonation token acts as the user");
    let (st, again) = s
        .call(
            "POST",
            "/api/collections/users/auth-refresh",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(
        again["token"],
        token.as_str(),
        "a refresh never extends an impersonation token"
    );
}

#[tokio::test]
async fn unknown_identities_and_wrong_passwords_answer_alike() {
    let (s, _su, _id) = known_keys().await;
    let login = |identity: &'static str, password: &'static str| {
        s.call(
            "POST",
            "/api/collections/users/auth-with-password",
            None,
            Some(json!({"identity": identity, "password": password})),
        )
    };
    let (st1, wrong) = login("ann@example.com", "Wrong-pass-000").await;
    let (st2, unknown) = login("nobody@example.com", "Wrong-pass-000").await;
    assert_eq!((st1, st2), (400, 400));
    assert_eq!(wrong, unknown, "no user enumeration by body");
    let (_, coll) = s
        .call("GET", "/api/collections/users", Some(&_su), None)
        .await;
    for key in [
        "authToken",
        "passwordResetToken",
        "verificationToken",
        "emailChangeToken",
        "fileToken",
    ] {
        assert!(coll[key]["duration"].is_number(), "{key}");
        assert!(coll[key].get("secret").is_none(), "{key} secret leaked");
    }
}

async fn bad_login(s: &TestServer, identity: &str, xff: &str) -> u16 {
    s.http
        .post(s.url("/api/collections/users/auth-with-password"))
        .header("X-Forwarded-For", xff)
        .json(&json!({"identity": identity, "password": "Wrong-pass-000"}))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn spoofed_forwarded_for_cannot_escape_the_rate_limit() {
    // Nobody trusted: the header is ignored, the peer is the client.
    let s = TestServer::start_with_env(
        BIN,
        &[
            ("BASALT_AUTH_RATE_PER_IP", "5"),
            ("BASALT_AUTH_RATE_PER_IDENTITY", "0"),
        ],
    )
    .await;
    for i in 0..5 {
        assert_eq!(
            bad_login(&s, &format!("u{i}@example.com"), &format!("198.51.100.{i}")).await,
            400
        );
    }
    assert_eq!(
        bad_login(&s, "u9@example.com", "198.51.100.99").await,
        429,
        "a new X-Forwarded-For is no new client"
    );
    drop(s);

    // Loopback is a trusted proxy: the rightmost untrusted hop is the client, whatever
    // the client prepends.
    let s = TestServer::start_with_env(
        BIN,
        &[
            ("BASALT_AUTH_RATE_PER_IP", "3"),
            ("BASALT_AUTH_RATE_PER_IDENTITY", "0"),
            ("BASALT_TRUSTED_PROXIES", "127.0.0.1/32,::1"),
        ],
    )
    .await;
    for i in 0..3 {
        assert_eq!(
            bad_login(&s, "a@example.com", &format!("10.9.9.{i}, 203.0.113.7")).await,
            400
        );
    }
    assert_eq!(
        bad_login(&s, "a@example.com", "6.6.6.6, 203.0.113.7").await,
        429,
        "a spoofed leftmost hop does not help"
    );
    assert_eq!(
        bad_login(&s, "a@example.com", "203.0.113.8").await,
        400,
        "another client behind the proxy has its own budget"
    );
    drop(s);

    // Per identity: rotating addresses does not buy more guesses at one account.
    let s = TestServer::start_with_env(
        BIN,
        &[
            ("BASALT_AUTH_RATE_PER_IP", "0"),
            ("BASALT_AUTH_RATE_PER_IDENTITY", "3"),
            ("BASALT_TRUSTED_PROXIES", "127.0.0.1/32,::1"),
        ],
    )
    .await;
    for i in 0..3 {
        assert_eq!(
            bad_login(&s, "victim@example.com", &format!("203.0.113.{i}")).await,
            400
        );
    }
    assert_eq!(
        bad_login(&s, "VICTIM@example.com", "203.0.113.50").await,
        429
    );
    assert_eq!(
        bad_login(&s, "other@example.com", "203.0.113.51").await,
        400
    );
}

#[tokio::test]
async fn pocketbase_rate_limit_settings_apply_to_auth() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, body) = s
        .call(
            "PATCH",
            "/api/settings",
            Some(&su),
            Some(json!({"rateLimits": {"enabled": true, "rules": [
                {"label": "*:auth", "audience": "", "duration": 60, "maxRequests": 2}
            ]}})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(bad_login(&s, "x@example.com", "1.1.1.1").await, 400);
    assert_eq!(bad_login(&s, "y@example.com", "1.1.1.2").await, 400);
    assert_eq!(bad_login(&s, "z@example.com", "1.1.1.3").await, 429);
}

#[tokio::test]
async fn only_managers_skip_the_old_password_and_set_verified() {
    let (s, su, ann) = known_keys().await;
    let (st, body) = s
        .call(
            "PATCH",
            "/api/collections/users",
            Some(&su),
            Some(json!({
                "updateRule": "id = @request.auth.id || @request.auth.email = 'boss@example.com'",
                "manageRule": "@request.auth.email = 'boss@example.com'"
            })),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, _) = s
        .call("POST", "/api/collections/users/records", Some(&su),
            Some(json!({"email": "boss@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD})))
        .await;
    assert_eq!(st, 200);
    let ann_token = s.token("users", "ann@example.com", PASSWORD).await;
    let path = format!("/api/collections/users/records/{ann}");
    // Not a manager: verified is silently dropped, a new password needs the old one.
    let (st, r) = s
        .call(
            "PATCH",
            &path,
            Some(&ann_token),
            Some(json!({"verified": true})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["verified"], false);
    let (st, r) = s
        .call(
            "PATCH",
            &path,
            Some(&ann_token),
            Some(json!({"password": "New-pass-456", "passwordConfirm": "New-pass-456"})),
        )
        .await;
    assert_eq!(st, 400, "{r}");
    assert_eq!(
        r["data"]["oldPassword"]["code"],
        "validation_invalid_old_password"
    );
    // The manager may do both.
    let boss = s.token("users", "boss@example.com", PASSWORD).await;
    let (st, r) = s
        .call("PATCH", &path, Some(&boss),
            Some(json!({"verified": true, "password": "Boss-set-456", "passwordConfirm": "Boss-set-456"})))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["verified"], true);
    assert_eq!(
        refresh(&s, &ann_token).await,
        401,
        "the new password ended ann's sessions"
    );
    let _ = s.token("users", "ann@example.com", "Boss-set-456").await;
}

#[tokio::test]
async fn only_managers_change_an_email_directly() {
    let (s, su, ann) = known_keys().await;
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/api/collections/users/records/{ann}"),
            Some(&su),
            Some(json!({"verified": true})),
        )
        .await;
    assert_eq!(st, 200);
    let token = s.token("users", "ann@example.com", PASSWORD).await;
    let path = format!("/api/collections/users/records/{ann}");
    let (st, body) = s
        .call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"email": "elsewhere@example.com"})),
        )
        .await;
    assert_eq!(
        st, 400,
        "a verified owner cannot move to an unproven address: {body}"
    );
    assert_eq!(body["data"]["email"]["code"], "validation_values_mismatch");
    let (st, body) = s
        .call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"email": "ann@example.com", "name": "Ann"})),
        )
        .await;
    assert_eq!(st, 200, "sending the same address back is fine: {body}");
    let (st, body) = s
        .call(
            "PATCH",
            &path,
            Some(&su),
            Some(json!({"email": "ann2@example.com"})),
        )
        .await;
    assert_eq!(st, 200, "superusers may: {body}");
    assert_eq!(body["email"], "ann2@example.com");
}

/// Every auth option of PocketBase's users document, with our own values.
fn pocketbase_style_options() -> Value {
    let template = |s: &str| json!({"subject": format!("{s} {{APP_NAME}}"), "body": format!("<p>{s} {{TOKEN}}</p>")});
    json!({
        "authRule": "verified = true",
        "manageRule": "@request.auth.email = 'boss@example.com'",
        "authAlert": {"enabled": false, "emailTemplate": template("alert")},
        "passwordAuth": {"enabled": true, "identityFields": ["email"]},
        "mfa": {"enabled": true, "duration": 900, "rule": "verified = true"},
        "otp": {"enabled": true, "duration": 300, "length": 6, "emailTemplate": template("otp")},
        "authToken": {"duration": 1000},
        "passwordResetToken": {"duration": 1001},
        "emailChangeToken": {"duration": 1002},
        "verificationToken": {"duration": 1003},
        "fileToken": {"duration": 1004},
        "verificationTemplate": template("verify"),
        "resetPasswordTemplate": template("reset"),
        "confirmEmailChangeTemplate": template("change")
    })
}

#[tokio::test]
async fn an_imported_pocketbase_auth_collection_round_trips_without_secrets() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let mut doc = json!({"name": "members", "type": "auth", "fields": [], "listRule": null});
    let options = pocketbase_style_options();
    for (k, v) in options.as_object().expect("object") {
        doc[k] = v.clone();
    }
    // A PocketBase export may carry token secrets: they are kept, never shown.
    doc["authToken"]["secret"] = json!("imported-secret-imported-secret-imported");
    let (st, body) = s
        .call(
            "PUT",
            "/api/collections/import",
            Some(&su),
            Some(json!({"collections": [doc]})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let (st, shown) = s
        .call("GET", "/api/collections/members", Some(&su), None)
        .await;
    assert_eq!(st, 200);
    for (k, v) in options.as_object().expect("object") {
        assert_eq!(&shown[k], v, "{k} round-trips");
    }
    assert!(!shown.to_string().contains("imported-secret"), "{shown}");
    // Sending the shown document back keeps the stored secrets (tokens stay valid).
    let (st, _) = s
        .call("POST", "/api/collections/members/records", Some(&su),
            Some(json!({"email": "m@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD, "verified": true})))
        .await;
    assert_eq!(st, 200);
    let (st, member) = s
        .call(
            "GET",
            "/api/collections/members/records?filter=email='m@example.com'",
            Some(&su),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let member_id = member["items"][0]["id"].as_str().expect("id").to_string();
    let (st, imp) = s
        .call(
            "POST",
            &format!("/api/collections/members/impersonate/{member_id}"),
            Some(&su),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 200, "{imp}");
    let token = imp["token"].as_str().expect("token").to_string();
    let probe = "/api/collections/members/auth-refresh";
    assert_eq!(
        s.call("POST", probe, Some(&token), Some(json!({}))).await.0,
        200
    );
    let (st, body) = s
        .call(
            "PUT",
            "/api/collections/import",
            Some(&su),
            Some(json!({"collections": [shown]})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let (_, again) = s
        .call("GET", "/api/collections/members", Some(&su), None)
        .await;
    assert_eq!(again["otp"], options["otp"]);
    assert_eq!(
        s.call("POST", probe, Some(&token), Some(json!({}))).await.0,
        200,
        "the secret survived the round trip"
    );
}

#[tokio::test]
async fn file_tokens_are_for_files_only() {
    let (s, _su, _ann) = known_keys().await;
    let (st, _) = s.call("POST", "/api/files/token", None, None).await;
    assert_eq!(st, 401);
    let session = s.token("users", "ann@example.com", PASSWORD).await;
    let (st, body) = s
        .call("POST", "/api/files/token", Some(&session), None)
        .await;
    assert_eq!(st, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let claims = basalt_auth::decode_unverified(&token).expect("claims");
    assert_eq!(claims.token_type, "file");
    let ttl = claims.exp - chrono::Utc::now().timestamp();
    assert!((170..=180).contains(&ttl), "fileToken.duration: {ttl}");
    assert_eq!(refresh(&s, &token).await, 401, "a file token is no session");
}
