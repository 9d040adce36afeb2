//! Multipart request bodies as the SDKs send them, written by hand so a test controls
//! every byte (odd file names, truncation).

use std::time::Duration;

use serde_json::Value;

use crate::TestServer;

/// One part: (name, file name, bytes); `None` file name makes a text part.
pub type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

pub const BOUNDARY: &str = "basaltTestBoundary7MA4YWxkTrZu0gW";

/// The body of `parts`, closed by the final boundary.
pub fn body(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, bytes) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(f) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// Sends `body` as `multipart/form-data` with our boundary; status and JSON answer.
pub async fn send_body(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = reqwest::Client::new()
        .request(m, s.url(path))
        .timeout(Duration::from_secs(60))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    let res = req.send().await.expect("request");
    let st = res.status().as_u16();
    (st, res.json().await.unwrap_or(Value::Null))
}

/// Sends `parts` (see [`body`]).
pub async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    parts: &[Part<'_>],
) -> (u16, Value) {
    send_body(s, method, path, token, body(parts)).await
}
