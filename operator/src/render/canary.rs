//! The canary of `spec.canary`: a Deployment `<name>-canary` rendered from the ModelServer with
//! the canary's overrides (so it has the same sidecar, probes, drain and security profile), its
//! NetworkPolicy, and with `spec.route`, its own Service for the route's weighted backend.
//!
//! Its pods carry `modelserver.dev/canary-of: <name>`, which its selector uses. Behind the shared
//! Service (no route) they also carry the stable pods' `app.kubernetes.io/instance: <name>`, so
//! the one Service sends them requests in proportion to the pods; with a route they do not, so
//! the stable Service reaches the stable pods only and the route's weights decide.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use modelserver_crds::spec::CanarySpec;
use modelserver_crds::traffic::CANARY_SUFFIX;
use modelserver_crds::{ModelServer, defaults};

use crate::error::RenderError;
use crate::labels;
use crate::render::{RenderConfig, Settings, deployment, network_policy, service};

/// The canary's Deployment, Service and NetworkPolicy name.
pub fn name(name: &str) -> String {
    format!("{name}{CANARY_SUFFIX}")
}

/// The labels that select the canary's pods.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::CANARY_OF.to_owned(), name.to_owned()),
    ])
}

/// Why a canary whose pods would equal the stable version's is refused (the API server's rule
/// catches only a canary that overrides nothing; comparing the overrides costs more than a CEL
/// rule may).
pub const CHANGES_NOTHING: &str = "spec.canary changes nothing: its pods would run exactly what the stable version's run (the same image, command, args, env and resources); change one of them, or remove spec.canary";

/// Whether two Deployments' pods would run the same thing (their pod specs are equal; labels
/// and counts aside).
pub fn same_pods(a: &Deployment, b: &Deployment) -> bool {
    let pod = |d: &Deployment| d.spec.as_ref().and_then(|s| s.template.spec.clone());
    pod(a) == pod(b)
}

/// How many pods each version runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// The stable Deployment's replicas, or `None` when its autoscaler owns them.
    pub stable: Option<i32>,
    /// The canary Deployment's replicas.
    pub canary: i32,
}

/// The replica split of `object` with a canary. `observed_stable` is the stable Deployment's
/// current replica count, which counts when an autoscaler owns it; `canary_available` the
/// canary's available pods.
///
/// - With a route the weights split the requests, so the stable version keeps its count and the
///   canary gets its share of it, rounded up, at least one pod (at weight 0 too, so it can be
///   checked before it takes requests).
/// - Behind the shared Service the pods split the requests: of `replicas` pods the canary gets
///   `weight` percent, rounded, at least one for any weight above 0, and the stable version
///   keeps at least one. The stable version gives up a pod only for each available canary pod,
///   so the model never has fewer ready pods than `replicas` while the canary starts. With an
///   autoscaler the stable count is its own and the canary is
///   sized to stand in that ratio to it.
pub fn split(
    object: &ModelServer,
    canary: &CanarySpec,
    observed_stable: Option<i32>,
    canary_available: i32,
) -> Split {
    let spec = &object.spec;
    let weight = canary.weight.clamp(0, 100);
    let autoscaled = spec.autoscaling.as_ref().map(|a| {
        observed_stable
            .or(a.min_replicas)
            .unwrap_or(defaults::AUTOSCALING_MIN_REPLICAS)
    });
    let replicas = spec.replicas.unwrap_or(defaults::REPLICAS);
    if spec.route.is_some() {
        let stable = autoscaled.unwrap_or(replicas);
        let share = (i64::from(stable) * i64::from(weight) + 99) / 100;
        return Split {
            stable: autoscaled.is_none().then_some(replicas),
            canary: i32::try_from(share).unwrap_or(i32::MAX).max(1),
        };
    }
    let at_least_one = |pods: i64| {
        if weight == 0 {
            0
        } else {
            i32::try_from(pods).unwrap_or(i32::MAX).max(1)
        }
    };
    match autoscaled {
        Some(stable) => {
            let stable = i64::from(stable);
            let canary = if weight == 100 {
                stable
            } else {
                // canary / (stable + canary) = weight / 100, rounded to the nearest pod.
                (stable * i64::from(weight) * 2 + i64::from(100 - weight))
                    / (2 * i64::from(100 - weight))
            };
            Split {
                stable: None,
                canary: at_least_one(canary),
            }
        }
        None => {
            let canary = at_least_one((i64::from(replicas) * i64::from(weight) + 50) / 100);
            let handed_over = canary.min(canary_available.max(0));
            Split {
                stable: Some((replicas - handed_over).max(1)),
                canary,
            }
        }
    }
}

