//! `serve` and `proxy` from start to exit: check the settings, bind both ports with their services
//! on them, start the model (managed workers or the upstream watcher), then hand everything to
//! the drain sequence in [`crate::shutdown`].

mod managed;
mod proxy;

pub use managed::managed_mode;
pub use proxy::proxy_mode;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use tokio::net::{TcpListener, TcpSocket};
use tracing::{info, warn};

use crate::backend::pooled::PooledBackends;
use crate::config::ServerArgs;
use crate::conn::{self, ConnSettings};
use crate::dispatch::Dispatcher;
use crate::errors::{ConfigError, SidecarError};
use crate::http::admin::admin_router;
use crate::http::auth::AuthToken;
use crate::http::cors;
use crate::http::public::{PublicOptions, public_service};
use crate::metrics::Metrics;
use crate::server::ServerHandle;
use crate::shutdown::{self, Lifecycle, Model, Running, Signals, Timing};
use crate::state::{AppState, Limits, Mode, SharedState};
use crate::tls::Certificates;
use crate::trace::Tracer;
use crate::workers::WorkerTable;
use modelserver_units::format_duration;

/// Both ports, serving, plus what the drain sequence needs.
struct FrontDoor {
    state: SharedState,
    public: ServerHandle,
    admin: ServerHandle,
    signals: Signals,
    drain_delay: Duration,
    drain_timeout: Duration,
}

impl FrontDoor {
    /// Checks the settings, builds the shared state (`workers` in managed mode) and serves both
    /// ports.
    async fn start(
        mode: Mode,
        server: &ServerArgs,
        backend: Arc<PooledBackends>,
        dispatcher: Dispatcher,
        per_backend: usize,
        workers: Option<Arc<WorkerTable>>,
    ) -> Result<Self, SidecarError> {
        // Settings first, so a bad one fails before anything binds or starts.
        let cors = cors::policy(&server.cors)?;
        let metrics = Metrics::new()?;
        let auth = match server.token() {
            Some(token) => {
                if http::HeaderValue::from_str(token).is_err() {
                    return Err(ConfigError::Token.into());
                }
                Some(
                    AuthToken::new(token, metrics.clone())
                        .with_passthrough(server.auth_passthrough),
                )
            }
            None => None,
        };
        let signals = Signals::install()?;

        let limits = Limits {
            max_upload_size: server.max_upload_size,
            request_timeout: server.request_timeout,
            per_backend,
            max_queue: max_queue(server),
        };
        let backends_len = backend.len();
        // The exporter runs as a task of its own, off every request's path.
        let tracer = Tracer::new(&server.trace, &metrics).map(|(tracer, exporter)| {
            tokio::spawn(exporter.run());
            tracer
        });
        let state: SharedState = Arc::new(AppState {
            mode,
            dispatcher,
            backend,
            limits,
            lifecycle: Lifecycle::new(),
            metrics,
            workers,
            access_log: server.access_log,
            tracer,
        });

        let admin_listener = bind("admin", SocketAddr::new(server.bind, server.admin_port)).await?;
        let public_listener = bind("public", SocketAddr::new(server.bind, server.port)).await?;
        let admin_addr = local_addr("admin", &admin_listener)?;
        let public_addr = local_addr("public", &public_listener)?;
        let options = PublicOptions {
            docs: server.docs,
            cors,
            auth,
        };
        let backend_fds = per_backend
            .saturating_mul(backends_len)
            .saturating_mul(crate::backend::http1::FDS_PER_CONNECTION);
        let configured = usize::try_from(server.max_connections).unwrap_or(usize::MAX);
        let max_connections =
            conn::fit_to_file_limit(configured, conn::open_file_limit(), backend_fds);
        if max_connections < configured {
            warn!(
                configured,
                max_connections,
                open_file_limit = conn::open_file_limit(),
                "max-connections lowered to fit the open file limit"
            );
        }
        let conn = ConnSettings {
            write_timeout: server.response_write_timeout,
            max_connections,
            header_read_timeout: server.header_read_timeout,
        };
        let admin = ServerHandle::spawn(
            "admin",
            admin_listener,
            admin_router(state.clone()),
            ConnSettings {
                max_connections: conn::ADMIN_MAX_CONNECTIONS,
                ..conn
            },
        );
        let tls = match (&server.tls_cert_file, &server.tls_key_file) {
            (Some(cert), Some(key)) => {
                let certificates = Certificates::load(cert, key)?;
                let acceptor = certificates.acceptor()?;
                certificates.watch();
                Some(acceptor)
            }
            _ => None,
        };
        let tls_on = tls.is_some();
        let public = ServerHandle::spawn_closing_on_drain(
            "public",
            public_listener,
            public_service(state.clone(), options),
            state.lifecycle.draining_token(),
            conn,
            tls,
        );
        info!(
            mode = mode.as_str(),
            %public_addr,
            %admin_addr,
            max_upload_size = server.max_upload_size,
            request_timeout = %format_duration(server.request_timeout),
            max_queue = server.max_queue,
            max_connections,
            auth = server.token().is_some(),
            tls = tls_on,
            "listening"
        );
        Ok(Self {
            state,
            public,
            admin,
            signals,
            drain_delay: server.drain_delay,
            drain_timeout: server.drain_timeout,
        })
    }

