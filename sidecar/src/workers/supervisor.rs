//! Starts the workers, watches them become ready, restarts the ones that exit (exponential
//! backoff), gives up when one exits more than `max_restarts` times within [`RESTART_WINDOW`], and
//! stops them all on shutdown: SIGTERM, then SIGKILL after the shutdown timeout. Each worker's
//! stderr is passed through to the sidecar's, with its tail kept for the termination message;
//! each exit is classified ([`super::exit`]), naming likely out-of-memory kills. A worker that
//! serves is probed on its readiness path every probe period: one failed probe takes it out of
//! rotation until a probe succeeds; `failures` in a row (a request reported stuck past the
//! request timeout counts as one, and triggers a probe at once) and it is called hung, killed
//! with SIGKILL and restarted like a worker that exited. A worker sent its request limit is
//! recycled ([`super::recycle`]): not a restart, counted apart. Loading is logged as it goes
//! ([`super::loading`]) and its time recorded.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::uri::PathAndQuery;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::{OwnedMutexGuard, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::cgroup::MemoryCgroup;
use super::exit::{ExitReason, MemoryEvidence, WorkerExit, classify};
use super::expand::{expand, references};
use super::loading::LoadProgress;
use super::memory::resident_bytes;
use super::output::{SharedTail, pass_through};
use super::recycle::{RECYCLE_REASON, RecyclePolicy, Retirement, Run};
use super::{WorkerEndpoint, WorkerState, WorkerTable};
use crate::backend::Backend;
use crate::config::env;
use crate::dispatch::{Dispatcher, target};
use crate::errors::{ConfigError, SidecarError};
use crate::metrics::Metrics;
use modelserver_units::{format_bytes, format_duration};

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
/// While a replaced run still finishes its requests, how often to look whether it is gone.
pub const RETIRE_POLL: Duration = Duration::from_millis(50);
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
    /// When workers are recycled (replaced after a number of requests).
    pub recycle: RecyclePolicy,
    /// Time between SIGTERM and SIGKILL when a recycled run is stopped.
    pub shutdown_timeout: Duration,
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
        let in_place = Arc::new(tokio::sync::Mutex::new(()));
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
                generation: AtomicU64::new(0),
                retiring: Mutex::new(None),
                in_place: in_place.clone(),
                in_place_turn: Mutex::new(None),
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
    /// The run that takes new requests: 0 at start, one more per recycle of a socket worker.
    generation: AtomicU64,
    /// The task finishing the run a recycle replaced, if any.
    retiring: Mutex<Option<JoinHandle<()>>>,
    /// Shared by the workers: one TCP worker at a time is recycled in place, so recycles never
    /// take every worker out of rotation at once.
    in_place: Arc<tokio::sync::Mutex<()>>,
    /// This worker's turn at an in-place recycle, held until its next run is ready (or ends).
    in_place_turn: Mutex<Option<OwnedMutexGuard<()>>>,
}

/// How watching a running worker ended.
enum Watched {
    /// It exited on its own (its wait status).
    Exited(std::io::Result<ExitStatus>),
    /// It hung and was killed; how, in words.
    Hung(String),
    /// It was due for recycling on a fixed port (why, in words), finished its requests and was
    /// stopped.
    Recycled(String),
    /// The sidecar is stopping (the worker was stopped).
    Stopped,
}

/// How one run of a worker ended.
enum RunEnd {
    /// It exited (or could not start) on its own.
    Exited {
        exit: WorkerExit,
        uptime: Duration,
        /// It had answered its readiness path.
        was_ready: bool,
    },
    /// It was recycled in place (TCP; why, in words): start it again at once, no restart
    /// counted.
    Recycled(String),
    /// The sidecar is stopping.
    Stopped,
}

/// What a recycle of a serving run led to.
enum Recycle {
    /// The worker serves on (replaced, or kept when its replacement failed).
    Serving,
    /// Watching this run is over.
    Done(Watched),
}

