//! The state both routers share: where requests go, the limits, the lifecycle and the metrics.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::pooled::{BackendClient, Backends};
use crate::dispatch::{Dispatcher, LoadSnapshot};
use crate::metrics::{Metrics, StateSnapshot};
use crate::shutdown::Lifecycle;
use crate::workers::WorkerTable;

/// How the sidecar reaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Managed workers on Unix sockets.
    Serve,
    /// One TCP upstream.
    Proxy,
}

impl Mode {
    /// Name shown in `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Proxy => "proxy",
        }
    }
}

/// Per-request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, bytes.
    pub max_upload_size: u64,
    /// Budget until the response head, queueing included.
    pub request_timeout: Duration,
    /// Concurrent requests per backend.
    pub per_backend: usize,
    /// Waiting requests.
    pub max_queue: usize,
}

/// Shared by the public and admin routers.
pub struct AppState {
    /// Serve or proxy.
    pub mode: Mode,
    /// Slots and queue.
    pub dispatcher: Dispatcher,
    /// Backend addresses.
    pub backends: Arc<Backends>,
    /// Pooled client to the backends.
    pub client: BackendClient,
    /// Limits.
    pub limits: Limits,
    /// Draining state.
    pub lifecycle: Lifecycle,
    /// Prometheus series.
    pub metrics: Metrics,
    /// Worker rows for `/status` (managed mode only).
    pub workers: Option<Arc<WorkerTable>>,
    /// Write one log line per request.
    pub access_log: bool,
}

impl AppState {
    /// Ready means: not draining, and at startup every backend answers its readiness path; once
    /// that happened, at least one still does (a worker that is restarting or hung leaves the
    /// pod serving on the others; `workers_ready` and `/status` say how many).
    pub fn is_ready(&self) -> bool {
        self.ready_given(&self.dispatcher.snapshot())
    }

    fn ready_given(&self, load: &LoadSnapshot) -> bool {
        load.started && load.ready_count() > 0 && !self.lifecycle.is_draining()
    }

    /// The gauge values for a scrape.
    pub fn snapshot(&self) -> StateSnapshot {
        let load = self.dispatcher.snapshot();
        StateSnapshot {
            inflight: load.in_flight(),
            queued: load.queued,
            workers_ready: load.ready_count(),
            ready: self.ready_given(&load),
            draining: self.lifecycle.is_draining(),
        }
    }
}

/// Shared handle.
pub type SharedState = Arc<AppState>;
