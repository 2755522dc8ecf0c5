//! `render`: the pure function from a ModelServer to the objects it becomes.
//! The reconciler applies exactly these objects; `modelserver-operator render` prints them.

pub mod autoscaler;
pub mod canary;
pub mod deployment;
pub mod disruption;
pub mod gateway;
pub mod keda;
pub mod meta;
pub mod names;
pub mod network_policy;
pub mod route;
pub mod service;
pub mod settings;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use modelserver_crds::ModelServer;

use crate::error::RenderError;
pub use canary::CanaryChildren;
use gateway::HTTPRoute;
pub use settings::Settings;

/// The default image of the sidecar (the operator's `--sidecar-image` overrides it).
pub const DEFAULT_SIDECAR_IMAGE: &str = concat!("modelserver-sidecar:", env!("CARGO_PKG_VERSION"));
/// Where KEDA reaches Prometheus by default: the Service the Prometheus Operator (and so
/// kube-prometheus-stack) gives a Prometheus named `prometheus` in `monitoring`.
pub const DEFAULT_PROMETHEUS_URL: &str = "http://prometheus-operated.monitoring.svc:9090";
/// The default cluster DNS domain, for `status.url`.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// The namespace of a ModelServer rendered from a file without one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Settings of the operator that shape what it renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderConfig {
    /// Image holding the static `modelserver-sidecar` binary.
    pub sidecar_image: String,
    /// Pull policy of the sidecar image (the kubelet's default when unset).
    pub sidecar_image_pull_policy: Option<String>,
    /// Cluster DNS domain, for `status.url`.
    pub cluster_domain: String,
    /// Namespace of a ModelServer that has none (rendered from a file).
    pub default_namespace: String,
    /// Where KEDA reaches Prometheus, for concurrency autoscaling.
    pub prometheus_url: String,
}

impl Default for RenderConfig {
    fn default() -> Self {
        Self {
            sidecar_image: DEFAULT_SIDECAR_IMAGE.to_owned(),
            sidecar_image_pull_policy: None,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
            default_namespace: DEFAULT_NAMESPACE.to_owned(),
            prometheus_url: DEFAULT_PROMETHEUS_URL.to_owned(),
        }
    }
}

/// Everything one ModelServer becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    /// The Deployment (always).
    pub deployment: Deployment,
    /// The Service (always).
    pub service: Service,
    /// The HorizontalPodAutoscaler, when `spec.autoscaling` scales on CPU.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    /// The KEDA ScaledObject, when `spec.autoscaling` scales on concurrency.
    pub scaled_object: Option<keda::ScaledObject>,
    /// The PodDisruptionBudget, when the rule in [`disruption::wants_budget`] says so.
    pub disruption_budget: Option<PodDisruptionBudget>,
    /// The NetworkPolicy, unless `spec.networkPolicy.enabled` is false
    /// ([`network_policy::wants_policy`]).
    pub network_policy: Option<NetworkPolicy>,
    /// The HTTPRoute, when `spec.route` is set.
    pub route: Option<HTTPRoute>,
    /// The canary, when `spec.canary` is set.
    pub canary: Option<CanaryChildren>,
    /// The effective settings the children were rendered from.
    pub settings: Settings,
    /// The in-cluster URL of the Service.
    pub url: String,
}

/// What the reconciler observed of the cluster that shapes the children. Rendered from a file,
/// nothing is observed ([`Observed::default`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// The stable Deployment's replica count, which sizes the canary while an autoscaler owns it.
    pub stable_replicas: Option<i32>,
    /// The canary's available pods: one puts the canary into the route; behind the shared
    /// Service the stable version gives up a pod only for each available canary pod.
    pub canary_available: i32,
}

/// Renders the children of `object` as from a file, with nothing observed.
pub fn render(object: &ModelServer, config: &RenderConfig) -> Result<Children, RenderError> {
    render_observed(object, config, Observed::default())
}

/// Renders the children of `object` given what was `observed`. Pure: no I/O, same input, same
/// output.
pub fn render_observed(
    object: &ModelServer,
    config: &RenderConfig,
    observed: Observed,
) -> Result<Children, RenderError> {
    let name = object
        .metadata
        .name
        .as_deref()
        .ok_or(RenderError::MissingName)?;
    let namespace = object
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(&config.default_namespace);
    let settings = Settings::resolve(object)?;
    let mut deployment = deployment::deployment(object, name, namespace, &settings, config);
    let canary = match &object.spec.canary {
        Some(spec) => {
            let split = canary::split(
                object,
                spec,
                observed.stable_replicas,
                observed.canary_available,
            );
            if let (Some(stable), Some(deployment)) = (split.stable, deployment.spec.as_mut()) {
                deployment.replicas = Some(stable);
            }
            let children = canary::children(object, spec, split.canary, name, namespace, config)?;
            if canary::same_pods(&children.deployment, &deployment) {
                return Err(RenderError::InvalidSpec {
                    message: canary::CHANGES_NOTHING.to_owned(),
                });
            }
            Some(children)
        }
        None => None,
    };
    Ok(Children {
        route: route::route(
            object,
            name,
            namespace,
            &settings,
            observed.canary_available > 0,
        ),
        canary,
        deployment,
        service: service::service(object, name, namespace),
        autoscaler: autoscaler::autoscaler(object, name, namespace),
        scaled_object: keda::scaled_object(
            object,
            name,
            namespace,
            &settings,
            &config.prometheus_url,
        ),
        disruption_budget: disruption::disruption_budget(object, name, namespace),
        network_policy: network_policy::network_policy(object, name, namespace, &settings),
        url: service::url(object, name, namespace, &config.cluster_domain),
        settings,
    })
}

impl Children {
    /// The children as a multi-document YAML stream (Deployment, Service, then the autoscaler, the
    /// budget, the NetworkPolicy, the HTTPRoute and the canary's objects when present), the output of `modelserver-operator render`.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::SerializeError> {
        // k8s-openapi writes apiVersion and kind itself.
        let mut documents = vec![
            serde_saphyr::to_string(&self.deployment)?,
            serde_saphyr::to_string(&self.service)?,
        ];
        if let Some(autoscaler) = &self.autoscaler {
            documents.push(serde_saphyr::to_string(autoscaler)?);
        }
        if let Some(scaled_object) = &self.scaled_object {
            documents.push(serde_saphyr::to_string(scaled_object)?);
        }
        if let Some(budget) = &self.disruption_budget {
            documents.push(serde_saphyr::to_string(budget)?);
        }
        if let Some(policy) = &self.network_policy {
            documents.push(serde_saphyr::to_string(policy)?);
        }
        if let Some(route) = &self.route {
            documents.push(serde_saphyr::to_string(route)?);
        }
        if let Some(canary) = &self.canary {
            documents.push(serde_saphyr::to_string(&canary.deployment)?);
            if let Some(service) = &canary.service {
                documents.push(serde_saphyr::to_string(service)?);
            }
            if let Some(policy) = &canary.network_policy {
                documents.push(serde_saphyr::to_string(policy)?);
            }
        }
        Ok(documents
            .into_iter()
            .map(|d| format!("---\n{d}"))
            .collect::<String>())
    }
}

#[cfg(test)]
mod tests;
