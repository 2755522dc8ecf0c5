//! `serve` and `proxy` from start to exit: bind both ports, start the workers (or watch the
//! upstream), then on `POST /drain` or SIGTERM/SIGINT run the shutdown sequence of DESIGN
//! section 4: readiness 503 at once, keep serving for the drain delay, stop accepting, wait up to
//! the drain timeout for in-flight requests, stop the workers (SIGTERM, SIGKILL after the shutdown
//! timeout), exit 0. A worker crash loop ends the sidecar with an error instead, leaving a
//! termination message for the kubelet.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{error, info, warn};

use crate::backend::pooled::{BackendAddr, PooledBackends};
use crate::config::{MAX_SOCKET_PATH_LEN, ProxyArgs, ServeArgs, ServerArgs, UpstreamAddr};
use crate::conn::{self, ConnSettings};
use crate::dispatch::Dispatcher;
use crate::errors::{ConfigError, SidecarError};
use crate::http::admin::admin_router;
use crate::http::auth::AuthToken;
use crate::http::cors;
use crate::http::public::{PublicOptions, public_router};
use crate::metrics::Metrics;
use crate::server::ServerHandle;
use crate::shutdown::Lifecycle;
use crate::state::{AppState, Limits, Mode, SharedState};
use crate::termination;
use crate::workers::WorkerTable;
use crate::workers::cgroup::MemoryCgroup;
use crate::workers::supervisor::{
    PROBE_TIMEOUT, ProbeSettings, Supervisor, WorkerDeps, WorkerSpec,
};
use modelserver_units::format_duration;

/// Socket file name of worker `i`.
pub fn socket_name(i: usize) -> String {
    format!("worker-{i}.sock")
}

/// How long the admin port stays up after draining, so the `POST /drain` answer gets out.
const ADMIN_LINGER: Duration = Duration::from_secs(1);
/// Upstream readiness poll interval while not ready (proxy mode).
const UPSTREAM_POLL_NOT_READY: Duration = Duration::from_millis(200);
/// Upstream readiness poll interval while ready (proxy mode).
const UPSTREAM_POLL_READY: Duration = Duration::from_secs(1);

/// What keeps the model going: managed workers or a watched upstream.
enum Model {
    Workers(Supervisor),
    Upstream(tokio::task::JoinHandle<()>),
}

impl Model {
    async fn fatal(&mut self) -> SidecarError {
        match self {
            Self::Workers(s) => s.fatal().await,
            Self::Upstream(_) => std::future::pending().await,
        }
    }

    async fn stop(self, grace: Duration) {
        match self {
            Self::Workers(s) => s.stop(grace).await,
            Self::Upstream(task) => task.abort(),
        }
    }
}

/// Runs `serve` until drained (Ok) or a worker crash loop (Err).
pub async fn serve(args: ServeArgs) -> Result<(), SidecarError> {
    let server = &args.server;
    let (socket_dir, _temp_dir) = socket_dir(args.socket_dir.as_ref())?;
    let sockets: Vec<PathBuf> = (0..usize::from(server.workers))
        .map(|i| socket_dir.join(socket_name(i)))
        .collect();
    for path in &sockets {
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH_LEN {
            return Err(ConfigError::SocketPathTooLong {
                path: path.clone(),
                len,
                max: MAX_SOCKET_PATH_LEN,
            }
            .into());
        }
    }
    let backend = Arc::new(PooledBackends::new(
        sockets.iter().cloned().map(BackendAddr::Unix).collect(),
    ));
    let spec = WorkerSpec {
        command: args.command.clone(),
        sockets: sockets.clone(),
        executor_threads: server.executor_threads,
        readiness_path: readiness_path(&server.readiness_path),
        max_restarts: args.max_worker_restarts,
        cgroup: MemoryCgroup::new(&args.cgroup_root),
        auth_token: server.token().map(str::to_string),
        auth_passthrough: server.auth_passthrough,
        probe: ProbeSettings {
            period: args.worker_probe_period,
            timeout: args.worker_probe_timeout,
            failures: args.worker_probe_failures,
        },
    };
    spec.check_no_secrets()?;
    if !spec.auth_passthrough {
        let hidden: Vec<String> = spec
            .token_variables()
            .iter()
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| name != crate::config::env::AUTH_TOKEN)
            .collect();
        if !hidden.is_empty() {
            warn!(
                variables = ?hidden,
                "these variables hold the auth token and are not given to the workers; set MODELSERVER_AUTH_PASSTHROUGH=true if the model needs the token"
            );
        }
    }
    let table = Arc::new(WorkerTable::new(&sockets));
    let per_backend = usize::from(server.executor_threads);
    let front = FrontDoor::start(
        Mode::Managed,
        server,
        backend.clone(),
        per_backend,
        Some(table.clone()),
    )
    .await?;

    info!(
        workers = server.workers,
        executor_threads = server.executor_threads,
        socket_dir = %socket_dir.display(),
        command = ?args.command,
        "starting workers"
    );
    let deps = WorkerDeps {
        dispatcher: front.state.dispatcher.clone(),
        backend,
        table,
        metrics: front.state.metrics.clone(),
    };
    let model = Model::Workers(Supervisor::start(spec, deps));
    let result = front.run(model, args.shutdown_timeout).await;
    if let Err(e) = &result
        && let Some(message) = termination::message(e)
    {
        termination::write(&args.termination_log, &message);
    }
    result
}

