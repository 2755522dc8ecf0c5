//! The HorizontalPodAutoscaler, when `spec.autoscaling` scales on CPU (on concurrency KEDA makes
//! one from the ScaledObject of [`keda`](crate::render::keda)).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use modelserver_crds::{ModelServer, defaults};

use crate::render::keda;
use crate::render::meta::child_meta;

/// Renders the autoscaler of `object`, or nothing when autoscaling is not asked for.
pub fn autoscaler(
    object: &ModelServer,
    name: &str,
    namespace: &str,
) -> Option<HorizontalPodAutoscaler> {
    let autoscaling = object
        .spec
        .autoscaling
        .as_ref()
        .filter(|a| !keda::on_concurrency(a))?;
    Some(HorizontalPodAutoscaler {
        metadata: child_meta(object, name, namespace),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: name.to_owned(),
            },
            min_replicas: Some(
                autoscaling
                    .min_replicas
                    .unwrap_or(defaults::AUTOSCALING_MIN_REPLICAS),
            ),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(
                            autoscaling
                                .target_cpu_utilization
                                .unwrap_or(defaults::AUTOSCALING_TARGET_CPU),
                        ),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: keda::scale_down_behavior(autoscaling),
        }),
        status: None,
    })
}
