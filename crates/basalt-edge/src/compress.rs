//! Response compression (gzip, brotli, zstd) negotiated by `Accept-Encoding` (q-values,
//! `identity`, `*`), streamed over the body. Skipped for HEAD, 1xx/204/206/304, ranges,
//! `Cache-Control: no-transform`, bodies already encoded, event streams, types not listed and bodies
//! declared smaller than `min_size`. A compressed response loses its `Content-Length`, gets
//! a weak `ETag` (the bytes differ from the identity ones) and `Vary: Accept-Encoding`.
//!
//! With a cache on the same route the cache stores what the upstream sent and compression
//! runs on the way out, so one stored identity body serves every encoding.

use std::io;

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use futures_util::TryStreamExt;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::body::{Body, BoxError};
use crate::config::RouteConfig;
use crate::error::EdgeError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Brotli,
    Zstd,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Encoding::Gzip),
            "br" => Some(Encoding::Brotli),
            "zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }

    /// The configured 1..=9 level on this codec's own scale.
    fn level(self, level: Option<u8>) -> Level {
        match (self, level) {
            (_, None) => Level::Precise(match self {
                Encoding::Gzip => 6,
                Encoding::Brotli => 4,
                Encoding::Zstd => 3,
            }),
            (Encoding::Gzip, Some(l)) => Level::Precise(i32::from(l)),
            (Encoding::Brotli, Some(l)) => Level::Precise(i32::from(l) + 2),
            (Encoding::Zstd, Some(l)) => Level::Precise(i32::from(l) * 2),
        }
    }
}

pub struct Compression {
    types: Vec<String>,
    min_size: u64,
    level: Option<u8>,
    encodings: Vec<Encoding>,
}

/// The encoding to use for an `Accept-Encoding` value: the highest q among those offered,
/// ties going to the edge's order; `*` covers encodings not named; q=0 refuses.
pub fn negotiate(accept: &str, offered: &[Encoding]) -> Option<Encoding> {
    let mut star: Option<f32> = None;
    let mut named: Vec<(String, f32)> = Vec::new();
    for item in accept.split(',') {
        let mut it = item.split(';');
        let token = it.next().unwrap_or("").trim().to_ascii_lowercase();
        if token.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for p in it {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if token == "*" {
            star = Some(q);
        } else {
            named.push((token, q));
        }
    }
    let q_of = |e: Encoding| {
        named
            .iter()
            .find(|(t, _)| Encoding::parse(t) == Some(e))
            .map(|(_, q)| *q)
            .or(star)
            .unwrap_or(0.0)
    };
    let mut best: Option<(Encoding, f32)> = None;
    for &e in offered {
        let q = q_of(e);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((e, q));
        }
    }
    best.map(|(e, _)| e)
}

