//! The sidecar's settings as a pod carries them: [`render`] turns the settings the operator
//! controls into `MODELSERVER_*` variables, and [`parse`] reads a command line and such an
//! environment back with the sidecar's own flag definitions, independent of the process's own
//! environment. A variable no flag reads is an error there, so a misspelt name cannot pass.

use clap::{CommandFactory, FromArgMatches};

use crate::ContractError;
use crate::cli::{Cli, Command, LogFormat, PROXY, SERVE, ServerArgs};
use crate::env;
use crate::upstream::UpstreamAddr;
use modelserver_units::{format_bytes, format_duration};

/// The variables for `cli`, in a stable order: every setting a ModelServer controls, with its
/// value (defaults included, so the pod spec shows the effective settings and a change of any of
/// them rolls the pods). Settings a ModelServer does not control (bind address, runtime threads,
/// connection limits, probe timings, the token) are left to the sidecar's defaults; the token is
/// a `secretKeyRef` the operator adds under [`env::AUTH_TOKEN`]. `drain` and `install` take no
/// environment.
pub fn render(cli: &Cli) -> Vec<(&'static str, String)> {
    let Some(server) = cli.server() else {
        return Vec::new();
    };
    let mut vars = vec![
        (env::PORT, server.port.to_string()),
        (env::ADMIN_PORT, server.admin_port.to_string()),
    ];
    match &cli.command {
        Command::Serve(serve) => {
            vars.push((env::WORKERS, server.workers.to_string()));
            if let Some(dir) = &serve.socket_dir {
                vars.push((env::SOCKET_DIR, dir.display().to_string()));
            }
            if let Some(base) = serve.worker_port_base {
                vars.push((env::WORKER_PORT_BASE, base.to_string()));
            }
            if let Some(base) = serve.worker_grpc_port_base {
                vars.push((env::WORKER_GRPC_PORT_BASE, base.to_string()));
            }
            vars.push((
                env::MAX_WORKER_RESTARTS,
                serve.max_worker_restarts.to_string(),
            ));
            if let Some(max) = serve.max_requests_per_worker {
                vars.push((env::MAX_REQUESTS_PER_WORKER, max.to_string()));
                vars.push((
                    env::MAX_REQUESTS_JITTER,
                    serve.max_requests_jitter.to_string(),
                ));
            }
            if let Some(bytes) = serve.max_worker_memory {
                vars.push((env::MAX_WORKER_MEMORY, format_bytes(bytes)));
            }
        }
        // `workers` is a managed-mode field of a ModelServer; in proxy mode the sidecar's
        // concurrency is executorThreads against the one upstream.
        // The credential itself is a `secretKeyRef` the operator adds under
        // [`env::UPSTREAM_CREDENTIAL`].
        Command::Proxy(proxy) => {
            vars.push((env::UPSTREAM, proxy.upstream.to_string()));
            if let Some(grpc) = &proxy.upstream_grpc {
                vars.push((env::UPSTREAM_GRPC, grpc.to_string()));
            }
            if let Some(header) = &proxy.upstream_credential_header {
                vars.push((env::UPSTREAM_CREDENTIAL_HEADER, header.to_string()));
            }
        }
        Command::Drain(_) | Command::Install(_) => {}
    }
    vars.extend(server_vars(server));
    if let (Some(cert), Some(key)) = (&server.tls_cert_file, &server.tls_key_file) {
        vars.push((env::TLS_CERT_FILE, cert.display().to_string()));
        vars.push((env::TLS_KEY_FILE, key.display().to_string()));
    }
    vars.extend([
        (env::LOG_LEVEL, cli.log.log_level.clone()),
        (
            env::LOG_FORMAT,
            log_format_text(cli.log.log_format).to_owned(),
        ),
        (env::ACCESS_LOG, server.access_log.to_string()),
        (env::DRAIN_DELAY, format_duration(server.drain_delay)),
        (env::DRAIN_TIMEOUT, format_duration(server.drain_timeout)),
    ]);
    // Tracing only when it is on, so the pods of a ModelServer without it do not change. The
    // pod's name and namespace come from the downward API, which the operator adds itself.
    let trace = &server.trace;
    if let Some(endpoint) = &trace.otlp_endpoint {
        vars.push((env::OTLP_ENDPOINT, endpoint.clone()));
        vars.push((env::TRACE_SAMPLING, trace.trace_sampling.to_string()));
        if let Some(name) = &trace.name {
            vars.push((env::NAME, name.clone()));
        }
    }
    if let Command::Serve(serve) = &cli.command {
        vars.push((
            env::SHUTDOWN_TIMEOUT,
            format_duration(serve.shutdown_timeout),
        ));
    }
    vars
}

