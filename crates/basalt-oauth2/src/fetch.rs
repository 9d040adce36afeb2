//! Reading provider responses with bounded bodies: the token, user-info, discovery and JWKS
//! documents all come through here (the client's time bounds and redirect policy are set
//! where it is built, in `exchange`).

use serde_json::Value;

/// Largest provider response read (token, user info, discovery, JWKS).
const MAX_BODY: usize = 1 << 20;

/// Reads a response body, refusing one over `MAX_BODY`.
pub(crate) async fn read_bounded(mut res: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err("response too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// GETs a JSON document; `bearer` authorises the request with an access token.
pub(crate) async fn get_json(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<Value, String> {
    let mut req = http.get(url).header("accept", "application/json");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.map_err(|e| e.to_string())?;
    let status = res.status();
    let body = read_bounded(res).await?;
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("not json: {e}"))
}
