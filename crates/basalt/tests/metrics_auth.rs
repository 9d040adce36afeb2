//! `/metrics` behind a bearer token (`metrics_token` / `BASALT_METRICS_TOKEN`, issue 15):
//! without the right token a 401 in PocketBase's error shape, with it the exposition;
//! without the option it stays open (the other suites read it that way).

use basalt_testkit::TestServer;

const BIN: &str = env!("CARGO_BIN_EXE_basalt");
const TOKEN: &str = "metrics-token-0123456789";

#[tokio::test]
async fn metrics_need_the_configured_bearer_token() {
    let s = TestServer::start_with_env(BIN, &[("BASALT_METRICS_TOKEN", TOKEN)]).await;
    let wrong = format!("{}X", &TOKEN[..TOKEN.len() - 1]);
    for auth in [
        None,
        Some(format!("Bearer {wrong}")),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
    ] {
        let mut req = s.http.get(s.url("/metrics"));
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.expect("metrics");
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["status"], 401);
        assert!(
            body["message"].is_string() && body["data"].is_object(),
            "{body}"
        );
    }
    let r = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.expect("text").contains("basalt_"));
    // The rest of the API is untouched by the option.
    let r = s
        .http
        .get(s.url("/api/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn without_the_option_metrics_stay_open() {
    let s = TestServer::start(BIN).await;
    assert!(s.metrics_text().await.contains("basalt_"));
}
