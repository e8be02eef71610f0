//! Sockets that show what they read: the start of a request head (to name a refused one),
//! the bytes an upgraded connection carried.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Something shown every byte read off a socket.
pub(crate) trait Tap {
    /// `bytes` were just read.
    fn saw(&self, bytes: &[u8]);
}

/// Counts the bytes read.
impl Tap for Arc<AtomicU64> {
    fn saw(&self, bytes: &[u8]) {
        self.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
}

/// A socket that shows what it reads to a [`Tap`], and writes through untouched.
pub(crate) struct ReadTap<S, T> {
    io: S,
    tap: T,
}

impl<S, T> ReadTap<S, T> {
    pub(crate) fn new(io: S, tap: T) -> Self {
        ReadTap { io, tap }
    }
}

impl<S: AsyncRead + Unpin, T: Tap + Unpin> AsyncRead for ReadTap<S, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                self.tap.saw(read);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin, T: Unpin> AsyncWrite for ReadTap<S, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
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
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
