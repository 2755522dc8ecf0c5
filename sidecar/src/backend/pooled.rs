//! The real [`Backend`]: each backend is a worker's Unix socket or TCP port, or the proxy-mode
//! TCP upstream, reached through one pooled hyper client. The client addresses backend `i` as
//! `http://backend-<i>/...`; the connector maps that authority to the socket or TCP address, so
//! the pool keeps idle keep-alive connections per backend. gRPC calls take a second, HTTP/2
//! client, addressed `http://grpc-<i>/...`, to the backend's gRPC address.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Uri, header};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::credential::UpstreamCredential;
use super::{Backend, BackendResult, BoxFuture};
use crate::config::UpstreamAddr;

/// Host prefix of the internal backend authorities (HTTP/1.1).
const AUTHORITY_PREFIX: &str = "backend-";
/// Host prefix of the authorities of the backends' gRPC addresses (HTTP/2).
const GRPC_AUTHORITY_PREFIX: &str = "grpc-";
/// Host header sent with readiness probes (HTTP/1.1 servers such as uvicorn require one).
const PROBE_HOST: &str = "localhost";
/// How long an idle HTTP/1.1 connection to a backend is kept for reuse: shorter than the
/// keep-alive timeouts of the servers workers run (gunicorn 2 s, uvicorn, hypercorn and Node 5 s).
/// A connection idle that long is about to be closed by the worker, and a request sent on it as
/// the worker closes it is lost (the worker resets it: a 502, and a failed readiness probe takes
/// the worker out of rotation). Reopening a local connection after a second of silence costs far
/// less than that.
const HTTP_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an idle HTTP/2 (gRPC) connection is kept: an HTTP/2 server announces its close
/// (GOAWAY) and names the last stream it took, so a request never races it unseen.
const GRPC_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
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

/// Which of a backend's addresses a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    /// Its HTTP/1.1 address.
    Http,
    /// Its gRPC address (HTTP/2; the HTTP address when it has none).
    Grpc,
}

/// The backends, indexed like the dispatcher's slots.
#[derive(Debug)]
struct Backends {
    addrs: Vec<BackendAddr>,
    grpc_addrs: Vec<Option<BackendAddr>>,
    /// Per backend, the epoch of its current process: its authorities are `backend-<i>` and
    /// `grpc-<i>`, then `backend-<i>-<epoch>` and `grpc-<i>-<epoch>` after each
    /// [`Backend::renew`], so the pools (keyed by authority) never hand a request a connection
    /// to a process that was there before.
    epochs: Vec<RwLock<Epoch>>,
}

/// A backend's current process: its epoch and the authorities of its two pools, made once per
/// process rather than per request.
#[derive(Debug)]
struct Epoch {
    number: u64,
    http: Authority,
    grpc: Authority,
}

impl Epoch {
    fn new(i: usize, number: u64) -> Self {
        Self {
            number,
            http: authority(Channel::Http, i, number),
            grpc: authority(Channel::Grpc, i, number),
        }
    }
}

/// The authority of backend `i` on `channel` in `epoch` (always valid: a prefix and digits).
fn authority(channel: Channel, i: usize, epoch: u64) -> Authority {
    let prefix = match channel {
        Channel::Http => AUTHORITY_PREFIX,
        Channel::Grpc => GRPC_AUTHORITY_PREFIX,
    };
    let text = if epoch == 0 {
        format!("{prefix}{i}")
    } else {
        format!("{prefix}{i}-{epoch}")
    };
    Authority::try_from(text).unwrap_or_else(|_| Authority::from_static("backend-invalid"))
}

impl Backends {
    /// Backends for these addresses, without gRPC addresses.
    fn new(addrs: Vec<BackendAddr>) -> Self {
        Self {
            epochs: (0..addrs.len())
                .map(|i| RwLock::new(Epoch::new(i, 0)))
                .collect(),
            grpc_addrs: vec![None; addrs.len()],
            addrs,
        }
    }

    /// The address a connection for `channel` of backend `i` goes to.
    fn target(&self, i: usize, channel: Channel) -> Option<&BackendAddr> {
        match channel {
            Channel::Grpc => self.grpc_addrs.get(i)?.as_ref().or_else(|| self.addr(i)),
            Channel::Http => self.addr(i),
        }
    }

    /// Number of backends.
    fn len(&self) -> usize {
        self.addrs.len()
    }

    /// The address of backend `i`.
    fn addr(&self, i: usize) -> Option<&BackendAddr> {
        self.addrs.get(i)
    }

