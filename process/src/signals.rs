//! SIGTERM (the kubelet stopping a container) and SIGINT (Ctrl-C): the two signals that start a
//! graceful shutdown in both binaries.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// A signal handler that could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the {signal} handler: {cause}")]
pub struct SignalError {
    /// `SIGTERM` or `SIGINT`.
    pub signal: &'static str,
    /// The OS error.
    pub cause: std::io::Error,
}

/// Both handlers, installed at once (before anything binds, so a failure stops the start).
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the SIGTERM and SIGINT handlers.
    pub fn install() -> Result<Self, SignalError> {
        let install = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|cause| SignalError {
                signal: name,
                cause,
            })
        };
        Ok(Self {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
        })
    }

    /// Waits for the next signal and returns its name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
