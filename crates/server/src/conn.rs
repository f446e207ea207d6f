//! A TCP listener for [`axum::serve()`] that bounds open connections and closes idle ones.
//!
//! - At most `max_connections` are open; further clients wait in the kernel's backlog until one closes
//!   (the listener stops accepting), so file descriptors and per-connection memory stay bounded.
//! - A connection on which no byte moves for `idle_timeout`, in either direction, is closed: a silent
//!   keep-alive connection, a client sending its headers too slowly, or one that stopped reading its
//!   answer. Bytes the server writes count as activity, so a long response that keeps streaming (a job's
//!   event stream with its heartbeats) is not cut while the client sends nothing; a request's body has its
//!   own deadline besides ([`crate::request`]).
//! - `TCP_NODELAY` is set on every connection (small answers go out at once).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The bounded listener.
#[derive(Debug)]
pub struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl BoundedListener {
    /// Wraps `inner`.
    pub fn new(inner: TcpListener, max_connections: usize, idle_timeout: Duration) -> Self {
        BoundedListener { inner, slots: Arc::new(Semaphore::new(max_connections.max(1))), idle_timeout }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = Arc::clone(&self.slots).acquire_owned().await.expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((io, addr)) => {
                    let _ = io.set_nodelay(true);
                    let sleep = Box::pin(tokio::time::sleep(self.idle_timeout));
                    return (BoundedStream { io, _permit: permit, idle: self.idle_timeout, sleep }, addr);
                }
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection holding its slot until dropped.
#[derive(Debug)]
pub struct BoundedStream {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl AsyncRead for BoundedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.active();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.stalled(cx),
        }
    }
}

impl BoundedStream {
    fn active(&mut self) {
        let deadline = Instant::now() + self.idle;
        self.sleep.as_mut().reset(deadline);
    }

    /// Bytes written count as activity; a write that cannot proceed fails once the connection has been idle
    /// too long (a client that stopped reading).
    fn after_write(&mut self, written: Poll<io::Result<usize>>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.active();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.stalled(cx),
        }
    }

    /// A read or write that cannot proceed: an error once the connection has been idle too long.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.after_write(written, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.after_write(written, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The address of the client of a connection accepted by [`BoundedListener`], for
/// `into_make_service_with_connect_info::<ClientAddr>()` (training jobs are limited per client address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, BoundedListener>> for ClientAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, BoundedListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}