/// Runs `proxy` until drained.
pub async fn proxy(args: ProxyArgs) -> Result<(), SidecarError> {
    let server = &args.server;
    let upstream = UpstreamAddr::parse(&args.upstream)?;
    let backend = Arc::new(PooledBackends::new(vec![BackendAddr::Tcp(
        upstream.clone(),
    )]));
    let per_backend = usize::from(server.workers) * usize::from(server.executor_threads);
    let front = FrontDoor::start(Mode::Proxy, server, backend, per_backend, None).await?;
    info!(upstream = %upstream.target(), "proxying to upstream");
    let state = front.state.clone();
    let path = readiness_path(&server.readiness_path);
    let watcher = tokio::spawn(async move {
        let mut was_ready = false;
        loop {
            let ready = state.backend.probe(0, path.clone(), PROBE_TIMEOUT).await;
            if ready != was_ready {
                if ready {
                    info!("upstream ready");
                } else {
                    warn!("upstream not ready");
                }
                was_ready = ready;
            }
            state.dispatcher.set_ready(0, ready);
            let pause = if ready {
                UPSTREAM_POLL_READY
            } else {
                UPSTREAM_POLL_NOT_READY
            };
            tokio::time::sleep(pause).await;
        }
    });
    front.run(Model::Upstream(watcher), Duration::ZERO).await
}

fn readiness_path(path: &str) -> PathAndQuery {
    // Validated by the flag parser; fall back to the default rather than panic.
    path.parse()
        .unwrap_or_else(|_| PathAndQuery::from_static("/ready"))
}

