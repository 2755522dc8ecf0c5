//! Per-connection protection for both ports: a client that stops reading its response is cut off
//! after the response write timeout (which drops the response and frees the worker slot it held);
//! each port holds at most so many connections (the public one sized to fit the open file limit,
//! the admin one small and separate, so probes are answered however busy the public port is);
//! request heads are capped in size; and log lines a flood would repeat are rate-limited.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tracing::{info, warn};

use modelserver_units::format_duration;

/// Default for `--response-write-timeout`: how long a response write may make no progress.
pub const DEFAULT_RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default for `--header-read-timeout`: longest time a client may take to send a request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default for `--max-connections`: open connections on the public port.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// Open connections on the admin port (probes, drain, scrapes: a handful at a time).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;
/// File descriptors kept free of client connections: listeners, worker pipes and sockets' files,
/// log output, the socket directory, and the odd file the runtime opens.
pub const RESERVED_FDS: usize = 64;
/// Fewest public connections allowed, however low the open file limit.
pub const MIN_MAX_CONNECTIONS: usize = 16;
/// Largest request head (request line and headers) a client may send; beyond it: 431.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;
/// Shortest time between two log lines about the same flood (full port, failing accepts).
pub const FLOOD_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Connection settings of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnSettings {
    /// A response write that makes no progress this long ends the connection.
    pub write_timeout: Duration,
    /// Connections held at once; beyond it new ones are closed at once.
    pub max_connections: usize,
    /// Longest time a client may take to send a request head.
    pub header_read_timeout: Duration,
}

impl Default for ConnSettings {
    fn default() -> Self {
        Self {
            write_timeout: DEFAULT_RESPONSE_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// The soft open file limit of this process, when it can be read.
pub fn open_file_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _hard)| soft)
}

/// The public port's connection limit: `configured`, lowered when the open file limit could not
/// hold that many besides the admin port's budget, `backend_fds` connections to the backends and
/// [`RESERVED_FDS`] (never below [`MIN_MAX_CONNECTIONS`]).
pub fn fit_to_file_limit(configured: usize, file_limit: Option<u64>, backend_fds: usize) -> usize {
    let Some(limit) = file_limit.and_then(|l| usize::try_from(l).ok()) else {
        return configured;
    };
    let room = limit
        .saturating_sub(ADMIN_MAX_CONNECTIONS)
        .saturating_sub(backend_fds)
        .saturating_sub(RESERVED_FDS);
    configured.min(room.max(MIN_MAX_CONNECTIONS))
}

/// Lets a repeated log line through at most once per [`FLOOD_LOG_INTERVAL`], counting the ones
/// it held back.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    /// `Some(held back since the last one)` when a line may be logged now.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < FLOOD_LOG_INTERVAL)
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

/// Logs (rate-limited) that a port is full and a new connection was closed.
pub fn log_connection_refused(throttle: &mut Throttle, server: &str, max: usize, peer: SocketAddr) {
    if let Some(held_back) = throttle.allow() {
        warn!(
            server,
            max_connections = max,
            %peer,
            more_since_last_message = held_back,
            "connection limit reached: closing new connections at once"
        );
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

    #[test]
    fn the_connection_limit_fits_the_open_file_limit() {
        assert_eq!(fit_to_file_limit(1024, None, 8), 1024);
        assert_eq!(fit_to_file_limit(1024, Some(1_048_576), 8), 1024);
        assert_eq!(fit_to_file_limit(1024, Some(1024), 8), 1024 - 64 - 8 - 64);
        assert_eq!(fit_to_file_limit(1024, Some(100), 8), MIN_MAX_CONNECTIONS);
    }

    #[test]
    fn the_throttle_lets_one_line_through_per_interval() {
        let mut t = Throttle::default();
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        t.last = Some(Instant::now() - FLOOD_LOG_INTERVAL);
        assert_eq!(t.allow(), Some(2));
    }

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
