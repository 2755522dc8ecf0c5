//! Worker recycling: the request limit of each worker run (`--max-requests-per-worker` plus a
//! random jitter drawn per run, like gunicorn's `max_requests` and `max_requests_jitter`), the
//! memory ceiling (`--max-worker-memory`), and the end of a replaced run: it takes no new
//! requests, finishes the ones it holds, then is stopped (SIGTERM, SIGKILL after the shutdown
//! timeout).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::exit::{MemoryEvidence, classify};
use super::supervisor::{finish_output, stop_child};
use crate::dispatch::Dispatcher;

/// Why a worker is recycled after its request limit, in its log line.
pub const RECYCLE_REASON: &str = "max requests reached";

/// When workers are recycled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecyclePolicy {
    /// Requests a worker run is sent before it is replaced; `None`: never.
    pub max_requests: Option<u64>,
    /// Up to this many requests added to each run's limit, at random.
    pub jitter: u64,
    /// Resident memory (bytes) over which a run is replaced; `None`: no ceiling.
    pub memory_ceiling: Option<u64>,
}

impl RecyclePolicy {
    /// The limit of one worker run: `max_requests` + a random number in `0..=jitter`.
    pub fn draw(&self) -> Option<u64> {
        self.limit_with(random())
    }

    /// The limit for the random number `r` (any `u64`, reduced into `0..=jitter`).
    pub fn limit_with(&self, r: u64) -> Option<u64> {
        let max = self.max_requests?;
        let extra = match self.jitter.checked_add(1) {
            Some(span) => r % span,
            None => r,
        };
        Some(max.saturating_add(extra))
    }
}

/// A random number from the standard library's per-process random hash keys (no dependency for
/// a jitter that only needs to differ between runs).
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(
        u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        )
        .unwrap_or(0),
    );
    hasher.finish()
}

/// One process of a worker: its child, the copy of its stderr, its pid and start time.
pub struct Run {
    /// The process.
    pub child: Child,
    /// The task passing its stderr through.
    pub output: Option<JoinHandle<()>>,
    /// Its pid, while it runs.
    pub pid: Option<u32>,
    /// When it was started.
    pub started: Instant,
}

/// What the task ending a replaced run needs.
pub struct Retirement {
    /// The worker index.
    pub worker: usize,
    /// The generation of the replaced run.
    pub generation: u64,
    /// Tells when its requests are done.
    pub dispatcher: Dispatcher,
    /// Cancelled when the sidecar stops (then it is stopped at once).
    pub stop: CancellationToken,
    /// Time between SIGTERM and SIGKILL.
    pub shutdown_timeout: Duration,
}

impl Retirement {
    /// Waits until the replaced run holds no request, then stops it.
    pub async fn run(self, mut old: Run) {
        let worker = self.worker;
        let pid = old.pid.unwrap_or(0);
        tokio::select! {
            () = self.dispatcher.drained(worker, self.generation) => {}
            () = self.stop.cancelled() => {}
            status = old.child.wait() => {
                let exit = classify(status, MemoryEvidence::default());
                info!(worker, pid, exit = %exit.text, "the replaced run of worker {worker} exited while finishing its requests");
                if let Some(task) = old.output {
                    finish_output(worker, task).await;
                }
                return;
            }
        }
        stop_child(worker, &mut old.child, self.shutdown_timeout).await;
        if let Some(task) = old.output {
            finish_output(worker, task).await;
        }
        info!(
            worker,
            pid, "the replaced run of worker {worker} finished its requests and was stopped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_the_maximum_plus_at_most_the_jitter() {
        let policy = RecyclePolicy {
            max_requests: Some(100),
            jitter: 10,
            memory_ceiling: None,
        };
        for r in [0, 1, 9, 10, 11, 12345, u64::MAX] {
            let limit = policy.limit_with(r).unwrap();
            assert!((100..=110).contains(&limit), "{r}: {limit}");
        }
        assert_eq!(policy.limit_with(10), Some(110), "the jitter is inclusive");
        assert_eq!(policy.limit_with(11), Some(100));
        let drawn: Vec<u64> = (0..200).filter_map(|_| policy.draw()).collect();
        assert!(drawn.iter().all(|l| (100..=110).contains(l)));
    }

    #[test]
    fn no_jitter_is_the_maximum_and_no_maximum_is_no_limit() {
        let exact = RecyclePolicy {
            max_requests: Some(5),
            jitter: 0,
            memory_ceiling: None,
        };
        assert!((0..50).all(|_| exact.draw() == Some(5)));
        assert_eq!(RecyclePolicy::default().draw(), None);
        let wide = RecyclePolicy {
            max_requests: Some(u64::MAX),
            jitter: u64::MAX,
            memory_ceiling: None,
        };
        assert_eq!(wide.limit_with(7), Some(u64::MAX), "saturates");
    }
}
