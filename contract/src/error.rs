//! Errors of the contract: a value or an environment the sidecar's settings cannot take.

/// A setting the sidecar cannot take.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The proxy upstream is not `HOST:PORT`.
    #[error("invalid upstream {input:?}: expected HOST:PORT, e.g. 127.0.0.1:8000")]
    Upstream {
        /// The rejected value.
        input: String,
    },
    /// A header name that cannot carry a credential.
    #[error("{field}: {reason}")]
    Header {
        /// Where the name came from.
        field: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// A `MODELSERVER_*` variable that no flag of the subcommand reads.
    #[error("{name} is not a setting of `{subcommand}` (a misspelt or unsupported variable)")]
    UnknownVariable {
        /// The variable.
        name: String,
        /// The subcommand it was given to.
        subcommand: String,
    },
    /// The command line has no known subcommand.
    #[error("unknown sidecar subcommand {0:?}")]
    UnknownSubcommand(String),
    /// The settings do not parse.
    #[error("the sidecar's settings do not parse: {0}")]
    Parse(clap::Error),
}
