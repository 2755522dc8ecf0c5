//! The sidecar's admin port: the paths the kubelet's probes, the preStop hook and Prometheus use.
//! It never appears in the Service.

/// Liveness: 200 while the sidecar's event loop runs.
pub const LIVEZ_PATH: &str = "/livez";
/// Readiness: 200 once every worker (or the upstream) is ready, 503 while starting or draining.
pub const READYZ_PATH: &str = "/readyz";
/// Starts draining and answers when the drain is over (loopback peers only).
pub const DRAIN_PATH: &str = "/drain";
/// Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";
/// Worker states as JSON (loopback peers only).
pub const STATUS_PATH: &str = "/status";
