//! The sidecar's command line: subcommands and flags, each flag with its `MODELSERVER_*`
//! variable and its default, so the operator configures the sidecar through a pod's environment
//! alone. Durations (`60s`) and byte sizes (`100Mi`) are parsed with `modelserver-units`;
//! booleans take `true`/`false`; lists are comma-separated.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::upstream::UpstreamAddr;
use crate::{defaults, env, values};

/// Subcommand that serves managed workers (managed mode).
pub const SERVE: &str = "serve";
/// Subcommand that fronts the image's own server (proxy mode).
pub const PROXY: &str = "proxy";
/// Subcommand of the preStop hook.
pub const DRAIN: &str = "drain";
/// Subcommand of the init container that copies the binary into a directory.
pub const INSTALL: &str = "install";

/// `modelserver-sidecar`: the serving binary in every model pod.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = crate::SIDECAR_BINARY_NAME, version, about, long_about = None)]
pub struct Cli {
    /// Logging, shared by every subcommand.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Start `workers` copies of COMMAND, each serving HTTP on its own Unix socket, and serve them
    /// on the public port.
    #[command(name = SERVE)]
    Serve(ServeArgs),
    /// Serve the public port in front of one TCP upstream that runs itself.
    #[command(name = PROXY)]
    Proxy(ProxyArgs),
    /// preStop hook: ask the running sidecar to drain and wait until it has.
    #[command(name = DRAIN)]
    Drain(DrainArgs),
    /// Copy this executable into DIR (the init container's job).
    #[command(name = INSTALL)]
    Install(InstallArgs),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging flags.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct LogArgs {
    /// Log filter: a level (`info`, `debug`) or `tracing` directives (`info,hyper=debug`).
    #[arg(long, env = env::LOG_LEVEL, default_value = defaults::LOG_LEVEL, global = true)]
    pub log_level: String,
    /// Log line format.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// `serve`: managed workers.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ServeArgs {
    /// Settings shared with `proxy`.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Directory for the workers' sockets (`worker-<i>.sock`); a fresh temporary directory when
    /// unset.
    #[arg(long, env = env::SOCKET_DIR)]
    pub socket_dir: Option<PathBuf>,
    /// Serve the workers over TCP instead of Unix sockets: worker `i` gets
    /// `MODELSERVER_WORKER_PORT` = this port + `i` and must listen on 127.0.0.1 there (for
    /// servers that cannot bind a Unix socket). The range may not hold the public or admin port.
    #[arg(long, env = env::WORKER_PORT_BASE, value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_port_base: Option<u16>,
    /// Workers also serve gRPC (HTTP/2 without TLS): worker `i` gets `MODELSERVER_GRPC_PORT` =
    /// this port + `i` and must listen on 127.0.0.1 there; gRPC calls to the public port go
    /// there. The range may not hold the public, admin or worker ports.
    #[arg(long, env = env::WORKER_GRPC_PORT_BASE, value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_grpc_port_base: Option<u16>,
    /// Worker restarts allowed within 10 minutes; one more ends the sidecar with a non-zero exit.
    #[arg(long, env = env::MAX_WORKER_RESTARTS, default_value_t = defaults::MAX_WORKER_RESTARTS)]
    pub max_worker_restarts: u32,
    /// Replace a worker once it has been sent this many requests (its replacement starts first
    /// and takes new requests once ready; the old one finishes its requests, then stops). Unset:
    /// never recycle.
    #[arg(long, env = env::MAX_REQUESTS_PER_WORKER, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests_per_worker: Option<u64>,
    /// Each worker run's request limit is `--max-requests-per-worker` plus a random number from
    /// 0 to this (drawn per run), so workers do not all recycle at once.
    #[arg(long, env = env::MAX_REQUESTS_JITTER, default_value_t = defaults::MAX_REQUESTS_JITTER)]
    pub max_requests_jitter: u64,
    /// Replace a worker whose resident memory (its process's RSS, checked every worker probe
    /// period) is over this many bytes (`512Mi`, `2Gi`), the same way as after its request
    /// limit. Unset: no ceiling.
    #[arg(long, env = env::MAX_WORKER_MEMORY, value_parser = values::bytes)]
    pub max_worker_memory: Option<u64>,
    /// Time between SIGTERM and SIGKILL when stopping workers.
    #[arg(long, env = env::SHUTDOWN_TIMEOUT, default_value = defaults::SHUTDOWN_TIMEOUT, value_parser = values::duration)]
    pub shutdown_timeout: Duration,
    /// File for the termination message when workers crash-loop (best effort).
    #[arg(long, env = env::TERMINATION_LOG, default_value = defaults::TERMINATION_LOG)]
    pub termination_log: PathBuf,
    /// Root of the container's cgroup filesystem, read for the memory limit and OOM kills.
    #[arg(long, env = env::CGROUP_ROOT, default_value = defaults::CGROUP_ROOT, hide = true)]
    pub cgroup_root: PathBuf,
    /// Time between readiness probes of a worker that serves; a failed probe takes it out of
    /// rotation until one succeeds.
    #[arg(long, env = env::WORKER_PROBE_PERIOD, default_value = defaults::WORKER_PROBE_PERIOD, value_parser = values::positive_duration)]
    pub worker_probe_period: Duration,
    /// Budget of one readiness probe of a worker (its answer must be 200 within it).
    #[arg(long, env = env::WORKER_PROBE_TIMEOUT, default_value = defaults::WORKER_PROBE_TIMEOUT, value_parser = values::positive_duration)]
    pub worker_probe_timeout: Duration,
    /// Failed probes in a row (a request past the request timeout counts as one) after which a
    /// serving worker is called hung, killed (SIGKILL) and restarted.
    #[arg(long, env = env::WORKER_PROBE_FAILURES, default_value_t = defaults::WORKER_PROBE_FAILURES,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub worker_probe_failures: u32,
    /// The worker command and its arguments; `$(VAR)` is expanded from the worker's environment.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `proxy`: one TCP upstream.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ProxyArgs {
    /// The upstream, `HOST:PORT` (for example `127.0.0.1:8000`).
    #[arg(long, env = env::UPSTREAM, value_parser = values::upstream)]
    pub upstream: UpstreamAddr,
    /// The upstream's gRPC address, `HOST:PORT` (HTTP/2 without TLS), where gRPC calls to the
    /// public port go; unset: to `--upstream`, over HTTP/2.
    #[arg(long, env = env::UPSTREAM_GRPC, value_parser = values::upstream)]
    pub upstream_grpc: Option<UpstreamAddr>,
    /// A credential added to every request to the upstream, readiness probes included (for a
    /// backend that wants its own token): `Authorization: Bearer <credential>`, or the raw value
    /// in `--upstream-credential-header`. It replaces a client's header of that name, is never
    /// logged, and that header is removed from the upstream's responses.
    #[arg(long, env = env::UPSTREAM_CREDENTIAL, hide_env_values = true)]
    pub upstream_credential: Option<String>,
    /// The header that carries the upstream credential as is; unset: `Authorization` with
    /// `Bearer `.
    #[arg(long, env = env::UPSTREAM_CREDENTIAL_HEADER, value_parser = values::credential_header)]
    pub upstream_credential_header: Option<http::HeaderName>,
    /// Settings shared with `serve`.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `drain`: the preStop hook.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DrainArgs {
    /// Admin port of the running sidecar.
    #[arg(long, env = env::ADMIN_PORT, default_value_t = defaults::ADMIN_PORT)]
    pub admin_port: u16,
    /// Address the sidecar binds; `0.0.0.0` (any) is reached through 127.0.0.1.
    #[arg(long, env = env::BIND, default_value_t = defaults::BIND)]
    pub bind: IpAddr,
    /// The sidecar's drain delay (bounds how long this command waits).
    #[arg(long, env = env::DRAIN_DELAY, default_value = defaults::DRAIN_DELAY, value_parser = values::duration)]
    pub drain_delay: Duration,
    /// The sidecar's drain timeout (bounds how long this command waits).
    #[arg(long, env = env::DRAIN_TIMEOUT, default_value = defaults::DRAIN_TIMEOUT, value_parser = values::duration)]
    pub drain_timeout: Duration,
}

/// `install`: copy the executable.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct InstallArgs {
    /// Target directory; created when missing. The copy is `DIR/modelserver-sidecar`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Settings of the front door, shared by `serve` and `proxy`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ServerArgs {
    /// Address both ports bind to.
    #[arg(long, env = env::BIND, default_value_t = defaults::BIND)]
    pub bind: IpAddr,
    /// Public port (0 picks a free one; the bound address is logged).
    #[arg(long, env = env::PORT, default_value_t = defaults::PORT)]
    pub port: u16,
    /// Admin port: /livez, /readyz, /drain, /metrics, /status (0 picks a free one).
    #[arg(long, env = env::ADMIN_PORT, default_value_t = defaults::ADMIN_PORT)]
    pub admin_port: u16,
    /// Model worker processes (in proxy mode: the upstream's own process count).
    #[arg(long, env = env::WORKERS, default_value_t = defaults::WORKERS,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Concurrent requests each worker is given.
    #[arg(long, env = env::EXECUTOR_THREADS, default_value_t = defaults::EXECUTOR_THREADS,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub executor_threads: u16,
    /// Requests that may wait for a free executor slot; beyond it: 503 with Retry-After. A bound
    /// on memory: the queue refuses by time (`--max-queue-wait`) first.
    #[arg(long, env = env::MAX_QUEUE, default_value_t = defaults::MAX_QUEUE)]
    pub max_queue: u32,
    /// Longest a request may wait for a free executor slot. A request whose wait, estimated from
    /// the queue ahead of it and the recent service time, would be longer is refused at once
    /// (503 with Retry-After), and one that waited this long anyway leaves the queue with a 503;
    /// after a refusal, until the queue runs empty, a request may wait only about two slots'
    /// service time, so accepted requests stay fast under overload.
    #[arg(long, env = env::MAX_QUEUE_WAIT, default_value = defaults::MAX_QUEUE_WAIT,
          value_parser = values::positive_duration)]
    pub max_queue_wait: Duration,
    /// Request body limit, bytes or a quantity such as `100Mi`; beyond it: 413.
    #[arg(long, env = env::MAX_UPLOAD_SIZE, default_value = defaults::MAX_UPLOAD_SIZE, value_parser = values::bytes)]
    pub max_upload_size: u64,
    /// Per-request budget until the response starts, queueing included; beyond it: 504.
    #[arg(long, env = env::REQUEST_TIMEOUT, default_value = defaults::REQUEST_TIMEOUT, value_parser = values::positive_duration)]
    pub request_timeout: Duration,
    /// A client that reads nothing of its response for this long (its receive window stays
    /// full) has its connection closed, which frees the worker slot the response held.
    #[arg(long, env = env::RESPONSE_WRITE_TIMEOUT, default_value = defaults::RESPONSE_WRITE_TIMEOUT, value_parser = values::positive_duration)]
    pub response_write_timeout: Duration,
    /// Connections the public port holds at once (lowered to fit the open file limit); beyond
    /// it new connections are closed at once. The admin port has its own budget.
    #[arg(long, env = env::MAX_CONNECTIONS, default_value_t = defaults::MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Longest time a client may take to send a request's head (request line and headers),
    /// counted from the first byte, or from the connection's start for its first request.
    #[arg(long, env = env::HEADER_READ_TIMEOUT, default_value = defaults::HEADER_READ_TIMEOUT, value_parser = values::positive_duration)]
    pub header_read_timeout: Duration,
    /// Path that answers 200 once a worker (or the upstream) has loaded its model.
    #[arg(long, env = env::READINESS_PATH, default_value = defaults::READINESS_PATH, value_parser = values::url_path)]
    pub readiness_path: String,
    /// Serve /docs and /openapi.json from the sidecar (otherwise they are forwarded).
    #[arg(long, env = env::DOCS, action = ArgAction::Set, value_parser = BoolishValueParser::new(),
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub docs: bool,
    /// CORS settings.
    #[command(flatten)]
    pub cors: CorsArgs,
    /// TLS on the public port: the PEM certificate chain (with `--tls-key-file`), re-read when
    /// it changes so a renewed certificate is served to new connections without a restart;
    /// HTTP/2 or HTTP/1.1 by ALPN. Unset: plain HTTP (and HTTP/2 with prior knowledge).
    #[arg(long, env = env::TLS_CERT_FILE, requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `--tls-cert-file`.
    #[arg(long, env = env::TLS_KEY_FILE, requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// Token every public request except the health paths must carry
    /// (`Authorization: Bearer <token>` or `X-Auth-Token`).
    #[arg(long, env = env::AUTH_TOKEN, hide_env_values = true)]
    pub auth_token: Option<String>,
    /// With a token set: still forward `Authorization` and `X-Auth-Token` to the model, and give
    /// managed workers `MODELSERVER_AUTH_TOKEN` (off: the sidecar consumes both and the model
    /// never sees the token).
    #[arg(long, env = env::AUTH_PASSTHROUGH, action = ArgAction::Set, value_parser = BoolishValueParser::new(),
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub auth_passthrough: bool,
    /// Write one log line per request (buffered: written at most 200ms late, before any other
    /// line, and at exit).
    #[arg(long, env = env::ACCESS_LOG, action = ArgAction::Set, value_parser = BoolishValueParser::new(),
          default_value = if defaults::ACCESS_LOG { "true" } else { "false" }, num_args = 0..=1, default_missing_value = "true")]
    pub access_log: bool,
    /// After readiness turns false, keep serving this long while endpoints update.
    #[arg(long, env = env::DRAIN_DELAY, default_value = defaults::DRAIN_DELAY, value_parser = values::duration)]
    pub drain_delay: Duration,
    /// Then wait at most this long for in-flight requests.
    #[arg(long, env = env::DRAIN_TIMEOUT, default_value = defaults::DRAIN_TIMEOUT, value_parser = values::duration)]
    pub drain_timeout: Duration,
    /// Threads of the sidecar's own async runtime; 1 (the default) is the cheapest per request.
    #[arg(long, env = env::RUNTIME_THREADS, default_value_t = defaults::RUNTIME_THREADS,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub runtime_threads: u16,
    /// Distributed tracing (off unless `--otlp-endpoint` is set).
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// Tracing flags: W3C trace context on every forwarded request and spans exported over
/// OTLP/HTTP; off (no per-request work) while `--otlp-endpoint` is unset.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct TraceArgs {
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver
    /// (`http://otel-collector.observability:4318`); spans are POSTed as protobuf to
    /// `<url>/v1/traces`. Unset: tracing off.
    #[arg(long, env = env::OTLP_ENDPOINT, value_parser = values::otlp_endpoint)]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces sampled, from 0 to 1 (`0.1`); a request whose `traceparent` the
    /// caller sent keeps the caller's decision (its sampled flag).
    #[arg(long, env = env::TRACE_SAMPLING, default_value = defaults::TRACE_SAMPLING,
          value_parser = values::sampling_ratio)]
    pub trace_sampling: values::SamplingRatio,
    /// The ModelServer's name: the spans' `service.name` (default `modelserver-sidecar`).
    #[arg(long = "modelserver-name", env = env::NAME)]
    pub name: Option<String>,
    /// The pod's name (`k8s.pod.name` of the spans; from the downward API).
    #[arg(long, env = env::POD_NAME)]
    pub pod_name: Option<String>,
    /// The pod's namespace (`k8s.namespace.name` of the spans; from the downward API).
    #[arg(long, env = env::POD_NAMESPACE)]
    pub pod_namespace: Option<String>,
}

