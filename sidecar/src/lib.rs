//! `modelserver-sidecar`: the serving binary in every model pod (see `sidecar/README.md`).
//!
//! It supervises the model's worker processes (or fronts one upstream), forwards requests to the
//! least-loaded ready worker with streaming bodies, enforces upload limits, timeouts,
//! back-pressure, CORS and auth, exports Prometheus metrics, and maps the model's startup and
//! shutdown onto readiness and the preStop hook.

mod backend;
pub mod config;
mod conn;
mod dispatch;
pub mod errors;
mod http;
mod install;
mod metrics;
mod prestop;
mod runner;
mod server;
mod shutdown;
mod sniff;
mod state;
mod termination;
mod tls;
mod trace;
pub mod workers;

/// The CORS policy built from the `MODELSERVER_CORS_*` settings (public for the fuzz target).
pub use http::cors;
/// The `tracing` target of access log lines (the binary buffers them).
pub use http::observe::ACCESS_LOG_TARGET;

use config::Command;
use errors::SidecarError;

/// Runs one subcommand to completion.
pub fn run(command: Command) -> Result<(), SidecarError> {
    match command {
        Command::Serve(args) => {
            runtime(usize::from(args.server.runtime_threads))?.block_on(runner::managed_mode(args))
        }
        Command::Proxy(args) => {
            runtime(usize::from(args.server.runtime_threads))?.block_on(runner::proxy_mode(args))
        }
        Command::Drain(args) => {
            let answer = runtime(1)?.block_on(prestop::drain(&args))?;
            tracing::info!(answer = %answer.trim(), "drained");
            Ok(())
        }
        Command::Install(args) => {
            let target = install::install(&args.dir)?;
            tracing::info!(path = %target.display(), "installed");
            Ok(())
        }
    }
}

/// One thread runs everything on a current-thread runtime (the default: the sidecar forwards
/// bytes while the model does the work, and one thread costs the least CPU and memory per
/// request); more threads use the multi-thread scheduler.
fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, SidecarError> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder
        .enable_all()
        .max_blocking_threads(4)
        .thread_name("modelserver-sidecar")
        .build()
        .map_err(SidecarError::Runtime)
}
