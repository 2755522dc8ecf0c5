//! Per-connection protection for both ports: a client that stops reading its response is cut off
//! after the response write timeout (which drops the response and frees the worker slot it held).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tracing::info;

use modelserver_units::format_duration;

/// Default for `--response-write-timeout`: how long a response write may make no progress.
pub const DEFAULT_RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection settings of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnSettings {
    /// A response write that makes no progress this long ends the connection.
    pub write_timeout: Duration,
}

impl Default for ConnSettings {
    fn default() -> Self {
        Self {
            write_timeout: DEFAULT_RESPONSE_WRITE_TIMEOUT,
        }
    }
}

/// A client connection whose writes fail with `TimedOut` once the client has taken nothing for
/// `timeout` while the server had bytes to send (its receive window stayed full). Reads and idle
/// keep-alive time are not limited here.
pub struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    peer: SocketAddr,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    /// Wraps `inner`, the connection from `peer`.
    pub fn new(inner: S, timeout: Duration, peer: SocketAddr) -> Self {
        Self {
            inner,
            timeout,
            peer,
            stalled: None,
        }
    }

    /// Called when a write made no progress: starts the stall clock, or fails once it ran out.
    fn stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        info!(
            peer = %self.peer,
            timeout = %format_duration(timeout),
            "client stopped reading its response: closing the connection"
        );
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {}", format_duration(timeout)),
        )))
    }

    fn progress<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => self.stall(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(result, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_write_that_makes_no_progress_times_out() {
        let (client, server) = tokio::io::duplex(16);
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut conn = WriteTimeout::new(server, Duration::from_millis(100), peer);
        conn.write_all(&[0; 16]).await.unwrap();
        // The client reads nothing: the next write stalls and fails after the timeout.
        let err = conn.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }
}
