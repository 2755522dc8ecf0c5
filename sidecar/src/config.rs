//! Command line and `MODELSERVER_*` environment: every flag has one variable (DESIGN section 4),
//! so the operator configures the sidecar through the pod's environment alone.
//!
//! Durations (`60s`) and byte sizes (`100Mi`) are parsed with `modelserver-units`, the same way the
//! operator validates them; booleans accept `true`/`false` (as the operator renders them) and lists
//! are comma-separated.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::errors::ConfigError;
use crate::termination::DEFAULT_TERMINATION_LOG;
use crate::workers::cgroup::DEFAULT_CGROUP_ROOT;

/// Default public port (`MODELSERVER_PORT`).
pub const DEFAULT_PORT: u16 = 8080;
/// Default admin port (`MODELSERVER_ADMIN_PORT`): probes, drain, metrics, status.
pub const DEFAULT_ADMIN_PORT: u16 = 9090;
/// Default bind address (`MODELSERVER_BIND`).
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Longest Unix socket path Linux accepts (`sun_path` is 108 bytes including the NUL).
pub const MAX_SOCKET_PATH_LEN: usize = 107;

/// Environment variable names, one per flag (DESIGN section 4's table).
pub mod env {
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
    /// Threads of the sidecar's own async runtime (not in the CRD; 1 unless tuned).
    pub const RUNTIME_THREADS: &str = "MODELSERVER_RUNTIME_THREADS";
    /// Directory for the workers' Unix sockets.
    pub const SOCKET_DIR: &str = "MODELSERVER_SOCKET_DIR";
    /// Set for each worker: its Unix socket path.
    pub const SOCKET: &str = "MODELSERVER_SOCKET";
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
}

/// `modelserver-sidecar`: the serving binary in every model pod.
#[derive(Debug, Parser)]
#[command(name = "modelserver-sidecar", version, about, long_about = None)]
pub struct Cli {
    /// Logging, shared by every subcommand.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start `workers` copies of COMMAND, each serving HTTP on its own Unix socket, and serve them
    /// on the public port.
    Serve(ServeArgs),
    /// Serve the public port in front of one TCP upstream that runs itself.
    Proxy(ProxyArgs),
    /// preStop hook: ask the running sidecar to drain and wait until it has.
    Drain(DrainArgs),
    /// Copy this executable into DIR (the init container's job).
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
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log filter: a level (`info`, `debug`) or `tracing` directives (`info,hyper=debug`).
    #[arg(long, env = env::LOG_LEVEL, default_value = "info", global = true)]
    pub log_level: String,
    /// Log line format.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// `serve`: managed workers.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Settings shared with `proxy`.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Directory for the workers' sockets (`worker-<i>.sock`); a fresh temporary directory when
    /// unset.
    #[arg(long, env = env::SOCKET_DIR)]
    pub socket_dir: Option<PathBuf>,
    /// Worker restarts allowed within 10 minutes; one more ends the sidecar with a non-zero exit.
    #[arg(long, env = env::MAX_WORKER_RESTARTS, default_value_t = 5)]
    pub max_worker_restarts: u32,
    /// Time between SIGTERM and SIGKILL when stopping workers.
    #[arg(long, env = env::SHUTDOWN_TIMEOUT, default_value = "10s", value_parser = parse_duration_arg)]
    pub shutdown_timeout: Duration,
    /// File for the termination message when workers crash-loop (best effort).
    #[arg(long, env = env::TERMINATION_LOG, default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,
    /// Root of the container's cgroup filesystem, read for the memory limit and OOM kills.
    #[arg(long, env = env::CGROUP_ROOT, default_value = DEFAULT_CGROUP_ROOT, hide = true)]
    pub cgroup_root: PathBuf,
    /// Time between readiness probes of a worker that serves; a failed probe takes it out of
    /// rotation until one succeeds.
    #[arg(long, env = env::WORKER_PROBE_PERIOD, default_value = "5s", value_parser = parse_positive_duration_arg)]
    pub worker_probe_period: Duration,
    /// Budget of one readiness probe of a worker (its answer must be 200 within it).
    #[arg(long, env = env::WORKER_PROBE_TIMEOUT, default_value = "2s", value_parser = parse_positive_duration_arg)]
    pub worker_probe_timeout: Duration,
    /// Failed probes in a row (a request past the request timeout counts as one) after which a
    /// serving worker is called hung, killed (SIGKILL) and restarted.
    #[arg(long, env = env::WORKER_PROBE_FAILURES, default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub worker_probe_failures: u32,
    /// The worker command and its arguments; `$(VAR)` is expanded from the worker's environment.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `proxy`: one TCP upstream.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// The upstream, `HOST:PORT` (for example `127.0.0.1:8000`).
    #[arg(long, env = env::UPSTREAM)]
    pub upstream: String,
    /// Settings shared with `serve`.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `drain`: the preStop hook.
#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// Admin port of the running sidecar.
    #[arg(long, env = env::ADMIN_PORT, default_value_t = DEFAULT_ADMIN_PORT)]
    pub admin_port: u16,
    /// Address the sidecar binds; `0.0.0.0` (any) is reached through 127.0.0.1.
    #[arg(long, env = env::BIND, default_value_t = DEFAULT_BIND)]
    pub bind: IpAddr,
    /// The sidecar's drain delay (bounds how long this command waits).
    #[arg(long, env = env::DRAIN_DELAY, default_value = "5s", value_parser = parse_duration_arg)]
    pub drain_delay: Duration,
    /// The sidecar's drain timeout (bounds how long this command waits).
    #[arg(long, env = env::DRAIN_TIMEOUT, default_value = "30s", value_parser = parse_duration_arg)]
    pub drain_timeout: Duration,
}

