//! Starts the workers, watches them become ready, restarts the ones that exit (exponential
//! backoff), gives up when one exits more than `max_restarts` times within [`RESTART_WINDOW`], and
//! stops them all on shutdown: SIGTERM, then SIGKILL after the shutdown timeout. Each worker's
//! stderr is passed through to the sidecar's, with its tail kept for the termination message;
//! each exit is classified ([`super::exit`]), naming likely out-of-memory kills. A worker that
//! serves is probed on its readiness path every probe period: one failed probe takes it out of
//! rotation until a probe succeeds; `failures` in a row (a request reported stuck past the
//! request timeout counts as one, and triggers a probe at once) and it is called hung, killed
//! with SIGKILL and restarted like a worker that exited.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::cgroup::MemoryCgroup;
use super::exit::{ExitReason, MemoryEvidence, WorkerExit, classify};
use super::expand::{expand, references};
use super::output::{SharedTail, pass_through};
use super::{WorkerEndpoint, WorkerState, WorkerTable};
use crate::backend::Backend;
use crate::config::env;
use crate::dispatch::Dispatcher;
use crate::errors::{ConfigError, SidecarError};
use crate::metrics::Metrics;
use modelserver_units::format_duration;

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
/// After a worker exits, how long to wait for the rest of its stderr (a process it started may
/// still hold the pipe open).
pub const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Everything needed to run the workers.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Program and arguments, before `$(VAR)` expansion.
    pub command: Vec<String>,
    /// Where each worker serves.
    pub endpoints: Vec<WorkerEndpoint>,
    /// Each worker's gRPC port, when workers serve gRPC.
    pub grpc_ports: Option<Vec<u16>>,
    /// `MODELSERVER_EXECUTOR_THREADS` given to each worker.
    pub executor_threads: u16,
    /// Path that answers 200 once a worker has loaded.
    pub readiness_path: PathAndQuery,
    /// Restarts allowed within [`RESTART_WINDOW`].
    pub max_restarts: u32,
    /// The container's memory cgroup, read to name out-of-memory kills.
    pub cgroup: MemoryCgroup,
    /// The auth token the sidecar enforces: never expanded into the command line, and given to
    /// the workers in `MODELSERVER_AUTH_TOKEN` only with passthrough.
    pub auth_token: Option<String>,
    /// Give the workers the token (`MODELSERVER_AUTH_PASSTHROUGH`).
    pub auth_passthrough: bool,
    /// How serving workers are watched for hangs.
    pub probe: ProbeSettings,
}

/// Readiness probes of serving workers, like a kubelet probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Time between probes.
    pub period: Duration,
    /// Budget of one probe.
    pub timeout: Duration,
    /// Failures in a row after which the worker is killed as hung.
    pub failures: u32,
}

impl WorkerSpec {
    /// True when expanding `name` would put a secret on the command line: the token's variable,
    /// or any variable whose value contains the token.
    fn is_secret(&self, name: &str, value: Option<&str>) -> bool {
        name == env::AUTH_TOKEN
            || self
                .auth_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .zip(value)
                .is_some_and(|(token, value)| value.contains(token))
    }

    /// The variables of the sidecar's environment that hold the token (its own included), kept
    /// from the workers unless passthrough is on; empty without a token.
    pub fn token_variables(&self) -> Vec<std::ffi::OsString> {
        let Some(token) = self.auth_token.as_deref().filter(|t| !t.is_empty()) else {
            return Vec::new();
        };
        let token = token.as_bytes();
        std::env::vars_os()
            .filter(|(_, value)| {
                value
                    .as_encoded_bytes()
                    .windows(token.len())
                    .any(|w| w == token)
            })
            .map(|(name, _)| name)
            .collect()
    }

    /// Refuses a command whose `$(VAR)` references would expand a secret into the workers'
    /// argv, which every process on the node can read (`ps`, `/proc/<pid>/cmdline`).
    pub fn check_no_secrets(&self) -> Result<(), ConfigError> {
        for (argument, arg) in self.command.iter().enumerate() {
            for variable in references(arg) {
                let value = std::env::var(&variable).ok();
                if self.is_secret(&variable, value.as_deref()) {
                    return Err(ConfigError::SecretInCommand { variable, argument });
                }
            }
        }
        Ok(())
    }
}