    /// The absolute URI the pooled clients use for `path_and_query` on backend `i`.
    fn uri(
        &self,
        i: usize,
        channel: Channel,
        path_and_query: &PathAndQuery,
    ) -> Result<Uri, http::Error> {
        let authority = self.epochs.get(i).map_or_else(
            || Authority::from_static("backend-invalid"),
            |epoch| {
                let epoch = epoch.read().unwrap_or_else(PoisonError::into_inner);
                match channel {
                    Channel::Http => epoch.http.clone(),
                    Channel::Grpc => epoch.grpc.clone(),
                }
            },
        );
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority)
            .path_and_query(path_and_query.clone())
            .build()
    }

    /// The backend and channel a URI of [`Backends::uri`] names.
    fn index_of(&self, uri: &Uri) -> Option<(usize, Channel)> {
        let host = uri.host()?;
        let (rest, channel) = match host.strip_prefix(AUTHORITY_PREFIX) {
            Some(rest) => (rest, Channel::Http),
            None => (host.strip_prefix(GRPC_AUTHORITY_PREFIX)?, Channel::Grpc),
        };
        Some((rest.split('-').next()?.parse().ok()?, channel))
    }

    /// Moves backend `i` to a new epoch (see [`Self::epochs`]).
    fn renew(&self, i: usize) {
        if let Some(epoch) = self.epochs.get(i) {
            let mut epoch = epoch.write().unwrap_or_else(PoisonError::into_inner);
            *epoch = Epoch::new(i, epoch.number.wrapping_add(1));
        }
    }
}

/// A connection to a backend: Unix or TCP.
enum BackendStream {
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

impl Connection for BackendStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Connects `http://backend-<i>` to backend `i`'s socket or TCP address.
#[derive(Clone)]
struct BackendConnector {
    backends: Arc<Backends>,
}

impl tower::Service<Uri> for BackendConnector {
    type Response = TokioIo<BackendStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let addr = self
            .backends
            .index_of(&uri)
            .and_then(|(i, channel)| self.backends.target(i, channel).cloned());
        Box::pin(async move {
            let stream = match addr {
                Some(BackendAddr::Unix(path)) => BackendStream::Unix(connect_unix(&path).await?),
                Some(BackendAddr::Tcp(addr)) => {
                    let stream = TcpStream::connect(addr.target()).await?;
                    stream.set_nodelay(true)?;
                    BackendStream::Tcp(stream)
                }
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no backend for {uri}"),
                    ));
                }
            };
            Ok(TokioIo::new(stream))
        })
    }
}

