//! The HTTP/1.1 connections to the backends: per backend, a stack of idle keep-alive connections
//! over hyper's own connection API.
//!
//! A general client pool (hyper-util's) keys its idle connections by scheme and authority, hashes
//! that key three times per request, races a checkout against a lazily started connect, and
//! spawns a task per request that waits for the connection to be free again. Here a backend is an
//! index, so a request takes the newest idle connection of its backend from a short list, and the
//! connection goes back when the response body ends, from the body itself.
//!
//! What the pool keeps from a general one:
//! - A connection is reused only once its response body has ended; a body dropped before its end
//!   closes the connection (hyper cannot skip the rest of an HTTP/1.1 message).
//! - An idle connection the worker has closed is not reused, even when its task has not seen the
//!   close yet (it learns of it at the runtime's next turn of the event loop; a request handed to
//!   it before then would be written into the closed socket and lost): before reuse, one
//!   `recv(MSG_PEEK)` on a duplicate of its socket looks for the close ([`CloseProbe`]).
//! - A request that never left (the reused connection was found closed, or the worker closed it
//!   as the request was handed over) is sent again on another connection; one that left is not.
//! - A connection idle for [`IDLE_TIMEOUT`] is not reused (see there). It is closed at the
//!   backend's next checkout or return, at the latest by the next readiness probe, so at most
//!   the backend's slots' worth of connections outlive their use by a probe period.
//! - After [`Http1Pool::renew`] no connection to the backend's previous process is reused.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::BackendError;
use super::stream::{BackendAddr, CloseProbe, connect};

/// How long an idle connection to a backend is kept for reuse: shorter than the keep-alive
/// timeouts of the servers workers run (gunicorn 2 s, uvicorn, hypercorn and Node 5 s). A
/// connection idle that long is about to be closed by the worker, and a request sent on it as the
/// worker closes it is lost (the worker resets it: a 502, and a failed readiness probe takes the
/// worker out of rotation). Reopening a local connection after a second of silence costs far less
/// than that.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// File descriptors one connection to a backend holds: its socket, and the duplicate its
/// [`CloseProbe`] peeks through.
pub const FDS_PER_CONNECTION: usize = 2;
/// The `Host` a request without one is sent with (HTTP/1.1 requires one; servers such as uvicorn
/// refuse a request without it).
pub const DEFAULT_HOST: &str = "localhost";

/// The keep-alive connections to every backend over HTTP/1.1.
#[derive(Clone)]
pub struct Http1Pool {
    shared: Arc<Shared>,
}

struct Shared {
    addrs: Vec<BackendAddr>,
    backends: Vec<Mutex<Idle>>,
}

/// One backend's idle connections, oldest first, and the number of its current process.
#[derive(Default)]
struct Idle {
    epoch: u64,
    connections: Vec<IdleConnection>,
}

struct IdleConnection {
    sender: SendRequest<Body>,
    probe: CloseProbe,
    since: Instant,
}

fn lock(idle: &Mutex<Idle>) -> MutexGuard<'_, Idle> {
    idle.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Idle {
    /// Drops the connections idle for [`IDLE_TIMEOUT`] or more (they are at the front).
    fn expire(&mut self, now: Instant) {
        let fresh = self
            .connections
            .iter()
            .position(|c| now.saturating_duration_since(c.since) < IDLE_TIMEOUT)
            .unwrap_or(self.connections.len());
        self.connections.drain(..fresh);
    }
}

/// A connection in use by one exchange; [`Lease::release`] puts it back.
struct Lease {
    shared: Arc<Shared>,
    backend: usize,
    epoch: u64,
    sender: SendRequest<Body>,
    probe: CloseProbe,
}

impl Lease {
    /// Returns the connection to its backend's idle list, unless it is closed or the backend has
    /// a new process since it was opened.
    fn release(self) {
        if self.sender.is_closed() {
            return;
        }
        let Some(idle) = self.shared.backends.get(self.backend) else {
            return;
        };
        let now = Instant::now();
        let mut idle = lock(idle);
        if idle.epoch != self.epoch {
            return;
        }
        idle.expire(now);
        idle.connections.push(IdleConnection {
            sender: self.sender,
            probe: self.probe,
            since: now,
        });
    }
}

