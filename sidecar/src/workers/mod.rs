//! Managed mode: the model's worker processes, how their command line is built, and the table of
//! their state that `/status` shows.

pub mod cgroup;
pub mod exit;
pub mod expand;
pub mod output;
pub mod supervisor;

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use exit::ExitReason;

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Started, not yet answering its readiness path.
    Starting,
    /// Answering its readiness path; takes requests.
    Ready,
    /// Was ready, now failing its readiness probes (or a request timed out): takes no new
    /// requests; restarted when it does not recover within the probe failure threshold.
    Unresponsive,
    /// Exited; waiting out the backoff before the next start.
    Restarting,
    /// Being stopped (SIGTERM sent).
    Stopping,
    /// Stopped for good.
    Stopped,
}

/// One worker's row in `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    /// Index, `0..workers` (its `MODELSERVER_WORKER_ID`).
    pub id: usize,
    /// Process id while running.
    pub pid: Option<u32>,
    /// State.
    pub state: WorkerState,
    /// Times it was restarted since the sidecar started.
    pub restarts: u64,
    /// Its Unix socket.
    pub socket: PathBuf,
    /// How its last run ended, if it did (`killed by SIGKILL, likely out of memory (limit
    /// 512Mi)`).
    pub last_exit: Option<String>,
    /// The category of that end (`exit`, `signal`, `oom`, `start_failed`).
    pub last_exit_reason: Option<ExitReason>,
}

/// The shared table of workers.
#[derive(Debug)]
pub struct WorkerTable {
    rows: Mutex<Vec<WorkerInfo>>,
}

impl WorkerTable {
    /// A table with one `Starting` row per socket.
    pub fn new(sockets: &[PathBuf]) -> Self {
        let rows = sockets
            .iter()
            .enumerate()
            .map(|(id, socket)| WorkerInfo {
                id,
                pid: None,
                state: WorkerState::Starting,
                restarts: 0,
                socket: socket.clone(),
                last_exit: None,
                last_exit_reason: None,
            })
            .collect();
        Self {
            rows: Mutex::new(rows),
        }
    }

    /// Applies `f` to worker `id`'s row.
    pub fn update(&self, id: usize, f: impl FnOnce(&mut WorkerInfo)) {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(row) = rows.get_mut(id) {
            f(row);
        }
    }

    /// A copy of every row.
    pub fn snapshot(&self) -> Vec<WorkerInfo> {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