fn socket_dir(
    configured: Option<&PathBuf>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), SidecarError> {
    match configured {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| SidecarError::SocketDir {
                path: dir.clone(),
                source,
            })?;
            Ok((dir.clone(), None))
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("modelserver-")
                .tempdir()
                .map_err(|source| SidecarError::SocketDir {
                    path: std::env::temp_dir(),
                    source,
                })?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

/// Both ports, serving, plus the settings the shutdown sequence needs.
struct FrontDoor {
    state: SharedState,
    public: ServerHandle,
    admin: ServerHandle,
    drain_delay: Duration,
    drain_timeout: Duration,
    signals: Signals,
}

impl FrontDoor {
    async fn start(
        mode: Mode,
        server: &ServerArgs,
        backend: Arc<PooledBackends>,
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
            max_queue: usize::try_from(server.max_queue).unwrap_or(usize::MAX),
        };
        let backends_len = backend.len();
        let dispatcher = Dispatcher::new(backends_len, per_backend, limits.max_queue);
        let state: SharedState = Arc::new(AppState {
            mode,
            dispatcher,
            backend,
            limits,
            lifecycle: Lifecycle::new(),
            metrics,
            workers,
            access_log: server.access_log,
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
        let backend_fds = per_backend.saturating_mul(backends_len);
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
        let public = ServerHandle::spawn_closing_on_drain(
            "public",
            public_listener,
            public_router(state.clone(), options),
            state.lifecycle.clone(),
            conn,
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
            "listening"
        );
        Ok(Self {
            state,
            public,
            admin,
            drain_delay: server.drain_delay,
            drain_timeout: server.drain_timeout,
            signals,
        })
    }

    /// Waits for drain, signal or crash loop, then shuts down in order.
    async fn run(
        mut self,
        mut model: Model,
        shutdown_timeout: Duration,
    ) -> Result<(), SidecarError> {
        let lifecycle = self.state.lifecycle.clone();
        let mut signalled = false;
        let trigger = tokio::select! {
            name = self.signals.next() => {
                signalled = true;
                Ok(format!("{name} received"))
            }
            () = lifecycle.drain_requested() => Ok("drain requested".to_string()),
            fatal = model.fatal() => Err(fatal),
        };
        let trigger = match trigger {
            Ok(trigger) => trigger,
            Err(fatal) => {
                error!(error = %fatal, "stopping: worker crash loop");
                lifecycle.request_drain();
                self.public.shutdown(Duration::ZERO).await;
                lifecycle.mark_drained();
                model.stop(shutdown_timeout).await;
                self.admin.shutdown(Duration::ZERO).await;
                return Err(fatal);
            }
        };
        lifecycle.request_drain();
        info!(
            trigger = %trigger,
            drain_delay = %format_duration(self.drain_delay),
            "draining: readiness is 503; still serving during the drain delay"
        );

        let mut hurry = false;
        tokio::select! {
            () = tokio::time::sleep(self.drain_delay) => {}
            name = self.signals.next() => {
                warn!(signal = name, "second signal: skipping the rest of the drain delay");
                hurry = true;
            }
        }

        let load = self.state.dispatcher.snapshot();
        info!(
            in_flight = load.in_flight(),
            queued = load.queued,
            drain_timeout = %format_duration(self.drain_timeout),
            "stopped accepting; waiting for in-flight requests"
        );
        let budget = if hurry {
            Duration::ZERO
        } else {
            self.drain_timeout
        };
        let public = self.public;
        let finished = tokio::select! {
            done = public.shutdown(budget) => done,
            name = self.signals.next() => {
                warn!(signal = name, "second signal: not waiting for in-flight requests");
                false
            }
        };
        if finished {
            info!("drained: no requests in flight");
        } else {
            let load = self.state.dispatcher.snapshot();
            warn!(
                in_flight = load.in_flight(),
                queued = load.queued,
                "drain timeout: requests still in flight are cut off"
            );
        }
        lifecycle.mark_drained();

        // Proxy mode runs as a native sidecar: the kubelet stops it (SIGTERM) only after the
        // model container has exited, and the model's preStop is this drain. Exiting here would
        // stop the front door before the model; wait for that signal instead, answering probes.
        if matches!(model, Model::Upstream(_)) && !signalled && !hurry {
            info!(
                "drained; the model stops next: waiting for SIGTERM to stop this sidecar after it"
            );
            let name = self.signals.next().await;
            info!(signal = name, "stopping after the model");
        }

        info!(
            shutdown_timeout = %format_duration(shutdown_timeout),
            "stopping workers"
        );
        model.stop(shutdown_timeout).await;
        self.admin.shutdown(ADMIN_LINGER).await;
        info!("stopped");
        Ok(())
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, SidecarError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SidecarError::Bind { what, addr, source })
}

fn local_addr(what: &'static str, listener: &TcpListener) -> Result<SocketAddr, SidecarError> {
    listener.local_addr().map_err(|source| SidecarError::Bind {
        what,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// SIGTERM (the kubelet) and SIGINT (Ctrl-C) both start draining.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> Result<Self, SidecarError> {
        let term = signal(SignalKind::terminate()).map_err(|source| SidecarError::Signal {
            signal: "SIGTERM",
            source,
        })?;
        let int = signal(SignalKind::interrupt()).map_err(|source| SidecarError::Signal {
            signal: "SIGINT",
            source,
        })?;
        Ok(Self { term, int })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