impl Http1Pool {
    /// A pool for these backends (backend `i` is `addrs[i]`), with no connection yet.
    pub fn new(addrs: Vec<BackendAddr>) -> Self {
        let backends = addrs.iter().map(|_| Mutex::default()).collect();
        Self {
            shared: Arc::new(Shared { addrs, backends }),
        }
    }

    /// Sends `request` (origin-form URI) to backend `i`, on an idle connection or a new one, and
    /// resolves to the response head; the connection is reused once the response body ends.
    pub async fn send(
        &self,
        i: usize,
        mut request: Request<Body>,
    ) -> Result<Response<PooledBody>, BackendError> {
        if !request.headers().contains_key(header::HOST) {
            request
                .headers_mut()
                .insert(header::HOST, HeaderValue::from_static(DEFAULT_HOST));
        }
        loop {
            let (mut lease, reused) = match self.checkout(i) {
                Some(lease) => (lease, true),
                None => (self.connect(i).await?, false),
            };
            if reused && lease.sender.ready().await.is_err() {
                // Closed since it went idle: nothing was sent.
                continue;
            }
            match lease.sender.try_send_request(request).await {
                Ok(response) => return Ok(response.map(|body| PooledBody::new(body, lease))),
                Err(mut error) => match error.take_message() {
                    // The request never left a reused connection (closed as it was handed
                    // over): another connection may take it.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(error.into_error().into()),
                },
            }
        }
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.shared.addrs.len()
    }

    /// The address of backend `i`.
    pub fn addr(&self, i: usize) -> Option<&BackendAddr> {
        self.shared.addrs.get(i)
    }

    /// Forgets backend `i`'s idle connections and refuses those in use when they come back: a
    /// new process is about to serve there.
    pub fn renew(&self, i: usize) {
        if let Some(idle) = self.shared.backends.get(i) {
            let mut idle = lock(idle);
            idle.epoch = idle.epoch.wrapping_add(1);
            idle.connections.clear();
        }
    }

    /// The newest idle connection to backend `i` that is still open and fresh. The socket is
    /// peeked at with the list unlocked: a system call under the lock would hold up every other
    /// checkout and return of the backend (with more than one runtime thread).
    fn checkout(&self, i: usize) -> Option<Lease> {
        let idle = self.shared.backends.get(i)?;
        loop {
            let (connection, epoch) = {
                let mut idle = lock(idle);
                idle.expire(Instant::now());
                (idle.connections.pop()?, idle.epoch)
            };
            // Closed by the worker: seen by its task, or not yet (the close is in the socket).
            if !connection.sender.is_closed() && !connection.probe.peer_closed() {
                return Some(Lease {
                    shared: self.shared.clone(),
                    backend: i,
                    epoch,
                    sender: connection.sender,
                    probe: connection.probe,
                });
            }
        }
    }

    /// Opens a connection to backend `i`; its connection task runs on its own.
    async fn connect(&self, i: usize) -> Result<Lease, BackendError> {
        let addr = self
            .shared
            .addrs
            .get(i)
            .ok_or_else(|| format!("no backend {i}"))?;
        let epoch = self
            .shared
            .backends
            .get(i)
            .map_or(0, |idle| lock(idle).epoch);
        let stream = connect(addr).await?;
        let probe = stream.close_probe()?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "backend connection ended");
            }
        });
        Ok(Lease {
            shared: self.shared.clone(),
            backend: i,
            epoch,
            sender,
            probe,
        })
    }
}

/// A backend's response body that gives its connection back to the pool when it ends.
pub struct PooledBody {
    inner: Incoming,
    /// The connection, until the body ends (back to the pool) or fails (closed).
    lease: Option<Lease>,
}

