//! A request body bounded by idleness instead of total time: an upload of any size on a
//! slow link goes on while bytes keep coming, and a client that sends nothing for the
//! idle timeout fails the body (and frees what it held). Used for multipart record
//! writes, which the stack exempts from the whole-request timeout (`middleware`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Set on a request whose body is bounded by idleness: no whole-request timeout for it.
#[derive(Clone, Debug)]
pub(crate) struct IdleBounded {
    /// True once the body timed out, so the handler can answer 408 rather than 400.
    pub timed_out: Arc<AtomicBool>,
}

pub(crate) struct IdleBody {
    inner: Body,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Whether the clock runs: from the first poll after a frame until the next frame.
    waiting: bool,
    timed_out: Arc<AtomicBool>,
}

impl IdleBody {
    pub(crate) fn new(inner: Body, idle: Duration, timed_out: Arc<AtomicBool>) -> IdleBody {
        IdleBody {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            timed_out,
        }
    }
}

impl http_body::Body for IdleBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        // The clock runs only while the server waits for the client, never while the
        // handler is busy with what it read.
        if !this.waiting {
            this.waiting = true;
            let deadline = Instant::now() + this.idle;
            this.sleep.as_mut().reset(deadline);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.timed_out.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no request body bytes for {:?}", this.idle),
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
