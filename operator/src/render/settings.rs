//! The effective settings of a ModelServer: the sidecar's command line filled from the spec
//! (every field the user left out keeps the sidecar's own default, defined once in
//! `modelserver-contract`), and the few values only the pod needs (startup budget, grace period,
//! where the token is).

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, SecretKeySelector};
use modelserver_contract::cli::{Cli, Command, LogFormat};
use modelserver_contract::defaults as contract_defaults;
use modelserver_contract::pod_env;
use modelserver_contract::upstream::UpstreamAddr;
use modelserver_contract::values;
use modelserver_crds::spec::{ModelServerSpec, SecretKeyRef};
use modelserver_crds::values::K8sDuration;
use modelserver_crds::{ModelServer, defaults};
use modelserver_units::parse_duration;

use crate::error::RenderError;
use crate::render::names;

pub use modelserver_contract::env;

/// Log format of the sidecar in a cluster: JSON lines for log collectors.
const CLUSTER_LOG_FORMAT: LogFormat = LogFormat::Json;
/// Slack added to the drain and shutdown budgets for the terminationGracePeriodSeconds.
const GRACE_SLACK: Duration = Duration::from_secs(5);

/// A count or port of the spec in the type the sidecar takes it.
fn number<T: TryFrom<i32>>(value: Option<i32>, field: &str) -> Result<Option<T>, RenderError> {
    value
        .map(|v| {
            T::try_from(v).map_err(|_| RenderError::InvalidSpec {
                message: format!("{field}: {v} is out of range"),
            })
        })
        .transpose()
}

/// How the model runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The sidecar starts the command as worker processes.
    Managed {
        /// The worker command and its arguments.
        command: Vec<String>,
    },
    /// The image serves HTTP itself on this port.
    Proxy {
        /// The upstream port on 127.0.0.1.
        port: u16,
    },
}

/// Every setting of a ModelServer with its default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How the model runs.
    pub mode: Mode,
    /// The sidecar's command line and settings, which the pod carries as `MODELSERVER_*`
    /// variables (see [`Settings::sidecar_env`]).
    pub sidecar: Cli,
    /// Where the bearer token is, if auth is on.
    pub auth_token: Option<SecretKeyRef>,
    /// Where the upstream's own credential is (proxy mode), if it has one.
    pub upstream_credential: Option<SecretKeyRef>,
    /// The `kubernetes.io/tls` Secret of the public port, if TLS is on.
    pub tls_secret: Option<String>,
    /// Model load budget.
    pub startup_timeout: Duration,
    /// Pod grace period: drainDelay + drainTimeout + shutdownTimeout + 5s, in whole seconds.
    pub termination_grace_period_seconds: i64,
}

