//! Defaults of the optional ModelServer fields.
//!
//! They are deliberately not written into the CRD schema as `default:` values: the API server
//! would then store fields the user never applied, and GitOps tools would see a live object that
//! differs from the one in Git. The operator applies these when it renders the children, and the
//! field descriptions state them.
//!
//! Only the defaults of what the operator renders around the sidecar are here; every setting of
//! the sidecar itself (ports, workers, limits, CORS, timeouts, drain budgets) takes the default
//! `modelserver_contract::defaults` defines, which the sidecar's flags use too.

/// `spec.replicas`.
pub const REPLICAS: i32 = 1;
/// `spec.imagePullPolicy`.
pub const IMAGE_PULL_POLICY: &str = "IfNotPresent";
/// `spec.lifecycle.startupTimeout`.
pub const STARTUP_TIMEOUT: &str = "10m";
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
