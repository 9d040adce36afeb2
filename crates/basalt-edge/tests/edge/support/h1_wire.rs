//! HTTP/1.1 read by hand on a raw socket, for byte-level proxy tests: a buffered
//! connection that takes lines, heads, counted and chunked bodies with a bounded wait on
//! every read, and a response reader that frames bodies the way RFC 9112 section 6.3 says.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single read waits for bytes before the test gives up on the peer.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Why a read ended without what it wanted.
#[derive(Debug, PartialEq)]
pub enum Ended {
    /// The peer closed (or reset) the connection.
    Closed,
    /// Nothing arrived within the patience.
    Silent,
    /// The bytes were not HTTP/1.1 as expected.
    Malformed(String),
}

/// One side of a TCP connection with the bytes read but not yet consumed.
pub struct Wire {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    pub patience: Duration,
}

/// How a response's body was delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Framing {
    /// No body by rule: a HEAD answer, 1xx, 204 or 304.
    Bodiless,
    ContentLength,
    Chunked,
    /// Neither: the body ran to the end of the connection.
    UntilClose,
}

/// A parsed HTTP/1 message head, names lowercased; values kept as raw bytes.
#[derive(Clone)]
pub struct Head {
    pub raw: Vec<u8>,
    /// Request: method and target. Response: empty.
    pub method: String,
    pub target: String,
    /// Response: status code. Request: 0.
    pub status: u16,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor: u8,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Head {
    // The raw head as text: what a failing assertion needs to show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.raw))
    }
}