impl Worker {
    async fn run(self) {
        self.supervise().await;
        self.finish_retiring().await;
    }

    async fn supervise(&self) {
        let mut exits: VecDeque<Instant> = VecDeque::new();
        let mut consecutive: u32 = 0;
        loop {
            // Every branch below sets a state other than `Ready` before the next await, which
            // takes the worker out of rotation.
            let end = self.run_once().await;
            let (how, uptime, was_ready) = match end {
                RunEnd::Stopped => {
                    self.deps.table.update(self.id, |w| {
                        w.state = WorkerState::Stopped;
                        w.pid = None;
                    });
                    return;
                }
                RunEnd::Recycled(reason) => {
                    self.deps.metrics.worker_recycles_total.inc();
                    self.deps.table.update(self.id, |w| {
                        w.state = WorkerState::Starting;
                        w.pid = None;
                        w.recycles += 1;
                    });
                    info!(
                        worker = self.id,
                        reason = %reason,
                        "worker {} recycled: {reason}; starting it again on its port",
                        self.id
                    );
                    continue;
                }
                RunEnd::Exited {
                    exit,
                    uptime,
                    was_ready,
                } => (exit, uptime, was_ready),
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
            if !was_ready {
                // Its stderr went to the sidecar's as it came; this line puts the end of it next
                // to the exit, for a log reader that filters on the sidecar's lines.
                error!(
                    worker = self.id,
                    exit = %how.text,
                    loading_ms = u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX),
                    last_output = %self.tail.with(|t| t.lines()).join("\n"),
                    "worker {} failed to start: {} before it was ready",
                    self.id,
                    how.text
                );
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

    /// The current generation.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Where run `generation` serves.
    fn endpoint(&self, generation: u64) -> WorkerEndpoint {
        self.spec.endpoints[self.id].for_generation(generation)
    }

    /// The backend address index of run `generation`.
    fn target(&self, generation: u64) -> usize {
        target(self.id, generation, self.spec.endpoints.len())
    }

    /// True when a replacement cannot start beside the run it replaces: the worker has a fixed
    /// port (TCP, or a gRPC port), so it is recycled in place.
    fn recycles_in_place(&self) -> bool {
        self.spec.endpoints[self.id].socket().is_none() || self.spec.grpc_ports.is_some()
    }

    fn command(&self, generation: u64) -> Command {
        let grpc_port = self
            .spec
            .grpc_ports
            .as_ref()
            .and_then(|ports| ports.get(self.id))
            .map(|port| (env::GRPC_PORT, port.to_string()));
        let extra: Vec<(&str, String)> = [
            self.endpoint(generation).env(),
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

    /// Starts run `generation` (removing a stale socket first); the error says why it could not.
    fn spawn(&self, generation: u64) -> Result<Run, String> {
        let endpoint = self.endpoint(generation);
        if let Some(socket) = endpoint.socket()
            && let Err(e) = std::fs::remove_file(socket)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(worker = self.id, socket = %socket.display(), error = %e, "cannot remove stale socket");
        }
        self.deps.backend.renew(self.target(generation));
        let started = Instant::now();
        let mut child = self.command(generation).spawn().map_err(|e| {
            format!(
                "could not start {:?}: {e}",
                self.spec.command.first().map(String::as_str).unwrap_or("")
            )
        })?;
        let output = child
            .stderr
            .take()
            .map(|stderr| pass_through(self.id, stderr, self.tail.clone()));
        let pid = child.id();
        info!(worker = self.id, pid = pid.unwrap_or(0), %endpoint, generation, "worker started");
        Ok(Run {
            child,
            output,
            pid,
            started,
        })
    }

    async fn run_once(&self) -> RunEnd {
        self.deps.table.update(self.id, |w| {
            w.state = WorkerState::Starting;
            w.started_at = None;
            w.load_seconds = None;
        });
        self.tail.with(|t| t.clear());
        let oom_kills_before = self.spec.cgroup.oom_kills();
        let mut run = match self.spawn(self.generation()) {
            Ok(run) => run,
            Err(how) => {
                self.end_in_place_turn();
                error!(worker = self.id, error = %how, "worker failed to start");
                return RunEnd::Exited {
                    exit: WorkerExit::start_failed(how),
                    uptime: Duration::ZERO,
                    was_ready: false,
                };
            }
        };
        self.deps.table.update(self.id, |w| {
            w.pid = run.pid;
            w.started_at = Some(run.started);
        });
        let watched = self.watch(&mut run).await;
        if !matches!(watched, Watched::Recycled(_)) {
            self.end_in_place_turn();
        }
        let was_ready = self
            .deps
            .table
            .row(self.id)
            .is_some_and(|w| w.load_seconds.is_some());
        let status = match watched {
            Watched::Exited(status) => status,
            Watched::Stopped => return RunEnd::Stopped,
            Watched::Recycled(reason) => return RunEnd::Recycled(reason),
            Watched::Hung(text) => {
                if let Some(task) = run.output {
                    finish_output(self.id, task).await;
                }
                return RunEnd::Exited {
                    exit: WorkerExit::hung(text),
                    uptime: run.started.elapsed(),
                    was_ready,
                };
            }
        };
        let uptime = run.started.elapsed();
        // The traceback is usually the last thing a crashing worker writes.
        if let Some(task) = run.output {
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
            was_ready,
        }
    }

    /// Waits for the worker to become ready, then watches it serve until it exits, hangs (it is
    /// killed), is recycled in place, or the sidecar stops (it is stopped). A recycle that
    /// replaces it with a new run swaps `run` and watches on.
    async fn watch(&self, run: &mut Run) -> Watched {
        let target = self.target(self.generation());
        let load = tokio::select! {
            status = run.child.wait() => return Watched::Exited(status),
            () = self.stop.cancelled() => return self.terminate(&mut run.child).await,
            load = self.load(target, run.pid, run.started) => load,
        };
        self.deps
            .dispatcher
            .set_request_limit(self.id, self.spec.recycle.draw());
        self.deps.table.update(self.id, |w| {
            w.state = WorkerState::Ready;
            w.load_seconds = Some(load.as_secs_f64());
        });
        self.end_in_place_turn();
        loop {
            let pid = run.pid;
            let hung = tokio::select! {
                status = run.child.wait() => return Watched::Exited(status),
                () = self.stop.cancelled() => return self.terminate(&mut run.child).await,
                hung = self.monitor(pid) => hung,
                reason = self.recycle_due(pid) => match self.recycle(run, reason).await {
                    Recycle::Serving => continue,
                    Recycle::Done(watched) => return watched,
                },
            };
            return self.kill_hung(&mut run.child, pid, hung).await;
        }
    }

    /// Waits until run `target` answers its readiness path with 200, logging progress while it
    /// loads; records and returns the load time.
    async fn load(&self, target: usize, pid: Option<u32>, started: Instant) -> Duration {
        let mut progress = LoadProgress::default();
        while !self
            .deps
            .backend
            .probe(target, self.spec.readiness_path.clone(), PROBE_TIMEOUT)
            .await
        {
            tokio::time::sleep(READINESS_POLL).await;
            if let Some(mark) = progress.due(started.elapsed()) {
                info!(
                    worker = self.id,
                    pid = pid.unwrap_or(0),
                    loading_seconds = mark.as_secs(),
                    "worker {} still loading after {}",
                    self.id,
                    format_duration(mark)
                );
            }
        }
        let load = started.elapsed();
        self.deps
            .metrics
            .worker_load_seconds
            .observe(load.as_secs_f64());
        info!(
            worker = self.id,
            pid = pid.unwrap_or(0),
            load_ms = u64::try_from(load.as_millis()).unwrap_or(u64::MAX),
            "worker ready"
        );
        load
    }

    /// The run was sent its request limit. A socket worker gets a replacement on its other
    /// socket, which takes new requests once ready while this run finishes its own
    /// ([`Retirement`]); a TCP worker (fixed port) takes no new requests, finishes its own and is
    /// stopped, to be started again in place.
    async fn recycle(&self, run: &mut Run, reason: String) -> Recycle {
        let (sent, limit) = self.deps.dispatcher.requests(self.id);
        let old_generation = self.generation();
        let pid = run.pid.unwrap_or(0);
        if self.recycles_in_place() {
            info!(
                worker = self.id,
                pid,
                sent,
                limit,
                "worker {} is due for recycling ({reason}); it keeps its port, so it finishes its requests before it is started again",
                self.id
            );
            // Serving on (over its limit) until no other worker is being recycled in place.
            let turn = tokio::select! {
                status = run.child.wait() => return Recycle::Done(Watched::Exited(status)),
                () = self.stop.cancelled() => return Recycle::Done(self.terminate(&mut run.child).await),
                turn = self.in_place.clone().lock_owned() => turn,
            };
            *self
                .in_place_turn
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(turn);
            self.deps
                .table
                .update(self.id, |w| w.state = WorkerState::Recycling);
            tokio::select! {
                status = run.child.wait() => return Recycle::Done(Watched::Exited(status)),
                () = self.stop.cancelled() => return Recycle::Done(self.terminate(&mut run.child).await),
                () = self.deps.dispatcher.drained(self.id, old_generation) => {}
            }
            stop_child(self.id, &mut run.child, self.spec.shutdown_timeout).await;
            return Recycle::Done(Watched::Recycled(reason));
        }

        // The replacement uses the address the run before this one used: that one is gone
        // (`recycle_due`); collect its task.
        self.finish_retiring().await;
        let generation = old_generation.wrapping_add(1);
        info!(
            worker = self.id,
            pid,
            sent,
            limit,
            "worker {} is due for recycling ({reason}); starting its replacement",
            self.id
        );
        let mut next = match self.spawn(generation) {
            Ok(next) => next,
            Err(how) => {
                warn!(worker = self.id, error = %how, "cannot start the replacement of worker {}; it serves on and is tried again later", self.id);
                self.deps
                    .dispatcher
                    .set_request_limit(self.id, self.spec.recycle.draw());
                return Recycle::Serving;
            }
        };
        let load = tokio::select! {
            status = run.child.wait() => {
                // The serving run ended first: it is restarted as any exit, without the half-loaded replacement.
                stop_child(self.id, &mut next.child, Duration::ZERO).await;
                return Recycle::Done(Watched::Exited(status));
            }
            () = self.stop.cancelled() => {
                stop_child(self.id, &mut next.child, self.spec.shutdown_timeout).await;
                return Recycle::Done(self.terminate(&mut run.child).await);
            }
            status = next.child.wait() => {
                let exit = classify(status, MemoryEvidence::default());
                self.deps.metrics.worker_exited(exit.reason);
                if let Some(task) = next.output.take() {
                    finish_output(self.id, task).await;
                }
                warn!(
                    worker = self.id,
                    exit = %exit.text,
                    reason = exit.reason.as_str(),
                    last_output = %self.tail.with(|t| t.lines()).join("\n"),
                    "the replacement of worker {} exited before it was ready ({}); the worker serves on and is tried again later",
                    self.id,
                    exit.text
                );
                self.deps.dispatcher.set_request_limit(self.id, self.spec.recycle.draw());
                return Recycle::Serving;
            }
            load = self.load(self.target(generation), next.pid, next.started) => load,
        };

        self.generation.store(generation, Ordering::Release);
        // Counted before the switch, and the new run's request count starts after it: whoever
        // sees the worker no longer due (`requests` under `request_limit` in `/status`) also
        // sees this recycle in the table and in the metric.
        self.deps.metrics.worker_recycles_total.inc();
        let endpoint = self.endpoint(generation);
        self.deps.table.update(self.id, |w| {
            w.generation = generation;
            w.pid = next.pid;
            w.endpoint = endpoint;
            w.recycles += 1;
            w.started_at = Some(next.started);
            w.load_seconds = Some(load.as_secs_f64());
            w.state = WorkerState::Ready;
        });
        self.deps
            .dispatcher
            .set_request_limit(self.id, self.spec.recycle.draw());
        info!(
            worker = self.id,
            old_pid = pid,
            pid = next.pid.unwrap_or(0),
            reason = %reason,
            "worker {} recycled: {reason}; its replacement takes new requests, the old run finishes its own",
            self.id
        );
        let old = std::mem::replace(run, next);
        let retirement = Retirement {
            worker: self.id,
            generation: old_generation,
            dispatcher: self.deps.dispatcher.clone(),
            stop: self.stop.clone(),
            shutdown_timeout: self.spec.shutdown_timeout,
        };
        let task = tokio::spawn(retirement.run(old));
        *self.retiring.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        Recycle::Serving
    }

    /// Resolves, with the reason, once the current run (`pid`) was sent its request limit or is
    /// over the memory ceiling, and the run it replaced (whose address its replacement will use)
    /// is gone; the serving run stays watched meanwhile.
    async fn recycle_due(&self, pid: Option<u32>) -> String {
        let reason = tokio::select! {
            () = self.deps.dispatcher.recycle_due(self.id) => RECYCLE_REASON.to_owned(),
            over = self.over_memory(pid) => over,
        };
        while self
            .retiring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|task| !task.is_finished())
        {
            tokio::time::sleep(RETIRE_POLL).await;
        }
        reason
    }

    /// Resolves, saying so, once process `pid` is found over the memory ceiling (checked every
    /// probe period); never without a ceiling or a pid.
    async fn over_memory(&self, pid: Option<u32>) -> String {
        let (Some(ceiling), Some(pid)) = (self.spec.recycle.memory_ceiling, pid) else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(self.spec.probe.period).await;
            if let Some(resident) = resident_bytes(pid).filter(|r| *r > ceiling) {
                return format!(
                    "memory ceiling reached ({} MiB resident, over {})",
                    resident >> 20,
                    format_bytes(ceiling)
                );
            }
        }
    }

    /// Lets the next TCP worker be recycled in place (when this one held the turn).
    fn end_in_place_turn(&self) {
        self.in_place_turn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Waits for the run a recycle replaced to be stopped, if there is one.
    async fn finish_retiring(&self) {
        let task = self
            .retiring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            error!(worker = self.id, error = %e, "the task stopping a replaced worker run failed");
        }
    }

    /// Kills a hung worker (SIGKILL also ends a stopped process) and says why.
    async fn kill_hung(&self, child: &mut Child, pid: Option<u32>, hung: String) -> Watched {
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
                .probe(
                    self.target(self.generation()),
                    path.clone(),
                    settings.timeout,
                )
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
        stop_child(self.id, child, grace).await;
        Watched::Stopped
    }
}

/// Stops one worker process: SIGTERM, then SIGKILL when it still runs after `grace`.
pub async fn stop_child(worker: usize, child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok())
        && let Err(e) = kill(Pid::from_raw(pid), Signal::SIGTERM)
    {
        warn!(worker, pid, error = %e, "cannot send SIGTERM");
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => {
            let exit = classify(status, MemoryEvidence::default());
            info!(worker, exit = %exit.text, "worker stopped");
        }
        Err(_) => {
            warn!(
                worker,
                grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                "worker still running after the shutdown timeout; sending SIGKILL"
            );
            if let Err(e) = child.kill().await {
                error!(worker, error = %e, "cannot kill worker");
            }
        }
    }
}

/// Waits briefly for the copy of a worker's stderr to reach the end of the pipe.
pub async fn finish_output(worker: usize, task: JoinHandle<()>) {
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
