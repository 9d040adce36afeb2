//! Content types detected from a file's first bytes, as PocketBase detects them for a
//! file field's `mimeTypes` check, the stored name's fallback extension and the type a
//! download is served with. A client's declared type is never trusted.
//!
//! This covers the types PocketBase 0.40 reports for common uploads (probed: images, SVG,
//! HTML, XML, JSON, CSV, PDF, ZIP, plain text, empty files, other bytes); anything else
//! is `application/octet-stream` without an extension. Containers are not opened (a DOCX
//! is a ZIP here).

/// How many leading bytes detection reads (PocketBase's detector reads as many).
pub const SNIFF_LEN: usize = 3072;

/// A detected type and the extension PocketBase gives it (`""` when none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub mime: &'static str,
    pub ext: &'static str,
}

const fn d(mime: &'static str, ext: &'static str) -> Detected {
    Detected { mime, ext }
}

/// The type of a file whose first bytes are `head` (at most [`SNIFF_LEN`] are read);
/// `complete` says whether `head` is the whole file, which JSON and CSV detection need.
pub fn detect(head: &[u8], complete: bool) -> Detected {
    let head = &head[..head.len().min(SNIFF_LEN)];
    if head.is_empty() {
        return d("text/plain", ".txt");
    }
    let magic: &[(&[u8], Detected)] = &[
        (b"\x89PNG\r\n\x1a\n", d("image/png", ".png")),
        (b"\xff\xd8\xff", d("image/jpeg", ".jpg")),
        (b"GIF87a", d("image/gif", ".gif")),
        (b"GIF89a", d("image/gif", ".gif")),
        (b"%PDF-", d("application/pdf", ".pdf")),
        (b"PK\x03\x04", d("application/zip", ".zip")),
        (b"\x1f\x8b", d("application/gzip", ".gz")),
        (b"BM", d("image/bmp", ".bmp")),
        (b"\x00\x00\x01\x00", d("image/x-icon", ".ico")),
        (b"\x1a\x45\xdf\xa3", d("video/webm", ".webm")),
        (b"ID3", d("audio/mpeg", ".mp3")),
    ];
    if let Some((_, t)) = magic.iter().find(|(sig, _)| head.starts_with(sig)) {
        return *t;
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") {
        match &head[8..12] {
            b"WEBP" => return d("image/webp", ".webp"),
            b"WAVE" => return d("audio/wav", ".wav"),
            _ => {}
        }
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return match &head[8..12] {
            b"avif" => d("image/avif", ".avif"),
            b"heic" | b"heix" => d("image/heic", ".heic"),
            b"qt  " => d("video/quicktime", ".mov"),
            _ => d("video/mp4", ".mp4"),
        };
    }
    match text_of(head, complete) {
        Some(text) => detect_text(text, complete),
        None => d("application/octet-stream", ""),
    }
}

/// `head` as text when it looks like text: UTF-8 (a sequence cut at the end of an
/// incomplete head is allowed) without NUL or other control bytes but whitespace and ESC.
fn text_of(head: &[u8], complete: bool) -> Option<&str> {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if !complete && e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let binary = text
        .bytes()
        .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b));
    (!binary).then_some(text)
}

fn detect_text(text: &str, complete: bool) -> Detected {
    let start = text.trim_start_matches(['\u{feff}', ' ', '\t', '\n', '\r']);
    let lower: String = start
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    if lower.starts_with("<?xml") {
        return if start.contains("<svg") {
            d("image/svg+xml", ".svg")
        } else {
            d("text/xml; charset=utf-8", ".xml")
        };
    }
    if lower.starts_with("<svg") {
        return d("image/svg+xml", ".svg");
    }
    const HTML: &[&str] = &[
        "<!doctype html",
        "<html",
        "<head",
        "<body",
        "<script",
        "<iframe",
        "<h1",
        "<div",
        "<font",
        "<table",
        "<a",
        "<style",
        "<title",
        "<b",
        "<br",
        "<p",
        "<!--",
    ];
    let html = HTML.iter().any(|tag| {
        lower.starts_with(tag)
            && lower[tag.len()..]
                .chars()
                .next()
                .is_some_and(|c| c == '>' || c == ' ')
    });
    if html {
        return d("text/html; charset=utf-8", ".html");
    }
    if complete && (start.starts_with('{') || start.starts_with('[')) && is_json(start) {
        return d("application/json", ".json");
    }
    if complete && is_csv(text) {
        return d("text/csv", ".csv");
    }
    d("text/plain; charset=utf-8", ".txt")
}