impl TraceArgs {
    /// True when spans are exported.
    pub fn enabled(&self) -> bool {
        self.otlp_endpoint.is_some()
    }
}

/// CORS flags; an empty origin list turns CORS off.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct CorsArgs {
    /// Allowed origins, comma-separated (`https://app.example.com`); `*` allows any origin.
    #[arg(long = "cors-allow-origins", env = env::CORS_ALLOW_ORIGINS, value_delimiter = ',')]
    pub allow_origins: Vec<String>,
    /// Allowed methods, comma-separated.
    #[arg(long = "cors-allow-methods", env = env::CORS_ALLOW_METHODS, value_delimiter = ',',
          default_value = defaults::CORS_ALLOW_METHODS)]
    pub allow_methods: Vec<String>,
    /// Allowed request headers, comma-separated.
    #[arg(long = "cors-allow-headers", env = env::CORS_ALLOW_HEADERS, value_delimiter = ',',
          default_value = defaults::CORS_ALLOW_HEADERS)]
    pub allow_headers: Vec<String>,
    /// Allow credentials (never together with a `*` origin).
    #[arg(long = "cors-allow-credentials", env = env::CORS_ALLOW_CREDENTIALS, action = ArgAction::Set,
          value_parser = BoolishValueParser::new(), default_value = "false", num_args = 0..=1,
          default_missing_value = "true")]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer.
    #[arg(long = "cors-max-age", env = env::CORS_MAX_AGE, default_value = defaults::CORS_MAX_AGE, value_parser = values::duration)]
    pub max_age: Duration,
}

