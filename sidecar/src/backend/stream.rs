//! Connections to a backend's address: a worker's Unix socket or a TCP port.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::config::UpstreamAddr;

/// First pause before retrying a Unix socket connect the worker's full accept queue refused.
const UNIX_CONNECT_RETRY_FIRST: Duration = Duration::from_millis(1);
/// Longest pause between two such retries.
const UNIX_CONNECT_RETRY_MAX_PAUSE: Duration = Duration::from_millis(50);
/// Total time spent retrying before the connect error is returned.
const UNIX_CONNECT_RETRY_BUDGET: Duration = Duration::from_secs(2);

/// One backend's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendAddr {
    /// A worker's Unix socket.
    Unix(PathBuf),
    /// The proxy-mode upstream.
    Tcp(UpstreamAddr),
}

impl std::fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp(addr) => write!(f, "{}", addr.target()),
        }
    }
}

/// A connection to a backend: Unix or TCP.
pub enum BackendStream {
    /// Unix socket.
    Unix(UnixStream),
    /// TCP.
    Tcp(TcpStream),
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Unix(s) => s.is_write_vectored(),
            Self::Tcp(s) => s.is_write_vectored(),
        }
    }
}

/// Opens a connection to `addr` (TCP without Nagle's delay).
pub async fn connect(addr: &BackendAddr) -> io::Result<BackendStream> {
    match addr {
        BackendAddr::Unix(path) => Ok(BackendStream::Unix(connect_unix(path).await?)),
        BackendAddr::Tcp(addr) => {
            let stream = TcpStream::connect(addr.target()).await?;
            stream.set_nodelay(true)?;
            Ok(BackendStream::Tcp(stream))
        }
    }
}

/// Connects to a worker's Unix socket. A Unix socket whose accept queue is full refuses a
/// non-blocking connect with `EAGAIN` at once (TCP would queue the SYN instead); Python servers
/// often listen with a backlog of 5 (`socketserver`), so a burst of new connections (new clients
/// right after a pod starts) would otherwise turn into 502s. Nothing was sent yet, so retrying is
/// safe: with a short backoff, for at most [`UNIX_CONNECT_RETRY_BUDGET`].
pub async fn connect_unix(path: &std::path::Path) -> io::Result<UnixStream> {
    let deadline = tokio::time::Instant::now() + UNIX_CONNECT_RETRY_BUDGET;
    let mut pause = UNIX_CONNECT_RETRY_FIRST;
    loop {
        match UnixStream::connect(path).await {
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    && tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(UNIX_CONNECT_RETRY_MAX_PAUSE);
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn unix_connect_waits_for_a_full_accept_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // Fill the accept queue until the kernel refuses connections outright.
        let mut queued = Vec::new();
        loop {
            match UnixStream::connect(&path).await {
                Ok(s) => queued.push(s),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                    break;
                }
            }
            assert!(queued.len() < 100_000, "the accept queue never filled");
        }
        // The worker accepts again a little later.
        let accepting = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let accepted = listener.accept().unwrap();
            // Keep listening (the listener is dropped only after the test's connect).
            (listener, accepted)
        });
        let stream = connect_unix(&path).await;
        assert!(stream.is_ok(), "{stream:?}");
        accepting.join().unwrap();
    }
}
