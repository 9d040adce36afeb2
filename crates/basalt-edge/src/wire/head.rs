//! HTTP/1.1 heads read and written by hand: a client request head parsed in place and
//! judged (plain enough to serve from the raw bytes, or left to hyper and the framing
//! guard), the upstream request head written from its bytes, status lines and header
//! lines, and an upstream response head parsed and rewritten for the client — or, for
//! `h1::client`, parsed into the status and `HeaderMap` hyper's side needs, with chunked
//! bodies decoded and their trailer fields read.
//!
//! Nothing the fast path calls here allocates per request: heads are parsed into headers on
//! the stack and written into buffers the connection keeps. `take_response` and
//! `trailer_fields` build header maps, the one allocation hyper's side cannot do without.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use httparse::{Header, Status};

/// Header slots for a client head; a head with more is left to hyper and the framing
/// guard, which apply the configured limit.
const REQUEST_HEADERS: usize = 128;
/// Header slots for an upstream response head; more is a bad upstream (hyper's client
/// allows 100).
const RESPONSE_HEADERS: usize = 128;
/// `Connection` tokens remembered per message; a message listing more is left to hyper
/// (a request) or refused (a response).
const MAX_TOKENS: usize = 16;

/// The `Connection` header's tokens of one message.
#[derive(Default)]
pub struct Tokens<'a> {
    items: [&'a [u8]; MAX_TOKENS],
    len: usize,
    pub close: bool,
    pub keep_alive: bool,
}

impl<'a> Tokens<'a> {
    /// Adds the tokens of one `Connection` value; false when there are too many.
    fn add(&mut self, value: &'a [u8]) -> bool {
        for token in value.split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() {
                continue;
            }
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            }
            if self.len == MAX_TOKENS {
                return false;
            }
            self.items[self.len] = token;
            self.len += 1;
        }
        true
    }

    /// The header is named in `Connection`, so it belongs to this hop only.
    fn names(&self, name: &str) -> bool {
        self.items[..self.len]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// Hop-by-hop headers (RFC 9110 7.6.1), `Upgrade`, and `HTTP2-Settings` (which only goes
/// with an `h2c` upgrade of one connection): they never cross the proxy.
pub(crate) fn hop_by_hop(name: &str) -> bool {
    // By first letter and length, so most names are passed over after two comparisons.
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    match (
        name.as_bytes().first().map(u8::to_ascii_lowercase),
        name.len(),
    ) {
        (Some(b't'), 2) => is("te"),
        (Some(b't'), 7) => is("trailer"),
        (Some(b't'), 17) => is("transfer-encoding"),
        (Some(b'u'), 7) => is("upgrade"),
        (Some(b'c'), 10) => is("connection"),
        (Some(b'k'), 10) => is("keep-alive"),
        (Some(b'h'), 14) => is("http2-settings"),
        (Some(b'p'), 16) => is("proxy-connection"),
        (Some(b'p'), 18) => is("proxy-authenticate"),
        (Some(b'p'), 19) => is("proxy-authorization"),
        _ => false,
    }
}

/// A `Content-Length` value: 1 to 18 decimal digits, nothing else but surrounding space.
fn decimal(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// A bare LF or an obs-fold anywhere in the head: the framing guard must judge it.
fn suspicious_line_ends(head: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, b) in head.iter().enumerate() {
        if *b == b'\n' && (prev != b'\r' || matches!(head.get(i + 1), Some(b' ' | b'\t'))) {
            return true;
        }
        prev = *b;
    }
    false
}

/// Bytes a request target may hold on the fast path: RFC 3986 unreserved, sub-delims,
/// `:` `@` `/` `?` and `%`. Anything else (a fragment, quotes, spaces, non-ASCII) goes
/// to hyper, whose URI rules then apply unchanged.
fn plain_target(target: &str) -> bool {
    target.starts_with('/')
        && target.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                        | b'/'
                        | b'?'
                        | b'%'
                )
        })
}

/// A client request head the fast path can proxy, borrowed from the connection's buffer.
pub struct Request<'b> {
    pub method: &'b str,
    pub target: &'b str,
    /// The `Host` header's value (port included).
    pub host: &'b str,
    pub content_length: u64,
    pub headers: &'b [Header<'b>],
    pub connection: Tokens<'b>,
    /// Bytes of the head, CRLF CRLF included.
    pub len: usize,
}

