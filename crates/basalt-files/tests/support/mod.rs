//! Test fixtures: a `moto_server` on a loopback port (killed on drop) and a generated body
//! that is never held in memory.

use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::task::{Context, Poll};
use std::time::Duration;

use basalt_files::S3Settings;
use tokio::io::{AsyncRead, ReadBuf};

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `moto_server`, killed when dropped.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts `moto_server` on 127.0.0.1, or `None` (with a note) when it is not
    /// installed; `.ci/run` installs it, so CI always runs the S3 suite.
    pub async fn start() -> Option<Moto> {
        let port = free_port();
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("moto_server not available ({e}): the S3 suite is skipped");
                return None;
            }
        };
        let moto = Moto { child, port };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(moto);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not listen on 127.0.0.1:{port} within 30 s");
    }

    /// Path-style settings for a new bucket named `bucket`.
    pub fn settings(&self, bucket: &str) -> S3Settings {
        let endpoint = format!("http://127.0.0.1:{}", self.port);
        // moto accepts unsigned requests: create the bucket with a plain PUT.
        let status = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, urllib.request as u; \
                 u.urlopen(u.Request(sys.argv[1], method='PUT'), timeout=30)",
                &format!("{endpoint}/{bucket}"),
            ])
            .status()
            .expect("python3");
        assert!(status.success(), "creating bucket {bucket}");
        S3Settings {
            bucket: bucket.into(),
            region: "us-east-1".into(),
            endpoint,
            access_key: "test".into(),
            secret: "test".into(),
            force_path_style: true,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `len` pseudo-random bytes from `seed`, generated as they are read; optionally failing
/// with an I/O error after `fail_after` bytes.
pub struct Pattern {
    len: u64,
    pos: u64,
    state: u64,
    fail_after: Option<u64>,
}

impl Pattern {
    pub fn new(len: u64, seed: u64) -> Pattern {
        Pattern {
            len,
            pos: 0,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            fail_after: None,
        }
    }

    pub fn failing_after(mut self, n: u64) -> Pattern {
        self.fail_after = Some(n);
        self
    }

    pub fn produced(&self) -> u64 {
        self.pos
    }

    fn next_byte(&mut self) -> u8 {
        // xorshift64: cheap, deterministic, not compressible by accident.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.pos += 1;
        (self.state >> 24) as u8
    }

    /// True when `chunk` is what the pattern produces next (advancing it).
    pub fn matches(&mut self, chunk: &[u8]) -> bool {
        chunk.iter().all(|b| *b == self.next_byte())
    }

    /// `n` bytes starting at `offset`.
    pub fn bytes_at(mut self, offset: u64, n: u64) -> Vec<u8> {
        for _ in 0..offset {
            self.next_byte();
        }
        (0..n).map(|_| self.next_byte()).collect()
    }
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.fail_after.is_some_and(|n| self.pos >= n) {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "the client went away",
            )));
        }
        let mut n = (self.len - self.pos).min(buf.remaining() as u64);
        if let Some(limit) = self.fail_after {
            n = n.min(limit - self.pos);
        }
        let this = &mut *self;
        let dst = buf.initialize_unfilled_to(n as usize);
        for b in dst.iter_mut() {
            *b = this.next_byte();
        }
        buf.advance(n as usize);
        Poll::Ready(Ok(()))
    }
}
