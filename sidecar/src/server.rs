//! The accept loop for both ports: one hyper connection task per client, TCP_NODELAY, HTTP/1.1
//! on both ports and HTTP/2 with prior knowledge on the public port (see [`crate::sniff`]), and
//! graceful shutdown: stop accepting (the listener closes, so new connections are refused),
//! let in-flight requests finish, close idle keep-alive connections.
//!
//! The public port also sends its keep-alive clients away as soon as draining starts: from then
//! on every response carries `Connection: close` and hyper closes the connection after writing
//! it, so a client learns from the response itself that it must reconnect (to another pod, once
//! endpoints have moved) instead of racing the idle close at the end of the drain delay. Requests
//! that were already in progress when draining started get the header too, since it is added
//! when the response leaves. An HTTP/2 connection gets GOAWAY when draining starts: its streams
//! in progress finish, and the client opens new ones on a new connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use http::{HeaderValue, header};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceExt};
use tracing::{debug, warn};

use crate::sniff::{Protocol, Replay, sniff};
use crate::tls::ALPN_HTTP2;
use tokio_rustls::TlsAcceptor;

use crate::conn::{
    ConnSettings, MAX_REQUEST_HEAD_BYTES, Throttle, WriteTimeout, log_connection_refused,
};

/// Pause after a failed accept (for example out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// The `Connection` header value that ends a keep-alive connection after the response.
pub const CONNECTION_CLOSE: &str = "close";

/// What a port serves: a clonable service from requests to responses (an axum `Router` on the
/// admin port, [`crate::http::public::PublicService`] on the public one).
pub trait PortService:
    Service<http::Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> PortService for S where
    S: Service<
            http::Request<Body>,
            Response = Response,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// The local address a request's connection was accepted on (a request extension, next to
/// axum's `ConnectInfo` with the peer's address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr(pub SocketAddr);

/// A running server.
pub struct ServerHandle {
    name: &'static str,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Serves `service` on `listener` until stopped; keep-alive connections stay open until then.
    pub fn spawn(
        name: &'static str,
        listener: TcpListener,
        service: impl PortService,
        settings: ConnSettings,
    ) -> Self {
        Self::start(name, listener, service, None, settings, None)
    }

    /// Serves `service` on `listener` until stopped, and once `draining` is cancelled answers
    /// every request with `Connection: close`, ending its connection after the response.
    /// With `tls`, every connection is TLS and ALPN picks HTTP/2 or HTTP/1.1.
    pub fn spawn_closing_on_drain(
        name: &'static str,
        listener: TcpListener,
        service: impl PortService,
        draining: CancellationToken,
        settings: ConnSettings,
        tls: Option<TlsAcceptor>,
    ) -> Self {
        Self::start(name, listener, service, Some(draining), settings, tls)
    }

    fn start(
        name: &'static str,
        listener: TcpListener,
        service: impl PortService,
        closing: Option<CancellationToken>,
        settings: ConnSettings,
        tls: Option<TlsAcceptor>,
    ) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            name,
            listener,
            service,
            closing,
            settings,
            tls,
            stop.clone(),
        ));
        Self { name, stop, task }
    }

    /// Stops accepting now and waits up to `timeout` for open connections to finish.
    /// Returns true when they all did.
    pub async fn shutdown(self, timeout: Duration) -> bool {
        self.stop.cancel();
        let mut task = self.task;
        match tokio::time::timeout(timeout, &mut task).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                warn!(server = self.name, error = %e, "server task failed");
                true
            }
            Err(_) => {
                task.abort();
                false
            }
        }
    }
}