impl Request<'_> {
    /// The path without the query, for routing.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target, |(path, _)| path)
    }

    /// The headers as a map (an allocation: only for those who read headers by name);
    /// `None` when a name or value is not one `http` accepts.
    pub fn header_map(&self) -> Option<http::HeaderMap> {
        let mut map = http::HeaderMap::with_capacity(self.headers.len());
        for h in self.headers {
            map.append(
                http::HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                http::HeaderValue::from_bytes(h.value).ok()?,
            );
        }
        Some(map)
    }
}

/// What the bytes at the front of a client buffer are.
// Lives on the stack for one judgement; boxing the head would cost an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Parsed<'b> {
    /// A complete head the fast path may proxy.
    Plain(Request<'b>),
    /// Not all of the head has arrived.
    Partial,
    /// Anything else: refused framing, an upgrade, a chunked body, HTTP/1.0, HTTP/2's
    /// preface. hyper and the framing guard take the connection from here.
    Other,
}

/// Header storage for `parse_request`, on the caller's stack.
pub type RequestSlots<'b> = [MaybeUninit<Header<'b>>; REQUEST_HEADERS];

pub fn request_slots<'b>() -> RequestSlots<'b> {
    [MaybeUninit::uninit(); REQUEST_HEADERS]
}

/// Parses the head at the front of `buf` under the listener's limits on head bytes and
/// header count (a head over either is left to the guard to refuse).
pub fn parse_request<'b>(
    buf: &'b [u8],
    slots: &'b mut RequestSlots<'b>,
    max_head: usize,
    max_headers: usize,
) -> Parsed<'b> {
    let mut req = httparse::Request::new(&mut []);
    let slots = &mut slots[..max_headers.min(REQUEST_HEADERS)];
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) if buf.len() <= max_head => return Parsed::Partial,
        _ => return Parsed::Other,
    };
    if len > max_head || req.version != Some(1) || suspicious_line_ends(&buf[..len]) {
        return Parsed::Other;
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Parsed::Other;
    };
    if method == "CONNECT" || !plain_target(target) {
        return Parsed::Other;
    }
    let headers: &'b [Header<'b>] = req.headers;
    let mut host = None;
    let mut content_length = None;
    let mut connection = Tokens::default();
    for h in headers {
        let name = h.name;
        let other = match name.len() {
            4 if name.eq_ignore_ascii_case("host") => {
                let Ok(value) = std::str::from_utf8(h.value) else {
                    return Parsed::Other;
                };
                host.replace(value).is_some() || value.is_empty()
            }
            14 if name.eq_ignore_ascii_case("content-length") => match decimal(h.value) {
                Some(n) => content_length.replace(n).is_some(),
                None => true,
            },
            10 if name.eq_ignore_ascii_case("connection") => !connection.add(h.value),
            // A chunked body, `Expect: 100-continue` and upgrades follow hyper's rules.
            17 if name.eq_ignore_ascii_case("transfer-encoding") => true,
            6 if name.eq_ignore_ascii_case("expect") => true,
            7 if name.eq_ignore_ascii_case("upgrade") => method == "GET",
            _ => false,
        };
        if other {
            return Parsed::Other;
        }
    }
    // An HTTP/1.1 request must name its host (RFC 9112 3.2); hyper answers one without.
    let Some(host) = host else {
        return Parsed::Other;
    };
    Parsed::Plain(Request {
        method,
        target,
        host,
        content_length: content_length.unwrap_or(0),
        headers,
        connection,
        len,
    })
}

/// What the upstream request head needs besides the client's head.
pub(crate) struct Forwarding<'a> {
    /// The request target to send (the client's, or with the route's prefix stripped).
    pub target: (&'a str, &'a str),
    /// The connection's peer as text: the hop appended to `X-Forwarded-For`.
    pub peer: &'a str,
    pub https: bool,
}