impl CorsArgs {
    /// The configured origins without empty entries (an empty variable means "CORS off").
    pub fn origins(&self) -> Vec<&str> {
        non_empty(&self.allow_origins)
    }

    /// The configured methods without empty entries.
    pub fn methods(&self) -> Vec<&str> {
        non_empty(&self.allow_methods)
    }

    /// The configured headers without empty entries.
    pub fn headers(&self) -> Vec<&str> {
        non_empty(&self.allow_headers)
    }
}

fn non_empty(items: &[String]) -> Vec<&str> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect()
}

impl ServerArgs {
    /// The auth token, if one is set and not empty.
    pub fn token(&self) -> Option<&str> {
        self.auth_token.as_deref().filter(|t| !t.is_empty())
    }
}

impl Cli {
    /// The subcommand's name as the command line spells it.
    pub fn subcommand(&self) -> &'static str {
        match &self.command {
            Command::Serve(_) => SERVE,
            Command::Proxy(_) => PROXY,
            Command::Drain(_) => DRAIN,
            Command::Install(_) => INSTALL,
        }
    }

    /// The settings shared by `serve` and `proxy`, if this is one of them.
    pub fn server(&self) -> Option<&ServerArgs> {
        match &self.command {
            Command::Serve(serve) => Some(&serve.server),
            Command::Proxy(proxy) => Some(&proxy.server),
            Command::Drain(_) | Command::Install(_) => None,
        }
    }

    /// Mutable [`Cli::server`].
    pub fn server_mut(&mut self) -> Option<&mut ServerArgs> {
        match &mut self.command {
            Command::Serve(serve) => Some(&mut serve.server),
            Command::Proxy(proxy) => Some(&mut proxy.server),
            Command::Drain(_) | Command::Install(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, crate::ContractError> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        crate::pod_env::parse(&args, &[])
    }

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_are_the_contract_defaults() {
        let cli = Cli::managed(vec!["python".into(), "worker.py".into()]).unwrap();
        let Command::Serve(serve) = &cli.command else {
            panic!("not serve")
        };
        let s = &serve.server;
        assert_eq!(s.port, 8080);
        assert_eq!(s.admin_port, 9090);
        assert_eq!(s.workers, 1);
        assert_eq!(s.executor_threads, 4);
        assert_eq!(s.max_queue, 1024);
        assert_eq!(s.max_queue_wait, Duration::from_secs(1));
        assert_eq!(s.max_upload_size, 100 * 1024 * 1024);
        assert_eq!(s.request_timeout, Duration::from_secs(60));
        assert_eq!(s.response_write_timeout, Duration::from_secs(30));
        assert_eq!(s.header_read_timeout, Duration::from_secs(30));
        assert_eq!(s.max_connections, 1024);
        assert_eq!(s.readiness_path, "/ready");
        assert!(!s.docs);
        assert!(s.access_log);
        assert!(!s.auth_passthrough);
        assert!(s.cors.origins().is_empty());
        assert_eq!(s.cors.methods(), vec!["GET", "POST"]);
        assert_eq!(s.cors.headers(), vec!["Content-Type", "Authorization"]);
        assert_eq!(s.cors.max_age, Duration::from_secs(600));
        assert_eq!(s.drain_delay, Duration::from_secs(5));
        assert_eq!(s.drain_timeout, Duration::from_secs(30));
        assert_eq!(s.runtime_threads, 1);
        assert!(!s.trace.enabled());
        assert_eq!(s.trace.trace_sampling, crate::values::SamplingRatio::ALWAYS);
        assert_eq!(cli.log.log_level, "info");
        assert_eq!(cli.log.log_format, LogFormat::Text);
        assert_eq!(serve.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(serve.max_worker_restarts, 5);
        assert_eq!(serve.termination_log, PathBuf::from("/dev/termination-log"));
        assert_eq!(serve.cgroup_root, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(serve.worker_probe_period, Duration::from_secs(5));
        assert_eq!(serve.worker_probe_timeout, Duration::from_secs(2));
        assert_eq!(serve.worker_probe_failures, 3);
        assert_eq!(serve.command, vec!["python", "worker.py"]);
    }

    #[test]
    fn bad_values_are_rejected_with_the_reason() {
        let err = |args: &[&str]| parse(args).unwrap_err();
        let text = |e: crate::ContractError| match e {
            crate::ContractError::Parse(e) => e.to_string(),
            other => other.to_string(),
        };
        let e = text(err(&["serve", "--request-timeout", "soon", "--", "x"]));
        assert!(e.contains("invalid duration"), "{e}");
        let e = text(err(&["serve", "--request-timeout", "0s", "--", "x"]));
        assert!(e.contains("longer than zero"), "{e}");
        let e = text(err(&["serve", "--max-upload-size", "lots", "--", "x"]));
        assert!(e.contains("invalid byte quantity"), "{e}");
        let e = text(err(&["serve", "--workers", "0", "--", "x"]));
        assert!(e.contains("workers"), "{e}");
        let e = text(err(&["serve", "--readiness-path", "ready", "--", "x"]));
        assert!(e.contains("absolute URL path"), "{e}");
        let e = text(err(&["proxy", "--upstream", "8000"]));
        assert!(e.contains("HOST:PORT"), "{e}");
        let upstream = ["proxy", "--upstream", "127.0.0.1:8000"];
        let e = text(err(&[
            &upstream[..],
            &["--upstream-credential-header", "Host"],
        ]
        .concat()));
        assert!(e.contains("the proxy itself sets"), "{e}");
        let e = text(err(&[
            &upstream[..],
            &["--upstream-credential-header", "X Key"],
        ]
        .concat()));
        assert!(e.contains("not an HTTP header name"), "{e}");
        let ok = parse(
            &[
                &upstream[..],
                &["--upstream-credential-header", "X-Api-Key"],
            ]
            .concat(),
        );
        assert!(ok.is_ok(), "{ok:?}");
        assert!(parse(&["serve"]).is_err(), "a command is required");
    }

    #[test]
    fn booleans_take_explicit_values_or_none() {
        let cli = parse(&["serve", "--docs", "--access-log", "false", "--", "x"]).unwrap();
        let server = cli.server().unwrap();
        assert!(server.docs);
        assert!(!server.access_log);
    }
}
