//! The HTTP/1.1 accept loop for both ports: one hyper connection task per client, TCP_NODELAY,
//! and graceful shutdown: stop accepting (the listener closes, so new connections are refused),
//! let in-flight requests finish, close idle keep-alive connections.
//!
//! The public port also sends its keep-alive clients away as soon as draining starts: from then
//! on every response carries `Connection: close` and hyper closes the connection after writing
//! it, so a client learns from the response itself that it must reconnect (to another pod, once
//! endpoints have moved) instead of racing the idle close at the end of the drain delay. Requests
//! that were already in progress when draining started get the header too, since it is added
//! when the response leaves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::Response;
use http::{HeaderValue, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::conn::{
    ConnSettings, MAX_REQUEST_HEAD_BYTES, Throttle, WriteTimeout, log_connection_refused,
};

/// Pause after a failed accept (for example out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// The `Connection` header value that ends a keep-alive connection after the response.
pub const CONNECTION_CLOSE: &str = "close";

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
    /// Serves `router` on `listener` until stopped; keep-alive connections stay open until then.
    pub fn spawn(
        name: &'static str,
        listener: TcpListener,
        router: Router,
        settings: ConnSettings,
    ) -> Self {
        Self::start(name, listener, router, None, settings)
    }

    /// Serves `router` on `listener` until stopped, and once `draining` is cancelled answers
    /// every request with `Connection: close`, ending its connection after the response.
    pub fn spawn_closing_on_drain(
        name: &'static str,
        listener: TcpListener,
        router: Router,
        draining: CancellationToken,
        settings: ConnSettings,
    ) -> Self {
        Self::start(name, listener, router, Some(draining), settings)
    }

    fn start(
        name: &'static str,
        listener: TcpListener,
        router: Router,
        closing: Option<CancellationToken>,
        settings: ConnSettings,
    ) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            name,
            listener,
            router,
            closing,
            settings,
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

async fn accept_loop(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    closing: Option<CancellationToken>,
    settings: ConnSettings,
    stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Some(settings.header_read_timeout))
        .max_header_size(MAX_REQUEST_HEAD_BYTES)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES);
    let open = Arc::new(Semaphore::new(settings.max_connections));
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
        let closing = closing.clone();
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(move |mut request: http::Request<Incoming>| {
                    let extensions = request.extensions_mut();
                    extensions.insert(ConnectInfo::<SocketAddr>(peer));
                    if let Some(local) = local {
                        extensions.insert(local);
                    }
                    request
                })
                .map_response(move |response: Response| {
                    close_if_draining(response, closing.as_ref())
                }),
        );
        let stream = WriteTimeout::new(stream, settings.write_timeout, peer);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                debug!(server = name, peer = %peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    // Dropping the listener closes the socket: new connections are refused from here on.
    drop(listener);
    graceful.shutdown().await;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn draining_answers_with_connection_close_and_closes() {
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
        );

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
}
