//! Routes compiled once per configuration: matchers (host, path prefix or regex, methods,
//! headers) and the action a match leads to.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::Regex;

use crate::config::RouteConfig;
use crate::error::EdgeError;
use crate::pool::Pool;
use crate::static_files::StaticDir;

pub enum Action {
    Pool(Arc<Pool>),
    Api,
    Static(StaticDir),
    Redirect {
        to: String,
        status: StatusCode,
        keep_path: bool,
    },
}

enum HostMatch {
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

pub struct Route {
    pub name: Arc<str>,
    host: Option<HostMatch>,
    pub prefix: Option<String>,
    regex: Option<Regex>,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, HeaderValue)>,
    pub strip_prefix: bool,
    pub action: Action,
    /// The cache zone this route stores upstream responses in (set by the snapshot).
    pub cache: Option<Arc<crate::cache::CacheZone>>,
    /// Response compression for this route (set by the snapshot).
    pub compress: Option<Arc<crate::compress::Compression>>,
}

impl Route {
    pub fn compile(
        index: usize,
        cfg: &RouteConfig,
        pool: impl Fn(&str) -> Option<Arc<Pool>>,
        api_available: bool,
    ) -> Result<Self, EdgeError> {
        let name = cfg.name.clone().unwrap_or_else(|| format!("route{index}"));
        let bad = |msg: String| EdgeError::Config(format!("route {name}: {msg}"));
        let actions = usize::from(cfg.pool.is_some())
            + usize::from(cfg.api)
            + usize::from(cfg.static_files.is_some())
            + usize::from(cfg.redirect.is_some());
        if actions != 1 {
            return Err(bad(
                "needs exactly one action: pool, api, static or redirect".into(),
            ));
        }
        let action = if let Some(p) = &cfg.pool {
            Action::Pool(pool(p).ok_or_else(|| bad(format!("unknown pool {p:?}")))?)
        } else if cfg.api {
            if !api_available {
                return Err(bad(
                    "api = true needs `basalt serve`; `basalt proxy` has no API".into(),
                ));
            }
            Action::Api
        } else if let Some(s) = &cfg.static_files {
            Action::Static(StaticDir::new(s).map_err(&bad)?)
        } else if let Some(r) = &cfg.redirect {
            let status = StatusCode::from_u16(r.status)
                .ok()
                .filter(|s| [301, 302, 303, 307, 308].contains(&s.as_u16()))
                .ok_or_else(|| bad(format!("redirect status {} is not a redirect", r.status)))?;
            if HeaderValue::from_str(&r.to).is_err() || r.to.is_empty() {
                return Err(bad(format!(
                    "redirect target {:?} is not a valid URL",
                    r.to
                )));
            }
            Action::Redirect {
                to: r.to.trim_end_matches('/').to_string(),
                status,
                keep_path: r.keep_path,
            }
        } else {
            return Err(bad("no action".into()));
        };
        let host = cfg.host.as_ref().map(|h| {
            let h = h.to_ascii_lowercase();
            match h.strip_prefix('*') {
                Some(suffix) => HostMatch::Suffix(suffix.to_string()),
                None => HostMatch::Exact(h),
            }
        });
        if let Some(p) = &cfg.path_prefix
            && !p.starts_with('/')
        {
            return Err(bad(format!("path_prefix {p:?} must start with /")));
        }
        if cfg.strip_prefix && cfg.path_prefix.is_none() {
            return Err(bad("strip_prefix needs path_prefix".into()));
        }
        let regex = match &cfg.path_regex {
            Some(r) => Some(Regex::new(r).map_err(|e| bad(format!("path_regex: {e}")))?),
            None => None,
        };
        let methods = cfg
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| bad(format!("bad method {m:?}")))
            })
            .collect::<Result<_, _>>()?;
        let headers = cfg
            .headers
            .iter()
            .map(|(k, v)| {
                Ok((
                    HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| bad(format!("bad header name {k:?}")))?,
                    HeaderValue::from_str(v).map_err(|_| bad(format!("bad header value {v:?}")))?,
                ))
            })
            .collect::<Result<_, EdgeError>>()?;
        Ok(Self {
            name: name.into(),
            host,
            prefix: cfg
                .path_prefix
                .as_ref()
                .map(|p| p.trim_end_matches('/').to_string()),
            regex,
            methods,
            headers,
            strip_prefix: cfg.strip_prefix,
            action,
            cache: None,
            compress: None,
        })
    }

    /// The route matches on request headers.
    pub fn reads_headers(&self) -> bool {
        !self.headers.is_empty()
    }

    /// `host` is lowercase without a port.
    pub fn matches(
        &self,
        host: &str,
        method: &Method,
        path: &str,
        headers: &http::HeaderMap,
    ) -> bool {
        if let Some(h) = &self.host {
            let ok = match h {
                HostMatch::Exact(e) => host.eq_ignore_ascii_case(e),
                HostMatch::Suffix(s) => {
                    host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
                }
            };
            if !ok {
                return false;
            }
        }
        if let Some(p) = &self.prefix
            && !prefix_matches(p, path)
        {
            return false;
        }
        if let Some(r) = &self.regex
            && !r.is_match(path)
        {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        self.headers
            .iter()
            .all(|(k, v)| headers.get_all(k).iter().any(|x| x == v))
    }
}

/// `/api` matches `/api`, `/api/` and `/api/x`, not `/apix`; `""` (from `/`) matches all.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (path.len() == prefix.len()
            || prefix.is_empty()
            || path.as_bytes()[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/x"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(prefix_matches("", "/anything"));
    }

    #[test]
    fn matchers_combine() {
        let cfg = RouteConfig {
            host: Some("*.example.com".into()),
            path_prefix: Some("/app".into()),
            methods: vec!["get".into()],
            headers: [("x-canary".to_string(), "1".to_string())].into(),
            redirect: Some(crate::config::RedirectConfig {
                to: "https://x.test".into(),
                status: 302,
                keep_path: false,
            }),
            ..Default::default()
        };
        let r = Route::compile(0, &cfg, |_| None, false).expect("route");
        let mut h = http::HeaderMap::new();
        h.insert("x-canary", HeaderValue::from_static("1"));
        assert!(r.matches("a.example.com", &Method::GET, "/app/x", &h));
        assert!(!r.matches("example.com", &Method::GET, "/app/x", &h));
        assert!(!r.matches("a.example.com", &Method::POST, "/app/x", &h));
        assert!(!r.matches("a.example.com", &Method::GET, "/other", &h));
        assert!(!r.matches(
            "a.example.com",
            &Method::GET,
            "/app",
            &http::HeaderMap::new()
        ));
    }

    #[test]
    fn invalid_routes_are_rejected_with_a_reason() {
        let two = RouteConfig {
            api: true,
            pool: Some("p".into()),
            ..Default::default()
        };
        assert!(Route::compile(0, &two, |_| None, true).is_err());
        let unknown = RouteConfig {
            pool: Some("nope".into()),
            ..Default::default()
        };
        let err = Route::compile(0, &unknown, |_| None, true)
            .err()
            .expect("error");
        assert!(err.to_string().contains("unknown pool"), "{err}");
        let api = RouteConfig {
            api: true,
            ..Default::default()
        };
        assert!(Route::compile(0, &api, |_| None, false).is_err());
    }
}
