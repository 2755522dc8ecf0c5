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

impl BackendStream {
    /// A second handle on this connection's socket, to look for the backend's close while the
    /// connection is idle ([`CloseProbe::peer_closed`]).
    pub fn close_probe(&self) -> io::Result<CloseProbe> {
        use std::os::fd::AsFd;
        let fd = match self {
            Self::Unix(s) => s.as_fd().try_clone_to_owned()?,
            Self::Tcp(s) => s.as_fd().try_clone_to_owned()?,
        };
        Ok(CloseProbe(fd))
    }
}

/// A duplicate of an idle connection's socket descriptor, which only ever peeks.
pub struct CloseProbe(std::os::fd::OwnedFd);

impl CloseProbe {
    /// True when the backend has closed its end (or reset it, or sent bytes nobody asked for,
    /// such as a `408` before closing) of a connection on which no request is outstanding: a
    /// request written to it would be lost. Costs one `recv(MSG_PEEK | MSG_DONTWAIT)`. Needed
    /// because the connection's own task learns of a close only at the runtime's next turn of
    /// its event loop, and a request handed over before that is written into the closed socket.
    pub fn peer_closed(&self) -> bool {
        use nix::sys::socket::{MsgFlags, recv};
        use std::os::fd::AsRawFd;
        let mut byte = [0u8; 1];
        let peeked = recv(
            self.0.as_raw_fd(),
            &mut byte,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        );
        peeked != Err(nix::errno::Errno::EAGAIN)
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
    async fn the_close_probe_sees_a_close_and_unasked_bytes_and_reads_nothing() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut ours = connect(&BackendAddr::Unix(path)).await.unwrap();
        let (mut theirs, _) = listener.accept().unwrap();
        let probe = ours.close_probe().unwrap();
        assert!(!probe.peer_closed(), "open and quiet");

        std::io::Write::write_all(&mut theirs, b"HTTP/1.1").unwrap();
        assert!(probe.peer_closed(), "bytes nobody asked for");
        assert!(probe.peer_closed(), "peeking leaves them where they are");
        let mut first = [0u8; 8];
        ours.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1");
        assert!(!probe.peer_closed(), "quiet again once they are read");

        drop(theirs);
        assert!(probe.peer_closed(), "closed");
    }

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
