//! Managed mode: the model's worker processes, how their command line is built, and the table of
//! their state.

pub(crate) mod cgroup;
pub(crate) mod endpoint;
pub(crate) mod exit;
pub mod expand;
pub(crate) mod loading;
pub(crate) mod memory;
pub(crate) mod output;
pub(crate) mod recycle;
pub(crate) mod supervisor;
mod table;

pub(crate) use endpoint::WorkerEndpoint;
pub(crate) use table::{WorkerState, WorkerTable};
