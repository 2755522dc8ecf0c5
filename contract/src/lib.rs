//! The contract between the operator and the sidecar, written once.
//!
//! The operator configures the sidecar through a pod: the container's command line (a
//! subcommand of [`cli::Cli`]) and its `MODELSERVER_*` environment. Everything both sides must
//! agree on lives here and nowhere else:
//!
//! - [`cli`]: the sidecar's settings as clap structs, each flag with its environment variable and
//!   default; the sidecar parses them, the operator fills them from a ModelServer.
//! - [`env`]: the `MODELSERVER_*` names.
//! - [`defaults`]: the default of every setting.
//! - [`admin`]: the admin port's paths.
//! - [`pod_env`]: the function that renders settings into a pod's environment, and the parser
//!   that reads such an environment back with the sidecar's own definitions.
//! - [`upstream`] and [`socket`]: the addresses the sidecar forwards to.
//! - [`values`]: how flag values are read, and the headers a credential may not use.

pub mod admin;
pub mod cli;
pub mod defaults;
pub mod env;
mod error;
pub mod pod_env;
pub mod socket;
pub mod upstream;
pub mod values;

pub use error::ContractError;

/// The sidecar's executable name (in its image and wherever the init container installs it).
pub const SIDECAR_BINARY_NAME: &str = "modelserver-sidecar";
