//! Where one managed worker serves: its Unix socket (the default) or a TCP port on 127.0.0.1
//! (`--worker-port-base`, for servers that bind TCP only). The worker learns it from its
//! environment; the sidecar connects to it and probes it there. A recycled worker's replacement
//! serves on a second socket path ([`WorkerEndpoint::for_generation`]) while the old run finishes;
//! a TCP worker keeps its port.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::backend::stream::BackendAddr;
use crate::config::{UpstreamAddr, env};

/// The extension of a worker's second socket path: `worker-<i>.sock` becomes `worker-<i>.1.sock`.
pub const ALTERNATE_SOCKET_EXTENSION: &str = "1.sock";

/// A worker's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerEndpoint {
    /// A Unix socket path, given to the worker in `MODELSERVER_SOCKET`.
    Socket(PathBuf),
    /// A TCP port on 127.0.0.1, given to the worker in `MODELSERVER_WORKER_PORT`.
    Port(u16),
}

impl WorkerEndpoint {
    /// The variable that tells the worker where to serve, and its value.
    pub fn env(&self) -> (&'static str, String) {
        match self {
            Self::Socket(path) => (env::SOCKET, path.to_string_lossy().into_owned()),
            Self::Port(port) => (env::WORKER_PORT, port.to_string()),
        }
    }

    /// The address the sidecar connects to.
    pub fn backend(&self) -> BackendAddr {
        match self {
            Self::Socket(path) => BackendAddr::Unix(path.clone()),
            Self::Port(port) => BackendAddr::Tcp(UpstreamAddr::loopback(*port)),
        }
    }

    /// Where run `generation` of this worker serves: the endpoint itself for even generations; for
    /// odd ones the second socket path next to it, or the same port (a TCP worker's port is fixed).
    pub fn for_generation(&self, generation: u64) -> Self {
        match self {
            Self::Socket(path) if !generation.is_multiple_of(2) => {
                Self::Socket(path.with_extension(ALTERNATE_SOCKET_EXTENSION))
            }
            other => other.clone(),
        }
    }

    /// The socket path, for a worker on a Unix socket.
    pub fn socket(&self) -> Option<&PathBuf> {
        match self {
            Self::Socket(path) => Some(path),
            Self::Port(_) => None,
        }
    }

    /// The port, for a worker on TCP.
    pub fn port(&self) -> Option<u16> {
        match self {
            Self::Socket(_) => None,
            Self::Port(port) => Some(*port),
        }
    }
}

impl fmt::Display for WorkerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.backend().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_told_where_to_serve_and_reached_there() {
        let socket = WorkerEndpoint::Socket(PathBuf::from("/s/worker-0.sock"));
        assert_eq!(
            socket.env(),
            ("MODELSERVER_SOCKET", "/s/worker-0.sock".to_owned())
        );
        assert_eq!(socket.to_string(), "unix:/s/worker-0.sock");
        assert_eq!(socket.port(), None);
        let port = WorkerEndpoint::Port(8001);
        assert_eq!(port.env(), ("MODELSERVER_WORKER_PORT", "8001".to_owned()));
        assert_eq!(port.to_string(), "127.0.0.1:8001");
        assert_eq!((port.socket(), port.port()), (None, Some(8001)));
        assert_eq!(
            socket.for_generation(1),
            WorkerEndpoint::Socket(PathBuf::from("/s/worker-0.1.sock"))
        );
        assert_eq!(socket.for_generation(2), socket);
        assert_eq!(port.for_generation(1), port, "a TCP worker keeps its port");
    }
}
