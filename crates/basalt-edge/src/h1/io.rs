//! The fast path's connections and waits: an upstream connection (its socket and read
//! buffer), reads from the client bounded by a deadline or a drain signal, and reads from
//! the upstream that notice a client hanging up or answering early.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;

/// Bytes read ahead from a socket at most before they are consumed: a head or body chunk
/// fits many times over, and a client pipelining more waits.
const READ_AHEAD: usize = 64 * 1024;

/// Room made in a buffer before each read.
const READ_CHUNK: usize = 8 * 1024;

fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
}

/// An HTTP/1.1 connection to an upstream target and the bytes read from it not yet used.
pub(crate) struct Upstream {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

impl Upstream {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// An idle connection is still usable: the upstream has neither closed it nor sent
    /// anything unasked. A socket that turned readable while idle is read once to tell.
    pub fn still_open(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

/// Why a read ended without data.
#[derive(Debug, PartialEq)]
pub(super) enum Ended {
    Eof,
    TimedOut,
    /// The edge is shutting down and the client had nothing in flight.
    Draining,
    Failed,
    /// The client hung up while the upstream was being read.
    ClientGone,
    /// The upstream spoke (or closed) while the request body was still coming.
    Answered,
}

/// A timer kept per connection and armed lazily: a wait re-arms it only when its deadline
/// is earlier than the one already set, and a wake-up before the deadline re-arms it then.
/// Most waits end with data before any deadline, so most requests touch no timer.
pub(super) struct Timer {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Timer {
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: None,
        }
    }

    /// Ready once `deadline` has passed.
    pub fn poll_until(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        loop {
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            if self.armed.is_none_or(|a| a > deadline) {
                self.sleep.as_mut().reset(deadline);
                self.armed = Some(deadline);
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => self.armed = None,
            }
        }
    }
}

/// The edge's shutdown signal as a connection sees it: a flag read between requests, and
/// a future (made once per connection) that wakes the connection's task when it is set.
pub(super) struct Drain {
    rx: tokio::sync::watch::Receiver<bool>,
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The future was polled once: it holds the task's waker from then on (a task's
    /// waker does not change), so later waits read the flag instead of polling it again.
    registered: bool,
}

impl Drain {
    pub fn new(rx: tokio::sync::watch::Receiver<bool>) -> Self {
        let mut waiting = rx.clone();
        Self {
            rx,
            signal: Box::pin(async move {
                let _ = waiting.wait_for(|draining| *draining).await;
            }),
            registered: false,
        }
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.fired() {
            return true;
        }
        // The flag never goes back and the future is ready only once it is set, so a
        // finished future is never polled again.
        if !self.registered {
            self.registered = true;
            return self.signal.as_mut().poll(cx).is_ready();
        }
        false
    }

    /// Whether shutting down has begun, without waiting.
    pub fn fired(&self) -> bool {
        *self.rx.borrow()
    }
}

/// Reads more of the client's bytes into `buf`, giving up at `deadline`, or when `drain`
/// fires (only passed while no request is in flight).
pub(super) async fn read_client<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    timer: &mut Timer,
    deadline: Instant,
    mut drain: Option<&mut Drain>,
) -> Result<(), Ended> {
    make_room(buf);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(read) = poll_more(io, cx, buf) {
            return Poll::Ready(read);
        }
        if let Some(d) = drain.as_deref_mut()
            && d.poll_fired(cx)
        {
            return Poll::Ready(Err(Ended::Draining));
        }
        timer
            .poll_until(cx, deadline)
            .map(|()| Err(Ended::TimedOut))
    })
    .await
}

/// One read from `io` appended to `buf`: `Ok` with data, `Eof` or `Failed`.
fn poll_more<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<Result<(), Ended>> {
    poll_read_buf(Pin::new(io), cx, buf).map(|read| match read {
        Ok(0) => Err(Ended::Eof),
        Ok(_) => Ok(()),
        Err(_) => Err(Ended::Failed),
    })
}

/// Reads what the upstream sent into `up.buf`: ready once it sent something, closed, or
/// failed (the response read that follows tells which).
pub(super) fn poll_upstream(up: &mut Upstream, cx: &mut Context<'_>) -> Poll<()> {
    poll_read(up, cx).map(|_| ())
}

/// One read from the upstream appended to `up.buf`: how many bytes (0 at its end).
pub(super) fn poll_read(up: &mut Upstream, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    make_room(&mut up.buf);
    poll_read_buf(Pin::new(&mut up.stream), cx, &mut up.buf)
}

/// Reads more of a request body from the client (a stall past `stall` ends it), unless
/// the upstream answers first.
pub(super) async fn read_body<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    up: &mut Upstream,
    timer: &mut Timer,
    stall: Instant,
) -> Result<(), Ended> {
    make_room(buf);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(read) = poll_more(io, cx, buf) {
            return Poll::Ready(read);
        }
        if poll_upstream(up, cx).is_ready() {
            return Poll::Ready(Err(Ended::Answered));
        }
        timer.poll_until(cx, stall).map(|()| Err(Ended::TimedOut))
    })
    .await
}

/// Reads more of the upstream's bytes into `up.buf`, giving up at `deadline` if one is
/// given. Meanwhile the client is read too (up to a bound), so a client that hangs up
/// during a long response is noticed; what it sends is kept for its next request.
pub(super) async fn read_upstream<I: AsyncRead + Unpin>(
    up: &mut Upstream,
    client: &mut I,
    client_buf: &mut BytesMut,
    timer: &mut Timer,
    deadline: Option<Instant>,
) -> Result<(), Ended> {
    make_room(&mut up.buf);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(read) = poll_more(&mut up.stream, cx, &mut up.buf) {
            return Poll::Ready(read);
        }
        while client_buf.len() < READ_AHEAD {
            make_room(client_buf);
            match poll_read_buf(Pin::new(&mut *client), cx, client_buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    return Poll::Ready(Err(Ended::ClientGone));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => break,
            }
        }
        match deadline {
            Some(d) => timer.poll_until(cx, d).map(|()| Err(Ended::TimedOut)),
            None => Poll::Pending,
        }
    })
    .await
}
