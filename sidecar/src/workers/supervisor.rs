//! Starts the workers, watches them become ready, restarts the ones that exit (exponential
//! backoff), gives up when one exits more than `max_restarts` times within [`RESTART_WINDOW`], and
//! stops them all on shutdown: SIGTERM, then SIGKILL after the shutdown timeout.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::expand::expand;
use super::{WorkerState, WorkerTable};
use crate::config::env;
use crate::dispatch::Dispatcher;
use crate::errors::SidecarError;
use crate::metrics::Metrics;
use crate::proxy::backend::{BackendClient, Backends, probe};

/// Exits are counted within this window against `max_restarts`.
pub const RESTART_WINDOW: Duration = Duration::from_secs(600);
/// First restart delay; doubled for each further exit in a row.
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest restart delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A worker that stayed up this long starts its backoff from the base again.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
/// Pause between readiness probes while a worker loads.
pub const READINESS_POLL: Duration = Duration::from_millis(100);
/// Budget of one readiness probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything needed to run the workers.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Program and arguments, before `$(VAR)` expansion.
    pub command: Vec<String>,
    /// One socket per worker.
    pub sockets: Vec<PathBuf>,
    /// `MODELSERVER_EXECUTOR_THREADS` given to each worker.
    pub executor_threads: u16,
    /// Path that answers 200 once a worker has loaded.
    pub readiness_path: PathAndQuery,
    /// Restarts allowed within [`RESTART_WINDOW`].
    pub max_restarts: u32,
}

/// Shared handles the worker tasks update.
#[derive(Clone)]
pub struct WorkerDeps {
    /// Readiness and load per worker.
    pub dispatcher: Dispatcher,
    /// The pooled client (for readiness probes).
    pub client: BackendClient,
    /// Worker addresses.
    pub backends: Arc<Backends>,
    /// `/status` rows.
    pub table: Arc<WorkerTable>,
    /// Restart counter.
    pub metrics: Metrics,
}

/// The running workers.
pub struct Supervisor {
    tasks: JoinSet<()>,
    stop: CancellationToken,
    kill_grace: Arc<tokio::sync::watch::Sender<Duration>>,
    fatal: mpsc::Receiver<SidecarError>,
}

impl Supervisor {
    /// Starts every worker.
    pub fn start(spec: WorkerSpec, deps: WorkerDeps) -> Self {
        let stop = CancellationToken::new();
        let (fatal_tx, fatal) = mpsc::channel(spec.sockets.len().max(1));
        let (grace_tx, grace_rx) = tokio::sync::watch::channel(Duration::ZERO);
        let spec = Arc::new(spec);
        let mut tasks = JoinSet::new();
        for id in 0..spec.sockets.len() {
            let worker = Worker {
                id,
                spec: spec.clone(),
                deps: deps.clone(),
                stop: stop.clone(),
                grace: grace_rx.clone(),
                fatal: fatal_tx.clone(),
            };
            tasks.spawn(worker.run());
        }
        Self {
            tasks,
            stop,
            kill_grace: Arc::new(grace_tx),
            fatal,
        }
    }

    /// Resolves with the error when a worker crash-loops (never resolves otherwise).
    pub async fn fatal(&mut self) -> SidecarError {
        match self.fatal.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// Stops every worker: SIGTERM, then SIGKILL for those still running after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        self.kill_grace.send_replace(grace);
        self.stop.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(e) = joined {
                error!(error = %e, "worker task failed");
            }
        }
    }
}

struct Worker {
    id: usize,
    spec: Arc<WorkerSpec>,
    deps: WorkerDeps,
    stop: CancellationToken,
    grace: tokio::sync::watch::Receiver<Duration>,
    fatal: mpsc::Sender<SidecarError>,
}

/// How one run of a worker ended.
enum RunEnd {
    /// It exited (or could not start) on its own.
    Exited { how: String, uptime: Duration },
    /// The sidecar is stopping.
    Stopped,
}