fn server_vars(server: &ServerArgs) -> [(&'static str, String); 12] {
    let cors = &server.cors;
    [
        (env::EXECUTOR_THREADS, server.executor_threads.to_string()),
        (env::MAX_QUEUE, server.max_queue.to_string()),
        (env::MAX_QUEUE_WAIT, format_duration(server.max_queue_wait)),
        (env::MAX_UPLOAD_SIZE, format_bytes(server.max_upload_size)),
        (
            env::REQUEST_TIMEOUT,
            format_duration(server.request_timeout),
        ),
        (env::READINESS_PATH, server.readiness_path.clone()),
        (env::DOCS, server.docs.to_string()),
        (env::CORS_ALLOW_ORIGINS, cors.allow_origins.join(",")),
        (env::CORS_ALLOW_METHODS, cors.allow_methods.join(",")),
        (env::CORS_ALLOW_HEADERS, cors.allow_headers.join(",")),
        (
            env::CORS_ALLOW_CREDENTIALS,
            cors.allow_credentials.to_string(),
        ),
        (env::CORS_MAX_AGE, format_duration(cors.max_age)),
    ]
}

impl Cli {
    /// Managed mode with every setting at its default: `serve -- COMMAND`.
    pub fn managed(command: Vec<String>) -> Result<Self, ContractError> {
        let mut argv = vec![SERVE.to_owned(), "--".to_owned()];
        argv.extend(command);
        parse(&argv, &[])
    }

    /// Proxy mode in front of `upstream` with every other setting at its default.
    pub fn proxy(upstream: &UpstreamAddr) -> Result<Self, ContractError> {
        let argv = [PROXY.to_owned(), format!("--upstream={upstream}")];
        parse(&argv, &[])
    }
}

/// The value `--log-format` takes for `format`.
pub fn log_format_text(format: LogFormat) -> &'static str {
    match format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    }
}

/// Parses `args` (the subcommand and its arguments, without the program name) with `vars` as the
/// environment, exactly as the sidecar's flags define them but without looking at this process's
/// own environment. Variables outside the `MODELSERVER_` prefix are ignored (a pod has many); a
/// `MODELSERVER_*` variable that no flag of the subcommand reads is an error.
pub fn parse(args: &[String], vars: &[(String, String)]) -> Result<Cli, ContractError> {
    let subcommand = args
        .first()
        .ok_or_else(|| ContractError::UnknownSubcommand(String::new()))?;
    let mut flags = Vec::new();
    for (name, value) in vars.iter().filter(|(n, _)| n.starts_with(env::PREFIX)) {
        let long = flag_for(subcommand, name)?.ok_or_else(|| ContractError::UnknownVariable {
            name: name.clone(),
            subcommand: subcommand.clone(),
        })?;
        flags.push(format!("--{long}={value}"));
    }
    let argv = [crate::SIDECAR_BINARY_NAME.to_owned(), subcommand.clone()]
        .into_iter()
        .chain(flags)
        .chain(args[1..].iter().cloned());
    let matches = hermetic(Cli::command())
        .try_get_matches_from(argv)
        .map_err(ContractError::Parse)?;
    Cli::from_arg_matches(&matches).map_err(ContractError::Parse)
}

/// The `MODELSERVER_*` variables among `vars` that no flag of `subcommand` reads: the sidecar
/// warns about them at start (clap itself ignores them, so a misspelt name would pass silently).
/// The variables the sidecar sets for its workers are not settings and never reported.
pub fn unknown_variables<'a>(
    subcommand: &str,
    vars: impl IntoIterator<Item = &'a str>,
) -> Vec<&'a str> {
    vars.into_iter()
        .filter(|name| name.starts_with(env::PREFIX))
        .filter(|name| {
            ![
                env::SOCKET,
                env::WORKER_PORT,
                env::GRPC_PORT,
                env::WORKER_ID,
            ]
            .contains(name)
        })
        .filter(|name| matches!(flag_for(subcommand, name), Ok(None)))
        .collect()
}

/// The long flag of `subcommand` (or a global one) that reads the variable `name`.
fn flag_for(subcommand: &str, name: &str) -> Result<Option<String>, ContractError> {
    let root = Cli::command();
    let sub = root
        .find_subcommand(subcommand)
        .ok_or_else(|| ContractError::UnknownSubcommand(subcommand.to_owned()))?;
    Ok(sub
        .get_arguments()
        .chain(root.get_arguments().filter(|a| a.is_global_set()))
        .find(|a| a.get_env() == Some(std::ffi::OsStr::new(name)))
        .and_then(|a| a.get_long())
        .map(str::to_owned))
}