/// `install`: copy the executable.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Target directory; created when missing. The copy is `DIR/modelserver-sidecar`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Settings of the front door, shared by `serve` and `proxy`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address both ports bind to.
    #[arg(long, env = env::BIND, default_value_t = DEFAULT_BIND)]
    pub bind: IpAddr,
    /// Public port (0 picks a free one; the bound address is logged).
    #[arg(long, env = env::PORT, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Admin port: /livez, /readyz, /drain, /metrics, /status (0 picks a free one).
    #[arg(long, env = env::ADMIN_PORT, default_value_t = DEFAULT_ADMIN_PORT)]
    pub admin_port: u16,
    /// Model worker processes (in proxy mode: the upstream's own process count).
    #[arg(long, env = env::WORKERS, default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Concurrent requests each worker is given.
    #[arg(long, env = env::EXECUTOR_THREADS, default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub executor_threads: u16,
    /// Requests that may wait for a free executor slot; beyond it: 503 with Retry-After.
    #[arg(long, env = env::MAX_QUEUE, default_value_t = 128)]
    pub max_queue: u32,
    /// Request body limit, bytes or a quantity such as `100Mi`; beyond it: 413.
    #[arg(long, env = env::MAX_UPLOAD_SIZE, default_value = "100Mi", value_parser = parse_bytes_arg)]
    pub max_upload_size: u64,
    /// Per-request budget until the response starts, queueing included; beyond it: 504.
    #[arg(long, env = env::REQUEST_TIMEOUT, default_value = "60s", value_parser = parse_positive_duration_arg)]
    pub request_timeout: Duration,
    /// A client that reads nothing of its response for this long (its receive window stays
    /// full) has its connection closed, which frees the worker slot the response held.
    #[arg(long, env = env::RESPONSE_WRITE_TIMEOUT, default_value = "30s", value_parser = parse_positive_duration_arg)]
    pub response_write_timeout: Duration,
    /// Connections the public port holds at once (lowered to fit the open file limit); beyond
    /// it new connections are closed at once. The admin port has its own budget.
    #[arg(long, env = env::MAX_CONNECTIONS, default_value_t = crate::conn::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Longest time a client may take to send a request's head (request line and headers),
    /// counted from the first byte, or from the connection's start for its first request.
    #[arg(long, env = env::HEADER_READ_TIMEOUT, default_value = "30s", value_parser = parse_positive_duration_arg)]
    pub header_read_timeout: Duration,
    /// Path that answers 200 once a worker (or the upstream) has loaded its model.
    #[arg(long, env = env::READINESS_PATH, default_value = "/ready", value_parser = parse_path_arg)]
    pub readiness_path: String,
    /// Serve /docs and /openapi.json from the sidecar (otherwise they are forwarded).
    #[arg(long, env = env::DOCS, action = ArgAction::Set, value_parser = BoolishValueParser::new(),
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub docs: bool,
    /// CORS settings.
    #[command(flatten)]
    pub cors: CorsArgs,
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
    /// Write one log line per request.
    #[arg(long, env = env::ACCESS_LOG, action = ArgAction::Set, value_parser = BoolishValueParser::new(),
          default_value = "true", num_args = 0..=1, default_missing_value = "true")]
    pub access_log: bool,
    /// After readiness turns false, keep serving this long while endpoints update.
    #[arg(long, env = env::DRAIN_DELAY, default_value = "5s", value_parser = parse_duration_arg)]
    pub drain_delay: Duration,
    /// Then wait at most this long for in-flight requests.
    #[arg(long, env = env::DRAIN_TIMEOUT, default_value = "30s", value_parser = parse_duration_arg)]
    pub drain_timeout: Duration,
    /// Threads of the sidecar's own async runtime; 1 (the default) is the cheapest per request.
    #[arg(long, env = env::RUNTIME_THREADS, default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub runtime_threads: u16,
}