impl PooledBody {
    fn new(inner: Incoming, lease: Lease) -> Self {
        let mut body = Self {
            inner,
            lease: Some(lease),
        };
        // A response without a body (204, 304, `content-length: 0`) frees the connection now.
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            // A failed body leaves the connection unusable: dropping the lease closes it.
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.lease.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    /// A body dropped at its end (its reader saw the end without polling past it) still returns
    /// the connection; one dropped earlier closes it.
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// How the fake worker treats a connection after an answer.
    #[derive(Clone, Copy)]
    enum Keep {
        /// Open for the next request, however long it takes.
        Alive,
        /// Open for a request that comes within this keep-alive timeout. One that arrives on a
        /// connection idle that long finds it closing: the worker drops it without answering,
        /// as uvicorn does when its keep-alive timer fires as the request comes in (the worst
        /// case of the race).
        For(Duration),
        /// Closed after one answer (as a worker's keep-alive timer or a restart does).
        OneRequest,
    }

    /// A worker on a Unix socket that answers every request with `body_len` bytes and counts the
    /// connections it accepts.
    struct Worker {
        _dir: tempfile::TempDir,
        addr: BackendAddr,
        accepted: Arc<AtomicUsize>,
    }

    impl Worker {
        fn start(body_len: usize, keep: Keep) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("worker.sock");
            let listener = tokio::net::UnixListener::bind(&path).unwrap();
            let accepted = Arc::new(AtomicUsize::new(0));
            let counter = accepted.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(stream, body_len, keep));
                }
            });
            Self {
                _dir: dir,
                addr: BackendAddr::Unix(path),
                accepted,
            }
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    async fn serve(mut stream: tokio::net::UnixStream, body_len: usize, keep: Keep) {
        let mut idle_since = Instant::now();
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            head.extend_from_slice(&chunk[..n]);
            if !head.windows(4).any(|w| w == b"\r\n\r\n") {
                continue;
            }
            head.clear();
            if matches!(keep, Keep::For(timeout) if idle_since.elapsed() >= timeout) {
                return;
            }
            let mut answer =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\n\r\n").into_bytes();
            answer.resize(answer.len() + body_len, b'x');
            if stream.write_all(&answer).await.is_err() || matches!(keep, Keep::OneRequest) {
                return;
            }
            idle_since = Instant::now();
        }
    }

    fn get() -> Request<Body> {
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = http::Uri::from_static("/predict");
        request
    }

    async fn read_all(pool: &Http1Pool) -> usize {
        let response = pool.send(0, get()).await.unwrap();
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .len()
    }

    #[tokio::test]
    async fn a_connection_is_reused_after_its_body_ends_and_not_after_a_renew() {
        let worker = Worker::start(2, Keep::Alive);
        let pool = Http1Pool::new(vec![worker.addr.clone()]);
        assert_eq!(read_all(&pool).await, 2);
        assert_eq!(read_all(&pool).await, 2);
        assert_eq!(
            worker.accepted(),
            1,
            "back-to-back requests share a connection"
        );

        // A new process serves the backend: the connection to the old one is not reused.
        pool.renew(0);
        assert_eq!(read_all(&pool).await, 2);
        assert_eq!(worker.accepted(), 2);
        // Nor is one that was in use across the renew, when it comes back.
        let in_use = pool.send(0, get()).await.unwrap();
        pool.renew(0);
        in_use.into_body().collect().await.unwrap();
        assert_eq!(read_all(&pool).await, 2);
        assert_eq!(worker.accepted(), 3);
    }

    #[tokio::test]
    async fn a_connection_idle_as_long_as_the_worker_keeps_it_is_not_reused() {
        // A worker that keeps idle connections a little longer than the pool does (gunicorn
        // keeps them 2 s, uvicorn 5 s).
        let keep_alive = IDLE_TIMEOUT + Duration::from_millis(300);
        let worker = Worker::start(2, Keep::For(keep_alive));
        let pool = Http1Pool::new(vec![worker.addr.clone()]);
        assert_eq!(read_all(&pool).await, 2);
        assert_eq!(read_all(&pool).await, 2);
        assert_eq!(worker.accepted(), 1);

        // Idle as long as the worker keeps a connection: reusing it now would lose the request.
        tokio::time::sleep(keep_alive).await;
        let response = pool.send(0, get()).await;
        assert!(
            response.is_ok(),
            "the request went on the connection the worker is closing: {:?}",
            response.err()
        );
        assert_eq!(worker.accepted(), 2);
    }

    #[tokio::test]
    async fn a_connection_the_worker_closed_while_idle_is_not_used() {
        let worker = Worker::start(2, Keep::OneRequest);
        let pool = Http1Pool::new(vec![worker.addr.clone()]);
        assert_eq!(read_all(&pool).await, 2);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lock(&pool.shared.backends[0])
            .connections
            .iter()
            .all(|c| c.sender.is_closed())
        {
            assert!(Instant::now() < deadline, "the close was never noticed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            read_all(&pool).await,
            2,
            "the request went on a new connection"
        );
        assert_eq!(worker.accepted(), 2);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let worker = Worker::start(1 << 20, Keep::Alive);
        let pool = Http1Pool::new(vec![worker.addr.clone()]);
        let mut body = pool.send(0, get()).await.unwrap().into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.data_ref().is_some_and(|d| d.len() < 1 << 20));
        drop(body);
        // The rest of that answer is still on the connection: the next request takes another.
        assert_eq!(read_all(&pool).await, 1 << 20);
        assert_eq!(worker.accepted(), 2);
        // A body read to its end gives its connection back.
        assert_eq!(read_all(&pool).await, 1 << 20);
        assert_eq!(worker.accepted(), 2);
    }

    /// Reads one request head from a blocking stream (false at end of stream).
    fn read_head(stream: &mut std::os::unix::net::UnixStream) -> bool {
        use std::io::Read;
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        true
    }

    // One runtime thread, so the connection's task cannot notice the close before the request is
    // handed to it: the worker runs on a thread of its own and the test blocks while it closes.
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_handed_to_a_connection_that_closed_unseen_goes_on_another() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (close, closing) = std::sync::mpsc::channel::<()>();
        let (closed, is_closed) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            // First connection: one answer, then closed when the test says so.
            let (mut first, _) = listener.accept().unwrap();
            assert!(read_head(&mut first));
            first.write_all(answer).unwrap();
            closing.recv().unwrap();
            first.shutdown(std::net::Shutdown::Both).unwrap();
            drop(first);
            closed.send(()).unwrap();
            // Second connection: the request that the first one never took.
            let (mut second, _) = listener.accept().unwrap();
            assert!(read_head(&mut second));
            second.write_all(answer).unwrap();
        });
        let pool = Http1Pool::new(vec![BackendAddr::Unix(path)]);
        assert_eq!(read_all(&pool).await, 2);

        close.send(()).unwrap();
        // Blocks the runtime: the idle connection's task is not polled until the request is
        // on its way to it, so the pool hands the request to a connection whose end is unread.
        is_closed.recv().unwrap();
        assert!(
            !lock(&pool.shared.backends[0]).connections[0]
                .sender
                .is_closed(),
            "the pool has not seen the close"
        );
        let response = pool.send(0, get()).await;
        assert!(
            response.is_ok(),
            "the unsent request was lost: {:?}",
            response.err()
        );
        let body = response.unwrap().into_body().collect().await.unwrap();
        assert_eq!(body.to_bytes(), "ok");
        worker.join().unwrap();
    }

    #[tokio::test]
    async fn a_request_without_a_host_gets_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let pool = Http1Pool::new(vec![BackendAddr::Unix(path)]);
        let seen = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut chunk = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut chunk).await.unwrap();
                head.extend_from_slice(&chunk[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let response = pool.send(0, get()).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::NO_CONTENT);
        let head = seen.await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /predict http/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nhost: localhost\r\n"), "{head}");
    }
}