async fn accept_loop<S: PortService>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    closing: Option<CancellationToken>,
    settings: ConnSettings,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(Some(settings.header_read_timeout))
        .max_header_size(MAX_REQUEST_HEAD_BYTES)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_REQUEST_HEAD_BYTES_U32)
        .keep_alive_interval(Some(HTTP2_KEEP_ALIVE_INTERVAL))
        .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT);
    // The public port (the one that closes on drain) speaks HTTP/2 as well; the admin port only
    // HTTP/1.1 (kubelet probes and scrapers).
    let builders = Arc::new(Builders {
        http1,
        http2: closing.is_some().then_some(http2),
        header_read_timeout: settings.header_read_timeout,
        tls,
    });
    let open = Arc::new(Semaphore::new(settings.max_connections));
    let connections = TaskTracker::new();
    let mut full_log = Throttle::default();
    let mut accept_log = Throttle::default();
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                if let Some(held_back) = accept_log.allow() {
                    warn!(server = name, error = %e, more_since_last_message = held_back, "accept failed");
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            // Full: close it now rather than let it wait unserved (and hold a file descriptor).
            drop(stream);
            log_connection_refused(&mut full_log, name, settings.max_connections, peer);
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(server = name, error = %e, "cannot set TCP_NODELAY");
        }
        let local = stream.local_addr().ok().map(LocalAddr);
        let connection = Connection {
            service: service.clone(),
            peer,
            local,
            closing: closing.clone(),
            stop: stop.clone(),
        };
        let stream = WriteTimeout::new(stream, settings.write_timeout, peer);
        let builders = builders.clone();
        connections.spawn(async move {
            if let Err(e) = connection.serve(stream, &builders).await {
                debug!(server = name, peer = %peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    // Dropping the listener closes the socket: new connections are refused from here on.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// HTTP/2 streams one client connection may have open at once (each request still takes its
/// place in the queue for a worker slot).
const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 256;
/// [`MAX_REQUEST_HEAD_BYTES`] as HTTP/2 counts it.
const MAX_REQUEST_HEAD_BYTES_U32: u32 = 64 * 1024;
/// An HTTP/2 connection silent this long is pinged, so a vanished client is noticed.
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// A ping unanswered this long ends the connection.
const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The connection builders of one port.
struct Builders {
    http1: http1::Builder,
    /// None: the port speaks HTTP/1.1 only.
    http2: Option<http2::Builder<TokioExecutor>>,
    header_read_timeout: Duration,
    /// TLS on every connection, when configured.
    tls: Option<TlsAcceptor>,
}

/// One accepted connection and what its requests need.
struct Connection<S> {
    service: S,
    peer: SocketAddr,
    local: Option<LocalAddr>,
    closing: Option<CancellationToken>,
    stop: CancellationToken,
}

/// The port's service as a hyper service: each request gets the peer and local addresses, and,
/// given a drain token, `Connection: close` once draining (HTTP/1 only).
fn hyper_service<S: PortService>(
    service: S,
    peer: SocketAddr,
    local: Option<LocalAddr>,
    closing: Option<CancellationToken>,
) -> TowerToHyperService<
    impl tower::Service<
        http::Request<Incoming>,
        Response = Response,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone
    + Send,
> {
    TowerToHyperService::new(
        service
            .map_request(move |request: http::Request<Incoming>| {
                let mut request = request.map(Body::new);
                let extensions = request.extensions_mut();
                extensions.insert(ConnectInfo::<SocketAddr>(peer));
                if let Some(local) = local {
                    extensions.insert(local);
                }
                request
            })
            .map_response(move |response: Response| close_if_draining(response, closing.as_ref())),
    )
}

impl<S: PortService> Connection<S> {
    /// Serves the connection until it ends: HTTP/2 when it opens with the preface (on a port
    /// that speaks it), HTTP/1.1 otherwise. On HTTP/2 a drain sends GOAWAY at once (streams in
    /// progress finish, the client opens new ones elsewhere); on HTTP/1.1 responses say
    /// `Connection: close`. Stopping the server ends both gracefully.
    async fn serve<T>(self, mut stream: T, builders: &Builders) -> Result<(), ConnectionError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let within = builders.header_read_timeout;
        if let Some(tls) = &builders.tls {
            // The handshake counts against the time a client has to send its request head.
            let stream = tokio::time::timeout(within, tls.accept(stream))
                .await
                .map_err(|_| ConnectionError::Silent)?
                .map_err(ConnectionError::Tls)?;
            let protocol = match stream.get_ref().1.alpn_protocol() {
                Some(ALPN_HTTP2) => Protocol::Http2,
                _ => Protocol::Http1,
            };
            return self.serve_as(protocol, stream, builders).await;
        }
        let (protocol, seen) = match &builders.http2 {
            Some(_) => tokio::time::timeout(within, sniff(&mut stream))
                .await
                .map_err(|_| ConnectionError::Silent)?
                .map_err(ConnectionError::Io)?,
            None => (Protocol::Http1, Vec::new()),
        };
        self.serve_as(protocol, Replay::new(seen, stream), builders)
            .await
    }

    /// Serves the connection as `protocol` (HTTP/1.1 when the port has no HTTP/2).
    async fn serve_as<T>(
        self,
        protocol: Protocol,
        stream: T,
        builders: &Builders,
    ) -> Result<(), ConnectionError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(stream);
        match (protocol, &builders.http2) {
            (Protocol::Http2, Some(http2)) => {
                let service = hyper_service(self.service, self.peer, self.local, None);
                let connection = http2.serve_connection(io, service);
                drive(connection, &self.stop, self.closing.as_ref()).await
            }
            _ => {
                let service =
                    hyper_service(self.service, self.peer, self.local, self.closing.clone());
                let connection = builders.http1.serve_connection(io, service);
                drive(connection, &self.stop, None).await
            }
        }
        .map_err(ConnectionError::Http)
    }
}

/// Why a connection ended badly (logged at debug level).
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    /// The client sent nothing within the header read timeout.
    #[error("no request within the header read timeout")]
    Silent,
    /// Reading the first bytes failed.
    #[error(transparent)]
    Io(std::io::Error),
    /// The TLS handshake failed.
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    /// The HTTP connection failed.
    #[error(transparent)]
    Http(hyper::Error),
}

/// A hyper connection that can be asked to end gracefully.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    /// HTTP/1: finish the request in progress, then close; HTTP/2: send GOAWAY, finish the
    /// streams in progress, then close.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S> Graceful for http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::Connection::graceful_shutdown(self);
    }
}

