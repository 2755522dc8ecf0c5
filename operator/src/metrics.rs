//! The operator's Prometheus metrics (prefix `modelserver_operator_`).

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Metric handles and the registry they live in.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    reconcile_duration: Histogram,
    managed: IntGauge,
    writes: IntCounterVec,
    reads: IntCounterVec,
}

/// Result label of a successful reconcile.
pub const RESULT_SUCCESS: &str = "success";
/// Result label of a failed reconcile.
pub const RESULT_ERROR: &str = "error";

impl Metrics {
    /// Creates the metrics in a registry of their own.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "modelserver_operator_reconcile_total",
                "Reconciles of ModelServers, by result",
            ),
            &["result"],
        )?;
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "modelserver_operator_reconcile_duration_seconds",
                "Time one reconcile of a ModelServer took",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let managed = IntGauge::new(
            "modelserver_operator_managed_modelservers",
            "ModelServers the operator watches",
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "modelserver_operator_api_writes_total",
                "Write requests the operator sent to the API server, by kind and verb (0 at rest)",
            ),
            &["kind", "verb"],
        )?;
        let reads = IntCounterVec::new(
            Opts::new(
                "modelserver_operator_api_reads_total",
                "Single-object reads (GET) the operator sent to the API server, by kind (watches not included)",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(reads.clone()))?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(managed.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        for result in [RESULT_SUCCESS, RESULT_ERROR] {
            reconciles.with_label_values(&[result]);
        }
        Ok(Self {
            registry,
            reconciles,
            reconcile_duration,
            managed,
            writes,
            reads,
        })
    }

    /// Counts one reconcile and its duration.
    pub fn record_reconcile(&self, result: &str, took: Duration) {
        self.reconciles.with_label_values(&[result]).inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Counts one write request ([`CountRequestsLayer`](crate::api_requests::CountRequestsLayer)
    /// calls it for every request of the controller's client).
    pub fn record_write(&self, kind: &str, verb: &str) {
        self.writes.with_label_values(&[kind, verb]).inc();
    }

    /// Counts one single-object read (see [`record_write`](Self::record_write)).
    pub fn record_read(&self, kind: &str) {
        self.reads.with_label_values(&[kind]).inc();
    }

    /// Sets the number of managed ModelServers.
    pub fn set_managed(&self, count: usize) {
        self.managed.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}
