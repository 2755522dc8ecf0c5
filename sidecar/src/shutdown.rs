//! Draining and stopping, in one place. The drain flags ([`Lifecycle`]) are what both ports see:
//! draining (requested by `POST /drain` or a signal; readiness is false from then on) and drained
//! (in-flight requests finished or the drain timeout passed, which is when `POST /drain`, and so
//! the preStop hook, returns). [`run_until_stopped`] is the sequence itself, the same for both
//! triggers: readiness false, keep serving for the drain delay, close the public listener, wait
//! up to the drain timeout for in-flight requests, stop the model (SIGTERM, SIGKILL after the
//! shutdown timeout), exit 0. A second signal skips the remaining waits; a worker crash loop
//! stops everything at once and ends the sidecar with its error.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::dispatch::Dispatcher;
use crate::errors::SidecarError;
use crate::server::ServerHandle;
use crate::workers::supervisor::Supervisor;
use modelserver_units::format_duration;

/// How long the admin port stays up after draining, so the `POST /drain` answer gets out.
const ADMIN_LINGER: Duration = Duration::from_secs(1);

/// Shared drain flags; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    inner: Arc<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    drain_requested: CancellationToken,
    drained: CancellationToken,
    /// When the drain must be over: its start + drain delay + drain timeout.
    drain_deadline: OnceLock<SystemTime>,
}

impl Lifecycle {
    /// A lifecycle that is not draining.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts draining (idempotent): readiness turns false immediately.
    pub fn request_drain(&self) {
        self.inner.drain_requested.cancel();
    }

    /// Draining has started.
    pub fn is_draining(&self) -> bool {
        self.inner.drain_requested.is_cancelled()
    }

    /// A token cancelled once draining starts (for the accept loop, which closes keep-alive
    /// connections from then on).
    pub fn draining_token(&self) -> CancellationToken {
        self.inner.drain_requested.clone()
    }

    /// Resolves once draining has been requested.
    pub async fn drain_requested(&self) {
        self.inner.drain_requested.cancelled().await;
    }

    /// Records when the drain that just started must be over; the drain sequence runs once, and
    /// a later call changes nothing.
    pub fn set_drain_deadline(&self, deadline: SystemTime) {
        let _first = self.inner.drain_deadline.set(deadline);
    }

    /// When the drain must be over, once it started (`None` before).
    pub fn drain_deadline(&self) -> Option<SystemTime> {
        self.inner.drain_deadline.get().copied()
    }

    /// Records that draining finished.
    pub fn mark_drained(&self) {
        self.inner.drained.cancel();
    }

    /// Draining finished.
    pub fn is_drained(&self) -> bool {
        self.inner.drained.is_cancelled()
    }

    /// Resolves once draining has finished.
    pub async fn drained(&self) {
        self.inner.drained.cancelled().await;
    }
}

pub use modelserver_process::signals::Signals;

/// What keeps the model going, stopped last.
pub enum Model {
    /// Managed mode: the supervised workers.
    Managed(Supervisor),
    /// Proxy mode: the task that watches the upstream's readiness.
    Proxy(JoinHandle<()>),
}

impl Model {
    /// Resolves when the workers crash-loop (never in proxy mode).
    async fn fatal(&mut self) -> SidecarError {
        match self {
            Self::Managed(s) => s.fatal().await,
            Self::Proxy(_) => std::future::pending().await,
        }
    }

    async fn stop(self, grace: Duration) {
        match self {
            Self::Managed(s) => s.stop(grace).await,
            Self::Proxy(task) => task.abort(),
        }
    }
}

/// The durations of the sequence.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Keep serving this long after readiness turns false.
    pub drain_delay: Duration,
    /// Then wait at most this long for in-flight requests.
    pub drain_timeout: Duration,
    /// Between SIGTERM and SIGKILL for the workers.
    pub shutdown_timeout: Duration,
}

/// Everything the sequence stops, in the order it stops them.
pub struct Running {
    /// The drain flags both ports read.
    pub lifecycle: Lifecycle,
    /// For the in-flight counts in the log.
    pub dispatcher: Dispatcher,
    /// The public port: closed after the drain delay.
    pub public: ServerHandle,
    /// The admin port: closed last.
    pub admin: ServerHandle,
    /// The workers or the upstream watcher.
    pub model: Model,
    /// The signals that start (and hurry) draining.
    pub signals: Signals,
}

/// Waits for `POST /drain`, a signal or a crash loop, then stops everything in order; Ok once
/// drained and stopped, the crash loop's error otherwise.
pub async fn run_until_stopped(running: Running, timing: Timing) -> Result<(), SidecarError> {
    let Running {
        lifecycle,
        dispatcher,
        public,
        admin,
        mut model,
        mut signals,
    } = running;
    let mut signalled = false;
    let trigger = tokio::select! {
        name = signals.next() => {
            signalled = true;
            Ok(format!("{name} received"))
        }
        () = lifecycle.drain_requested() => Ok("drain requested".to_string()),
        fatal = model.fatal() => Err(fatal),
    };
    let trigger = match trigger {
        Ok(trigger) => trigger,
        Err(fatal) => {
            error!(error = %fatal, "stopping: worker crash loop");
            lifecycle.request_drain();
            public.shutdown(Duration::ZERO).await;
            lifecycle.mark_drained();
            model.stop(timing.shutdown_timeout).await;
            admin.shutdown(Duration::ZERO).await;
            return Err(fatal);
        }
    };
    lifecycle.request_drain();
    if let Some(deadline) =
        SystemTime::now().checked_add(timing.drain_delay.saturating_add(timing.drain_timeout))
    {
        lifecycle.set_drain_deadline(deadline);
    }
    info!(
        trigger = %trigger,
        drain_delay = %format_duration(timing.drain_delay),
        "draining: readiness is 503; still serving during the drain delay"
    );

    let mut hurry = false;
    tokio::select! {
        () = tokio::time::sleep(timing.drain_delay) => {}
        name = signals.next() => {
            warn!(signal = name, "second signal: skipping the rest of the drain delay");
            hurry = true;
        }
    }

    let load = dispatcher.snapshot();
    info!(
        in_flight = load.in_flight(),
        queued = load.queued,
        drain_timeout = %format_duration(timing.drain_timeout),
        "stopped accepting; waiting for in-flight requests"
    );
    let budget = if hurry {
        Duration::ZERO
    } else {
        timing.drain_timeout
    };
    let finished = tokio::select! {
        done = public.shutdown(budget) => done,
        name = signals.next() => {
            warn!(signal = name, "second signal: not waiting for in-flight requests");
            false
        }
    };
    if finished {
        info!("drained: no requests in flight");
    } else {
        let load = dispatcher.snapshot();
        warn!(
            in_flight = load.in_flight(),
            queued = load.queued,
            "drain timeout: requests still in flight are cut off"
        );
    }
    lifecycle.mark_drained();

    // Proxy mode runs as a native sidecar: the kubelet stops it (SIGTERM) only after the
    // model container has exited, and the model's preStop is this drain. Exiting here would
    // stop the front door before the model; wait for that signal instead, answering probes.
    if matches!(model, Model::Proxy(_)) && !signalled && !hurry {
        info!("drained; the model stops next: waiting for SIGTERM to stop this sidecar after it");
        let name = signals.next().await;
        info!(signal = name, "stopping after the model");
    }

    info!(
        shutdown_timeout = %format_duration(timing.shutdown_timeout),
        "stopping workers"
    );
    model.stop(timing.shutdown_timeout).await;
    admin.shutdown(ADMIN_LINGER).await;
    info!("stopped");
    Ok(())
}