/// Writes the upstream request head into `out`: the client's request line and headers
/// without hop-by-hop ones, `Host` kept, `X-Forwarded-For` appended to (every earlier
/// hop kept, in order, as one list), and `X-Forwarded-Host` and `X-Forwarded-Proto` set.
pub(crate) fn write_upstream_request(req: &Request<'_>, fw: &Forwarding<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(fw.target.0.as_bytes());
    out.extend_from_slice(fw.target.1.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers {
        let name = h.name;
        if hop_by_hop(name) || forwarding_header(name) || req.connection.names(name) {
            continue;
        }
        header_line(out, name.as_bytes(), h.value);
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    for h in req.headers {
        if h.name.len() == 15 && h.name.eq_ignore_ascii_case("x-forwarded-for") {
            let hops = h.value.trim_ascii();
            if !hops.is_empty() {
                out.extend_from_slice(hops);
                out.extend_from_slice(b", ");
            }
        }
    }
    out.extend_from_slice(fw.peer.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-host: ");
    out.extend_from_slice(req.host.as_bytes());
    out.extend_from_slice(if fw.https {
        b"\r\nx-forwarded-proto: https\r\n\r\n"
    } else {
        b"\r\nx-forwarded-proto: http\r\n\r\n"
    });
}

/// The `X-Forwarded-*` headers the proxy writes itself.
fn forwarding_header(name: &str) -> bool {
    let n = name.as_bytes();
    n.len() > 12 && n[..12].eq_ignore_ascii_case(b"x-forwarded-") && {
        let rest = &n[12..];
        rest.eq_ignore_ascii_case(b"for")
            || rest.eq_ignore_ascii_case(b"host")
            || rest.eq_ignore_ascii_case(b"proto")
    }
}

/// How an upstream response's body is delimited (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Framing {
    /// No body (HEAD, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes.
    UntilClose,
}

/// An upstream response head, rewritten for the client.
pub(crate) struct Response {
    pub status: u16,
    pub framing: Framing,
    /// The upstream connection may carry another request after this response.
    pub reusable: bool,
    /// The head tells the client the connection closes after this response.
    pub closes: bool,
    /// Bytes of the upstream head.
    pub len: usize,
}

/// Why an upstream response head is refused.
#[derive(Debug, PartialEq)]
pub(crate) enum BadResponse {
    /// Not a valid HTTP/1.x head, or ambiguous framing.
    Malformed(&'static str),
    /// `101 Switching Protocols` to a request that asked for no upgrade.
    UnexpectedSwitch,
}

/// What the client response head gets besides the upstream's headers.
#[derive(Clone, Copy)]
pub(crate) struct Additions<'a> {
    pub head_request: bool,
    /// The client connection closes after this response.
    pub close: bool,
    pub hsts: Option<&'a [u8]>,
    pub alt_svc: Option<&'a [u8]>,
}

/// What an upstream response head says about its message, judged once for either path.
struct Judged<'b> {
    framing: Framing,
    reusable: bool,
    connection: Tokens<'b>,
    has_date: bool,
}

/// Judges a parsed final (>= 200) upstream response head: its framing (ambiguous or
/// unsupported framing refused), whether its connection may be reused, the names its
/// `Connection` header makes hop-by-hop.
fn judge<'b>(
    resp: &httparse::Response<'_, 'b>,
    version: u8,
    status: u16,
    head_request: bool,
) -> Result<Judged<'b>, BadResponse> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut connection = Tokens::default();
    let mut has_date = false;
    for h in resp.headers.iter() {
        let name = h.name;
        match name.len() {
            14 if name.eq_ignore_ascii_case("content-length") => match (decimal(h.value), length) {
                (Some(n), None) => length = Some(n),
                _ => return Err(BadResponse::Malformed("ambiguous upstream Content-Length")),
            },
            17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                if chunked || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(BadResponse::Malformed(
                        "unsupported upstream Transfer-Encoding",
                    ));
                }
                chunked = true;
            }
            10 if name.eq_ignore_ascii_case("connection") && !connection.add(h.value) => {
                return Err(BadResponse::Malformed(
                    "too many upstream Connection tokens",
                ));
            }
            4 if name.eq_ignore_ascii_case("date") => has_date = true,
            _ => {}
        }
    }
    if chunked && length.is_some() {
        return Err(BadResponse::Malformed(
            "upstream sent both Content-Length and Transfer-Encoding",
        ));
    }
    let framing = if head_request || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let reusable = framing != Framing::UntilClose
        && !connection.close
        && (version == 1 || connection.keep_alive);
    Ok(Judged {
        framing,
        reusable,
        connection,
        has_date,
    })
}

