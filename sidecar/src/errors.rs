//! What can go wrong, with the context to act on it, and the JSON body (`{"error": "..."}`) that
//! every request the sidecar itself refuses gets.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// Content type of every JSON body the sidecar writes.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// A setting that cannot work, found before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A CORS origin, method or header cannot be used.
    #[error("invalid CORS {what} {value:?}: {reason}")]
    Cors {
        /// `origin`, `method` or `header`.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A worker socket path would be longer than Unix sockets allow.
    #[error(
        "worker socket path {path:?} is {len} bytes, longer than the {max} a Unix socket allows; use a shorter MODELSERVER_SOCKET_DIR"
    )]
    SocketPathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The worker command would expand a secret into the workers' command line.
    #[error(
        "the worker command refers to $({variable}) in argument {argument}, which holds the auth token: secrets are never expanded into a command line (anyone on the node can read it with ps); a worker that needs the token reads MODELSERVER_AUTH_TOKEN from its environment, which it gets with MODELSERVER_AUTH_PASSTHROUGH=true"
    )]
    SecretInCommand {
        /// The variable referred to.
        variable: String,
        /// Its position in the command (0 is the program).
        argument: usize,
    },
    /// The auth token cannot appear in a header.
    #[error("MODELSERVER_AUTH_TOKEN contains characters that cannot appear in an HTTP header")]
    Token,
    /// The log filter does not parse.
    #[error("invalid log level {input:?}: {reason}")]
    LogLevel {
        /// The rejected filter.
        input: String,
        /// Why.
        reason: String,
    },
}

/// Why the sidecar (or one of its subcommands) stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port could not be bound.
    #[error("cannot listen on {addr} ({what} port): {source}")]
    Bind {
        /// `public` or `admin`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The socket directory could not be created.
    #[error("cannot create the worker socket directory {path:?}: {source}")]
    SocketDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A worker exited more often than allowed.
    #[error(
        "worker {worker} crash loop: it exited {exits} times within {window_secs}s, more than max-worker-restarts ({max}) allows; last exit: {last_exit}"
    )]
    CrashLoop {
        /// Worker index.
        worker: usize,
        /// Exits within the window.
        exits: usize,
        /// Window length in seconds.
        window_secs: u64,
        /// The configured maximum.
        max: u32,
        /// How the last run ended.
        last_exit: String,
        /// The last lines the worker wrote to stderr in its last run (for the termination
        /// message; not part of this error's text).
        last_output: Vec<String>,
    },
    /// A signal handler could not be installed.
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        /// Signal name.
        signal: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Metrics could not be registered.
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    /// The `drain` subcommand could not complete.
    #[error("drain via {url} failed: {reason}")]
    Drain {
        /// The admin URL used.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The `install` subcommand could not copy the executable.
    #[error("cannot install into {dir:?}: {what}: {source}")]
    Install {
        /// Target directory.
        dir: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// A request the sidecar answers itself with an error status and `{"error": message}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable reason.
    pub message: String,
    /// Seconds for a `Retry-After` header, when retrying later may work.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Adds `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A JSON response with any status, for the sidecar's own endpoints.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}
