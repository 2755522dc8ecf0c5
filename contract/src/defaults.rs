//! The default of every sidecar setting. The clap definitions in [`crate::cli`] use these, the
//! operator starts from them (through [`crate::cli::Cli::defaults`]), and the CRD's field
//! descriptions state them. Durations and byte sizes are written as the flags take them.

use std::net::{IpAddr, Ipv4Addr};

/// Public port.
pub const PORT: u16 = 8080;
/// Admin port: probes, drain, metrics, status.
pub const ADMIN_PORT: u16 = 9090;
/// Address both ports bind to.
pub const BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Worker processes.
pub const WORKERS: u16 = 1;
/// Concurrent requests per worker.
pub const EXECUTOR_THREADS: u16 = 4;
/// Requests that may wait for a free executor slot: a bound on memory only, as high as the
/// connections the public port holds, so the time bound below is what refuses a burst.
pub const MAX_QUEUE: u32 = 1024;
/// Longest a request may wait for a free executor slot; a request that would wait longer is
/// refused at once.
pub const MAX_QUEUE_WAIT: &str = "1s";
/// Request body limit.
pub const MAX_UPLOAD_SIZE: &str = "100Mi";
/// Per-request budget.
pub const REQUEST_TIMEOUT: &str = "60s";
/// How long a response write may make no progress.
pub const RESPONSE_WRITE_TIMEOUT: &str = "30s";
/// Connections the public port holds at once.
pub const MAX_CONNECTIONS: u32 = 1024;
/// Longest time a client may take to send a request head.
pub const HEADER_READ_TIMEOUT: &str = "30s";
/// Worker (or upstream) readiness path.
pub const READINESS_PATH: &str = "/ready";
/// CORS allowed methods, comma-separated.
pub const CORS_ALLOW_METHODS: &str = "GET,POST";
/// CORS allowed request headers, comma-separated.
pub const CORS_ALLOW_HEADERS: &str = "Content-Type,Authorization";
/// CORS preflight cache time.
pub const CORS_MAX_AGE: &str = "10m";
/// Log filter.
pub const LOG_LEVEL: &str = "info";
/// One log line per request.
pub const ACCESS_LOG: bool = true;
/// Time to keep serving after readiness turns false.
pub const DRAIN_DELAY: &str = "5s";
/// Time to wait for in-flight requests after the listener closes.
pub const DRAIN_TIMEOUT: &str = "30s";
/// Time between SIGTERM and SIGKILL for workers.
pub const SHUTDOWN_TIMEOUT: &str = "10s";
/// Worker restarts allowed within the restart window.
pub const MAX_WORKER_RESTARTS: u32 = 5;
/// Requests added at random to each worker run's request limit, at most.
pub const MAX_REQUESTS_JITTER: u64 = 0;
/// Threads of the sidecar's own async runtime.
pub const RUNTIME_THREADS: u16 = 1;
/// The kubelet's default `terminationMessagePath`.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// Root of the container's cgroup filesystem.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Time between readiness probes of a serving worker.
pub const WORKER_PROBE_PERIOD: &str = "5s";
/// Budget of one readiness probe of a worker.
pub const WORKER_PROBE_TIMEOUT: &str = "2s";
/// Failed probes in a row after which a serving worker is restarted as hung.
pub const WORKER_PROBE_FAILURES: u32 = 3;
/// Share of new traces sampled when tracing is on (a request that carries a `traceparent` keeps
/// its caller's decision): every one, as the OpenTelemetry SDKs' default sampler.
pub const TRACE_SAMPLING: &str = "1";
