//! What can go wrong at start or in a subcommand, with the context to act on it.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// The workers' TCP ports cannot be used.
    #[error("MODELSERVER_WORKER_PORT_BASE: {0}")]
    WorkerPorts(#[from] modelserver_contract::socket::WorkerPortsError),
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
    /// The upstream credential cannot be used.
    #[error("{0}")]
    UpstreamCredential(&'static str),
    /// The TLS certificate or key cannot be used.
    #[error("TLS {path:?}: {reason}")]
    Tls {
        /// The certificate or key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The auth token cannot appear in a header.
    #[error("MODELSERVER_AUTH_TOKEN contains characters that cannot appear in an HTTP header")]
    Token,
    /// The log filter does not parse.
    #[error(transparent)]
    LogLevel(#[from] modelserver_process::logging::LogLevelError),
}

/// Why the sidecar (or one of its subcommands) stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port could not be bound.
    #[error("cannot listen on {addr} ({what} port): {cause}")]
    Bind {
        /// `public` or `admin`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        cause: io::Error,
    },
    /// The socket directory could not be created.
    #[error("cannot create the worker socket directory {path:?}: {cause}")]
    SocketDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        cause: io::Error,
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
    #[error(transparent)]
    Signal(#[from] modelserver_process::signals::SignalError),
    /// Metrics could not be registered.
    #[error("cannot register metrics: {0}")]
    Metrics(prometheus::Error),
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
    #[error("cannot install into {dir:?}: {what}: {cause}")]
    Install {
        /// Target directory.
        dir: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        cause: io::Error,
    },
}

// Not `#[from]`: that would also return the cause from `source()`, which the message already
// prints, and error chains would print it twice.
impl From<prometheus::Error> for SidecarError {
    fn from(cause: prometheus::Error) -> Self {
        Self::Metrics(cause)
    }
}

/// An error and its causes, `outer: inner: innermost`, for errors of other crates (hyper's and
/// the body's) that do not print their cause; a cause the text already holds is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message and every `source()` below it, as a log line that walks the chain shows them.
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }

    #[test]
    fn a_chain_of_foreign_errors_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let error = Outer(io::Error::other("inner"));
        assert_eq!(error_chain(&error), "outer: inner");
        #[derive(Debug, thiserror::Error)]
        #[error("outer: inner")]
        struct Repeats(#[source] io::Error);
        assert_eq!(
            error_chain(&Repeats(io::Error::other("inner"))),
            "outer: inner"
        );
    }

    #[test]
    fn a_cause_is_printed_once_whether_or_not_the_chain_is_walked() {
        let errors = [
            SidecarError::Bind {
                what: "public",
                addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
                cause: io::Error::new(io::ErrorKind::AddrInUse, "address in use"),
            },
            SidecarError::Metrics(prometheus::Error::Msg("duplicate metric".into())),
        ];
        for error in errors {
            let walked = chain(&error);
            assert_eq!(
                walked,
                error.to_string(),
                "the cause is printed twice: {walked}"
            );
        }
    }
}
