//! The state both ports share: where requests go, the limits, the drain flags and the
//! metrics. It sits below the HTTP layer and knows the model only as a [`Backend`].

use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::dispatch::{Dispatcher, LoadSnapshot};
use crate::metrics::{Metrics, StateSnapshot};
use crate::shutdown::Lifecycle;
use crate::workers::WorkerTable;

/// How the sidecar reaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Managed mode (`serve`): the sidecar starts the workers, each on its own Unix socket.
    Managed,
    /// Proxy mode (`proxy`): one TCP upstream that runs itself.
    Proxy,
}

impl Mode {
    /// Name shown in `/status` and the start-up log: the subcommand's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Managed => "serve",
            Self::Proxy => "proxy",
        }
    }

    /// `worker N` or `upstream`, for messages and the access log.
    pub fn backend_name(self, backend: usize) -> String {
        self.backend_label(backend).to_string()
    }

    /// [`Mode::backend_name`] without building a string (for the access log).
    pub fn backend_label(self, backend: usize) -> BackendLabel {
        BackendLabel {
            mode: self,
            backend,
        }
    }
}

/// Shows `worker N` or `upstream`.
#[derive(Debug, Clone, Copy)]
pub struct BackendLabel {
    mode: Mode,
    backend: usize,
}

impl std::fmt::Display for BackendLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mode {
            Mode::Managed => write!(f, "worker {}", self.backend),
            Mode::Proxy => f.write_str("upstream"),
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

/// Shared by the public and admin ports.
pub struct AppState {
    /// Managed or proxy mode.
    pub mode: Mode,
    /// Slots and queue; which backends are in rotation.
    pub dispatcher: Dispatcher,
    /// Where requests go.
    pub backend: Arc<dyn Backend>,
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
    /// Distributed tracing, when it is on.
    pub tracer: Option<crate::trace::Tracer>,
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
            drain_deadline: self.lifecycle.drain_deadline(),
        }
    }
}

/// Shared handle.
pub type SharedState = Arc<AppState>;
