//! The admin listener (loopback by default): `POST /reload` applies the configuration file
//! again, `GET /metrics` renders the edge's Prometheus series, `GET /health` answers 200,
//! `POST /cache/purge` removes cached entries by URL or tag.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::body::{Body, error_response, full};
use crate::{Edge, EdgeError};

pub async fn start(edge: Edge, listen: &str) -> Result<SocketAddr, EdgeError> {
    let bind_err = |source| EdgeError::Bind {
        address: listen.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    // Only a weak handle: the admin listener must not keep a shut-down edge alive.
    let weak = std::sync::Arc::downgrade(&edge.inner);
    drop(edge);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors and similar: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            };
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let edge = Edge { inner };
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(edge.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    tracing::info!(address = %local, "edge admin listening");
    Ok(local)
}

async fn handle(edge: Edge, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::POST, "/reload") => match edge.reload().await {
            Ok(()) => json(StatusCode::OK, serde_json::json!({"status": "reloaded"})),
            Err(e) => {
                tracing::error!(error = %e, "reload rejected; the running configuration stays");
                error_response(StatusCode::BAD_REQUEST, &e.to_string())
            }
        },
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(full(edge.metrics().render()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::POST, "/cache/purge") => crate::cache::purge_request(&edge, req).await,
        (&Method::GET, "/health") => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        _ => error_response(StatusCode::NOT_FOUND, "not found"),
    })
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
