//! Concurrency autoscaling: a KEDA `ScaledObject` (`keda.sh/v1alpha1`) over the ModelServer's
//! Deployment whose Prometheus trigger is the requests in flight and waiting in its pods'
//! sidecars. KEDA turns it into a HorizontalPodAutoscaler of its own (`keda-hpa-<name>`) fed by
//! its external metrics API; the replica hand-over to it is the same as to the operator's own
//! HPA (the Deployment's `spec.replicas` is left to the autoscaler).
//!
//! Only the fields the operator writes or reads are typed; server-side apply keeps the rest.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use kube::CustomResource;
use modelserver_crds::spec::{AutoscalingMetric, AutoscalingSpec};
use modelserver_crds::{ModelServer, defaults};
use serde::{Deserialize, Serialize};

use crate::render::Settings;
use crate::render::meta::child_meta;

/// KEDA's API group/version, as discovery names it.
pub const GROUP_VERSION: &str = "keda.sh/v1alpha1";
/// The resource (plural) of ScaledObjects.
pub const SCALED_OBJECTS: &str = "scaledobjects";
/// How often KEDA asks Prometheus, in seconds (KEDA's default is 30).
pub const POLLING_INTERVAL_SECONDS: i32 = 15;
/// The sidecar's gauge of requests a worker is handling.
pub const INFLIGHT_SERIES: &str = "modelserver_inflight_requests";
/// The sidecar's gauge of requests waiting for a worker slot.
pub const QUEUE_SERIES: &str = "modelserver_queue_depth";
/// The label that names the ModelServer on the sidecar's series, as the chart's PodMonitor
/// writes it (from the pods' `app.kubernetes.io/instance`).
pub const MODELSERVER_SERIES_LABEL: &str = "modelserver";

/// `ScaledObject.spec`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ScaledObject",
    plural = "scaledobjects",
    namespaced,
    status = "ScaledObjectStatus",
    derive = "PartialEq",
    derive = "Default",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectSpec {
    /// The Deployment to scale.
    pub scale_target_ref: ScaleTargetRef,
    /// How often KEDA checks the trigger, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<i32>,
    /// Fewest pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replica_count: Option<i32>,
    /// Most pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replica_count: Option<i32>,
    /// The HPA KEDA makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced: Option<Advanced>,
    /// What to scale on.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
}

/// The object a ScaledObject scales.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    /// `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `Deployment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its name.
    pub name: String,
}

/// The `advanced` section: the HPA's behavior.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Advanced {
    /// The HPA KEDA makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizontal_pod_autoscaler_config: Option<HpaConfig>,
}

/// The HPA KEDA makes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HpaConfig {
    /// Scale-up and scale-down behavior.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// One trigger.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// The scaler (`prometheus`).
    #[serde(rename = "type")]
    pub type_: String,
    /// `AverageValue`: the query's value divided by the pods is held at the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
    /// The scaler's settings.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// `ScaledObject.status`: the conditions KEDA reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectStatus {
    /// `Ready`, `Active`, `Fallback`, `Paused`.
    #[serde(default)]
    pub conditions: Vec<KedaCondition>,
}

/// A KEDA condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KedaCondition {
    /// Its type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// For a person.
    #[serde(default)]
    pub message: Option<String>,
}

/// Whether `autoscaling` scales on concurrency.
pub fn on_concurrency(autoscaling: &AutoscalingSpec) -> bool {
    autoscaling.metric == Some(AutoscalingMetric::Concurrency)
}

/// The PromQL of the trigger: the requests in flight and waiting in every pod of the
/// ModelServer `name` in `namespace`. A pod whose series are gone counts nothing.
pub fn concurrency_query(namespace: &str, name: &str) -> String {
    let selector = format!("{{namespace=\"{namespace}\",{MODELSERVER_SERIES_LABEL}=\"{name}\"}}");
    format!("sum({INFLIGHT_SERIES}{selector}) + (sum({QUEUE_SERIES}{selector}) or vector(0))")
}

/// The target requests per pod: `targetConcurrency`, else the pod's slots.
pub fn target_concurrency(autoscaling: &AutoscalingSpec, settings: &Settings) -> i32 {
    autoscaling
        .target_concurrency
        .unwrap_or_else(|| settings.slots())
}

/// The scale-down behavior of `spec.autoscaling.scaleDownDelay`, if set.
pub fn scale_down_behavior(
    autoscaling: &AutoscalingSpec,
) -> Option<HorizontalPodAutoscalerBehavior> {
    let delay = autoscaling.scale_down_delay.as_ref()?.value();
    Some(HorizontalPodAutoscalerBehavior {
        scale_down: Some(HPAScalingRules {
            stabilization_window_seconds: Some(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX)),
            ..HPAScalingRules::default()
        }),
        scale_up: None,
    })
}

/// Renders the ScaledObject of `object`, or nothing unless it autoscales on concurrency.
/// `prometheus_url` is where KEDA reaches Prometheus (the operator's `--prometheus-url`).
pub fn scaled_object(
    object: &ModelServer,
    name: &str,
    namespace: &str,
    settings: &Settings,
    prometheus_url: &str,
) -> Option<ScaledObject> {
    let autoscaling = object
        .spec
        .autoscaling
        .as_ref()
        .filter(|a| on_concurrency(a))?;
    let metadata = BTreeMap::from([
        ("serverAddress".to_owned(), prometheus_url.to_owned()),
        ("query".to_owned(), concurrency_query(namespace, name)),
        (
            "threshold".to_owned(),
            target_concurrency(autoscaling, settings).to_string(),
        ),
    ]);
    // KEDA copies these labels onto the HPA it makes (`keda-hpa-<name>`), which the operator's
    // HPA watch then sees; that HPA is controlled by the ScaledObject, so no reconcile maps to
    // it and the operator never touches it.
    Some(ScaledObject {
        metadata: child_meta(object, name, namespace),
        spec: ScaledObjectSpec {
            scale_target_ref: ScaleTargetRef {
                api_version: Some("apps/v1".to_owned()),
                kind: Some("Deployment".to_owned()),
                name: name.to_owned(),
            },
            polling_interval: Some(POLLING_INTERVAL_SECONDS),
            min_replica_count: Some(
                autoscaling
                    .min_replicas
                    .unwrap_or(defaults::AUTOSCALING_MIN_REPLICAS),
            ),
            max_replica_count: Some(autoscaling.max_replicas),
            advanced: scale_down_behavior(autoscaling).map(|behavior| Advanced {
                horizontal_pod_autoscaler_config: Some(HpaConfig {
                    behavior: Some(behavior),
                }),
            }),
            triggers: vec![Trigger {
                type_: "prometheus".to_owned(),
                metric_type: Some("AverageValue".to_owned()),
                metadata,
            }],
        },
        status: None,
    })
}