/// Shared handles the worker tasks update.
#[derive(Clone)]
pub struct WorkerDeps {
    /// Where requests to a worker that timed out are reported.
    pub dispatcher: Dispatcher,
    /// The workers' connections, for readiness probes.
    pub backend: Arc<dyn Backend>,
    /// The workers' states (and so their place in rotation).
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
        let (fatal_tx, fatal) = mpsc::channel(spec.endpoints.len().max(1));
        let (grace_tx, grace_rx) = tokio::sync::watch::channel(Duration::ZERO);
        let spec = Arc::new(spec);
        let mut tasks = JoinSet::new();
        for id in 0..spec.endpoints.len() {
            let worker = Worker {
                id,
                spec: spec.clone(),
                deps: deps.clone(),
                stop: stop.clone(),
                grace: grace_rx.clone(),
                fatal: fatal_tx.clone(),
                tail: SharedTail::default(),
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
    /// The last stderr output of the current (or last) run.
    tail: SharedTail,
}

/// How watching a running worker ended.
enum Watched {
    /// It exited on its own (its wait status).
    Exited(std::io::Result<ExitStatus>),
    /// It hung and was killed; how, in words.
    Hung(String),
    /// The sidecar is stopping (the worker was stopped).
    Stopped,
}

/// How one run of a worker ended.
enum RunEnd {
    /// It exited (or could not start) on its own.
    Exited { exit: WorkerExit, uptime: Duration },
    /// The sidecar is stopping.
    Stopped,
}

impl Worker {
    async fn run(self) {
        let mut exits: VecDeque<Instant> = VecDeque::new();
        let mut consecutive: u32 = 0;
        loop {
            // Every branch below sets a state other than `Ready` before the next await, which
            // takes the worker out of rotation.
            let end = self.run_once().await;
            let (how, uptime) = match end {
                RunEnd::Stopped => {
                    self.deps.table.update(self.id, |w| {
                        w.state = WorkerState::Stopped;
                        w.pid = None;
                    });
                    return;
                }
                RunEnd::Exited { exit, uptime } => (exit, uptime),
            };
            self.deps.metrics.worker_exited(how.reason);
            if self.stop.is_cancelled() {
                self.deps.table.update(self.id, |w| {
                    w.state = WorkerState::Stopped;
                    w.pid = None;
                    w.last_exit = Some(how.text);
                    w.last_exit_reason = Some(how.reason);
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
                error!(
                    worker = self.id,
                    exit = %how.text,
                    reason = how.reason.as_str(),
                    "{}; not restarting it again",
                    how.summary(self.id)
                );
                let err = SidecarError::CrashLoop {
                    worker: self.id,
                    exits: exits.len(),
                    window_secs: RESTART_WINDOW.as_secs(),
                    max,
                    last_exit: how.text.clone(),
                    last_output: self.tail.with(|t| t.lines()),
                };
                self.deps.table.update(self.id, |w| {
                    w.state = WorkerState::Stopped;
                    w.pid = None;
                    w.last_exit = Some(how.text);
                    w.last_exit_reason = Some(how.reason);
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
                exit = %how.text,
                reason = how.reason.as_str(),
                restart_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                exits_in_window = exits.len(),
                max_restarts = max,
                "{}; restarting",
                how.summary(self.id)
            );
            self.deps.table.update(self.id, |w| {
                w.state = WorkerState::Restarting;
                w.pid = None;
                w.last_exit = Some(how.text);
                w.last_exit_reason = Some(how.reason);
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
        let grpc_port = self
            .spec
            .grpc_ports
            .as_ref()
            .and_then(|ports| ports.get(self.id))
            .map(|port| (env::GRPC_PORT, port.to_string()));
        let extra: Vec<(&str, String)> = [
            self.spec.endpoints[self.id].env(),
            (env::WORKER_ID, self.id.to_string()),
            (env::WORKERS, self.spec.endpoints.len().to_string()),
            (
                env::EXECUTOR_THREADS,
                self.spec.executor_threads.to_string(),
            ),
        ]
        .into_iter()
        .chain(grpc_port)
        .collect();
        let lookup = |name: &str| -> Option<String> {
            let value = extra
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok());
            // Refused at start (`check_no_secrets`); left unexpanded should one slip through.
            if self.spec.is_secret(name, value.as_deref()) {
                return None;
            }
            value
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
            // The model code sees the front door's token only when passthrough is asked for.
            .env_remove(env::AUTH_TOKEN)
            .stdin(Stdio::null())
            // Passed through to the sidecar's stderr, keeping the tail (see `output`).
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if self.spec.auth_passthrough {
            if let Some(token) = &self.spec.auth_token {
                cmd.env(env::AUTH_TOKEN, token);
            }
        } else {
            for name in self.spec.token_variables() {
                cmd.env_remove(name);
            }
        }
        cmd
    }

    async fn run_once(&self) -> RunEnd {
        if let Some(socket) = self.spec.endpoints[self.id].socket()
            && let Err(e) = std::fs::remove_file(socket)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(worker = self.id, socket = %socket.display(), error = %e, "cannot remove stale socket");
        }
        self.deps
            .table
            .update(self.id, |w| w.state = WorkerState::Starting);
        self.tail.with(|t| t.clear());
        let oom_kills_before = self.spec.cgroup.oom_kills();
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
                    exit: WorkerExit::start_failed(how),
                    uptime: Duration::ZERO,
                };
            }
        };
        let output = child
            .stderr
            .take()
            .map(|stderr| pass_through(self.id, stderr, self.tail.clone()));
        let status = match self.watch(&mut child, started).await {
            Watched::Exited(status) => status,
            Watched::Stopped => return RunEnd::Stopped,
            Watched::Hung(text) => {
                if let Some(task) = output {
                    finish_output(self.id, task).await;
                }
                return RunEnd::Exited {
                    exit: WorkerExit::hung(text),
                    uptime: started.elapsed(),
                };
            }
        };
        let uptime = started.elapsed();
        // The traceback is usually the last thing a crashing worker writes.
        if let Some(task) = output {
            finish_output(self.id, task).await;
        }
        let memory = MemoryEvidence {
            oom_kill_rose: oom_kills_before
                .zip(self.spec.cgroup.oom_kills())
                .map(|(before, after)| after > before),
            limit: self.spec.cgroup.limit(),
        };
        RunEnd::Exited {
            exit: classify(status, memory),
            uptime,
        }
    }

    /// Waits for the worker to become ready, then watches it serve until it exits, hangs (it is
    /// killed) or the sidecar stops (it is stopped).
    async fn watch(&self, child: &mut Child, started: Instant) -> Watched {
        let endpoint = &self.spec.endpoints[self.id];
        let pid = child.id();
        self.deps.table.update(self.id, |w| w.pid = pid);
        info!(worker = self.id, pid = pid.unwrap_or(0), %endpoint, "worker started");

        let ready = async {
            loop {
                if self
                    .deps
                    .backend
                    .probe(self.id, self.spec.readiness_path.clone(), PROBE_TIMEOUT)
                    .await
                {
                    return;
                }
                tokio::time::sleep(READINESS_POLL).await;
            }
        };
        tokio::select! {
            status = child.wait() => return Watched::Exited(status),
            () = self.stop.cancelled() => return self.terminate(child).await,
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
        let hung = tokio::select! {
            status = child.wait() => return Watched::Exited(status),
            () = self.stop.cancelled() => return self.terminate(child).await,
            hung = self.monitor(pid) => hung,
        };
        self.deps
            .table
            .update(self.id, |w| w.state = WorkerState::Unresponsive);
        error!(
            worker = self.id,
            pid = pid.unwrap_or(0),
            reason = ExitReason::Hung.as_str(),
            "worker {} {hung}",
            self.id
        );
        if let Err(e) = child.start_kill() {
            error!(worker = self.id, error = %e, "cannot kill the hung worker");
        }
        // SIGKILL ends even a stopped process; its exit status adds nothing to "hung".
        if let Err(e) = child.wait().await {
            warn!(worker = self.id, error = %e, "cannot wait for the hung worker");
        }
        Watched::Hung(hung)
    }

    /// Probes the serving worker until it fails `failures` times in a row; returns why it is
    /// called hung. The first failure takes it out of rotation; a success puts it back.
    async fn monitor(&self, pid: Option<u32>) -> String {
        let settings = self.spec.probe;
        let path = &self.spec.readiness_path;
        let mut failures: u32 = 0;
        let mut stuck_requests: u32 = 0;
        loop {
            let stuck = tokio::select! {
                () = tokio::time::sleep(settings.period) => false,
                () = self.deps.dispatcher.stuck(self.id) => true,
            };
            if stuck {
                failures = failures.saturating_add(1);
                stuck_requests = stuck_requests.saturating_add(1);
                warn!(
                    worker = self.id,
                    pid = pid.unwrap_or(0),
                    failures,
                    "a request to the worker got no answer within the request timeout; probing it now"
                );
            }
            let answered = self
                .deps
                .backend
                .probe(self.id, path.clone(), settings.timeout)
                .await;
            if answered {
                if failures > 0 {
                    self.set_serving(true);
                    info!(
                        worker = self.id,
                        pid = pid.unwrap_or(0),
                        "worker answers its readiness path again; back in rotation"
                    );
                }
                failures = 0;
                stuck_requests = 0;
                continue;
            }
            failures = failures.saturating_add(1);
            if failures >= settings.failures {
                return format!(
                    "hung: no 200 from GET {path} within {} ({failures} failures in a row{}); killed with SIGKILL",
                    format_duration(settings.timeout),
                    if stuck_requests > 0 {
                        format!(", {stuck_requests} of them a request past the request timeout")
                    } else {
                        String::new()
                    },
                );
            }
            if self.set_serving(false) {
                warn!(
                    worker = self.id,
                    pid = pid.unwrap_or(0),
                    failures,
                    max_failures = settings.failures,
                    probe_timeout = %format_duration(settings.timeout),
                    "worker does not answer its readiness path; out of rotation until it does"
                );
            }
        }
    }

    /// Puts the worker in or out of rotation; true when that changed its state.
    fn set_serving(&self, serving: bool) -> bool {
        let mut changed = false;
        self.deps.table.update(self.id, |w| {
            let state = if serving {
                WorkerState::Ready
            } else {
                WorkerState::Unresponsive
            };
            changed = w.state != state;
            w.state = state;
        });
        changed
    }

    /// Stops the worker (SIGTERM, SIGKILL after the grace period).
    async fn terminate(&self, child: &mut Child) -> Watched {
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
                let exit = classify(status, MemoryEvidence::default());
                info!(worker = self.id, exit = %exit.text, "worker stopped");
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
        Watched::Stopped
    }
}

/// Waits briefly for the copy of a worker's stderr to reach the end of the pipe.
async fn finish_output(worker: usize, task: JoinHandle<()>) {
    if tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, task)
        .await
        .is_err()
    {
        debug!(
            worker,
            "worker stderr still open after it exited; its tail may be incomplete"
        );
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
