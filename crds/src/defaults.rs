//! Defaults of the optional ModelServer fields.
//!
//! They are deliberately not written into the CRD schema as `default:` values: the API server
//! would then store fields the user never applied, and GitOps tools would see a live object that
//! differs from the one in Git. The operator applies these when it renders the children, and the
//! field descriptions state them.

/// `spec.replicas`.
pub const REPLICAS: i32 = 1;
/// `spec.imagePullPolicy`.
pub const IMAGE_PULL_POLICY: &str = "IfNotPresent";
/// `spec.model.readinessPath` and `spec.model.upstream.readinessPath`.
pub const READINESS_PATH: &str = "/ready";
/// `spec.server.port`: the public HTTP port of the sidecar.
pub const SERVER_PORT: i32 = 8080;
/// The sidecar's admin port (probes, drain, metrics); not configurable, never in the Service.
pub const ADMIN_PORT: i32 = 9090;
/// `spec.server.workers`.
pub const WORKERS: i32 = 1;
/// `spec.server.executorThreads`.
pub const EXECUTOR_THREADS: i32 = 4;
/// `spec.server.maxQueue`.
pub const MAX_QUEUE: i32 = 128;
/// `spec.server.maxUploadSize`.
pub const MAX_UPLOAD_SIZE: &str = "100Mi";
/// `spec.server.requestTimeout`.
pub const REQUEST_TIMEOUT: &str = "60s";
/// `spec.server.cors.allowMethods`.
pub const CORS_ALLOW_METHODS: &[&str] = &["GET", "POST"];
/// `spec.server.cors.allowHeaders`.
pub const CORS_ALLOW_HEADERS: &[&str] = &["Content-Type", "Authorization"];
/// `spec.server.cors.maxAge`.
pub const CORS_MAX_AGE: &str = "10m";
/// `spec.server.logLevel`.
pub const LOG_LEVEL: &str = "info";
/// `spec.lifecycle.startupTimeout`.
pub const STARTUP_TIMEOUT: &str = "10m";
/// `spec.lifecycle.drainDelay`.
pub const DRAIN_DELAY: &str = "5s";
/// `spec.lifecycle.drainTimeout`.
pub const DRAIN_TIMEOUT: &str = "30s";
/// `spec.lifecycle.shutdownTimeout`.
pub const SHUTDOWN_TIMEOUT: &str = "10s";
/// `spec.lifecycle.maxWorkerRestarts`.
pub const MAX_WORKER_RESTARTS: i32 = 5;
/// `spec.autoscaling.minReplicas`.
pub const AUTOSCALING_MIN_REPLICAS: i32 = 1;
/// `spec.autoscaling.targetCPUUtilization`.
pub const AUTOSCALING_TARGET_CPU: i32 = 70;
/// `spec.disruption.maxUnavailable` when neither form is given.
pub const DISRUPTION_MAX_UNAVAILABLE: i32 = 1;
/// The replica count from which a PodDisruptionBudget is created by default.
pub const DISRUPTION_MIN_REPLICAS: i32 = 2;
/// `spec.rollout.maxSurge`.
pub const ROLLOUT_MAX_SURGE: &str = "25%";
/// `spec.rollout.maxUnavailable`.
pub const ROLLOUT_MAX_UNAVAILABLE: i32 = 0;
/// `spec.service.type`.
pub const SERVICE_TYPE: &str = "ClusterIP";
/// `spec.service.port`.
pub const SERVICE_PORT: i32 = 80;
/// `spec.networkPolicy.enabled`: the pods get a NetworkPolicy unless it is turned off.
pub const NETWORK_POLICY_ENABLED: bool = true;
