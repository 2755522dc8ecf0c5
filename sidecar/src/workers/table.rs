//! The table of the workers' state, shown by `/status`. It is the one owner of a worker's state:
//! a worker is in rotation (the dispatcher sends it requests, readiness counts it) exactly while
//! its state is [`WorkerState::Ready`], because the table tells the dispatcher whenever a row
//! changes. The row's generation (which run of the worker takes new requests) reaches the
//! dispatcher the same way, so a recycled worker's replacement enters the rotation in one step.

use std::sync::{Mutex, PoisonError};
use tokio::time::Instant;

use crate::dispatch::Dispatcher;

use serde::Serialize;

use super::WorkerEndpoint;
use super::exit::ExitReason;

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
    /// Reached its request limit on a fixed TCP port: takes no new requests, finishes its own,
    /// then is stopped and started again in place.
    Recycling,
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
    /// Times it was restarted since the sidecar started (after an exit or a hang).
    pub restarts: u64,
    /// Times it was recycled (replaced after its request limit), apart from restarts.
    pub recycles: u64,
    /// The run that takes new requests (0 at start, one more per recycle).
    pub generation: u64,
    /// When the current run's process started.
    #[serde(skip)]
    pub started_at: Option<Instant>,
    /// Seconds from the current run's start to its first 200 on the readiness path; `None`
    /// while it loads.
    pub load_seconds: Option<f64>,
    /// Where it serves.
    pub endpoint: WorkerEndpoint,
    /// How its last run ended, if it did (`killed by SIGKILL, likely out of memory (limit
    /// 512Mi)`).
    pub last_exit: Option<String>,
    /// The category of that end (`exit`, `signal`, `oom`, `start_failed`).
    pub last_exit_reason: Option<ExitReason>,
}

/// The shared table of workers, and through it their place in the dispatcher's rotation.
pub struct WorkerTable {
    rows: Mutex<Vec<WorkerInfo>>,
    dispatcher: Dispatcher,
}

impl WorkerTable {
    /// A table with one `Starting` row per endpoint; worker `i` is the dispatcher's backend `i`.
    pub fn new(endpoints: &[WorkerEndpoint], dispatcher: Dispatcher) -> Self {
        let rows = endpoints
            .iter()
            .enumerate()
            .map(|(id, endpoint)| WorkerInfo {
                id,
                pid: None,
                state: WorkerState::Starting,
                restarts: 0,
                recycles: 0,
                generation: 0,
                started_at: None,
                load_seconds: None,
                endpoint: endpoint.clone(),
                last_exit: None,
                last_exit_reason: None,
            })
            .collect();
        Self {
            rows: Mutex::new(rows),
            dispatcher,
        }
    }

    /// Applies `f` to worker `id`'s row, then puts the worker in rotation when its state is
    /// `Ready` and takes it out otherwise (under the table's lock, so the rotation always
    /// follows the latest state).
    pub fn update(&self, id: usize, f: impl FnOnce(&mut WorkerInfo)) {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(row) = rows.get_mut(id) {
            f(row);
            self.dispatcher.set_generation(id, row.generation);
            self.dispatcher
                .set_ready(id, row.state == WorkerState::Ready);
        }
    }

    /// A copy of worker `id`'s row.
    pub fn row(&self, id: usize) -> Option<WorkerInfo> {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// A copy of every row.
    pub fn snapshot(&self) -> Vec<WorkerInfo> {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotation_follows_the_worker_state() {
        let dispatcher = Dispatcher::new(2, 1, 1);
        let table = WorkerTable::new(
            &[
                WorkerEndpoint::Socket("/a".into()),
                WorkerEndpoint::Port(8001),
            ],
            dispatcher.clone(),
        );
        let ready = |d: &Dispatcher| -> Vec<bool> {
            d.snapshot().backends.iter().map(|b| b.ready).collect()
        };
        table.update(1, |w| w.state = WorkerState::Ready);
        assert_eq!(ready(&dispatcher), vec![false, true]);
        table.update(1, |w| w.pid = Some(7));
        assert_eq!(
            ready(&dispatcher),
            vec![false, true],
            "other fields leave it in"
        );
        for out in [
            WorkerState::Unresponsive,
            WorkerState::Restarting,
            WorkerState::Recycling,
            WorkerState::Stopping,
            WorkerState::Stopped,
            WorkerState::Starting,
        ] {
            table.update(1, |w| w.state = WorkerState::Ready);
            table.update(1, |w| w.state = out);
            assert_eq!(ready(&dispatcher), vec![false, false], "{out:?}");
        }
        table.update(7, |w| w.state = WorkerState::Ready);
        assert_eq!(
            ready(&dispatcher),
            vec![false, false],
            "unknown worker ignored"
        );
    }

    #[tokio::test]
    async fn the_generation_reaches_the_dispatcher_with_the_row() {
        let dispatcher = Dispatcher::new(1, 2, 1);
        let table = WorkerTable::new(&[WorkerEndpoint::Socket("/a".into())], dispatcher.clone());
        table.update(0, |w| w.state = WorkerState::Ready);
        let old = dispatcher.acquire().await.unwrap();
        assert_eq!(old.target(), 0);
        table.update(0, |w| {
            w.generation = 1;
            w.recycles += 1;
        });
        let new = dispatcher.acquire().await.unwrap();
        assert_eq!(new.target(), 1, "the replacement's address");
        assert_eq!((dispatcher.held(0, 0), dispatcher.held(0, 1)), (1, 1));
        assert_eq!(table.row(0).map(|w| (w.restarts, w.recycles)), Some((0, 1)));
    }
}
