//! `spec.route` and `spec.canary`: how traffic reaches the model from outside the cluster (a
//! Gateway API HTTPRoute) and how it is split between the stable version and a canary.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::rules;
pub use crate::rules::CANARY_NAME_MAX;
/// The suffix of the canary's Deployment and Service.
pub const CANARY_SUFFIX: &str = "-canary";

/// A Gateway API `HTTPRoute` (gateway.networking.k8s.io/v1) named after the ModelServer, owned by
/// it, that sends the matching requests to its Service (and to the canary's, by weight).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// The Gateways (listeners) the route attaches to. Each Gateway must allow routes from the
    /// ModelServer's namespace.
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<ParentRef>,

    /// Host names the route answers for (matched against the Host header), for example
    /// iris.models.example.com. A leading `*.` is a wildcard label. Unset: every host name of the
    /// listener. The first one that is not a wildcard makes status.url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 1, max = 253),
            regex(
                pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
            )
        )
    )]
    pub hostnames: Option<Vec<String>>,

    /// Only requests whose path starts with this prefix (whole path segments, as Gateway API's
    /// PathPrefix matches) take the route, with the path passed on unchanged. Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::ROUTE_PATH_PREFIX_IS_PATH.rule).message(rules::ROUTE_PATH_PREFIX_IS_PATH.message))]
    #[schemars(length(max = 1024))]
    pub path_prefix: Option<String>,
}

/// A Gateway (or one of its listeners) a route attaches to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// The Gateway's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// The Gateway's namespace. Default: the ModelServer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,

    /// The listener of the Gateway (its name). Default: every listener that admits the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,

    /// The listener's port. Default: every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// A second version of the model next to the stable one: its own Deployment `<name>-canary`
/// with the same sidecar, probes and drain, and the overrides below. With spec.route set, the
/// route sends `weight` percent of its requests to the canary, and only once the canary has a
/// ready pod. Without it, both versions' pods stand behind the one Service and the split
/// follows their replica counts (coarse: 1 canary pod next to 3 stable pods takes about 25%).
/// Promote: move the overrides into the main spec and remove spec.canary. Abort: remove
/// spec.canary.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// The percentage of requests for the canary, 0 to 100. With spec.route it becomes the
    /// route's backend weights; without it, the canary's share of the replicas (at least one
    /// canary pod for any weight above 0, at least one stable pod always).
    #[schemars(range(min = 0, max = 100))]
    pub weight: i32,

    /// The canary's image. Default: spec.image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub image: Option<String>,

    /// The canary's command, arguments and environment. Default: spec.model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<CanaryModelSpec>,

    /// Compute resources of the canary's model container. Default: spec.resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// What the canary changes of spec.model.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryModelSpec {
    /// Replaces spec.model.command (managed mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub command: Option<Vec<String>>,

    /// Replaces spec.model.args.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// Merged into spec.model.env by name: a variable here replaces the stable one of the same
    /// name, others are added. Names starting with MODELSERVER_ are reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::CANARY_ENV_NOT_RESERVED.rule).message(rules::CANARY_ENV_NOT_RESERVED.message))]
    #[schemars(length(max = 64))]
    pub env: Option<Vec<EnvVar>>,
}

impl CanarySpec {
    /// The canary's environment: `stable`'s with the canary's variables replacing those of the
    /// same name, in stable order, then the new ones in the canary's order.
    pub fn merged_env(&self, stable: Option<&[EnvVar]>) -> Option<Vec<EnvVar>> {
        let overrides = self.model.as_ref().and_then(|m| m.env.as_deref());
        let Some(overrides) = overrides else {
            return stable.map(<[EnvVar]>::to_vec);
        };
        let stable = stable.unwrap_or_default();
        let mut merged: Vec<EnvVar> = stable
            .iter()
            .map(|var| {
                overrides
                    .iter()
                    .find(|o| o.name == var.name)
                    .unwrap_or(var)
                    .clone()
            })
            .collect();
        merged.extend(
            overrides
                .iter()
                .filter(|o| !stable.iter().any(|s| s.name == o.name))
                .cloned(),
        );
        Some(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    #[test]
    fn canary_env_replaces_by_name_and_appends_the_rest() {
        let canary = CanarySpec {
            model: Some(CanaryModelSpec {
                env: Some(vec![var("VERSION", "2"), var("NEW", "x")]),
                ..CanaryModelSpec::default()
            }),
            ..CanarySpec::default()
        };
        let stable = [var("A", "a"), var("VERSION", "1")];
        assert_eq!(
            canary.merged_env(Some(&stable)),
            Some(vec![var("A", "a"), var("VERSION", "2"), var("NEW", "x")])
        );
        assert_eq!(
            CanarySpec::default().merged_env(Some(&stable)),
            Some(stable.to_vec())
        );
        assert_eq!(CanarySpec::default().merged_env(None), None);
    }
}