/// Parses a response head at the front of `buf` with httparse: `Ok(None)` until it is
/// whole; the head's length, version and status otherwise. A 101 is refused (no request
/// of these paths asks for an upgrade).
fn parse_head<'b, 'h>(
    buf: &'b [u8],
    resp: &mut httparse::Response<'h, 'b>,
    slots: &'h mut [MaybeUninit<Header<'b>>],
) -> Result<Option<(usize, u8, u16)>, BadResponse> {
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(resp, buf, slots) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse::Malformed("malformed upstream response head")),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(BadResponse::Malformed("malformed upstream response head"));
    };
    if status == 101 {
        return Err(BadResponse::UnexpectedSwitch);
    }
    Ok(Some((len, version, status)))
}

/// Parses the upstream response head at the front of `buf`: `Ok(None)` until it is whole,
/// and for an informational (1xx) head, which is skipped (`Some` with status < 200 and
/// nothing written). A final head is rewritten into `out` for the client.
pub(crate) fn parse_response(
    buf: &[u8],
    add: &Additions<'_>,
    out: &mut Vec<u8>,
) -> Result<Option<Response>, BadResponse> {
    let mut slots = [MaybeUninit::<Header<'_>>::uninit(); RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let Some((len, version, status)) = parse_head(buf, &mut resp, &mut slots)? else {
        return Ok(None);
    };
    if status < 200 {
        return Ok(Some(Response {
            status,
            framing: Framing::None,
            reusable: true,
            closes: false,
            len,
        }));
    }
    let Judged {
        framing,
        reusable,
        connection,
        has_date,
    } = judge(&resp, version, status, add.head_request)?;
    let close = add.close || framing == Framing::UntilClose;

    out.clear();
    status_line(out, status, resp.reason);
    for h in resp.headers.iter() {
        let name = h.name;
        if hop_by_hop(name)
            || connection.names(name)
            || (add.hsts.is_some() && name.eq_ignore_ascii_case("strict-transport-security"))
            || (add.alt_svc.is_some() && name.eq_ignore_ascii_case("alt-svc"))
        {
            continue;
        }
        header_line(out, name.as_bytes(), h.value);
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !has_date {
        super::date::append(out);
    }
    if let Some(v) = add.hsts {
        header_line(out, b"strict-transport-security", v);
    }
    if let Some(v) = add.alt_svc {
        header_line(out, b"alt-svc", v);
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(Response {
        status,
        framing,
        reusable,
        closes: close,
        len,
    }))
}

/// An upstream response head for the hyper side (`h1::client`): its status and
/// headers, hop-by-hop ones and those named in `Connection` dropped, the values sharing
/// the head's bytes.
pub(crate) struct Parts {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub framing: Framing,
    pub reusable: bool,
}

/// Takes the final upstream response head off the front of `buf` (informational heads
/// before it are consumed and skipped): `Ok(None)` until it is whole.
pub(crate) fn take_response(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<Parts>, BadResponse> {
    const INVALID: BadResponse = BadResponse::Malformed("invalid upstream response header");
    loop {
        // Where each kept header's name and value lie in the head: the head is frozen
        // once parsed, and the values become slices of it.
        let mut spans = [((0usize, 0usize), (0usize, 0usize)); RESPONSE_HEADERS];
        let mut kept = 0;
        let (len, status, judged) = {
            let mut slots = [MaybeUninit::<Header<'_>>::uninit(); RESPONSE_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            let Some((len, version, status)) = parse_head(buf, &mut resp, &mut slots)? else {
                return Ok(None);
            };
            if status < 200 {
                (len, status, None)
            } else {
                let j = judge(&resp, version, status, head_request)?;
                let base = buf.as_ptr() as usize;
                let at = |part: &[u8]| {
                    let start = part.as_ptr() as usize - base;
                    (start, start + part.len())
                };
                for h in resp.headers.iter() {
                    if !hop_by_hop(h.name) && !j.connection.names(h.name) {
                        spans[kept] = (at(h.name.as_bytes()), at(h.value));
                        kept += 1;
                    }
                }
                (len, status, Some((j.framing, j.reusable)))
            }
        };
        let Some((framing, reusable)) = judged else {
            buf.advance(len);
            continue;
        };
        let head = buf.split_to(len).freeze();
        let mut headers = http::HeaderMap::with_capacity(kept);
        for (name, value) in spans.into_iter().take(kept) {
            let name = http::HeaderName::from_bytes(&head[name.0..name.1]).map_err(|_| INVALID)?;
            let value = http::HeaderValue::from_maybe_shared(head.slice(value.0..value.1))
                .map_err(|_| INVALID)?;
            headers.append(name, value);
        }
        let status = http::StatusCode::from_u16(status).map_err(|_| INVALID)?;
        return Ok(Some(Parts {
            status,
            headers,
            framing,
            reusable,
        }));
    }
}

/// The fields of a chunked body's trailer section (its lines and the empty line ending
/// it, as [`super::chunked::Chunks`] checked them), hop-by-hop and framing fields left out; `None` when
/// none is left. More than 32 fields is refused as a bad upstream.
pub(crate) fn trailer_fields(section: &[u8]) -> Result<Option<http::HeaderMap>, BadResponse> {
    const INVALID: BadResponse = BadResponse::Malformed("invalid upstream trailer field");
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let fields = match httparse::parse_headers(section, &mut slots) {
        Ok(Status::Complete((_, fields))) => fields,
        _ => return Err(INVALID),
    };
    let mut map = http::HeaderMap::new();
    for f in fields {
        if hop_by_hop(f.name) || f.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let name = http::HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| INVALID)?;
        let value = http::HeaderValue::from_bytes(f.value).map_err(|_| INVALID)?;
        map.append(name, value);
    }
    Ok((!map.is_empty()).then_some(map))
}

/// Appends `HTTP/1.1 <code> <reason>\r\n`: `reason` when one is given and not empty (an
/// upstream's own), the status's canonical reason otherwise.
pub fn status_line(out: &mut Vec<u8>, status: u16, reason: Option<&str>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(status).as_slice());
    out.push(b' ');
    let reason = reason.filter(|r| !r.is_empty()).or_else(|| {
        http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
    });
    out.extend_from_slice(reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends one `name: value\r\n` header line. Inlined: it runs once per header of
/// every proxied head, where a call per header showed in the instruction count.
#[inline]
pub fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A status code (100..=999, as httparse guarantees) as three ASCII digits.
fn itoa3(status: u16) -> [u8; 3] {
    [
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Option<(String, String, u64, usize)> {
        let mut slots = request_slots();
        match parse_request(raw, &mut slots, 8192, 100) {
            Parsed::Plain(r) => Some((
                r.method.to_string(),
                r.host.to_string(),
                r.content_length,
                r.len,
            )),
            _ => None,
        }
    }

    #[test]
    fn plain_requests_are_taken_and_the_rest_left_to_hyper() {
        let get = b"GET /a?b=1 HTTP/1.1\r\nHost: x:1\r\n\r\nextra";
        assert_eq!(
            parse(get),
            Some(("GET".into(), "x:1".into(), 0, get.len() - 5))
        );
        let post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(parse(post).map(|p| p.2), Some(3));
        for other in [
            &b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\n\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n",
            b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(parse(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
        let mut slots = request_slots();
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHo", &mut slots, 8192, 100),
            Parsed::Partial
        ));
        let mut slots = request_slots();
        assert!(matches!(
            parse_request(
                b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n",
                &mut slots,
                8192,
                1
            ),
            Parsed::Other
        ));
        let mut slots = request_slots();
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\nA: {}", "b".repeat(300));
        assert!(matches!(
            parse_request(big.as_bytes(), &mut slots, 256, 100),
            Parsed::Other
        ));
    }

    #[test]
    fn status_and_header_lines_are_written_as_http_1_1() {
        let mut out = Vec::new();
        status_line(&mut out, 200, None);
        status_line(&mut out, 404, Some("Gone Fishing"));
        status_line(&mut out, 599, Some(""));
        header_line(&mut out, b"connection", b"close");
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nHTTP/1.1 404 Gone Fishing\r\nHTTP/1.1 599 \r\nconnection: close\r\n"
        );
    }

    #[test]
    fn header_maps_hold_every_header_in_order() {
        let raw = b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
        let mut slots = request_slots();
        let Parsed::Plain(req) = parse_request(raw, &mut slots, 1024, 16) else {
            panic!("a plain head");
        };
        let map = req.header_map().expect("valid");
        assert_eq!(map["host"], "x");
        let all: Vec<_> = map.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert_eq!(req.path(), "/a");
    }

    #[test]
    fn upstream_request_heads_drop_hop_by_hop_and_add_forwarding() {
        let raw = b"GET /x HTTP/1.1\r\nHost: app\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n";
        let mut slots = request_slots();
        let Parsed::Plain(req) = parse_request(raw, &mut slots, 8192, 100) else {
            panic!("plain");
        };
        let mut out = Vec::new();
        let fw = Forwarding {
            target: ("/", "y"),
            peer: "127.0.0.1",
            https: false,
        };
        write_upstream_request(&req, &fw, &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "GET /y HTTP/1.1\r\nHost: app\r\nAccept: */*\r\n\
             x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\n\
             x-forwarded-host: app\r\nx-forwarded-proto: http\r\n\r\n"
        );
    }

    fn respond(raw: &[u8], head_request: bool) -> (Result<Option<Response>, BadResponse>, String) {
        let mut out = Vec::new();
        let add = Additions {
            head_request,
            close: false,
            hsts: None,
            alt_svc: None,
        };
        let r = parse_response(raw, &add, &mut out);
        (r, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn upstream_response_heads_are_framed_and_cleaned() {
        let (r, out) = respond(
            b"HTTP/1.1 200 OK\r\nDate: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nhi",
            false,
        );
        let r = r.expect("ok").expect("whole");
        assert_eq!(
            (r.status, r.framing, r.reusable),
            (200, Framing::Length(2), true)
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 2\r\n\r\n"
        );
        let (r, out) = respond(
            b"HTTP/1.1 200 OK\r\nDate: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(r.expect("ok").expect("whole").framing, Framing::Chunked);
        assert!(out.contains("transfer-encoding: chunked\r\n"));
        let (r, out) = respond(b"HTTP/1.0 200 OK\r\nDate: x\r\n\r\nbody", false);
        let r = r.expect("ok").expect("whole");
        assert_eq!((r.framing, r.reusable), (Framing::UntilClose, false));
        assert!(out.contains("connection: close\r\n"));
        let (r, _) = respond(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(r.expect("ok").expect("whole").framing, Framing::None);
        let (r, out) = respond(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false);
        assert_eq!(r.expect("ok").expect("whole").status, 103);
        assert!(out.is_empty());
        let (r, _) = respond(b"HTTP/1.1 200 OK\r\nContent-Len", false);
        assert!(matches!(r, Ok(None)));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTX/1.1 200 OK\r\n\r\n",
        ] {
            assert!(
                respond(bad, false).0.is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn response_parts_keep_end_to_end_headers_as_slices_of_the_head() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 4\r\n\r\nbody"[..],
        );
        let parts = take_response(&mut buf, false)
            .expect("valid")
            .expect("whole");
        assert_eq!(parts.status, 200);
        assert_eq!(parts.framing, Framing::Length(4));
        assert!(parts.reusable);
        let a: Vec<_> = parts.headers.get_all("x-a").iter().collect();
        assert_eq!(a, ["1", "2"]);
        assert!(!parts.headers.contains_key("x-hop") && !parts.headers.contains_key("keep-alive"));
        assert_eq!(parts.headers["content-length"], "4");
        assert_eq!(&buf[..], b"body");
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-A"[..]);
        assert!(
            take_response(&mut partial, false)
                .expect("valid so far")
                .is_none()
        );
        let mut bad = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
        );
        assert!(take_response(&mut bad, false).is_err());
    }
}