impl Settings {
    /// Resolves the settings of `object`, failing on a value the validation rules should have
    /// refused (a file rendered without validation, or an object stored before a rule existed).
    pub fn resolve(object: &ModelServer) -> Result<Self, RenderError> {
        let spec: &ModelServerSpec = &object.spec;
        let server = spec.server.clone().unwrap_or_default();
        let cors = server.cors.clone().unwrap_or_default();
        let lifecycle = spec.lifecycle.clone().unwrap_or_default();
        let invalid = |field: &str, error: String| RenderError::InvalidSpec {
            message: format!("{field}: {error}"),
        };

        let (mode, sidecar) = match (&spec.model.command, &spec.model.upstream) {
            (Some(command), None) if !command.is_empty() => (
                Mode::Managed {
                    command: command.clone(),
                },
                Cli::managed(command.clone()),
            ),
            (None, Some(upstream)) => {
                let port =
                    number(Some(upstream.port), "spec.model.upstream.port")?.unwrap_or_default();
                let grpc_port = number(upstream.grpc_port, "spec.model.upstream.grpcPort")?;
                let cli = Cli::proxy(&UpstreamAddr::loopback(port)).and_then(|mut cli| {
                    if let Command::Proxy(proxy) = &mut cli.command {
                        proxy.upstream_credential_header = upstream_credential_header(upstream)?;
                        proxy.upstream_grpc = grpc_port.map(UpstreamAddr::loopback);
                    }
                    Ok(cli)
                });
                (Mode::Proxy { port }, cli)
            }
            _ => {
                return Err(RenderError::InvalidSpec {
                    message: modelserver_crds::rules::MODEL_COMMAND_XOR_UPSTREAM
                        .message
                        .to_owned(),
                });
            }
        };
        let mut sidecar = sidecar.map_err(|e| invalid("spec.model", e.to_string()))?;

        sidecar.log.log_format = CLUSTER_LOG_FORMAT;
        if server.tls.is_some()
            && let Some(args) = sidecar.server_mut()
        {
            let dir = PathBuf::from(names::TLS_DIR);
            args.tls_cert_file = Some(dir.join(names::TLS_CERT));
            args.tls_key_file = Some(dir.join(names::TLS_KEY));
        }
        if let Some(level) = server.log_level {
            sidecar.log.log_level = level.as_str().to_owned();
        }
        let startup_timeout = lifecycle
            .startup_timeout
            .as_ref()
            .map(K8sDuration::value)
            .map_or_else(|| parse_duration(defaults::STARTUP_TIMEOUT), Ok)
            .map_err(|e| invalid("spec.lifecycle.startupTimeout", e.to_string()))?;
        let shutdown_timeout = lifecycle.shutdown_timeout.as_ref().map(K8sDuration::value);
        match &mut sidecar.command {
            Command::Serve(serve) => {
                serve.socket_dir = Some(PathBuf::from(names::SOCKET_DIR));
                serve.worker_port_base =
                    number(spec.model.worker_port_base, "spec.model.workerPortBase")?;
                if let Some(restarts) = number(
                    lifecycle.max_worker_restarts,
                    "spec.lifecycle.maxWorkerRestarts",
                )? {
                    serve.max_worker_restarts = restarts;
                }
                if let Some(timeout) = shutdown_timeout {
                    serve.shutdown_timeout = timeout;
                }
                serve.max_requests_per_worker = number(
                    server.max_requests_per_worker,
                    "spec.server.maxRequestsPerWorker",
                )?;
                serve.max_worker_memory = server.max_worker_memory.as_ref().map(|q| q.bytes());
                if let Some(jitter) =
                    number(server.max_requests_jitter, "spec.server.maxRequestsJitter")?
                {
                    serve.max_requests_jitter = jitter;
                }
                if let Some(workers) = number(server.workers, "spec.server.workers")? {
                    serve.server.workers = workers;
                }
            }
            Command::Proxy(_) | Command::Drain(_) | Command::Install(_) => {}
        }
        // Proxy mode has no worker processes to stop; the budget still counts in the grace
        // period, for the model container's own shutdown.
        let shutdown_budget = match &sidecar.command {
            Command::Serve(serve) => serve.shutdown_timeout,
            _ => shutdown_timeout
                .map_or_else(|| parse_duration(contract_defaults::SHUTDOWN_TIMEOUT), Ok)
                .map_err(|e| invalid("spec.lifecycle.shutdownTimeout", e.to_string()))?,
        };

        let Some(args) = sidecar.server_mut() else {
            return Err(invalid("spec.model", "no serving subcommand".to_owned()));
        };
        if let Some(port) = number(server.port, "spec.server.port")? {
            args.port = port;
        }
        if let Some(threads) = number(server.executor_threads, "spec.server.executorThreads")? {
            args.executor_threads = threads;
        }
        if let Some(queue) = number(server.max_queue, "spec.server.maxQueue")? {
            args.max_queue = queue;
        }
        if let Some(size) = &server.max_upload_size {
            args.max_upload_size = size.bytes();
        }
        if let Some(wait) = server.max_queue_wait.as_ref().map(K8sDuration::value) {
            args.max_queue_wait = wait;
        }
        if let Some(timeout) = server.request_timeout.as_ref().map(K8sDuration::value) {
            args.request_timeout = timeout;
        }
        let readiness_path = match &spec.model.upstream {
            Some(upstream) => upstream.readiness_path.clone(),
            None => spec.model.readiness_path.clone(),
        };
        if let Some(path) = readiness_path {
            args.readiness_path = path;
        }
        if let Some(docs) = server.docs.and_then(|d| d.enabled) {
            args.docs = docs;
        }
        if cors.enabled == Some(true) {
            args.cors.allow_origins = cors.allow_origins.clone().unwrap_or_default();
        }
        if let Some(methods) = cors.allow_methods {
            args.cors.allow_methods = methods;
        }
        if let Some(headers) = cors.allow_headers {
            args.cors.allow_headers = headers;
        }
        if let Some(credentials) = cors.allow_credentials {
            args.cors.allow_credentials = credentials;
        }
        if let Some(age) = cors.max_age.as_ref().map(K8sDuration::value) {
            args.cors.max_age = age;
        }
        if let Some(access_log) = server.access_log {
            args.access_log = access_log;
        }
        if let Some(delay) = lifecycle.drain_delay.as_ref().map(K8sDuration::value) {
            args.drain_delay = delay;
        }
        if let Some(timeout) = lifecycle.drain_timeout.as_ref().map(K8sDuration::value) {
            args.drain_timeout = timeout;
        }
        if let Some(tracing) = &server.tracing {
            let trace = &mut args.trace;
            trace.otlp_endpoint = Some(
                values::otlp_endpoint(&tracing.endpoint)
                    .map_err(|e| invalid("spec.server.tracing.endpoint", e))?,
            );
            if let Some(ratio) = &tracing.sampling_ratio {
                trace.trace_sampling = values::sampling_ratio(ratio)
                    .map_err(|e| invalid("spec.server.tracing.samplingRatio", e))?;
            }
            trace.name = object.metadata.name.clone();
        }
        // Saturating: drainDelay is checked by its pattern only (it may be 0), so the API server
        // accepts values up to the largest Duration, and `+` would panic on their sum.
        let grace = args
            .drain_delay
            .saturating_add(args.drain_timeout)
            .saturating_add(shutdown_budget)
            .saturating_add(GRACE_SLACK);

        Ok(Self {
            mode,
            sidecar,
            tls_secret: server.tls.as_ref().map(|t| t.secret_name.clone()),
            auth_token: server.auth.map(|a| a.token_secret_ref),
            upstream_credential: spec
                .model
                .upstream
                .as_ref()
                .and_then(|u| u.auth.as_ref())
                .map(|a| a.token_secret_ref.clone()),
            startup_timeout,
            termination_grace_period_seconds: i64::try_from(grace.as_secs())
                .unwrap_or(i64::MAX)
                .saturating_add(i64::from(grace.subsec_nanos() > 0)),
        })
    }