/// The parser without its environment variables, so only the given arguments count.
fn hermetic(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    let mut cmd = cmd.mut_args(|a| a.env(None));
    for name in names {
        cmd = cmd.mut_subcommand(name, |s| s.mut_args(|a| a.env(None)));
    }
    cmd
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn owned(vars: Vec<(&'static str, String)>) -> Vec<(String, String)> {
        vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn changed_everywhere(cli: &mut Cli) {
        cli.log.log_level = "debug".into();
        cli.log.log_format = LogFormat::Json;
        let s = cli.server_mut().unwrap();
        s.port = 8443;
        s.admin_port = 9191;
        s.executor_threads = 7;
        s.max_queue = 0;
        s.max_queue_wait = Duration::from_millis(250);
        s.max_upload_size = 10 << 20;
        s.request_timeout = Duration::from_secs(150);
        s.readiness_path = "/v2/health/ready".into();
        s.docs = true;
        s.cors.allow_origins = vec!["https://a.example".into(), "https://b.example".into()];
        s.cors.allow_methods = vec!["PUT".into()];
        s.cors.allow_headers = vec!["X-A".into(), "X-B".into()];
        s.cors.allow_credentials = true;
        s.cors.max_age = Duration::from_millis(1500);
        s.access_log = false;
        s.drain_delay = Duration::ZERO;
        s.drain_timeout = Duration::from_secs(3600);
        s.tls_cert_file = Some(PathBuf::from("/modelserver/tls/tls.crt"));
        s.tls_key_file = Some(PathBuf::from("/modelserver/tls/tls.key"));
    }

    #[test]
    fn managed_settings_survive_render_and_parse() {
        let mut cli = Cli::managed(vec!["python".into(), "w.py".into()]).unwrap();
        changed_everywhere(&mut cli);
        let Command::Serve(serve) = &mut cli.command else {
            panic!()
        };
        serve.server.workers = 3;
        serve.socket_dir = Some(PathBuf::from("/modelserver/sockets"));
        serve.worker_port_base = Some(8000);
        serve.worker_grpc_port_base = Some(9000);
        serve.max_worker_restarts = 0;
        serve.max_requests_per_worker = Some(1000);
        serve.max_requests_jitter = 50;
        serve.max_worker_memory = Some(3 << 30);
        serve.shutdown_timeout = Duration::from_secs(1);
        let vars = owned(render(&cli));
        let args: Vec<String> = [SERVE, "--", "python", "w.py"].map(String::from).to_vec();
        assert_eq!(parse(&args, &vars).unwrap(), cli);
    }

    #[test]
    fn proxy_settings_survive_render_and_parse() {
        let mut cli = Cli::proxy(&UpstreamAddr::loopback(8000)).unwrap();
        changed_everywhere(&mut cli);
        let Command::Proxy(proxy) = &mut cli.command else {
            panic!()
        };
        proxy.upstream_credential_header = Some(http::HeaderName::from_static("x-api-key"));
        proxy.upstream_grpc = Some(UpstreamAddr::loopback(8001));
        let vars = owned(render(&cli));
        assert!(vars.iter().all(|(k, _)| k != env::SHUTDOWN_TIMEOUT
            && k != env::WORKERS
            && k != env::SOCKET_DIR
            && k != env::WORKER_PORT_BASE
            && k != env::MAX_REQUESTS_PER_WORKER
            && k != env::MAX_REQUESTS_JITTER
            && k != env::MAX_WORKER_MEMORY));
        assert_eq!(parse(&[PROXY.to_owned()], &vars).unwrap(), cli);
    }

    #[test]
    fn every_rendered_variable_is_read_by_the_subcommand() {
        for cli in [
            Cli::managed(vec!["x".into()]).unwrap(),
            Cli::proxy(&UpstreamAddr::loopback(1)).unwrap(),
        ] {
            let sub = match cli.command {
                Command::Serve(_) => SERVE,
                _ => PROXY,
            };
            let vars = render(&cli);
            assert!(vars.len() >= 19, "{vars:?}");
            assert_eq!(
                unknown_variables(sub, vars.iter().map(|(k, _)| *k)),
                Vec::<&str>::new()
            );
        }
    }

    #[test]
    fn a_misspelt_or_foreign_variable_is_refused() {
        let vars = vec![("MODELSERVER_MAX_QUEU".to_owned(), "1".to_owned())];
        let err = parse(&[PROXY.to_owned(), "--upstream=127.0.0.1:1".into()], &vars).unwrap_err();
        assert!(err.to_string().contains("MODELSERVER_MAX_QUEU"), "{err}");
        // A serve-only setting given to proxy.
        let vars = vec![(env::SOCKET_DIR.to_owned(), "/s".to_owned())];
        assert!(parse(&[PROXY.to_owned(), "--upstream=127.0.0.1:1".into()], &vars).is_err());
        let cli = Cli::proxy(&UpstreamAddr::loopback(1)).unwrap();
        assert_eq!(cli.subcommand(), PROXY);
        // Other variables of a pod are not the sidecar's business.
        let vars = vec![("HOME".to_owned(), "/".to_owned())];
        assert!(parse(&[PROXY.to_owned(), "--upstream=127.0.0.1:1".into()], &vars).is_ok());
        assert_eq!(
            unknown_variables(
                SERVE,
                [
                    "MODELSERVER_SOCKET",
                    "MODELSERVER_WORKER_ID",
                    "MODELSERVER_WORKER_PORT",
                    "MODELSERVER_PORTS",
                    "PATH"
                ]
            ),
            vec!["MODELSERVER_PORTS"]
        );
    }
}
