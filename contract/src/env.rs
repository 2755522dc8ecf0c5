//! The `MODELSERVER_*` environment variables: one per flag of [`crate::cli`], plus the two the
//! sidecar sets for each worker. Model containers may not set any `MODELSERVER_*` name
//! themselves (the CRD refuses them), so the prefix is reserved.

/// The prefix of every variable of the contract.
pub const PREFIX: &str = "MODELSERVER_";

/// Public port.
pub const PORT: &str = "MODELSERVER_PORT";
/// Admin port.
pub const ADMIN_PORT: &str = "MODELSERVER_ADMIN_PORT";
/// Address both ports bind to.
pub const BIND: &str = "MODELSERVER_BIND";
/// Worker processes (managed mode) or upstream processes (proxy mode).
pub const WORKERS: &str = "MODELSERVER_WORKERS";
/// Concurrent requests per worker.
pub const EXECUTOR_THREADS: &str = "MODELSERVER_EXECUTOR_THREADS";
/// Requests that may wait for a free executor slot.
pub const MAX_QUEUE: &str = "MODELSERVER_MAX_QUEUE";
/// Longest wait for a free executor slot.
pub const MAX_QUEUE_WAIT: &str = "MODELSERVER_MAX_QUEUE_WAIT";
/// Request body limit.
pub const MAX_UPLOAD_SIZE: &str = "MODELSERVER_MAX_UPLOAD_SIZE";
/// Per-request time budget.
pub const REQUEST_TIMEOUT: &str = "MODELSERVER_REQUEST_TIMEOUT";
/// How long a response write to a client may make no progress.
pub const RESPONSE_WRITE_TIMEOUT: &str = "MODELSERVER_RESPONSE_WRITE_TIMEOUT";
/// Connections the public port holds at once.
pub const MAX_CONNECTIONS: &str = "MODELSERVER_MAX_CONNECTIONS";
/// Longest time a client may take to send a request head.
pub const HEADER_READ_TIMEOUT: &str = "MODELSERVER_HEADER_READ_TIMEOUT";
/// Worker (or upstream) readiness path.
pub const READINESS_PATH: &str = "MODELSERVER_READINESS_PATH";
/// Proxy mode upstream `HOST:PORT`.
pub const UPSTREAM: &str = "MODELSERVER_UPSTREAM";
/// Proxy mode: a credential sent to the upstream with every request.
pub const UPSTREAM_CREDENTIAL: &str = "MODELSERVER_UPSTREAM_CREDENTIAL";
/// Proxy mode: the header carrying that credential (`Authorization: Bearer` when unset).
pub const UPSTREAM_CREDENTIAL_HEADER: &str = "MODELSERVER_UPSTREAM_CREDENTIAL_HEADER";
/// Serve `/docs` and `/openapi.json`.
pub const DOCS: &str = "MODELSERVER_DOCS";
/// CORS allowed origins (comma list; empty turns CORS off).
pub const CORS_ALLOW_ORIGINS: &str = "MODELSERVER_CORS_ALLOW_ORIGINS";
/// CORS allowed methods.
pub const CORS_ALLOW_METHODS: &str = "MODELSERVER_CORS_ALLOW_METHODS";
/// CORS allowed request headers.
pub const CORS_ALLOW_HEADERS: &str = "MODELSERVER_CORS_ALLOW_HEADERS";
/// CORS credentials.
pub const CORS_ALLOW_CREDENTIALS: &str = "MODELSERVER_CORS_ALLOW_CREDENTIALS";
/// CORS preflight cache time.
pub const CORS_MAX_AGE: &str = "MODELSERVER_CORS_MAX_AGE";
/// PEM certificate chain served on the public port (TLS).
pub const TLS_CERT_FILE: &str = "MODELSERVER_TLS_CERT_FILE";
/// PEM private key of that certificate.
pub const TLS_KEY_FILE: &str = "MODELSERVER_TLS_KEY_FILE";
/// Bearer token every non-health public request must carry.
pub const AUTH_TOKEN: &str = "MODELSERVER_AUTH_TOKEN";
/// Forward the token headers to the workers and give them the token in their environment.
pub const AUTH_PASSTHROUGH: &str = "MODELSERVER_AUTH_PASSTHROUGH";
/// Log filter.
pub const LOG_LEVEL: &str = "MODELSERVER_LOG_LEVEL";
/// Log format, `text` or `json`.
pub const LOG_FORMAT: &str = "MODELSERVER_LOG_FORMAT";
/// One log line per request.
pub const ACCESS_LOG: &str = "MODELSERVER_ACCESS_LOG";
/// Time to keep serving after readiness turns false.
pub const DRAIN_DELAY: &str = "MODELSERVER_DRAIN_DELAY";
/// Time to wait for in-flight requests after the listener closes.
pub const DRAIN_TIMEOUT: &str = "MODELSERVER_DRAIN_TIMEOUT";
/// Time between SIGTERM and SIGKILL for workers.
pub const SHUTDOWN_TIMEOUT: &str = "MODELSERVER_SHUTDOWN_TIMEOUT";
/// Worker restarts allowed within the restart window.
pub const MAX_WORKER_RESTARTS: &str = "MODELSERVER_MAX_WORKER_RESTARTS";
/// Requests a worker is sent before it is replaced (unset: never).
pub const MAX_REQUESTS_PER_WORKER: &str = "MODELSERVER_MAX_REQUESTS_PER_WORKER";
/// Up to this many requests added at random to each worker run's request limit.
pub const MAX_REQUESTS_JITTER: &str = "MODELSERVER_MAX_REQUESTS_JITTER";
/// Resident memory over which a worker is replaced (unset: no ceiling).
pub const MAX_WORKER_MEMORY: &str = "MODELSERVER_MAX_WORKER_MEMORY";
/// Threads of the sidecar's own async runtime (not in the CRD; 1 unless tuned).
pub const RUNTIME_THREADS: &str = "MODELSERVER_RUNTIME_THREADS";
/// Directory for the workers' Unix sockets.
pub const SOCKET_DIR: &str = "MODELSERVER_SOCKET_DIR";
/// Set for each worker: its Unix socket path.
pub const SOCKET: &str = "MODELSERVER_SOCKET";
/// First TCP port of managed workers: worker `i` serves on 127.0.0.1 at this port + `i` instead
/// of a Unix socket.
pub const WORKER_PORT_BASE: &str = "MODELSERVER_WORKER_PORT_BASE";
/// First gRPC port of managed workers: worker `i` serves gRPC (HTTP/2) on 127.0.0.1 at this
/// port + `i`.
pub const WORKER_GRPC_PORT_BASE: &str = "MODELSERVER_WORKER_GRPC_PORT_BASE";
/// Set for each worker when workers serve gRPC: its gRPC port.
pub const GRPC_PORT: &str = "MODELSERVER_GRPC_PORT";
/// Proxy mode: the upstream's gRPC `HOST:PORT`.
pub const UPSTREAM_GRPC: &str = "MODELSERVER_UPSTREAM_GRPC";
/// Set for each worker when workers serve on TCP: its port.
pub const WORKER_PORT: &str = "MODELSERVER_WORKER_PORT";
/// Set for each worker: its index, `0..workers`.
pub const WORKER_ID: &str = "MODELSERVER_WORKER_ID";
/// File for the termination message the kubelet reads (the pod's
/// `terminationMessagePath`).
pub const TERMINATION_LOG: &str = "MODELSERVER_TERMINATION_LOG";
/// Root of the container's cgroup filesystem (not in the CRD; tests point it elsewhere).
pub const CGROUP_ROOT: &str = "MODELSERVER_CGROUP_ROOT";
/// Time between readiness probes of a serving worker.
pub const WORKER_PROBE_PERIOD: &str = "MODELSERVER_WORKER_PROBE_PERIOD";
/// Budget of one readiness probe of a worker.
pub const WORKER_PROBE_TIMEOUT: &str = "MODELSERVER_WORKER_PROBE_TIMEOUT";
/// Failed probes in a row after which a serving worker is killed and restarted as hung.
pub const WORKER_PROBE_FAILURES: &str = "MODELSERVER_WORKER_PROBE_FAILURES";
/// Base URL of the OTLP/HTTP collector traces are exported to (unset: tracing off).
pub const OTLP_ENDPOINT: &str = "MODELSERVER_OTLP_ENDPOINT";
/// Share of new traces sampled, a decimal from 0 to 1.
pub const TRACE_SAMPLING: &str = "MODELSERVER_TRACE_SAMPLING";
/// The ModelServer's name (the traces' `service.name`).
pub const NAME: &str = "MODELSERVER_NAME";
/// The pod's name (downward API), a resource attribute of the traces.
pub const POD_NAME: &str = "MODELSERVER_POD_NAME";
/// The pod's namespace (downward API), a resource attribute of the traces.
pub const POD_NAMESPACE: &str = "MODELSERVER_POD_NAMESPACE";
