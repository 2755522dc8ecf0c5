//! `modelserver-operator`: parses the command line and runs the subcommand.

use std::process::ExitCode;

use clap::Parser;
use modelserver_operator::cli::{self, Cli, Command};
use modelserver_operator::run;
use modelserver_process::logging;

/// `RUST_LOG`, when set, overrides `--log-level` (the kube-rs convention operators follow).
fn log_filter(level: &str) -> Result<String, String> {
    Ok(std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| level.to_owned()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Render(args) => {
            cli::run_render(args, &mut std::io::stdout().lock()).map_err(|e| e.to_string())
        }
        Command::Run(args) => log_filter(&args.log_level).and_then(|filter| {
            logging::init(&filter, args.log_format, None).map_err(|e| e.to_string())?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting the async runtime: {e}"))?;
            runtime
                .block_on(run::run(
                    args.controller_config(),
                    args.metrics_addr,
                    args.leader_election(),
                ))
                .map_err(|e| e.to_string())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
