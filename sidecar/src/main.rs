//! `modelserver-sidecar`: parses the command line and environment, sets up logging, runs the
//! subcommand, and turns its result into the exit code.

use std::process::ExitCode;

use clap::Parser;
use modelserver_contract::pod_env::unknown_variables;
use modelserver_process::logging;
use modelserver_sidecar::config::Cli;
use modelserver_sidecar::{ACCESS_LOG_TARGET, run};

/// Exit code for settings that cannot work (clap uses the same for bad flags).
const EXIT_CONFIG: u8 = 2;

/// clap ignores a variable no flag reads, so a misspelt `MODELSERVER_*` name would change
/// nothing without a word; the serving subcommands name every such variable. (`drain` runs in the
/// serving container's environment, where the serving variables are expected.)
fn warn_unknown_variables(cli: &Cli) {
    if cli.server().is_none() {
        return;
    }
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    for name in unknown_variables(cli.subcommand(), names.iter().map(String::as_str)) {
        tracing::warn!(
            variable = name,
            subcommand = cli.subcommand(),
            "no setting reads this MODELSERVER_ variable: misspelt, or meant for the other mode"
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(
        &cli.log.log_level,
        cli.log.log_format,
        Some(ACCESS_LOG_TARGET),
    ) {
        eprintln!("modelserver-sidecar: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    warn_unknown_variables(&cli);
    let code = match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "modelserver-sidecar failed");
            match e {
                modelserver_sidecar::errors::SidecarError::Config(_) => ExitCode::from(EXIT_CONFIG),
                _ => ExitCode::FAILURE,
            }
        }
    };
    // Access log lines still in the buffer.
    logging::flush();
    code
}