/// CORS flags; an empty origin list turns CORS off.
#[derive(Debug, Clone, Args)]
pub struct CorsArgs {
    /// Allowed origins, comma-separated (`https://app.example.com`); `*` allows any origin.
    #[arg(long = "cors-allow-origins", env = env::CORS_ALLOW_ORIGINS, value_delimiter = ',')]
    pub allow_origins: Vec<String>,
    /// Allowed methods, comma-separated.
    #[arg(long = "cors-allow-methods", env = env::CORS_ALLOW_METHODS, value_delimiter = ',',
          default_value = "GET,POST")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers, comma-separated.
    #[arg(long = "cors-allow-headers", env = env::CORS_ALLOW_HEADERS, value_delimiter = ',',
          default_value = "Content-Type,Authorization")]
    pub allow_headers: Vec<String>,
    /// Allow credentials (never together with a `*` origin).
    #[arg(long = "cors-allow-credentials", env = env::CORS_ALLOW_CREDENTIALS, action = ArgAction::Set,
          value_parser = BoolishValueParser::new(), default_value = "false", num_args = 0..=1,
          default_missing_value = "true")]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer.
    #[arg(long = "cors-max-age", env = env::CORS_MAX_AGE, default_value = "10m", value_parser = parse_duration_arg)]
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

/// Where proxy mode forwards to: `HOST:PORT`, with `localhost` meaning 127.0.0.1 (no resolver
/// needed, which matters for the statically linked binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddr {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl UpstreamAddr {
    /// Parses `HOST:PORT` (IPv6 as `[::1]:8000`).
    pub fn parse(input: &str) -> Result<Self, ConfigError> {
        let err = || ConfigError::Upstream {
            input: input.to_string(),
        };
        let (host, port) = input.trim().rsplit_once(':').ok_or_else(err)?;
        let port: u16 = port.parse().map_err(|_| err())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(err());
        }
        let host = if host.eq_ignore_ascii_case("localhost") {
            "127.0.0.1".to_string()
        } else {
            host.to_string()
        };
        Ok(Self { host, port })
    }

    /// `host:port` as a connect target (IPv6 in brackets).
    pub fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn parse_duration_arg(input: &str) -> Result<Duration, String> {
    modelserver_units::parse_duration(input.trim()).map_err(|e| e.to_string())
}

fn parse_positive_duration_arg(input: &str) -> Result<Duration, String> {
    let d = parse_duration_arg(input)?;
    if d.is_zero() {
        return Err(format!("{input:?} must be longer than zero"));
    }
    Ok(d)
}

fn parse_bytes_arg(input: &str) -> Result<u64, String> {
    modelserver_units::parse_quantity_bytes(input.trim()).map_err(|e| e.to_string())
}

fn parse_path_arg(input: &str) -> Result<String, String> {
    let path = input.trim();
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(format!(
            "{input:?} is not an absolute URL path such as /ready"
        ));
    }
    path.parse::<http::uri::PathAndQuery>()
        .map_err(|e| format!("{input:?} is not a valid URL path: {e}"))?;
    Ok(path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("modelserver-sidecar").chain(args.iter().copied()))
    }

    #[test]
    fn serve_defaults_follow_the_design_table() {
        let cli = parse(&["serve", "--", "python", "worker.py"]).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        let s = &serve.server;
        assert_eq!(s.port, 8080);
        assert_eq!(s.admin_port, 9090);
        assert_eq!(s.workers, 1);
        assert_eq!(s.executor_threads, 4);
        assert_eq!(s.max_queue, 128);
        assert_eq!(s.max_upload_size, 100 * 1024 * 1024);
        assert_eq!(s.request_timeout, Duration::from_secs(60));
        assert_eq!(s.readiness_path, "/ready");
        assert!(!s.docs);
        assert!(s.access_log);
        assert!(!s.auth_passthrough);
        assert!(s.cors.origins().is_empty());
        assert_eq!(s.cors.methods(), vec!["GET", "POST"]);
        assert_eq!(s.cors.max_age, Duration::from_secs(600));
        assert_eq!(s.drain_delay, Duration::from_secs(5));
        assert_eq!(s.drain_timeout, Duration::from_secs(30));
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
        let err = parse(&["serve", "--request-timeout", "soon", "--", "x"]).unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
        let err = parse(&["serve", "--max-upload-size", "lots", "--", "x"]).unwrap_err();
        assert!(err.to_string().contains("invalid byte quantity"), "{err}");
        let err = parse(&["serve", "--workers", "0", "--", "x"]).unwrap_err();
        assert!(err.to_string().contains("workers"), "{err}");
        let err = parse(&["serve", "--readiness-path", "ready", "--", "x"]).unwrap_err();
        assert!(err.to_string().contains("absolute URL path"), "{err}");
        assert!(parse(&["serve"]).is_err(), "a command is required");
    }

    #[test]
    fn booleans_take_explicit_values_or_none() {
        let cli = parse(&["serve", "--docs", "--access-log", "false", "--", "x"]).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        assert!(serve.server.docs);
        assert!(!serve.server.access_log);
    }

    #[test]
    fn upstream_addresses() {
        assert_eq!(
            UpstreamAddr::parse("localhost:8000").unwrap().target(),
            "127.0.0.1:8000"
        );
        assert_eq!(
            UpstreamAddr::parse("[::1]:80").unwrap().target(),
            "[::1]:80"
        );
        assert!(UpstreamAddr::parse("8000").is_err());
        assert!(UpstreamAddr::parse("host:").is_err());
        assert!(UpstreamAddr::parse(":80").is_err());
    }
}
