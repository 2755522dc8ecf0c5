//! The operator's Prometheus metrics (prefix `modelserver_operator_`).

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use modelserver_crds::ModelServer;
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
    /// The controller's ModelServer cache, once it runs: the condition series are read from it
    /// at every scrape ([`CONDITION_METRIC`]).
    modelservers: Arc<OnceLock<Store<ModelServer>>>,
}

/// One series per condition of every ModelServer in the controller's cache (value 1), labelled
/// `namespace`, `modelserver`, `type`, `status` and `reason`: what `kubectl get ms` shows, for
/// alerts that must see ModelServers whose pods never start (and so export no series of their
/// own). Computed from the cache at each scrape, so a deleted ModelServer's series go with it.
pub const CONDITION_METRIC: &str = "modelserver_operator_modelserver_condition";

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
            modelservers: Arc::default(),
        })
    }

    /// Serves [`CONDITION_METRIC`] from `store` (the controller's ModelServer cache) from now on;
    /// a second call changes nothing.
    pub fn observe_modelservers(&self, store: Store<ModelServer>) {
        // Only the first store counts: the controller runs once per process.
        let _first = self.modelservers.set(store);
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
        let mut text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some(store) = self.modelservers.get() {
            condition_series(&store.state(), &mut text);
        }
        Ok(text)
    }
}

/// Appends [`CONDITION_METRIC`] for `objects` in the text format, sorted by namespace, name and
/// condition type (nothing when no object has a condition).
fn condition_series(objects: &[Arc<ModelServer>], out: &mut String) {
    // Each line's labels start with namespace, name and condition type: sorting the label texts
    // orders the series by them.
    let mut lines: Vec<String> = Vec::new();
    for object in objects {
        let namespace = object.namespace().unwrap_or_default();
        let name = object.name_any();
        let conditions = object.status.as_ref().and_then(|s| s.conditions.as_ref());
        for condition in conditions.into_iter().flatten() {
            lines.push(format!(
                "namespace=\"{}\",modelserver=\"{}\",type=\"{}\",status=\"{}\",reason=\"{}\"",
                escape_label(&namespace),
                escape_label(&name),
                escape_label(&condition.type_),
                escape_label(&condition.status),
                escape_label(&condition.reason),
            ));
        }
    }
    if lines.is_empty() {
        return;
    }
    lines.sort();
    let _ = writeln!(
        out,
        "# HELP {CONDITION_METRIC} Each condition of each ModelServer the operator watches (value 1), with its status and reason"
    );
    let _ = writeln!(out, "# TYPE {CONDITION_METRIC} gauge");
    for labels in lines {
        let _ = writeln!(out, "{CONDITION_METRIC}{{{labels}}} 1");
    }
}

/// A label value escaped for the text format (backslash, double quote, line feed).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use kube::runtime::{reflector, watcher};
    use modelserver_crds::ModelServerStatus;

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    fn modelserver(namespace: &str, name: &str, conditions: Vec<Condition>) -> ModelServer {
        let mut object: ModelServer = serde_json::from_value(serde_json::json!({
            "apiVersion": "modelserver.dev/v1alpha1",
            "kind": "ModelServer",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"image": "registry.example/iris:1", "model": {"command": ["python3"]}},
        }))
        .expect("a minimal ModelServer");
        object.status = Some(ModelServerStatus {
            conditions: Some(conditions),
            ..ModelServerStatus::default()
        });
        object
    }

    #[test]
    fn every_condition_of_every_cached_modelserver_is_a_series_and_a_deleted_one_goes() {
        let metrics = Metrics::new().expect("metrics");
        assert!(
            !metrics.encode().expect("encode").contains(CONDITION_METRIC),
            "no series before the controller runs"
        );
        let (store, mut writer) = reflector::store::<ModelServer>();
        metrics.observe_modelservers(store);
        let stalled = modelserver(
            "ml",
            "sentiment",
            vec![
                condition("Ready", "False", "SecretNotFound"),
                condition("Stalled", "True", "SecretNotFound"),
            ],
        );
        let ready = modelserver("ml", "iris", vec![condition("Ready", "True", "Ready")]);
        writer.apply_watcher_event(&watcher::Event::Apply(stalled.clone()));
        writer.apply_watcher_event(&watcher::Event::Apply(ready));
        let text = metrics.encode().expect("encode");
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(CONDITION_METRIC))
            .collect();
        assert_eq!(
            series,
            [
                r#"modelserver_operator_modelserver_condition{namespace="ml",modelserver="iris",type="Ready",status="True",reason="Ready"} 1"#,
                r#"modelserver_operator_modelserver_condition{namespace="ml",modelserver="sentiment",type="Ready",status="False",reason="SecretNotFound"} 1"#,
                r#"modelserver_operator_modelserver_condition{namespace="ml",modelserver="sentiment",type="Stalled",status="True",reason="SecretNotFound"} 1"#,
            ]
        );
        assert!(text.contains(&format!("# TYPE {CONDITION_METRIC} gauge")));

        writer.apply_watcher_event(&watcher::Event::Delete(stalled));
        let text = metrics.encode().expect("encode");
        assert!(!text.contains("sentiment"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
