//! The effective settings of a ModelServer: every optional field resolved to its value or its
//! default, and the `MODELSERVER_*` environment the sidecar reads them from.

use std::time::Duration;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use modelserver_crds::spec::{ModelServerSpec, SecretKeyRef};
use modelserver_crds::{ModelServer, defaults};
use modelserver_units::{parse_duration, parse_quantity_bytes};

use crate::error::RenderError;
use crate::render::names;

/// Environment variable names the sidecar reads (see DESIGN section 4).
pub mod env {
    /// Public port.
    pub const PORT: &str = "MODELSERVER_PORT";
    /// Admin port.
    pub const ADMIN_PORT: &str = "MODELSERVER_ADMIN_PORT";
    /// Worker processes.
    pub const WORKERS: &str = "MODELSERVER_WORKERS";
    /// Concurrent requests per worker.
    pub const EXECUTOR_THREADS: &str = "MODELSERVER_EXECUTOR_THREADS";
    /// Waiting requests.
    pub const MAX_QUEUE: &str = "MODELSERVER_MAX_QUEUE";
    /// Body limit.
    pub const MAX_UPLOAD_SIZE: &str = "MODELSERVER_MAX_UPLOAD_SIZE";
    /// Request timeout.
    pub const REQUEST_TIMEOUT: &str = "MODELSERVER_REQUEST_TIMEOUT";
    /// Worker or upstream readiness path.
    pub const READINESS_PATH: &str = "MODELSERVER_READINESS_PATH";
    /// Upstream address (proxy mode).
    pub const UPSTREAM: &str = "MODELSERVER_UPSTREAM";
    /// Serve docs.
    pub const DOCS: &str = "MODELSERVER_DOCS";
    /// CORS origins (empty: CORS off).
    pub const CORS_ALLOW_ORIGINS: &str = "MODELSERVER_CORS_ALLOW_ORIGINS";
    /// CORS methods.
    pub const CORS_ALLOW_METHODS: &str = "MODELSERVER_CORS_ALLOW_METHODS";
    /// CORS headers.
    pub const CORS_ALLOW_HEADERS: &str = "MODELSERVER_CORS_ALLOW_HEADERS";
    /// CORS credentials.
    pub const CORS_ALLOW_CREDENTIALS: &str = "MODELSERVER_CORS_ALLOW_CREDENTIALS";
    /// CORS preflight cache.
    pub const CORS_MAX_AGE: &str = "MODELSERVER_CORS_MAX_AGE";
    /// Bearer token.
    pub const AUTH_TOKEN: &str = "MODELSERVER_AUTH_TOKEN";
    /// Log level.
    pub const LOG_LEVEL: &str = "MODELSERVER_LOG_LEVEL";
    /// Log format.
    pub const LOG_FORMAT: &str = "MODELSERVER_LOG_FORMAT";
    /// Access log.
    pub const ACCESS_LOG: &str = "MODELSERVER_ACCESS_LOG";
    /// Drain delay.
    pub const DRAIN_DELAY: &str = "MODELSERVER_DRAIN_DELAY";
    /// Drain timeout.
    pub const DRAIN_TIMEOUT: &str = "MODELSERVER_DRAIN_TIMEOUT";
    /// Worker stop timeout.
    pub const SHUTDOWN_TIMEOUT: &str = "MODELSERVER_SHUTDOWN_TIMEOUT";
    /// Restart budget.
    pub const MAX_WORKER_RESTARTS: &str = "MODELSERVER_MAX_WORKER_RESTARTS";
    /// Socket directory.
    pub const SOCKET_DIR: &str = "MODELSERVER_SOCKET_DIR";
}

/// Log format of the sidecar in a cluster: JSON lines for log collectors.
const CLUSTER_LOG_FORMAT: &str = "json";
/// Slack added to the drain and shutdown budgets for the terminationGracePeriodSeconds.
const GRACE_SLACK: Duration = Duration::from_secs(5);

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
        port: i32,
    },
}

