//! The HTTP/1.1 accept loop for both ports: one hyper connection task per client, TCP_NODELAY,
//! and graceful shutdown: stop accepting (the listener closes, so new connections are refused),
//! let in-flight requests finish, close idle keep-alive connections.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

/// Longest time a client may take to send request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (for example out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A running server.
pub struct ServerHandle {
    name: &'static str,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Serves `router` on `listener` until stopped.
    pub fn spawn(name: &'static str, listener: TcpListener, router: Router) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(name, listener, router, stop.clone()));
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
    stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Some(HEADER_READ_TIMEOUT));
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                warn!(server = name, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(server = name, error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: http::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            },
        ));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                debug!(server = name, peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    // Dropping the listener closes the socket: new connections are refused from here on.
    drop(listener);
    graceful.shutdown().await;
}