/// Connects to a worker's Unix socket. A Unix socket whose accept queue is full refuses a
/// non-blocking connect with `EAGAIN` at once (TCP would queue the SYN instead); Python servers
/// often listen with a backlog of 5 (`socketserver`), so a burst of new connections (new clients
/// right after a pod starts) would otherwise turn into 502s. Nothing was sent yet, so retrying is
/// safe: with a short backoff, for at most [`UNIX_CONNECT_RETRY_BUDGET`].
async fn connect_unix(path: &std::path::Path) -> io::Result<UnixStream> {
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

/// A pooled client to every backend (HTTP/1.1, or HTTP/2 for gRPC).
type BackendClient = Client<BackendConnector, Body>;

/// The backends at these addresses, behind pooled keep-alive clients: HTTP/1.1 for requests,
/// HTTP/2 (prior knowledge) for gRPC calls.
pub struct PooledBackends {
    backends: Arc<Backends>,
    client: BackendClient,
    grpc_client: BackendClient,
    credential: Option<Arc<UpstreamCredential>>,
}

impl PooledBackends {
    /// Pooled clients for these addresses (backend `i` is `addrs[i]`) and the backends' gRPC
    /// addresses (`None`: gRPC goes to the backend's HTTP address, over HTTP/2).
    pub fn new(addrs: Vec<BackendAddr>, grpc_addrs: Vec<Option<BackendAddr>>) -> Self {
        let mut backends = Backends::new(addrs);
        backends
            .grpc_addrs
            .iter_mut()
            .zip(grpc_addrs)
            .for_each(|(slot, addr)| *slot = addr);
        let backends = Arc::new(backends);
        let connector = BackendConnector {
            backends: backends.clone(),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(HTTP_POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector.clone());
        let grpc_client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(GRPC_POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(true)
            .build(connector);
        Self {
            backends,
            client,
            grpc_client,
            credential: None,
        }
    }

    /// Adds `credential` to every request and probe, and removes its header from responses.
    pub fn with_credential(mut self, credential: Option<UpstreamCredential>) -> Self {
        self.credential = credential.map(Arc::new);
        self
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }
}

impl Backend for PooledBackends {
    fn send(&self, i: usize, mut request: Request<Body>) -> BoxFuture<BackendResult> {
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let (channel, client) = if request.version() == http::Version::HTTP_2 {
            (Channel::Grpc, &self.grpc_client)
        } else {
            (Channel::Http, &self.client)
        };
        match self.backends.uri(i, channel, &path) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => return Box::pin(std::future::ready(Err(e.into()))),
        }
        let credential = self.credential.clone();
        if let Some(credential) = &credential {
            credential.add_to(request.headers_mut());
        }
        let pending = client.request(request);
        Box::pin(async move {
            match pending.await {
                Ok(mut response) => {
                    if let Some(credential) = credential {
                        credential.strip_from(response.headers_mut());
                    }
                    Ok(response.map(Body::new))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn probe(&self, i: usize, path: PathAndQuery, timeout: Duration) -> BoxFuture<bool> {
        let uri = self.backends.uri(i, Channel::Http, &path);
        let client = self.client.clone();
        let credential = self.credential.clone();
        Box::pin(async move {
            let Ok(uri) = uri else {
                return false;
            };
            let mut request = Request::new(Body::empty());
            *request.uri_mut() = uri;
            request
                .headers_mut()
                .insert(header::HOST, HeaderValue::from_static(PROBE_HOST));
            if let Some(credential) = &credential {
                credential.add_to(request.headers_mut());
            }
            let attempt = async {
                let response = client.request(request).await.ok()?;
                let ok = response.status() == http::StatusCode::OK;
                // Read the (small) body so the connection goes back to the pool.
                response.into_body().collect().await.ok()?;
                Some(ok)
            };
            matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
        })
    }

    fn address(&self, i: usize) -> Option<String> {
        self.backends.addr(i).map(ToString::to_string)
    }

    fn renew(&self, i: usize) {
        self.backends.renew(i);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A worker on `listener` whose keep-alive timeout is `keep_alive`, met at its worst: a
    /// request that arrives on a connection idle that long finds it closing (the worker drops the
    /// connection without answering, as uvicorn does when its keep-alive timer fires as the
    /// request comes in). Every other request gets 200. Counts the connections it accepts.
    async fn worker_with_keep_alive(
        listener: tokio::net::UnixListener,
        keep_alive: Duration,
        accepted: Arc<AtomicUsize>,
    ) {
        while let Ok((mut stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut idle_since = tokio::time::Instant::now();
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
                    if idle_since.elapsed() >= keep_alive {
                        return;
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                    idle_since = tokio::time::Instant::now();
                }
            });
        }
    }

    async fn status_of(backends: &PooledBackends) -> Result<http::StatusCode, String> {
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = Uri::from_static("/ready");
        let response = backends.send(0, request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        // Read the body so the connection goes back to the pool.
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(status)
    }

    #[tokio::test]
    async fn a_connection_idle_as_long_as_the_worker_keeps_it_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        // A worker that keeps idle connections a little longer than the pool does (gunicorn
        // keeps them 2 s, uvicorn 5 s).
        let keep_alive = HTTP_POOL_IDLE_TIMEOUT + Duration::from_millis(300);
        tokio::spawn(worker_with_keep_alive(
            listener,
            keep_alive,
            accepted.clone(),
        ));
        let backends = PooledBackends::new(vec![BackendAddr::Unix(path)], vec![None]);

        assert_eq!(status_of(&backends).await, Ok(http::StatusCode::OK));
        assert_eq!(status_of(&backends).await, Ok(http::StatusCode::OK));
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "back-to-back requests share a connection"
        );

        // Idle as long as the worker keeps a connection: reusing it now would lose the request.
        tokio::time::sleep(keep_alive).await;
        assert_eq!(
            status_of(&backends).await,
            Ok(http::StatusCode::OK),
            "the request goes on a new connection, not the one the worker is closing"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
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

    #[test]
    fn authorities_map_back_to_indexes() {
        let b = Backends::new(vec![
            BackendAddr::Unix("/tmp/a.sock".into()),
            BackendAddr::Unix("/tmp/b.sock".into()),
        ]);
        let uri = b
            .uri(1, Channel::Http, &PathAndQuery::from_static("/predict?x=1"))
            .unwrap();
        assert_eq!(uri.to_string(), "http://backend-1/predict?x=1");
        assert_eq!(b.index_of(&uri), Some((1, Channel::Http)));
        let uri = b
            .uri(0, Channel::Grpc, &PathAndQuery::from_static("/pkg.S/M"))
            .unwrap();
        assert_eq!(uri.to_string(), "http://grpc-0/pkg.S/M");
        assert_eq!(b.index_of(&uri), Some((0, Channel::Grpc)));
        // Without a gRPC address, gRPC goes to the HTTP address.
        assert_eq!(b.target(0, Channel::Grpc), b.addr(0));
        assert_eq!(b.index_of(&Uri::from_static("http://elsewhere/")), None);
        b.renew(1);
        let renewed = b
            .uri(1, Channel::Http, &PathAndQuery::from_static("/"))
            .unwrap();
        assert_eq!(renewed.to_string(), "http://backend-1-1/");
        assert_eq!(
            b.index_of(&renewed),
            Some((1, Channel::Http)),
            "a new pool key, the same address"
        );
        let renewed = b
            .uri(1, Channel::Grpc, &PathAndQuery::from_static("/"))
            .unwrap();
        assert_eq!(renewed.to_string(), "http://grpc-1-1/");
        assert_eq!(b.index_of(&renewed), Some((1, Channel::Grpc)));
        assert_eq!(
            b.uri(0, Channel::Http, &PathAndQuery::from_static("/"))
                .unwrap()
                .to_string(),
            "http://backend-0/"
        );
    }
}
