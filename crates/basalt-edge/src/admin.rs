//! The admin listener (loopback by default): `POST /reload` applies the configuration file
//! again, `GET /metrics` renders the edge's Prometheus series, `GET /health` answers 200,
//! `POST /cache/purge` removes cached entries by URL or tag. With a `token` configured,
//! every request must carry it as a bearer token (compared in constant time), or gets a
//! 401; a listener on a non-loopback address is refused without one (`AdminConfig`).

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::body::{Body, error_response, full};
use crate::config::AdminConfig;
use crate::{Edge, EdgeError};

/// The bearer token admin requests must carry, if one is configured.
#[derive(Clone)]
struct AdminToken(Option<basalt_net::BearerToken>);

impl AdminToken {
    /// Whether `req` may use the admin listener.
    fn admits<B>(&self, req: &Request<B>) -> bool {
        self.0.as_ref().is_none_or(|want| {
            want.admits(
                req.headers()
                    .get(header::AUTHORIZATION)
                    .map(|v| v.as_bytes()),
            )
        })
    }
}

pub async fn start(edge: Edge, cfg: &AdminConfig) -> Result<SocketAddr, EdgeError> {
    cfg.validate()?;
    let listen = cfg.listen.as_str();
    let token = AdminToken(cfg.token.as_deref().map(basalt_net::BearerToken::new));
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
            let token = token.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(edge.clone(), token.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    tracing::info!(address = %local, token = cfg.token.is_some(), "edge admin listening");
    Ok(local)
}

async fn handle(
    edge: Edge,
    token: AdminToken,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if !token.admits(&req) {
        let mut r = error_response(
            StatusCode::UNAUTHORIZED,
            "the admin listener needs its bearer token",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return Ok(r);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri("/metrics");
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn only_the_configured_bearer_token_is_admitted() {
        let token = AdminToken(Some(basalt_net::BearerToken::new("0123456789abcdef")));
        assert!(token.admits(&request(Some("Bearer 0123456789abcdef"))));
        assert!(token.admits(&request(Some("bearer  0123456789abcdef "))));
        for bad in [
            None,
            Some("Bearer 0123456789abcdeF"),
            Some("Bearer 0123456789abcde"),
            Some("Bearer 0123456789abcdef0"),
            Some("Basic 0123456789abcdef"),
            Some("0123456789abcdef"),
            Some("Bearer"),
        ] {
            assert!(!token.admits(&request(bad)), "{bad:?}");
        }
        assert!(AdminToken(None).admits(&request(None)));
    }

    #[test]
    fn a_non_loopback_admin_listener_needs_a_token() {
        let cfg = |listen: &str, token: Option<&str>| AdminConfig {
            listen: listen.into(),
            token: token.map(str::to_string),
        };
        assert!(cfg("127.0.0.1:9901", None).validate().is_ok());
        assert!(cfg("[::1]:9901", None).validate().is_ok());
        for (c, key) in [
            (cfg("0.0.0.0:9901", None), "edge.admin.token"),
            (cfg("10.1.2.3:9901", None), "edge.admin.token"),
            (cfg("[::]:9901", None), "edge.admin.token"),
            (cfg("127.0.0.1:9901", Some("short")), "edge.admin.token"),
            (cfg("localhost:9901", None), "edge.admin.listen"),
        ] {
            let e = c.validate().expect_err("refused").to_string();
            assert!(e.contains(key), "{e}");
        }
        assert!(
            cfg("0.0.0.0:9901", Some("0123456789abcdef"))
                .validate()
                .is_ok()
        );
        let shown = format!("{:?}", cfg("0.0.0.0:9901", Some("0123456789abcdef")));
        assert!(!shown.contains("0123456789"), "{shown}");
    }
}