/// A whole JSON object or array (strings, numbers and literals checked loosely: the
/// brackets and quotes must balance and nothing may follow the value).
fn is_json(s: &str) -> bool {
    let mut depth: Vec<char> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth.push('}'),
            '[' => depth.push(']'),
            '}' | ']' => {
                if depth.pop() != Some(c) {
                    return false;
                }
                if depth.is_empty() {
                    return s[i + 1..].trim().is_empty();
                }
            }
            _ if depth.is_empty() => return false,
            _ => {}
        }
    }
    false
}

/// At least two lines, each with the same number (two or more) of comma-separated fields.
fn is_csv(s: &str) -> bool {
    let lines: Vec<&str> = s.lines().filter(|l| !l.is_empty()).collect();
    if lines.len() < 2 || s.contains('"') {
        return false;
    }
    let fields = lines[0].split(',').count();
    fields >= 2 && lines.iter().all(|l| l.split(',').count() == fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Types and extensions PocketBase 0.40 gave these uploads (probed through the
    /// stored name and the download's Content-Type).
    #[test]
    fn matches_pocketbase_on_common_uploads() {
        let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00";
        let webp = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00";
        let binary: Vec<u8> = (0..=255u8).collect();
        let cases: &[(&[u8], &str, &str)] = &[
            (
                b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\"></svg>",
                "image/svg+xml",
                ".svg",
            ),
            (
                b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>",
                "image/svg+xml",
                ".svg",
            ),
            (
                b"<!DOCTYPE html><html><body>x</body></html>",
                "text/html; charset=utf-8",
                ".html",
            ),
            (b"{\"a\": 1}", "application/json", ".json"),
            (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "application/pdf", ".pdf"),
            (&binary, "application/octet-stream", ""),
            (
                b"<?xml version=\"1.0\"?><a/>",
                "text/xml; charset=utf-8",
                ".xml",
            ),
            (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif", ".gif"),
            (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg", ".jpg"),
            (webp, "image/webp", ".webp"),
            (
                b"function a(){return 1}\n",
                "text/plain; charset=utf-8",
                ".txt",
            ),
            (b"a,b\n1,2\n", "text/csv", ".csv"),
            (zip, "application/zip", ".zip"),
            (b"\x89PNG\r\n\x1a\n0000", "image/png", ".png"),
            (b"hi", "text/plain; charset=utf-8", ".txt"),
            (b"", "text/plain", ".txt"),
        ];
        for (bytes, mime, ext) in cases {
            let got = detect(bytes, true);
            assert_eq!(
                (got.mime, got.ext),
                (*mime, *ext),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn heads_of_larger_files() {
        // JSON and CSV need the whole file; a cut UTF-8 sequence at the end is still text.
        assert_eq!(
            detect(b"{\"a\": [1, 2", false).mime,
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            detect(b"{\"a\": 1}", false).mime,
            "text/plain; charset=utf-8"
        );
        assert_eq!(detect("héllo".as_bytes()[..2].as_ref(), false).ext, ".txt");
        assert_eq!(detect("héllo".as_bytes()[..2].as_ref(), true).ext, "");
        let mut long = b"<html>".to_vec();
        long.resize(SNIFF_LEN, b' ');
        long.extend(std::iter::repeat_n(b'\0', 10_000));
        assert_eq!(
            detect(&long, false).ext,
            ".html",
            "only the first bytes count"
        );
        assert_eq!(detect(b"{\"a\": 1} x", true).ext, ".txt");
        assert_eq!(detect(b"a\0b", true).ext, "");
    }
}