impl Compression {
    pub fn build(
        route: &str,
        cfg: &RouteConfig,
    ) -> Result<Option<std::sync::Arc<Self>>, EdgeError> {
        let Some(c) = &cfg.compress else {
            return Ok(None);
        };
        let bad = |m: String| EdgeError::Config(format!("route {route}: compress: {m}"));
        if let Some(l) = c.level
            && !(1..=9).contains(&l)
        {
            return Err(bad(format!("level {l} must be 1..=9")));
        }
        let encodings = c
            .encodings
            .iter()
            .map(|e| {
                Encoding::parse(e)
                    .ok_or_else(|| bad(format!("unknown encoding {e:?} (gzip, br, zstd)")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if encodings.is_empty() {
            return Err(bad("encodings must not be empty".into()));
        }
        if c.types.iter().any(|t| t.trim().is_empty()) {
            return Err(bad("types must not contain an empty entry".into()));
        }
        Ok(Some(std::sync::Arc::new(Self {
            types: c
                .types
                .iter()
                .map(|t| t.trim().to_ascii_lowercase())
                .collect(),
            min_size: c.min_size,
            level: c.level,
            encodings,
        })))
    }

    fn type_matches(&self, headers: &HeaderMap) -> bool {
        let Some(ct) = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let ct = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        // An encoder holds output back until it has enough input, which would stall event
        // streams; they are never compressed, even under a `text/` prefix.
        if ct == "text/event-stream" {
            return false;
        }
        self.types.iter().any(|t| {
            if t.ends_with('/') {
                ct.starts_with(t.as_str())
            } else {
                ct == *t
            }
        })
    }

    /// Compresses `resp` when the client accepts an offered encoding and nothing forbids it.
    pub fn apply(
        &self,
        accept: Option<&HeaderValue>,
        method: &Method,
        mut resp: Response<Body>,
    ) -> Response<Body> {
        let status = resp.status();
        let h = resp.headers();
        if *method == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::PARTIAL_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || h.contains_key(header::CONTENT_RANGE)
            || h.get(header::CONTENT_ENCODING)
                .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
            || no_transform(h)
            || !self.type_matches(h)
        {
            return resp;
        }
        // From here the representation depends on Accept-Encoding, whatever this client sent.
        add_vary(resp.headers_mut());
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n < self.min_size) {
            return resp;
        }
        let Some(encoding) = accept
            .and_then(|v| v.to_str().ok())
            .and_then(|a| negotiate(a, &self.encodings))
        else {
            return resp;
        };
        let h = resp.headers_mut();
        h.remove(header::CONTENT_LENGTH);
        h.remove(header::ACCEPT_RANGES);
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
        if let Some(etag) = h.get(header::ETAG).and_then(|v| v.to_str().ok())
            && !etag.starts_with("W/")
            && let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}"))
        {
            h.insert(header::ETAG, weak);
        }
        let level = encoding.level(self.level);
        resp.map(|body| encode(body, encoding, level))
    }
}

fn no_transform(h: &HeaderMap) -> bool {
    h.get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
}

fn add_vary(h: &mut HeaderMap) {
    let present = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|n| {
            let n = n.trim();
            n == "*" || n.eq_ignore_ascii_case("accept-encoding")
        });
    if !present {
        h.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// The body through a streaming encoder: frames are read as the encoder needs input, so a
/// large body is never held whole.
fn encode(body: Body, encoding: Encoding, level: Level) -> Body {
    let input = body.into_data_stream().map_err(io::Error::other);
    let reader = StreamReader::new(input);
    match encoding {
        Encoding::Gzip => stream(GzipEncoder::with_quality(reader, level)),
        Encoding::Brotli => stream(BrotliEncoder::with_quality(reader, level)),
        Encoding::Zstd => stream(ZstdEncoder::with_quality(reader, level)),
    }
}

fn stream<R: tokio::io::AsyncRead + Send + 'static>(encoder: R) -> Body {
    StreamBody::new(
        ReaderStream::new(encoder)
            .map_ok(Frame::data)
            .map_err(|e: io::Error| -> BoxError { Box::new(e) }),
    )
    .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

    #[test]
    fn accept_encoding_negotiation() {
        let cases: &[(&str, Option<Encoding>)] = &[
            ("gzip", Some(Encoding::Gzip)),
            ("gzip, br", Some(Encoding::Brotli)),
            ("gzip;q=1.0, br;q=0.5", Some(Encoding::Gzip)),
            ("br;q=0, gzip;q=0.1", Some(Encoding::Gzip)),
            ("zstd;q=0.9, br;q=0.8, gzip;q=0.7", Some(Encoding::Zstd)),
            ("*", Some(Encoding::Brotli)),
            ("*;q=0.5, br;q=0", Some(Encoding::Zstd)),
            ("identity", None),
            ("identity, *;q=0", None),
            ("", None),
            ("deflate", None),
            ("X-GZIP", Some(Encoding::Gzip)),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept, &ALL), *want, "{accept}");
        }
        assert_eq!(
            negotiate("br, gzip", &[Encoding::Gzip]),
            Some(Encoding::Gzip)
        );
    }
}
