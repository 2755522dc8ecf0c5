//! Managed mode (`serve`): where the workers serve, the worker command's checks, and the supervisor
//! behind the front door.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use modelserver_contract::socket::{socket_file_name, worker_grpc_ports, worker_ports};

use super::{FrontDoor, dispatcher, readiness_path};
use crate::backend::pooled::PooledBackends;
use crate::config::{MAX_SOCKET_PATH_LEN, ServeArgs};
use crate::errors::{ConfigError, SidecarError};
use crate::shutdown::Model;
use crate::state::Mode;
use crate::termination;
use crate::workers::cgroup::MemoryCgroup;
use crate::workers::recycle::RecyclePolicy;
use crate::workers::supervisor::{ProbeSettings, Supervisor, WorkerDeps, WorkerSpec};
use crate::workers::{WorkerEndpoint, WorkerTable};

/// Runs managed mode (`serve`) until drained (Ok) or a worker crash loop (Err).
pub async fn managed_mode(args: ServeArgs) -> Result<(), SidecarError> {
    let server = &args.server;
    let (socket_dir, _temp_dir) = socket_dir(args.socket_dir.as_ref())?;
    let recycling = args.max_requests_per_worker.is_some() || args.max_worker_memory.is_some();
    let endpoints = endpoints(&args, &socket_dir, recycling)?;
    let grpc_ports = grpc_ports(&args)?;
    // Addresses `0..n` are the workers' endpoints; when socket workers are recycled, `n..2n` are
    // their second sockets (for a replacement that starts while the run it replaces finishes;
    // `dispatch::target`). A worker with a fixed port (TCP, or gRPC) keeps it and is recycled
    // in place.
    let alternates =
        recycling && args.worker_port_base.is_none() && args.worker_grpc_port_base.is_none();
    let grpc_addrs = match &grpc_ports {
        Some(ports) => ports
            .iter()
            .map(|port| Some(WorkerEndpoint::Port(*port).backend()))
            .collect(),
        None => Vec::new(),
    };
    let backend = Arc::new(PooledBackends::new(
        endpoints
            .iter()
            .map(WorkerEndpoint::backend)
            .chain(
                endpoints
                    .iter()
                    .filter(|_| alternates)
                    .map(|e| e.for_generation(1).backend()),
            )
            .collect(),
        grpc_addrs,
    ));
    let spec = WorkerSpec {
        command: args.command.clone(),
        endpoints: endpoints.clone(),
        grpc_ports,
        executor_threads: server.executor_threads,
        readiness_path: readiness_path(&server.readiness_path),
        max_restarts: args.max_worker_restarts,
        recycle: RecyclePolicy {
            max_requests: args.max_requests_per_worker,
            jitter: args.max_requests_jitter,
            memory_ceiling: args.max_worker_memory,
        },
        shutdown_timeout: args.shutdown_timeout,
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
    let per_backend = usize::from(server.executor_threads);
    let dispatcher = dispatcher(server, endpoints.len(), per_backend);
    let table = Arc::new(WorkerTable::new(&endpoints, dispatcher.clone()));
    let front = FrontDoor::start(
        Mode::Managed,
        server,
        backend.clone(),
        dispatcher.clone(),
        per_backend,
        Some(table.clone()),
    )
    .await?;

    info!(
        workers = server.workers,
        executor_threads = server.executor_threads,
        worker_port_base = args.worker_port_base,
        worker_grpc_port_base = args.worker_grpc_port_base,
        socket_dir = %socket_dir.display(),
        command = ?args.command,
        "starting workers"
    );
    let deps = WorkerDeps {
        dispatcher,
        backend,
        table,
        metrics: front.state.metrics.clone(),
    };
    let model = Model::Managed(Supervisor::start(spec, deps));
    let result = front.run(model, args.shutdown_timeout).await;
    if let Err(e) = &result
        && let Some(message) = termination::message(e)
    {
        termination::write(&args.termination_log, &message);
    }
    result
}

/// Where each worker serves: TCP ports from the port base when one is set, Unix sockets in the
/// socket directory otherwise (whose second paths must fit too when workers are `recycling`).
fn endpoints(
    args: &ServeArgs,
    socket_dir: &Path,
    recycling: bool,
) -> Result<Vec<WorkerEndpoint>, ConfigError> {
    let server = &args.server;
    if let Some(base) = args.worker_port_base {
        let ports = worker_ports(base, server.workers, server.port, server.admin_port)?;
        return Ok(ports.map(WorkerEndpoint::Port).collect());
    }
    (0..usize::from(server.workers))
        .map(|i| {
            let endpoint = WorkerEndpoint::Socket(socket_dir.join(socket_file_name(i)));
            // The second path of a recycled worker is the longer one.
            let longest = if recycling {
                endpoint.for_generation(1)
            } else {
                endpoint.clone()
            };
            let len = longest.socket().map_or(0, |p| p.as_os_str().len());
            if len > MAX_SOCKET_PATH_LEN {
                return Err(ConfigError::SocketPathTooLong {
                    path: longest.socket().cloned().unwrap_or_default(),
                    len,
                    max: MAX_SOCKET_PATH_LEN,
                });
            }
            Ok(endpoint)
        })
        .collect()
}

/// The workers' gRPC ports, when they serve gRPC.
fn grpc_ports(args: &ServeArgs) -> Result<Option<Vec<u16>>, ConfigError> {
    let Some(base) = args.worker_grpc_port_base else {
        return Ok(None);
    };
    let server = &args.server;
    let http_ports = args
        .worker_port_base
        .map(|b| worker_ports(b, server.workers, server.port, server.admin_port))
        .transpose()?;
    let ports = worker_grpc_ports(
        base,
        server.workers,
        server.port,
        server.admin_port,
        http_ports.as_ref(),
    )?;
    Ok(Some(ports.collect()))
}

fn socket_dir(
    configured: Option<&PathBuf>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), SidecarError> {
    match configured {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| SidecarError::SocketDir {
                path: dir.clone(),
                cause: source,
            })?;
            Ok((dir.clone(), None))
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("modelserver-")
                .tempdir()
                .map_err(|source| SidecarError::SocketDir {
                    path: std::env::temp_dir(),
                    cause: source,
                })?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}
