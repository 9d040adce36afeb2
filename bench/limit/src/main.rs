//! The benchmark's "limit" server: a bare hyper HTTP/1.1 server (keep-alive, TCP_NODELAY,
//! the same multi-threaded tokio runtime Basalt uses) answering every request with fixed
//! bytes, Basalt's get-by-id response captured by bench/run.py. What it serves per second
//! is what this machine allows an HTTP server to do without any application work.
//!
//! Usage: basalt-bench-limit ADDR BODY_FILE [HEADER_NAME:VALUE ...]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().ok_or("missing ADDR")?;
    let body = Bytes::from(std::fs::read(args.next().ok_or("missing BODY_FILE")?)?);
    let mut headers = Vec::new();
    for h in args {
        let (k, v) = h.split_once(':').ok_or("a header is NAME:VALUE")?;
        headers.push((
            HeaderName::from_bytes(k.trim().as_bytes())?,
            HeaderValue::from_str(v.trim())?,
        ));
    }
    let fixed = Arc::new((body, headers));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let fixed = fixed.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let fixed = fixed.clone();
                async move {
                    let mut res = Response::new(Full::new(fixed.0.clone()));
                    for (k, v) in &fixed.1 {
                        res.headers_mut().insert(k.clone(), v.clone());
                    }
                    Ok::<_, Infallible>(res)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
