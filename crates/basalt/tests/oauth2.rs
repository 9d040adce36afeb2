//! OAuth2 against the real binary, for everything decided before a provider is called:
//! options and their validation, what auth-methods reveals, input and redirect-URL checks,
//! PKCE presence, an unreachable provider, and the `_externalAuths` collection's rules.
//! The flows with a real OIDC provider are in tests/sdk/oauth2.test.mjs.

use basalt_testkit::TestServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const ALLOWED: &str = "https://app.example/docs";
const VERIFIER: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

/// Enables a generic OIDC provider whose endpoints are a closed loopback port: nothing
/// here may reach it.
async fn enable(s: &TestServer, su: &str) {
    let (st, body) = s
        .call(
            "PATCH",
            "/api/collections/users",
            Some(su),
            Some(json!({"oauth2": {"enabled": true, "providers": [
                {"name": "oidc", "clientId": "cid", "clientSecret": "very-secret-value",
                 "authURL": "http://127.0.0.1:1/authorize", "tokenURL": "http://127.0.0.1:1/token",
                 "userInfoURL": "http://127.0.0.1:1/userinfo",
                 "extra": {"redirectURLs": [ALLOWED]}}
            ]}})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
}

async fn sign_in(s: &TestServer, body: Value) -> (u16, Value) {
    s.call(
        "POST",
        "/api/collections/users/auth-with-oauth2",
        None,
        Some(body),
    )
    .await
}

fn code_of(v: &Value, key: &str) -> String {
    v["data"][key]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn oauth2_options_are_validated_and_secrets_stay_with_superusers() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, body) = s
        .call(
            "PATCH",
            "/api/collections/users",
            Some(&su),
            Some(json!({"oauth2": {"enabled": true, "providers": [
                {"name": "myspace", "clientId": "c", "clientSecret": "s"},
                {"name": "oidc", "clientId": "", "clientSecret": "s", "authURL": "javascript:alert(1)"}
            ]}})),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    let providers = &body["data"]["oauth2"]["providers"];
    assert_eq!(
        providers["0"]["name"]["code"],
        "validation_invalid_provider"
    );
    assert_eq!(providers["1"]["clientId"]["code"], "validation_required");
    assert_eq!(providers["1"]["authURL"]["code"], "validation_is_url");
    assert_eq!(providers["1"]["tokenURL"]["code"], "validation_required");

    enable(&s, &su).await;
    let (st, c) = s
        .call("GET", "/api/collections/users", Some(&su), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(c["oauth2"]["providers"][0]["clientId"], "cid");
    assert_eq!(c["oauth2"]["enabled"], true);

    // Anyone may list the auth methods; no secret is in them.
    let (st, m) = s
        .call("GET", "/api/collections/users/auth-methods", None, None)
        .await;
    assert_eq!(st, 200);
    assert!(!m.to_string().contains("very-secret-value"));
    let p = &m["oauth2"]["providers"][0];
    assert_eq!(p["name"], "oidc");
    assert_eq!(p["codeChallengeMethod"], "S256");
    let url = p["authURL"].as_str().unwrap_or_default();
    assert!(url.ends_with("&redirect_uri="), "{url}");
    for part in ["state", "codeChallenge"] {
        assert!(
            url.contains(p[part].as_str().unwrap_or("missing")),
            "{part}"
        );
    }
    assert_eq!(m["authProviders"][0]["name"], "oidc");
    // A user's token cannot read the collection (and its secrets) either.
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/users/records",
            None,
            Some(json!({"email": "u@example.com", "password": "User-pass-123", "passwordConfirm": "User-pass-123"})),
        )
        .await;
    assert_eq!(st, 200);
    let user = s.token("users", "u@example.com", "User-pass-123").await;
    let (st, body) = s
        .call("GET", "/api/collections/users", Some(&user), None)
        .await;
    assert_eq!(st, 403);
    assert!(!body.to_string().contains("very-secret-value"));
}

#[tokio::test]
async fn bad_oauth2_requests_are_refused_before_the_provider_is_called() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    // Not enabled yet.
    let (st, _) = sign_in(
        &s,
        json!({"provider": "oidc", "code": "c", "codeVerifier": VERIFIER, "redirectURL": ALLOWED}),
    )
    .await;
    assert_eq!(st, 403);
    enable(&s, &su).await;

    let (st, body) = sign_in(&s, json!({})).await;
    assert_eq!(st, 400);
    assert_eq!(code_of(&body, "provider"), "validation_required");
    assert_eq!(code_of(&body, "code"), "validation_required");
    let (st, body) = sign_in(&s, json!({"provider": "github", "code": "c"})).await;
    assert_eq!(st, 400);
    assert_eq!(code_of(&body, "provider"), "validation_invalid_provider");
    let (st, body) = sign_in(
        &s,
        json!({"provider": "oidc", "code": "c", "codeVerifier": VERIFIER, "redirectURL": ALLOWED, "createData": "x"}),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(code_of(&body, "createData"), "validation_invalid_value");

    // Redirect-URL tricks against the exact allow-list.
    for redirect in [
        "https://app.example/docss",
        "https://app.example/docs/",
        "https://app.example/docs?next=/admin",
        "https://app.example/docs#x",
        "https://app.example@attacker.example/docs",
        "https://legit@app.example/docs",
        "http://app.example/docs",
        "https://app.example.attacker.example/docs",
        "",
    ] {
        let (st, body) = sign_in(
            &s,
            json!({"provider": "oidc", "code": "c", "codeVerifier": VERIFIER, "redirectURL": redirect}),
        )
        .await;
        assert_eq!(st, 400, "{redirect}: {body}");
        assert_eq!(
            code_of(&body, "redirectURL"),
            "validation_invalid_redirect_url",
            "{redirect}"
        );
    }

    // PKCE verifier missing or malformed.
    for verifier in [
        Value::Null,
        json!(""),
        json!("short"),
        json!(format!("{VERIFIER}+")),
    ] {
        let (st, body) = sign_in(
            &s,
            json!({"provider": "oidc", "code": "c", "codeVerifier": verifier, "redirectURL": ALLOWED}),
        )
        .await;
        assert_eq!(st, 400, "{verifier}");
        assert_eq!(
            code_of(&body, "codeVerifier"),
            "validation_invalid_code_verifier"
        );
    }

    // Everything well-formed, but the provider is unreachable: a 400, never a 500.
    let (st, body) = sign_in(
        &s,
        json!({"provider": "oidc", "code": "c", "codeVerifier": VERIFIER, "redirectURL": ALLOWED}),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["message"], "Failed to fetch OAuth2 token.");

    // A base collection has no OAuth2.
    let (st, _) = s
        .call(
            "POST",
            "/api/collections/_externalAuths/auth-with-oauth2",
            None,
            Some(json!({"provider": "oidc", "code": "c"})),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .call("GET", "/api/collections/users/records", Some(&su), None)
        .await;
    assert_eq!(st, 200);
    let (_, list) = s
        .call("GET", "/api/collections/users/records", Some(&su), None)
        .await;
    assert_eq!(list["totalItems"], 0, "nothing was created");
}

#[tokio::test]
async fn external_auths_is_a_system_collection_with_owner_only_rules() {
    let s = TestServer::start(BIN).await;
    let su = s.superuser_token().await;
    let (st, c) = s
        .call("GET", "/api/collections/_externalAuths", Some(&su), None)
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["id"], "pbc_2281828961");
    assert_eq!(c["system"], true);
    assert_eq!(c["createRule"], Value::Null);
    assert_eq!(c["updateRule"], Value::Null);
    let owner = "@request.auth.id != '' && recordRef = @request.auth.id && collectionRef = @request.auth.collectionId";
    for rule in ["listRule", "viewRule", "deleteRule"] {
        assert_eq!(c[rule], owner, "{rule}");
    }
    // A link written by a superuser is visible to its owner only.
    let mut ids = vec![];
    for email in ["a@example.com", "b@example.com"] {
        let (st, u) = s
            .call(
                "POST",
                "/api/collections/users/records",
                None,
                Some(json!({"email": email, "password": "User-pass-123", "passwordConfirm": "User-pass-123"})),
            )
            .await;
        assert_eq!(st, 200, "{u}");
        ids.push(u["id"].as_str().unwrap_or_default().to_string());
    }
    let (st, link) = s
        .call(
            "POST",
            "/api/collections/_externalAuths/records",
            Some(&su),
            Some(json!({"collectionRef": "_pb_users_auth_", "recordRef": ids[0], "provider": "github", "providerId": "42"})),
        )
        .await;
    assert_eq!(st, 200, "{link}");
    let a = s.token("users", "a@example.com", "User-pass-123").await;
    let b = s.token("users", "b@example.com", "User-pass-123").await;
    let path = "/api/collections/_externalAuths/records";
    assert_eq!(s.call("GET", path, Some(&a), None).await.1["totalItems"], 1);
    assert_eq!(s.call("GET", path, Some(&b), None).await.1["totalItems"], 0);
    assert_eq!(s.call("GET", path, None, None).await.1["totalItems"], 0);
    let (st, _) = s
        .call(
            "POST",
            path,
            Some(&b),
            Some(json!({"collectionRef": "_pb_users_auth_", "recordRef": ids[1], "provider": "github", "providerId": "42"})),
        )
        .await;
    assert_eq!(st, 403, "users cannot forge links");
    let one = format!("{path}/{}", link["id"].as_str().unwrap_or_default());
    assert_eq!(s.call("DELETE", &one, Some(&b), None).await.0, 404);
    assert_eq!(s.call("DELETE", &one, Some(&a), None).await.0, 204);
}

#[tokio::test]
async fn oauth2_redirect_without_a_listening_client_is_an_error_page() {
    let s = TestServer::start(BIN).await;
    for q in [
        "",
        "?code=c",
        "?state=nobody&code=c",
        "?state=nobody&error=access_denied",
    ] {
        let res = s
            .http
            .get(s.url(&format!("/api/oauth2-redirect{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{q}");
        let text = res.text().await.unwrap_or_default();
        assert!(text.contains("Failed to authenticate"), "{q}: {text}");
    }
    let res = s
        .http
        .post(s.url("/api/oauth2-redirect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("state=%ZZ&code=\u{0}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = res.text().await.unwrap_or_default();
    assert!(text.contains("Failed to authenticate"), "{text}");
}