impl<I, S, E> Graceful for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: http_body::Body + Send + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}

/// Runs `connection` to its end, shutting it down gracefully when the server stops or, if
/// given, when `goaway` is cancelled (a drain).
async fn drive<C: Graceful>(
    connection: C,
    stop: &CancellationToken,
    goaway: Option<&CancellationToken>,
) -> Result<(), hyper::Error> {
    let mut connection = std::pin::pin!(connection);
    let drain = async {
        match goaway {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    let mut drain = std::pin::pin!(drain);
    tokio::select! {
        result = connection.as_mut() => return result,
        () = stop.cancelled() => {}
        () = drain.as_mut() => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

/// Adds `Connection: close` while draining; hyper then ends the connection after this response
/// (it treats the header as the last message on the connection).
fn close_if_draining(mut response: Response, closing: Option<&CancellationToken>) -> Response {
    if closing.is_some_and(CancellationToken::is_cancelled) {
        response.headers_mut().insert(
            header::CONNECTION,
            HeaderValue::from_static(CONNECTION_CLOSE),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::Router;
    use axum::routing::get;
    use tokio::sync::Notify;

    use super::*;

    /// Sends one GET on a blocking keep-alive connection; returns the lower-cased response head.
    fn get_once(reader: &mut BufReader<std::net::TcpStream>, path: &str) -> String {
        write!(
            reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"
        )
        .unwrap();
        let mut head = String::new();
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "closed mid-head");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        head
    }

    fn at_eof(reader: &mut BufReader<std::net::TcpStream>) -> bool {
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).is_ok_and(|n| n == 0)
    }

    /// A public-style server (closing on drain) with `/` and `/held`, which waits for `release`
    /// and sets `entered` when a request reaches it.
    struct Draining {
        addr: SocketAddr,
        release: Arc<Notify>,
        entered: Arc<AtomicBool>,
        draining: CancellationToken,
        server: ServerHandle,
    }

    async fn draining_server() -> Draining {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(Notify::new());
        let entered = Arc::new(AtomicBool::new(false));
        let (gate, in_handler) = (release.clone(), entered.clone());
        let router = Router::new().route("/", get(|| async { "ok" })).route(
            "/held",
            get(move || {
                let gate = gate.clone();
                in_handler.store(true, Ordering::SeqCst);
                async move {
                    gate.notified().await;
                    "held"
                }
            }),
        );
        let draining = CancellationToken::new();
        let server = ServerHandle::spawn_closing_on_drain(
            "test",
            listener,
            router,
            draining.clone(),
            ConnSettings {
                write_timeout: Duration::from_secs(30),
                max_connections: 64,
                header_read_timeout: Duration::from_secs(30),
            },
            None,
        );
        Draining {
            addr,
            release,
            entered,
            draining,
            server,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn draining_answers_with_connection_close_and_closes() {
        let Draining {
            addr,
            release,
            entered,
            draining,
            server,
        } = draining_server().await;

        let drain = draining.clone();
        let release_later = release.clone();
        tokio::task::spawn_blocking(move || {
            let open = || {
                let s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                BufReader::new(s)
            };
            // Before draining: keep-alive, no Connection header.
            let mut idle = open();
            let head = get_once(&mut idle, "/");
            assert!(!head.contains("connection:"), "{head}");
            // A request in progress when draining starts.
            let mut busy = open();
            assert!(!get_once(&mut busy, "/").contains("connection:"));
            write!(busy.get_mut(), "GET /held HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !entered.load(Ordering::SeqCst) {
                assert!(std::time::Instant::now() < deadline, "handler not entered");
                std::thread::sleep(Duration::from_millis(5));
            }

            drain.cancel();
            // An open keep-alive connection's next response says close, then the server closes.
            let head = get_once(&mut idle, "/");
            assert!(head.contains("connection: close"), "{head}");
            assert!(
                at_eof(&mut idle),
                "the server closes after Connection: close"
            );
            // The request that was in progress gets the header as well.
            release_later.notify_one();
            let mut head = String::new();
            loop {
                let mut line = String::new();
                assert!(busy.read_line(&mut line).unwrap() > 0);
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line.to_ascii_lowercase());
            }
            assert!(head.contains("connection: close"), "{head}");
            let mut body = [0u8; 4];
            busy.read_exact(&mut body).unwrap();
            assert_eq!(&body, b"held");
            assert!(at_eof(&mut busy));
        })
        .await
        .unwrap();
        assert!(server.shutdown(Duration::from_secs(5)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http2_clients_get_goaway_when_draining_starts_and_finish_their_streams() {
        use http_body_util::{BodyExt, Empty};

        let Draining {
            addr,
            release,
            entered,
            draining,
            server,
        } = draining_server().await;
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        let connection = tokio::spawn(connection);
        let request = |path: &str| {
            http::Request::get(format!("http://test{path}"))
                .body(Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        let ok = sender.send_request(request("/")).await.unwrap();
        assert_eq!(ok.version(), http::Version::HTTP_2);
        assert!(ok.headers().get(header::CONNECTION).is_none());
        // A stream in progress when draining starts.
        let held = tokio::spawn(sender.send_request(request("/held")));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !entered.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "handler not entered"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        draining.cancel();
        // The client is told to go away while the server still listens: new streams on this
        // connection are refused, the one in progress still completes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if sender.send_request(request("/")).await.is_err() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no GOAWAY after the drain started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        release.notify_one();
        let held = held.await.unwrap().unwrap();
        let body = held.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"held");
        tokio::time::timeout(Duration::from_secs(10), connection)
            .await
            .expect("the connection closes once its streams are done")
            .unwrap()
            .unwrap();
        assert!(server.shutdown(Duration::from_secs(5)).await);
    }
}
