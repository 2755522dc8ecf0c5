//! Process plumbing the operator and the sidecar share, so each concern is written once:
//! [`logging`] installs the `tracing` subscriber, [`signals`] waits for SIGTERM or SIGINT.

pub mod logging;
pub mod signals;