/// The ModelServer as the canary runs it: the overrides applied, the canary's replica count,
/// no autoscaler.
pub fn canary_object(object: &ModelServer, canary: &CanarySpec, replicas: i32) -> ModelServer {
    let mut view = object.clone();
    let spec = &mut view.spec;
    if let Some(image) = &canary.image {
        spec.image.clone_from(image);
    }
    if let Some(model) = &canary.model {
        if let Some(command) = &model.command {
            spec.model.command = Some(command.clone());
        }
        if let Some(args) = &model.args {
            spec.model.args = Some(args.clone());
        }
    }
    spec.model.env = canary.merged_env(object.spec.model.env.as_deref());
    if let Some(resources) = &canary.resources {
        spec.resources = Some(resources.clone());
    }
    spec.replicas = Some(replicas);
    spec.autoscaling = None;
    view
}

/// Everything the canary becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryChildren {
    /// `<name>-canary`.
    pub deployment: Deployment,
    /// `<name>-canary`, the route's canary backend, only with `spec.route`.
    pub service: Option<Service>,
    /// `<name>-canary`, when the ModelServer has a NetworkPolicy.
    pub network_policy: Option<NetworkPolicy>,
    /// The canary's image.
    pub image: String,
}

/// Renders the canary of `object` with `replicas` pods.
pub fn children(
    object: &ModelServer,
    canary: &CanarySpec,
    replicas: i32,
    name: &str,
    namespace: &str,
    config: &RenderConfig,
) -> Result<CanaryChildren, RenderError> {
    let view = canary_object(object, canary, replicas);
    let settings = Settings::resolve(&view)?;
    let canary_name = self::name(name);
    let routed = object.spec.route.is_some();

    let mut deployment = deployment::deployment(&view, name, namespace, &settings, config);
    deployment.metadata.name = Some(canary_name.clone());
    if let Some(spec) = deployment.spec.as_mut() {
        spec.selector = LabelSelector {
            match_labels: Some(selector_labels(name)),
            match_expressions: None,
        };
        if let Some(labels) = spec
            .template
            .metadata
            .as_mut()
            .and_then(|m| m.labels.as_mut())
        {
            labels.insert(labels::CANARY_OF.to_owned(), name.to_owned());
            if routed {
                labels.remove(labels::INSTANCE);
            }
        }
    }

    let service = routed.then(|| {
        let mut service = service::service(&view, name, namespace);
        service.metadata.name = Some(canary_name.clone());
        if let Some(spec) = service.spec.as_mut() {
            spec.selector = Some(selector_labels(name));
        }
        service
    });

    let network_policy =
        network_policy::network_policy(&view, name, namespace, &settings).map(|mut policy| {
            policy.metadata.name = Some(canary_name.clone());
            if let Some(spec) = policy.spec.as_mut() {
                spec.pod_selector = Some(LabelSelector {
                    match_labels: Some(selector_labels(name)),
                    match_expressions: None,
                });
            }
            policy
        });

    Ok(CanaryChildren {
        deployment,
        service,
        network_policy,
        image: view.spec.image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(replicas: Option<i32>, autoscaling: bool, route: bool) -> ModelServer {
        let mut spec = json!({"image": "i", "model": {"command": ["w"]}});
        if let Some(replicas) = replicas {
            spec["replicas"] = json!(replicas);
        }
        if autoscaling {
            spec["autoscaling"] = json!({"minReplicas": 2, "maxReplicas": 10});
        }
        if route {
            spec["route"] = json!({"parentRefs": [{"name": "gw"}]});
        }
        serde_json::from_value(json!({"apiVersion": "modelserver.dev/v1alpha1",
            "kind": "ModelServer", "metadata": {"name": "iris"}, "spec": spec}))
        .expect("valid object")
    }

    fn weight(weight: i32) -> CanarySpec {
        CanarySpec {
            weight,
            image: Some("j".into()),
            ..CanarySpec::default()
        }
    }

    fn split_of(object: &ModelServer, w: i32, observed: Option<i32>) -> (Option<i32>, i32) {
        // Every canary pod available.
        let split = split(object, &weight(w), observed, i32::MAX);
        (split.stable, split.canary)
    }

    #[test]
    fn behind_the_shared_service_the_pods_split_by_weight() {
        let four = object(Some(4), false, false);
        assert_eq!(split_of(&four, 25, None), (Some(3), 1));
        assert_eq!(split_of(&four, 50, None), (Some(2), 2));
        assert_eq!(split_of(&four, 0, None), (Some(4), 0));
        assert_eq!(
            split_of(&four, 100, None),
            (Some(1), 4),
            "one stable pod stays"
        );
        // Coarse with few pods: any weight above 0 gets a canary pod.
        let one = object(None, false, false);
        assert_eq!(split_of(&one, 10, None), (Some(1), 1));
    }

    #[test]
    fn a_canary_whose_pods_equal_the_stable_ones_is_refused_and_a_real_change_is_not() {
        let render = |canary: serde_json::Value| {
            let mut object = object(Some(2), false, false);
            object.spec.model.env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
                name: "V".into(),
                value: Some("1".into()),
                value_from: None,
            }]);
            object.spec.canary = Some(serde_json::from_value(canary).expect("a canary"));
            crate::render::render(&object, &RenderConfig::default())
        };
        for same in [
            json!({"weight": 10, "model": {"env": [{"name": "V", "value": "1"}]}}),
            json!({"weight": 10, "model": {"command": ["w"]}}),
        ] {
            assert!(
                matches!(render(same), Err(RenderError::InvalidSpec { message }) if message == CHANGES_NOTHING)
            );
        }
        let changed =
            render(json!({"weight": 10, "model": {"env": [{"name": "V", "value": "2"}]}}));
        assert!(changed.is_ok_and(|c| c.canary.is_some()));
    }

    #[test]
    fn the_stable_version_gives_up_a_pod_only_for_an_available_canary_pod() {
        let four = object(Some(4), false, false);
        let stable = |available| split(&four, &weight(50), None, available).stable;
        assert_eq!(stable(0), Some(4));
        assert_eq!(stable(1), Some(3));
        assert_eq!(stable(2), Some(2));
        assert_eq!(stable(5), Some(2));
    }

    #[test]
    fn with_an_autoscaler_the_canary_stands_in_ratio_to_the_observed_stable_pods() {
        let scaled = object(None, true, false);
        assert_eq!(split_of(&scaled, 25, Some(6)), (None, 2));
        assert_eq!(split_of(&scaled, 50, Some(3)), (None, 3));
        assert_eq!(
            split_of(&scaled, 10, None),
            (None, 1),
            "minReplicas before any"
        );
        assert_eq!(split_of(&scaled, 0, Some(6)), (None, 0));
    }

    #[test]
    fn with_a_route_the_stable_pods_stay_and_the_canary_gets_its_share() {
        let routed = object(Some(4), false, true);
        assert_eq!(split_of(&routed, 10, None), (Some(4), 1));
        assert_eq!(split_of(&routed, 50, None), (Some(4), 2));
        assert_eq!(split_of(&routed, 0, None), (Some(4), 1));
        let scaled = object(None, true, true);
        assert_eq!(split_of(&scaled, 30, Some(10)), (None, 3));
    }
}