impl Worker {
    async fn run(self) {
        let mut exits: VecDeque<Instant> = VecDeque::new();
        let mut consecutive: u32 = 0;
        loop {
            let end = self.run_once().await;
            self.deps.dispatcher.set_ready(self.id, false);
            let (how, uptime) = match end {
                RunEnd::Stopped => {
                    self.deps.table.update(self.id, |w| {
                        w.state = WorkerState::Stopped;
                        w.pid = None;
                    });
                    return;
                }
                RunEnd::Exited { how, uptime } => (how, uptime),
            };
            if self.stop.is_cancelled() {
                self.deps.table.update(self.id, |w| {
                    w.state = WorkerState::Stopped;
                    w.pid = None;
                    w.last_exit = Some(how);
                });
                return;
            }

            let now = Instant::now();
            exits.push_back(now);
            while exits
                .front()
                .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
            {
                exits.pop_front();
            }
            let max = self.spec.max_restarts;
            if exits.len() > max as usize {
                let err = SidecarError::CrashLoop {
                    worker: self.id,
                    exits: exits.len(),
                    window_secs: RESTART_WINDOW.as_secs(),
                    max,
                    last_exit: how.clone(),
                };
                self.deps.table.update(self.id, |w| {
                    w.state = WorkerState::Stopped;
                    w.pid = None;
                    w.last_exit = Some(how);
                });
                // The receiver only goes away when the sidecar is already stopping.
                let _ = self.fatal.send(err).await;
                return;
            }

            consecutive = if uptime >= BACKOFF_RESET_AFTER {
                1
            } else {
                consecutive.saturating_add(1)
            };
            let delay = backoff(consecutive);
            warn!(
                worker = self.id,
                exit = %how,
                restart_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                exits_in_window = exits.len(),
                max_restarts = max,
                "worker exited; restarting"
            );
            self.deps.table.update(self.id, |w| {
                w.state = WorkerState::Restarting;
                w.pid = None;
                w.last_exit = Some(how);
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => {
                    self.deps.table.update(self.id, |w| w.state = WorkerState::Stopped);
                    return;
                }
            }
            self.deps.metrics.worker_restarts_total.inc();
            self.deps.table.update(self.id, |w| w.restarts += 1);
        }
    }

    fn command(&self) -> Command {
        let socket = self.spec.sockets[self.id].to_string_lossy().into_owned();
        let extra = [
            (env::SOCKET, socket),
            (env::WORKER_ID, self.id.to_string()),
            (env::WORKERS, self.spec.sockets.len().to_string()),
            (
                env::EXECUTOR_THREADS,
                self.spec.executor_threads.to_string(),
            ),
        ];
        let lookup = |name: &str| -> Option<String> {
            extra
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok())
        };
        let expanded: Vec<String> = self
            .spec
            .command
            .iter()
            .map(|arg| expand(arg, lookup))
            .collect();
        let (program, args) = match expanded.split_first() {
            Some((p, a)) => (p.clone(), a.to_vec()),
            None => (String::new(), Vec::new()),
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            // The model code has no use for the front door's token.
            .env_remove(env::AUTH_TOKEN)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    async fn run_once(&self) -> RunEnd {
        let socket = &self.spec.sockets[self.id];
        if let Err(e) = std::fs::remove_file(socket)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(worker = self.id, socket = %socket.display(), error = %e, "cannot remove stale socket");
        }
        self.deps
            .table
            .update(self.id, |w| w.state = WorkerState::Starting);
        let started = Instant::now();
        let mut child = match self.command().spawn() {
            Ok(child) => child,
            Err(e) => {
                let how = format!(
                    "could not start {:?}: {e}",
                    self.spec.command.first().map(String::as_str).unwrap_or("")
                );
                error!(worker = self.id, error = %how, "worker failed to start");
                return RunEnd::Exited {
                    how,
                    uptime: Duration::ZERO,
                };
            }
        };
        let pid = child.id();
        self.deps.table.update(self.id, |w| w.pid = pid);
        info!(worker = self.id, pid = pid.unwrap_or(0), socket = %socket.display(), "worker started");

        let ready = async {
            loop {
                if probe(
                    &self.deps.client,
                    &self.deps.backends,
                    self.id,
                    &self.spec.readiness_path,
                    PROBE_TIMEOUT,
                )
                .await
                {
                    return;
                }
                tokio::time::sleep(READINESS_POLL).await;
            }
        };
        tokio::select! {
            status = child.wait() => return exited(status, started),
            () = self.stop.cancelled() => return self.terminate(&mut child).await,
            () = ready => {}
        }
        info!(
            worker = self.id,
            pid = pid.unwrap_or(0),
            load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "worker ready"
        );
        self.deps
            .table
            .update(self.id, |w| w.state = WorkerState::Ready);
        self.deps.dispatcher.set_ready(self.id, true);
        tokio::select! {
            status = child.wait() => exited(status, started),
            () = self.stop.cancelled() => self.terminate(&mut child).await,
        }
    }

    async fn terminate(&self, child: &mut Child) -> RunEnd {
        self.deps.dispatcher.set_ready(self.id, false);
        self.deps
            .table
            .update(self.id, |w| w.state = WorkerState::Stopping);
        let grace = *self.grace.borrow();
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok())
            && let Err(e) = kill(Pid::from_raw(pid), Signal::SIGTERM)
        {
            warn!(worker = self.id, pid, error = %e, "cannot send SIGTERM");
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => {
                info!(worker = self.id, exit = %describe(status), "worker stopped");
            }
            Err(_) => {
                warn!(
                    worker = self.id,
                    grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                    "worker still running after the shutdown timeout; sending SIGKILL"
                );
                if let Err(e) = child.kill().await {
                    error!(worker = self.id, error = %e, "cannot kill worker");
                }
            }
        }
        RunEnd::Stopped
    }
}

fn exited(status: std::io::Result<ExitStatus>, started: Instant) -> RunEnd {
    RunEnd::Exited {
        how: describe(status),
        uptime: started.elapsed(),
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            match (s.code(), s.signal()) {
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(sig)) => match Signal::try_from(sig) {
                    Ok(signal) => format!("killed by {signal}"),
                    Err(_) => format!("killed by signal {sig}"),
                },
                (None, None) => s.to_string(),
            }
        }
        Err(e) => format!("cannot wait for the process: {e}"),
    }
}

/// The delay before restart number `n` in a row (1-based): base × 2^(n-1), capped.
pub fn backoff(n: u32) -> Duration {
    let shift = n.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1u32 << shift).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }
}
