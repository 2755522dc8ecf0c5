//! `modelserver-operator`: parses the command line and runs the subcommand.

use std::process::ExitCode;

use clap::Parser;
use modelserver_operator::cli::{self, Cli, Command};
use modelserver_operator::{run, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Render(args) => {
            cli::run_render(args, &mut std::io::stdout().lock()).map_err(|e| e.to_string())
        }
        Command::Run(args) => telemetry::init(args.log_format, &args.log_level).and_then(|()| {
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
