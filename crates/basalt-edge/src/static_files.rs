//! The static-directory action: front-end hosting with ETag and conditional requests, a
//! single byte range, precompressed `.br`/`.gz` siblings, SPA fallback to `index.html`,
//! content types and `nosniff`. Paths never leave the root (no `..`, no symlink escapes).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

use crate::body::{Body, BoxError, empty, error_response};
use crate::config::StaticConfig;

pub struct StaticDir {
    root: PathBuf,
    spa: bool,
    cache_control: Option<HeaderValue>,
}

impl StaticDir {
    pub fn new(cfg: &StaticConfig) -> Result<Self, String> {
        let root = std::fs::canonicalize(&cfg.root)
            .map_err(|e| format!("static root {}: {e}", cfg.root.display()))?;
        if !root.is_dir() {
            return Err(format!("static root {} is not a directory", root.display()));
        }
        let cache_control = match &cfg.cache_control {
            Some(c) => Some(
                HeaderValue::from_str(c).map_err(|_| format!("cache_control {c:?} is invalid"))?,
            ),
            None => None,
        };
        Ok(Self {
            root,
            spa: cfg.spa,
            cache_control,
        })
    }

    pub async fn serve(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut r = error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let Some(relative) = safe_relative(path) else {
            return error_response(StatusCode::BAD_REQUEST, "invalid path");
        };
        let mut file = self.root.join(&relative);
        let mut fallback = false;
        match self.resolve(&file).await {
            Some(f) => file = f,
            None if self.spa && wants_html(path, headers) => {
                file = self.root.join("index.html");
                fallback = true;
            }
            None => return error_response(StatusCode::NOT_FOUND, "not found"),
        }
        match self.respond(method, &file, headers, fallback).await {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                error_response(StatusCode::NOT_FOUND, "not found")
            }
            Err(e) => {
                tracing::warn!(error = %e, file = %file.display(), "static file unreadable");
                error_response(StatusCode::NOT_FOUND, "not found")
            }
        }
    }

    /// The file for `candidate` (a directory's `index.html`), if it exists inside the root.
    async fn resolve(&self, candidate: &Path) -> Option<PathBuf> {
        let real = tokio::fs::canonicalize(candidate).await.ok()?;
        // Symlinks may point anywhere; only what stays under the root is served.
        if !real.starts_with(&self.root) {
            return None;
        }
        let meta = tokio::fs::metadata(&real).await.ok()?;
        if meta.is_dir() {
            let index = real.join("index.html");
            return tokio::fs::metadata(&index)
                .await
                .ok()
                .filter(|m| m.is_file())
                .map(|_| index);
        }
        meta.is_file().then_some(real)
    }

    async fn respond(
        &self,
        method: &Method,
        file: &Path,
        headers: &HeaderMap,
        fallback: bool,
    ) -> io::Result<Response<Body>> {
        let (served, encoding) = precompressed(file, headers).await;
        let meta = tokio::fs::metadata(&served).await?;
        let len = meta.len();
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        let stamp = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
        let etag = format!(
            "\"{:x}-{:x}{}\"",
            len,
            stamp.as_nanos(),
            encoding.map(|e| format!("-{e}")).unwrap_or_default()
        );
        let mut resp = Response::new(empty());
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(file)),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(mtime)) {
            h.insert(header::LAST_MODIFIED, v);
        }
        if fallback {
            // The SPA shell must be revalidated so a deploy is picked up at once.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        } else if let Some(c) = &self.cache_control {
            h.insert(header::CACHE_CONTROL, c.clone());
        }
        if let Some(e) = encoding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
        }
        if not_modified(headers, &etag, mtime) {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(resp);
        }
        let mut start = 0;
        let mut count = len;
        if encoding.is_none()
            && let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok())
            && if_range_holds(headers, &etag)
        {
            match parse_range(range, len) {
                RangeSpec::Single(a, b) => {
                    start = a;
                    count = b - a + 1;
                    *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
                        resp.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                }
                RangeSpec::Unsatisfiable => {
                    let mut r =
                        error_response(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                        r.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    return Ok(r);
                }
                RangeSpec::Ignore => {}
            }
        }
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
        if method == Method::HEAD {
            return Ok(resp);
        }
        let mut f = tokio::fs::File::open(&served).await?;
        if start > 0 {
            f.seek(io::SeekFrom::Start(start)).await?;
        }
        *resp.body_mut() = FileBody {
            file: f,
            remaining: count,
        }
        .boxed_unsync();
        Ok(resp)
    }
}

