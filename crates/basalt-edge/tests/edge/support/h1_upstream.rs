//! A scripted HTTP/1.1 upstream on 127.0.0.1 for byte-level proxy tests: it records every
//! request exactly as it arrived (raw head, decoded body, which connection) and answers
//! with whatever bytes the test's script says, with pauses, closes and endless streams.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::h1_wire::{Ended, Head, Wire, parse_request_head};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which accepted connection (0, 1, ...) it came on.
    pub conn: usize,
    pub head: Head,
    /// The body with any chunked framing removed.
    pub body: Vec<u8>,
}

/// What the upstream does after reading a request.
pub enum Step {
    /// Writes these bytes.
    Send(Vec<u8>),
    Pause(Duration),
    /// Closes the connection (no more requests are read from it).
    Close,
    /// Answers nothing and keeps the connection until the peer closes it (bounded).
    Stall,
    /// Writes `chunk` every `every` until a write fails, then records the cut.
    Stream {
        every: Duration,
        chunk: Vec<u8>,
    },
    /// Writes back every byte read until the peer closes (a switched protocol).
    Echo,
    /// Reads and drops this many bytes (a body left unread by an early answer).
    Skip(usize),
}

/// Everything the upstream observed.
#[derive(Default)]
pub struct Log {
    pub seen: Mutex<Vec<Seen>>,
    pub accepted: AtomicUsize,
    /// Connections the peer (the edge) closed while the upstream waited for a request.
    pub closed_by_peer: AtomicUsize,
    /// A `Step::Stream` found its connection gone.
    pub stream_cut: AtomicBool,
}

pub struct RawUpstream {
    pub addr: SocketAddr,
    pub log: Arc<Log>,
}

impl RawUpstream {
    pub fn seen(&self) -> Vec<Seen> {
        self.log
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    pub fn requests(&self) -> usize {
        self.log
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
    pub fn accepted(&self) -> usize {
        self.log.accepted.load(Ordering::SeqCst)
    }
}

type Script = Arc<dyn Fn(&Seen) -> Vec<Step> + Send + Sync>;

/// An upstream answering every request it reads with the steps `script` returns for it.
pub async fn raw_upstream(
    script: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static,
) -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(Log::default());
    let script: Script = Arc::new(script);
    let l = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let conn = l.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(Wire::new(stream), conn, l.clone(), script.clone()));
        }
    });
    RawUpstream { addr, log }
}

/// An upstream that accepts each connection and closes it at once, answering nothing.
pub async fn slamming_upstream() -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(Log::default());
    let l = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            l.accepted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    RawUpstream { addr, log }
}

async fn serve(mut wire: Wire, conn: usize, log: Arc<Log>, script: Script) {
    // Generous: a request may legitimately wait behind a slow test step.
    wire.patience = Duration::from_secs(10);
    loop {
        let seen = match read_request(&mut wire, conn).await {
            Ok(s) => s,
            Err(Ended::Closed) => {
                log.closed_by_peer.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Err(_) => return,
        };
        let steps = script(&seen);
        log.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(seen);
        for step in steps {
            match step {
                Step::Send(bytes) => {
                    if wire.stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Step::Pause(d) => tokio::time::sleep(d).await,
                Step::Close => return,
                Step::Stall => {
                    let _ = wire.until_close().await;
                    return;
                }
                Step::Skip(n) => {
                    if wire.take(n).await.is_err() {
                        return;
                    }
                }
                Step::Echo => {
                    echo(wire).await;
                    return;
                }
                Step::Stream { every, chunk } => {
                    // Bounded: a stream nobody cuts ends the test's upstream after a while.
                    for _ in 0..400 {
                        if wire.stream.write_all(&chunk).await.is_err() {
                            log.stream_cut.store(true, Ordering::SeqCst);
                            return;
                        }
                        tokio::time::sleep(every).await;
                    }
                    return;
                }
            }
        }
    }
}

async fn echo(mut wire: Wire) {
    let pending = std::mem::take(&mut wire.buf);
    if wire.stream.write_all(&pending).await.is_err() {
        return;
    }
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(wire.patience, wire.stream.read(&mut chunk)).await;
        let n = match read {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        if wire.stream.write_all(&chunk[..n]).await.is_err() {
            return;
        }
    }
}

async fn read_request(wire: &mut Wire, conn: usize) -> Result<Seen, Ended> {
    let raw = wire.raw_head().await?;
    let head = parse_request_head(&raw)?;
    if head.has("x-answer-before-body") {
        // The test wants the answer before the body is read, as an upstream refusing an
        // upload does; the body stays unread on the connection.
        return Ok(Seen {
            conn,
            head,
            body: Vec::new(),
        });
    }
    let chunked = head
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
    let body = if chunked {
        wire.chunked_body().await?
    } else {
        let n = head
            .get("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        wire.take(n).await?
    };
    Ok(Seen { conn, head, body })
}

/// `200 OK` with a `Content-Length` body.
pub fn ok(body: &str) -> Vec<Step> {
    vec![Step::Send(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )]
}

/// 1 MiB that is not periodic over short spans, so a dropped or repeated piece shows.
pub fn mebibyte() -> Vec<u8> {
    (0..1usize << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}