impl Head {
    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name` as text (lossy), or "" when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// How many times `name` appears.
    pub fn count(&self, name: &str) -> usize {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(n, _)| *n == name).count()
    }

    fn chunked(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n == "transfer-encoding"
                && String::from_utf8_lossy(v)
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        })
    }

    fn content_length(&self) -> Result<Option<usize>, Ended> {
        let mut found = None;
        for (n, v) in &self.headers {
            if n != "content-length" {
                continue;
            }
            let parsed: usize = std::str::from_utf8(v)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| Ended::Malformed(format!("bad content-length {v:?}")))?;
            if found.is_some_and(|f| f != parsed) {
                return Err(Ended::Malformed("conflicting content-length".into()));
            }
            found = Some(parsed);
        }
        Ok(found)
    }
}

/// A response as the client received it: head, body (chunked framing removed) and how
/// the body was delimited.
#[derive(Debug, Clone)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
    pub framing: Framing,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Wire {
    pub async fn connect(addr: SocketAddr) -> Wire {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Wire::new(stream)
    }

    pub fn new(stream: TcpStream) -> Wire {
        Wire {
            stream,
            buf: Vec::new(),
            patience: PATIENCE,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes `bytes` unless the peer closed (or stopped reading for the patience): true
    /// when all were written.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        let write = self.stream.write_all(bytes);
        matches!(tokio::time::timeout(self.patience, write).await, Ok(Ok(())))
    }

    /// Reads once more into the buffer: the bytes read, or why none came.
    async fn more(&mut self) -> Result<usize, Ended> {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(self.patience, self.stream.read(&mut chunk)).await {
            Err(_) => Err(Ended::Silent),
            Ok(Err(_)) | Ok(Ok(0)) => Err(Ended::Closed),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
        }
    }

    /// The bytes up to and including the first `delimiter`, consumed.
    async fn through(&mut self, delimiter: &[u8], limit: usize) -> Result<Vec<u8>, Ended> {
        let mut from = 0;
        loop {
            if let Some(i) = find(&self.buf[from..], delimiter) {
                let end = from + i + delimiter.len();
                return Ok(self.buf.drain(..end).collect());
            }
            if self.buf.len() > limit {
                return Err(Ended::Malformed(format!(
                    "no {delimiter:?} in {limit} bytes"
                )));
            }
            from = self.buf.len().saturating_sub(delimiter.len());
            self.more().await?;
        }
    }

    /// Exactly `n` bytes, consumed.
    pub async fn take(&mut self, n: usize) -> Result<Vec<u8>, Ended> {
        while self.buf.len() < n {
            self.more().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// A message head through its empty line.
    pub async fn raw_head(&mut self) -> Result<Vec<u8>, Ended> {
        self.through(b"\r\n\r\n", 64 * 1024).await
    }

    /// A chunked body with its framing removed; chunk extensions and trailers are read
    /// and dropped.
    pub async fn chunked_body(&mut self) -> Result<Vec<u8>, Ended> {
        let mut body = Vec::new();
        loop {
            let line = self.through(b"\r\n", 4096).await?;
            let size = &line[..line.len() - 2];
            let size = size.split(|b| *b == b';').next().unwrap_or(b"");
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| Ended::Malformed(format!("chunk size line {line:?}")))?;
            if size == 0 {
                // Trailer fields, then the empty line.
                while self.through(b"\r\n", 4096).await? != b"\r\n" {}
                return Ok(body);
            }
            body.extend_from_slice(&self.take(size).await?);
            if self.take(2).await? != b"\r\n" {
                return Err(Ended::Malformed("chunk data not followed by CRLF".into()));
            }
        }
    }

    /// Reads until `needle` has arrived `times` times in the unconsumed bytes.
    pub async fn until_seen(&mut self, needle: &[u8], times: usize) -> Result<(), Ended> {
        while self
            .buf
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
            < times
        {
            self.more().await?;
        }
        Ok(())
    }

    /// Everything until the peer closes (bounded by the patience per read).
    pub async fn until_close(&mut self) -> Result<Vec<u8>, Ended> {
        loop {
            match self.more().await {
                Ok(_) => {}
                Err(Ended::Closed) => return Ok(std::mem::take(&mut self.buf)),
                Err(e) => return Err(e),
            }
        }
    }

    /// True when the peer closes within `within`, whatever it sends first; false when the
    /// connection is still open then.
    pub async fn closes_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Err(_)) | Ok(Ok(0)) => return true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next response, the body framed as RFC 9112 6.3 says for a request of `method`.
    pub async fn try_response(&mut self, method: &str) -> Result<Response, Ended> {
        let raw = self.raw_head().await?;
        let head = parse_response_head(&raw)?;
        let bodiless = method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&head.status)
            || head.status == 204
            || head.status == 304;
        let (body, framing) = if bodiless {
            (Vec::new(), Framing::Bodiless)
        } else if head.chunked() {
            (self.chunked_body().await?, Framing::Chunked)
        } else if let Some(n) = head.content_length()? {
            (self.take(n).await?, Framing::ContentLength)
        } else {
            (self.until_close().await?, Framing::UntilClose)
        };
        Ok(Response {
            head,
            body,
            framing,
        })
    }

    /// The next response; panics with what was read when there is none.
    pub async fn response(&mut self, method: &str) -> Response {
        match self.try_response(method).await {
            Ok(r) => r,
            Err(e) => panic!(
                "no response: {e:?}; unread: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// The next final response, skipping interim 1xx responses other than 101.
    pub async fn final_response(&mut self, method: &str) -> Response {
        loop {
            let r = self.response(method).await;
            if !(100..200).contains(&r.status()) || r.status() == 101 {
                return r;
            }
        }
    }

    /// Sends a GET for `path` and returns its final response.
    pub async fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: edge.test\r\n\r\n").as_bytes())
            .await;
        self.final_response("GET").await
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn headers_of(parsed: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    parsed
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect()
}

pub fn parse_response_head(raw: &[u8]) -> Result<Head, Ended> {
    let mut storage = [httparse::EMPTY_HEADER; 128];
    let mut r = httparse::Response::new(&mut storage);
    match r.parse(raw) {
        Ok(httparse::Status::Complete(_)) => Ok(Head {
            raw: raw.to_vec(),
            method: String::new(),
            target: String::new(),
            status: r.code.unwrap_or(0),
            minor: r.version.unwrap_or(0),
            headers: headers_of(r.headers),
        }),
        other => Err(Ended::Malformed(format!(
            "response head {other:?}: {:?}",
            String::from_utf8_lossy(raw)
        ))),
    }
}

pub fn parse_request_head(raw: &[u8]) -> Result<Head, Ended> {
    let mut storage = [httparse::EMPTY_HEADER; 128];
    let mut r = httparse::Request::new(&mut storage);
    match r.parse(raw) {
        Ok(httparse::Status::Complete(_)) => Ok(Head {
            raw: raw.to_vec(),
            method: r.method.unwrap_or("").to_string(),
            target: r.path.unwrap_or("").to_string(),
            status: 0,
            minor: r.version.unwrap_or(0),
            headers: headers_of(r.headers),
        }),
        other => Err(Ended::Malformed(format!(
            "request head {other:?}: {:?}",
            String::from_utf8_lossy(raw)
        ))),
    }
}