    /// Runs the drain sequence until the sidecar stops.
    async fn run(self, model: Model, shutdown_timeout: Duration) -> Result<(), SidecarError> {
        let running = Running {
            lifecycle: self.state.lifecycle.clone(),
            dispatcher: self.state.dispatcher.clone(),
            public: self.public,
            admin: self.admin,
            model,
            signals: self.signals,
        };
        let timing = Timing {
            drain_delay: self.drain_delay,
            drain_timeout: self.drain_timeout,
            shutdown_timeout,
        };
        let stopped = shutdown::run_until_stopped(running, timing).await;
        // The spans of the last requests leave before the process does.
        if let Some(tracer) = &self.state.tracer {
            tracer.flush(crate::trace::FLUSH_TIMEOUT).await;
        }
        stopped
    }
}

/// The dispatcher for `backends` backends of `per_backend` slots each.
fn dispatcher(server: &ServerArgs, backends: usize, per_backend: usize) -> Dispatcher {
    Dispatcher::new(backends, per_backend, max_queue(server))
        .with_max_queue_wait(server.max_queue_wait)
}

fn max_queue(server: &ServerArgs) -> usize {
    usize::try_from(server.max_queue).unwrap_or(usize::MAX)
}

/// The readiness path as a request target.
fn readiness_path(path: &str) -> PathAndQuery {
    // Validated by the flag parser; fall back to the default rather than panic.
    path.parse().unwrap_or_else(|_| {
        PathAndQuery::from_static(modelserver_contract::defaults::READINESS_PATH)
    })
}

/// Connections the kernel holds for a listener before the sidecar accepts them. A burst of
/// clients connecting at once (a load balancer filling its pool, 256 clients starting together)
/// must fit, or the kernel drops their SYNs and they connect only after TCP's one-second
/// retransmission. Rust's and tokio's default is 128; uvicorn uses 2048 and Go the kernel's
/// maximum. The kernel caps it at `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, SidecarError> {
    let failed = |cause| SidecarError::Bind { what, addr, cause };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(failed)?;
    // As `TcpListener::bind` does: a restarted sidecar rebinds at once.
    socket.set_reuseaddr(true).map_err(failed)?;
    socket.bind(addr).map_err(failed)?;
    socket.listen(LISTEN_BACKLOG).map_err(failed)
}

fn local_addr(what: &'static str, listener: &TcpListener) -> Result<SocketAddr, SidecarError> {
    listener.local_addr().map_err(|source| SidecarError::Bind {
        what,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        cause: source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn a_burst_of_connections_fits_the_listen_backlog() {
        // More clients than the default backlog of 128 connect at once, and nothing accepts:
        // each must still complete its handshake in the kernel's queue. One that does not fit
        // is never established while nothing accepts (its SYNs are dropped), so the deadline
        // is only for a failure.
        const BURST: usize = 300;
        let listener = bind("public", SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut connects = tokio::task::JoinSet::new();
        for _ in 0..BURST {
            connects.spawn(tokio::net::TcpStream::connect(addr));
        }
        let established = tokio::time::timeout(Duration::from_secs(10), async {
            let mut streams = Vec::new();
            while let Some(connected) = connects.join_next().await {
                streams.push(connected.unwrap().unwrap());
            }
            streams.len()
        })
        .await;
        assert_eq!(established, Ok(BURST), "connections established");
    }
}
