//! The HTTP transport `S3Storage` hands `object_store`: the workspace's reqwest client
//! (rustls on ring, webpki roots). object_store's own transport comes with its `aws`
//! feature, which links aws-lc-rs and a second major version of reqwest; this keeps the
//! binary on one TLS stack.

use async_trait::async_trait;
use http_body_util::BodyExt;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse,
    HttpResponseBody, HttpService,
};
use std::time::Duration;

/// Builds one reqwest client per store. Only a connect timeout: a download streams for
/// as long as its reader reads, and stalls are bounded by the caller (a whole-request
/// deadline would cut large objects; a read timeout would fire while a slow client
/// holds back the stream).
#[derive(Debug, Default)]
pub(crate) struct ReqwestConnector;

impl HttpConnector for ReqwestConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(Transport(client)))
    }
}

#[derive(Debug)]
struct Transport(reqwest::Client);

#[async_trait]
impl HttpService for Transport {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string())
            .map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
        let mut out = reqwest::Request::new(parts.method, url);
        *out.headers_mut() = parts.headers;
        *out.body_mut() = Some(reqwest::Body::wrap(body));
        let resp = self.0.execute(out).await.map_err(http_error)?;
        let resp: http::Response<reqwest::Body> = resp.into();
        let (parts, body) = resp.into_parts();
        let body = HttpResponseBody::new(body.map_err(http_error));
        Ok(HttpResponse::from_parts(parts, body))
    }
}

/// The kind decides what object_store retries: connect failures and timeouts are
/// retried, a body that failed half-way is retried only for idempotent requests.
fn http_error(e: reqwest::Error) -> HttpError {
    let kind = if e.is_timeout() {
        HttpErrorKind::Timeout
    } else if e.is_connect() {
        HttpErrorKind::Connect
    } else if e.is_decode() {
        HttpErrorKind::Decode
    } else if e.is_request() || e.is_body() {
        HttpErrorKind::Request
    } else {
        HttpErrorKind::Unknown
    };
    // The URL may carry a presigned query; it is not worth a log line.
    HttpError::new(kind, e.without_url())
}
