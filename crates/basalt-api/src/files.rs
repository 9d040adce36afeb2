//! `GET`/`HEAD /api/files/{collection}/{recordId}/{filename}`: a record's file through
//! `basalt_service::files` (found, checked, thumbs), served with PocketBase's headers,
//! conditional requests (ETag, Last-Modified: 304) and single byte ranges (206, 416).
//! Only media a browser shows without running it (raster images, audio, video, PDF) is
//! served inline, as in PocketBase; everything else, active content (SVG, HTML, XML, JS)
//! and plain text included, is an attachment, and every file carries
//! PocketBase's sandboxing `Content-Security-Policy`, so no upload runs as a document on
//! the API's origin.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use basalt_service::files::{self, ByteRange, FileInput, OpenError};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::records::Params;
use crate::request_info::HttpMeta;

/// PocketBase's policy for served files.
const CSP: &str = "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox";
const CACHE: &str = "max-age=2592000, stale-while-revalidate=86400";

pub(crate) async fn download(
    State(state): State<ApiState>,
    Path((collection, record_id, filename)): Path<(String, String, String)>,
    Query(params): Params,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let meta = HttpMeta {
        query: &params,
        headers: &headers,
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range);
    let conditional = headers.contains_key(header::IF_NONE_MATCH)
        || headers.contains_key(header::IF_MODIFIED_SINCE);
    let input = FileInput {
        collection,
        record_id,
        filename,
        thumb: params.get("thumb").cloned(),
        token: params.get("token").cloned(),
        whole: method == Method::GET && range.is_none() && !conditional,
    };
    let target = files::find(&state.service, &meta, input).await?;
    let mut out = HeaderMap::new();
    let attachment = params
        .get("download")
        .is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "f"))
        || !served_inline(target.content_type);
    let disposition = format!(
        "{}; filename=\"{}\"",
        if attachment { "attachment" } else { "inline" },
        quoted(&target.name)
    );
    let put = |out: &mut HeaderMap, k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            out.insert(k, v);
        }
    };
    put(&mut out, header::CONTENT_DISPOSITION, &disposition);
    put(&mut out, header::CONTENT_SECURITY_POLICY, CSP);
    put(&mut out, header::CACHE_CONTROL, CACHE);
    put(&mut out, header::ETAG, &target.meta.etag);
    let modified = secs(target.meta.last_modified);
    put(
        &mut out,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(modified)),
    );
    if not_modified(&headers, &target.meta.etag, modified) {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    put(&mut out, header::ACCEPT_RANGES, "bytes");
    put(&mut out, header::CONTENT_TYPE, target.content_type);
    match files::open(&state.service, target, range).await {
        Ok(d) => {
            let len = d.range.end - d.range.start;
            put(&mut out, header::CONTENT_LENGTH, &len.to_string());
            let status = if range.is_some() {
                put(
                    &mut out,
                    header::CONTENT_RANGE,
                    &format!(
                        "bytes {}-{}/{}",
                        d.range.start,
                        d.range.end - 1,
                        d.meta.size
                    ),
                );
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            };
            Ok((status, out, Body::from_stream(d.body)).into_response())
        }
        Err(OpenError::Range { size }) => {
            let mut res = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "Requested range not satisfiable.",
            )
            .into_response();
            put(
                res.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            Ok(res)
        }
        Err(OpenError::Failed(e)) => Err(e.into()),
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The types PocketBase serves inline: media a browser displays without running any of
/// it. An allow-list, so anything active (SVG, HTML, XML, scripts) or unknown is an
/// attachment.
fn served_inline(mime: &str) -> bool {
    const INLINE: &[&str] = &[
        "image/png",
        "image/jpg",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/x-icon",
        "image/bmp",
        "video/webm",
        "video/mp4",
        "video/3gpp",
        "video/quicktime",
        "video/x-ms-wmv",
        "audio/basic",
        "audio/aiff",
        "audio/mpeg",
        "audio/midi",
        "audio/mp3",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-mpeg",
        "audio/x-m4a",
        "audio/aac",
        "application/pdf",
        "application/x-pdf",
    ];
    let essence = mime.split(';').next().unwrap_or_default().trim();
    INLINE.iter().any(|t| t.eq_ignore_ascii_case(essence))
}

/// A file name fit for a quoted header parameter.
fn quoted(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect()
}

/// `If-None-Match` decides when present (RFC 9110), else `If-Modified-Since`.
fn not_modified(headers: &HeaderMap, etag: &str, modified: u64) -> bool {
    if let Some(v) = headers.get(header::IF_NONE_MATCH) {
        let v = v.to_str().unwrap_or_default();
        return v.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| modified <= secs(since))
}

/// One `bytes=` range; several ranges or anything unreadable: the whole file (RFC 9110
/// lets a server ignore `Range`).
fn parse_range(v: &str) -> Option<ByteRange> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.trim().split_once('-')?;
    match (a.trim(), b.trim()) {
        ("", n) => n.parse().ok().map(ByteRange::Last),
        (a, "") => a.parse().ok().map(ByteRange::From),
        (a, b) => {
            let (start, last): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            (last >= start).then(|| ByteRange::Bounded {
                start,
                end: last.saturating_add(1),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_http_ranges() {
        assert_eq!(
            parse_range("bytes=0-9"),
            Some(ByteRange::Bounded { start: 0, end: 10 })
        );
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange::From(5)));
        assert_eq!(parse_range("bytes=-5"), Some(ByteRange::Last(5)));
        for ignored in [
            "bytes=0-1,3-4",
            "bytes=9-1",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn only_passive_media_is_served_inline() {
        for m in [
            "image/svg+xml",
            "text/html; charset=utf-8",
            "text/xml",
            "text/javascript",
            "text/plain; charset=utf-8",
            "application/octet-stream",
            "",
        ] {
            assert!(!served_inline(m), "{m}");
        }
        for m in [
            "image/png",
            "IMAGE/JPEG",
            "video/mp4",
            "application/pdf; x=y",
        ] {
            assert!(served_inline(m), "{m}");
        }
    }
}