    /// True when the public port serves TLS.
    pub fn tls(&self) -> bool {
        self.tls_secret.is_some()
    }

    /// The public port.
    pub fn port(&self) -> i32 {
        self.sidecar.server().map_or(0, |s| i32::from(s.port))
    }

    /// The requests a pod's workers take at once: workers x executor threads.
    pub fn slots(&self) -> i32 {
        self.sidecar.server().map_or(1, |s| {
            i32::from(s.workers).saturating_mul(i32::from(s.executor_threads))
        })
    }

    /// The sidecar's admin port.
    pub fn admin_port(&self) -> i32 {
        self.sidecar.server().map_or(0, |s| i32::from(s.admin_port))
    }

    /// The sidecar's `MODELSERVER_*` environment, rendered by the contract from
    /// [`Settings::sidecar`], plus the token as a `secretKeyRef`. Every server and lifecycle
    /// setting is here, so a change to any of them changes the pod template and rolls the pods.
    pub fn sidecar_env(&self) -> Vec<EnvVar> {
        let mut vars: Vec<EnvVar> = pod_env::render(&self.sidecar)
            .into_iter()
            .map(|(name, value)| EnvVar {
                name: name.to_owned(),
                value: Some(value),
                value_from: None,
            })
            .collect();
        let secrets = [
            (env::AUTH_TOKEN, &self.auth_token),
            (env::UPSTREAM_CREDENTIAL, &self.upstream_credential),
        ];
        for (name, secret) in secrets {
            if let Some(secret) = secret {
                vars.push(EnvVar {
                    name: name.to_owned(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret.name.clone(),
                            key: secret.key.clone(),
                            optional: Some(false),
                        }),
                        ..EnvVarSource::default()
                    }),
                });
            }
        }
        // The spans name the pod they come from: its name and namespace from the downward API.
        if self.sidecar.server().is_some_and(|s| s.trace.enabled()) {
            for (name, field) in [
                (env::POD_NAME, "metadata.name"),
                (env::POD_NAMESPACE, "metadata.namespace"),
            ] {
                vars.push(EnvVar {
                    name: name.to_owned(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: Some("v1".to_owned()),
                            field_path: field.to_owned(),
                        }),
                        ..EnvVarSource::default()
                    }),
                });
            }
        }
        vars
    }
}

/// The header of the upstream's credential, read as the sidecar reads it.
fn upstream_credential_header(
    upstream: &modelserver_crds::spec::UpstreamSpec,
) -> Result<Option<http::HeaderName>, modelserver_contract::ContractError> {
    upstream
        .auth
        .as_ref()
        .and_then(|a| a.header.as_deref())
        .map(|name| {
            modelserver_contract::values::credential_header(name).map_err(|reason| {
                modelserver_contract::ContractError::Header {
                    field: "spec.model.upstream.auth.header",
                    reason,
                }
            })
        })
        .transpose()
}
