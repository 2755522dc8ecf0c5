//! `modelserver-sidecar`: parses the command line and environment, sets up logging, runs the
//! subcommand, and turns its result into the exit code.

use std::process::ExitCode;

use clap::Parser;
use modelserver_sidecar::config::Cli;
use modelserver_sidecar::{logging, run};

/// Exit code for settings that cannot work (clap uses the same for bad flags).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(&cli.log) {
        eprintln!("modelserver-sidecar: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "modelserver-sidecar failed");
            match e {
                modelserver_sidecar::errors::SidecarError::Config(_) => ExitCode::from(EXIT_CONFIG),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