/// Every setting of a ModelServer with its default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How the model runs.
    pub mode: Mode,
    /// Public port.
    pub port: i32,
    /// Worker processes per pod.
    pub workers: i32,
    /// Concurrent requests per worker.
    pub executor_threads: i32,
    /// Waiting requests.
    pub max_queue: i32,
    /// Body limit, as written (a quantity).
    pub max_upload_size: String,
    /// Request timeout, as written.
    pub request_timeout: String,
    /// Worker or upstream readiness path.
    pub readiness_path: String,
    /// Serve /docs and /openapi.json.
    pub docs: bool,
    /// CORS origins; empty when CORS is off.
    pub cors_allow_origins: Vec<String>,
    /// CORS methods.
    pub cors_allow_methods: Vec<String>,
    /// CORS headers.
    pub cors_allow_headers: Vec<String>,
    /// CORS credentials.
    pub cors_allow_credentials: bool,
    /// CORS max age, as written.
    pub cors_max_age: String,
    /// Where the bearer token is, if auth is on.
    pub auth_token: Option<SecretKeyRef>,
    /// Log level.
    pub log_level: String,
    /// Access log on.
    pub access_log: bool,
    /// Model load budget.
    pub startup_timeout: Duration,
    /// Drain delay, as written.
    pub drain_delay: String,
    /// Drain timeout, as written.
    pub drain_timeout: String,
    /// Worker stop timeout, as written.
    pub shutdown_timeout: String,
    /// Pod grace period: drainDelay + drainTimeout + shutdownTimeout + 5s, in whole seconds.
    pub termination_grace_period_seconds: i64,
    /// Restart budget.
    pub max_worker_restarts: i32,
}

