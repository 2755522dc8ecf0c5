//! The PodDisruptionBudget: on by default from two desired pods, unless disabled.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use modelserver_crds::{ModelServer, defaults};

use crate::render::meta::{child_meta, label_selector};

/// Whether `object` gets a budget: `disruption.enabled` when set, otherwise when the desired
/// replicas (or `autoscaling.minReplicas`) are at least two. A budget on a single pod would block
/// every node drain.
pub fn wants_budget(object: &ModelServer) -> bool {
    let spec = &object.spec;
    if let Some(enabled) = spec.disruption.as_ref().and_then(|d| d.enabled) {
        return enabled;
    }
    let floor = match &spec.autoscaling {
        Some(a) => a.min_replicas.unwrap_or(defaults::AUTOSCALING_MIN_REPLICAS),
        None => spec.replicas.unwrap_or(defaults::REPLICAS),
    };
    floor >= defaults::DISRUPTION_MIN_REPLICAS
}

/// Renders the budget of `object`, or nothing when it gets none.
pub fn disruption_budget(
    object: &ModelServer,
    name: &str,
    namespace: &str,
) -> Option<PodDisruptionBudget> {
    if !wants_budget(object) {
        return None;
    }
    let disruption = object.spec.disruption.clone().unwrap_or_default();
    let (max_unavailable, min_available) =
        match (disruption.max_unavailable, disruption.min_available) {
            (None, None) => (
                Some(IntOrString::Int(defaults::DISRUPTION_MAX_UNAVAILABLE)),
                None,
            ),
            other => other,
        };
    Some(PodDisruptionBudget {
        metadata: child_meta(object, name, namespace),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(label_selector(name)),
            max_unavailable,
            min_available,
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}