/// Decodes and checks the request path: `None` for traversal, NUL, backslashes or bad
/// percent-encoding.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    let mut out = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s if s.contains('\\') || s.contains('\0') || s.contains(':') => return None,
            s => out.push(s),
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn wants_html(path: &str, headers: &HeaderMap) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    // A missing asset (`/app.js`) is a 404, a client-side route (`/users/7`) is the shell.
    !last.contains('.')
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// The `.br` or `.gz` sibling when the client accepts it and it exists.
async fn precompressed(file: &Path, headers: &HeaderMap) -> (PathBuf, Option<&'static str>) {
    let accept = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    for (enc, ext) in [("br", "br"), ("gzip", "gz")] {
        if accepts(&accept, enc) {
            let mut name = file.as_os_str().to_owned();
            name.push(".");
            name.push(ext);
            let candidate = PathBuf::from(name);
            if tokio::fs::metadata(&candidate)
                .await
                .is_ok_and(|m| m.is_file())
            {
                return (candidate, Some(enc));
            }
        }
    }
    (file.to_path_buf(), None)
}

fn accepts(accept: &str, coding: &str) -> bool {
    accept.split(',').any(|part| {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim();
        let q_zero = it.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
        });
        name.eq_ignore_ascii_case(coding) && !q_zero
    })
}

fn not_modified(headers: &HeaderMap, etag: &str, mtime: SystemTime) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag);
    }
    if let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        return secs(mtime) <= secs(ims);
    }
    false
}

fn if_range_holds(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => v.trim() == etag,
        None => true,
    }
}

enum RangeSpec {
    Single(u64, u64),
    Unsatisfiable,
    /// Malformed or several ranges: answered with the whole file, which RFC 9110 allows.
    Ignore,
}

fn parse_range(v: &str, len: u64) -> RangeSpec {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeSpec::Unsatisfiable,
            Ok(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            Err(_) => return RangeSpec::Ignore,
        },
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeSpec::Ignore;
            };
            let end = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(e) if e >= start => e.min(len.saturating_sub(1)),
                    _ => return RangeSpec::Ignore,
                }
            };
            (start, end)
        }
        _ => return RangeSpec::Ignore,
    };
    if len == 0 || parsed.0 >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Single(parsed.0, parsed.1)
}

fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

/// Streams `remaining` bytes of an open file in 64 KiB frames.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = self.remaining.min(64 * 1024) as usize;
        let mut buf = BytesMut::zeroed(want);
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut self.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err("file shrank while being served".into())));
                }
                buf.truncate(n);
                self.remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        for p in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/a%2f..%2f..%2fb",
            "/a\\b",
            "/%00",
        ] {
            assert!(safe_relative(p).is_none(), "{p}");
        }
        assert_eq!(
            safe_relative("/a/./b%20c").expect("ok"),
            PathBuf::from("a/b c")
        );
    }

    #[test]
    fn ranges() {
        assert!(matches!(
            parse_range("bytes=0-3", 10),
            RangeSpec::Single(0, 3)
        ));
        assert!(matches!(
            parse_range("bytes=5-", 10),
            RangeSpec::Single(5, 9)
        ));
        assert!(matches!(
            parse_range("bytes=-3", 10),
            RangeSpec::Single(7, 9)
        ));
        assert!(matches!(
            parse_range("bytes=2-100", 10),
            RangeSpec::Single(2, 9)
        ));
        assert!(matches!(
            parse_range("bytes=10-", 10),
            RangeSpec::Unsatisfiable
        ));
        assert!(matches!(
            parse_range("bytes=0-1,3-4", 10),
            RangeSpec::Ignore
        ));
        assert!(matches!(parse_range("items=0-1", 10), RangeSpec::Ignore));
    }

    #[test]
    fn encodings() {
        assert!(accepts("gzip, br;q=1", "br"));
        assert!(!accepts("gzip, br;q=0", "br"));
        assert!(!accepts("identity", "gzip"));
    }
}