impl Settings {
    /// Resolves the settings of `object`, failing on a value the validation rules should have
    /// refused (a file rendered without validation, or an object stored before a rule existed).
    pub fn resolve(object: &ModelServer) -> Result<Self, RenderError> {
        let spec: &ModelServerSpec = &object.spec;
        let server = spec.server.clone().unwrap_or_default();
        let cors = server.cors.clone().unwrap_or_default();
        let lifecycle = spec.lifecycle.clone().unwrap_or_default();
        let invalid =
            |field: &str, error: modelserver_units::UnitsError| RenderError::InvalidSpec {
                message: format!("{field}: {error}"),
            };

        let mode = match (&spec.model.command, &spec.model.upstream) {
            (Some(command), None) if !command.is_empty() => Mode::Managed {
                command: command.clone(),
            },
            (None, Some(upstream)) => Mode::Proxy {
                port: upstream.port,
            },
            _ => {
                return Err(RenderError::InvalidSpec {
                    message: modelserver_crds::rules::MODEL_COMMAND_XOR_UPSTREAM
                        .message
                        .to_owned(),
                });
            }
        };
        let readiness_path = match &spec.model.upstream {
            Some(upstream) => upstream.readiness_path.clone(),
            None => spec.model.readiness_path.clone(),
        }
        .unwrap_or_else(|| defaults::READINESS_PATH.to_owned());

        let max_upload_size = server
            .max_upload_size
            .unwrap_or_else(|| defaults::MAX_UPLOAD_SIZE.to_owned());
        parse_quantity_bytes(&max_upload_size)
            .map_err(|e| invalid("spec.server.maxUploadSize", e))?;
        let request_timeout = server
            .request_timeout
            .unwrap_or_else(|| defaults::REQUEST_TIMEOUT.to_owned());
        parse_duration(&request_timeout).map_err(|e| invalid("spec.server.requestTimeout", e))?;
        let cors_max_age = cors
            .max_age
            .clone()
            .unwrap_or_else(|| defaults::CORS_MAX_AGE.to_owned());
        parse_duration(&cors_max_age).map_err(|e| invalid("spec.server.cors.maxAge", e))?;

        let duration = |value: Option<String>, default: &str, field: &str| {
            let text = value.unwrap_or_else(|| default.to_owned());
            parse_duration(&text)
                .map(|d| (text, d))
                .map_err(|e| invalid(field, e))
        };
        let (_, startup_timeout) = duration(
            lifecycle.startup_timeout,
            defaults::STARTUP_TIMEOUT,
            "spec.lifecycle.startupTimeout",
        )?;
        let (drain_delay, drain_delay_value) = duration(
            lifecycle.drain_delay,
            defaults::DRAIN_DELAY,
            "spec.lifecycle.drainDelay",
        )?;
        let (drain_timeout, drain_timeout_value) = duration(
            lifecycle.drain_timeout,
            defaults::DRAIN_TIMEOUT,
            "spec.lifecycle.drainTimeout",
        )?;
        let (shutdown_timeout, shutdown_timeout_value) = duration(
            lifecycle.shutdown_timeout,
            defaults::SHUTDOWN_TIMEOUT,
            "spec.lifecycle.shutdownTimeout",
        )?;
        // Saturating: drainDelay is checked by its pattern only (it may be 0), so the API server
        // accepts values up to the largest Duration, and `+` would panic on their sum.
        let grace = drain_delay_value
            .saturating_add(drain_timeout_value)
            .saturating_add(shutdown_timeout_value)
            .saturating_add(GRACE_SLACK);

        let strings = |values: Option<Vec<String>>, default: &[&str]| {
            values.unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect())
        };
        let cors_enabled = cors.enabled.unwrap_or(false);
        Ok(Self {
            mode,
            port: server.port.unwrap_or(defaults::SERVER_PORT),
            workers: server.workers.unwrap_or(defaults::WORKERS),
            executor_threads: server
                .executor_threads
                .unwrap_or(defaults::EXECUTOR_THREADS),
            max_queue: server.max_queue.unwrap_or(defaults::MAX_QUEUE),
            max_upload_size,
            request_timeout,
            readiness_path,
            docs: server.docs.and_then(|d| d.enabled).unwrap_or(false),
            cors_allow_origins: if cors_enabled {
                cors.allow_origins.unwrap_or_default()
            } else {
                Vec::new()
            },
            cors_allow_methods: strings(cors.allow_methods, defaults::CORS_ALLOW_METHODS),
            cors_allow_headers: strings(cors.allow_headers, defaults::CORS_ALLOW_HEADERS),
            cors_allow_credentials: cors.allow_credentials.unwrap_or(false),
            cors_max_age,
            auth_token: server.auth.map(|a| a.token_secret_ref),
            log_level: server
                .log_level
                .map_or(defaults::LOG_LEVEL, |l| l.as_str())
                .to_owned(),
            access_log: server.access_log.unwrap_or(true),
            startup_timeout,
            drain_delay,
            drain_timeout,
            shutdown_timeout,
            termination_grace_period_seconds: i64::try_from(grace.as_secs())
                .unwrap_or(i64::MAX)
                .saturating_add(i64::from(grace.subsec_nanos() > 0)),
            max_worker_restarts: lifecycle
                .max_worker_restarts
                .unwrap_or(defaults::MAX_WORKER_RESTARTS),
        })
    }

    /// The sidecar's `MODELSERVER_*` environment. Every server and lifecycle setting is here, so
    /// a change to any of them changes the pod template and rolls the pods.
    pub fn sidecar_env(&self) -> Vec<EnvVar> {
        let value = |name: &str, value: String| EnvVar {
            name: name.to_owned(),
            value: Some(value),
            value_from: None,
        };
        let mut vars = vec![
            value(env::PORT, self.port.to_string()),
            value(env::ADMIN_PORT, defaults::ADMIN_PORT.to_string()),
        ];
        match &self.mode {
            Mode::Managed { .. } => {
                vars.push(value(env::WORKERS, self.workers.to_string()));
                vars.push(value(env::SOCKET_DIR, names::SOCKET_DIR.to_owned()));
                vars.push(value(
                    env::MAX_WORKER_RESTARTS,
                    self.max_worker_restarts.to_string(),
                ));
            }
            Mode::Proxy { port } => {
                vars.push(value(env::UPSTREAM, format!("127.0.0.1:{port}")));
            }
        }
        vars.extend([
            value(env::EXECUTOR_THREADS, self.executor_threads.to_string()),
            value(env::MAX_QUEUE, self.max_queue.to_string()),
            value(env::MAX_UPLOAD_SIZE, self.max_upload_size.clone()),
            value(env::REQUEST_TIMEOUT, self.request_timeout.clone()),
            value(env::READINESS_PATH, self.readiness_path.clone()),
            value(env::DOCS, self.docs.to_string()),
            value(env::CORS_ALLOW_ORIGINS, self.cors_allow_origins.join(",")),
            value(env::CORS_ALLOW_METHODS, self.cors_allow_methods.join(",")),
            value(env::CORS_ALLOW_HEADERS, self.cors_allow_headers.join(",")),
            value(
                env::CORS_ALLOW_CREDENTIALS,
                self.cors_allow_credentials.to_string(),
            ),
            value(env::CORS_MAX_AGE, self.cors_max_age.clone()),
            value(env::LOG_LEVEL, self.log_level.clone()),
            value(env::LOG_FORMAT, CLUSTER_LOG_FORMAT.to_owned()),
            value(env::ACCESS_LOG, self.access_log.to_string()),
            value(env::DRAIN_DELAY, self.drain_delay.clone()),
            value(env::DRAIN_TIMEOUT, self.drain_timeout.clone()),
            value(env::SHUTDOWN_TIMEOUT, self.shutdown_timeout.clone()),
        ]);
        if let Some(secret) = &self.auth_token {
            vars.push(EnvVar {
                name: env::AUTH_TOKEN.to_owned(),
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
        vars
    }
}
