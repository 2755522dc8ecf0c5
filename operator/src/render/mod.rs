//! `render`: the pure function from a ModelServer to the objects it becomes.
//! The reconciler applies exactly these objects; `modelserver-operator render` prints them.

pub mod autoscaler;
pub mod deployment;
pub mod disruption;
pub mod meta;
pub mod names;
pub mod network_policy;
pub mod service;
pub mod settings;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use modelserver_crds::ModelServer;

use crate::error::RenderError;
pub use settings::Settings;

/// The default image of the sidecar (the operator's `--sidecar-image` overrides it).
pub const DEFAULT_SIDECAR_IMAGE: &str = concat!("modelserver-sidecar:", env!("CARGO_PKG_VERSION"));
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
}

impl Default for RenderConfig {
    fn default() -> Self {
        Self {
            sidecar_image: DEFAULT_SIDECAR_IMAGE.to_owned(),
            sidecar_image_pull_policy: None,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
            default_namespace: DEFAULT_NAMESPACE.to_owned(),
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
    /// The HorizontalPodAutoscaler, when `spec.autoscaling` is set.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    /// The PodDisruptionBudget, when the rule in [`disruption::wants_budget`] says so.
    pub disruption_budget: Option<PodDisruptionBudget>,
    /// The NetworkPolicy, unless `spec.networkPolicy.enabled` is false
    /// ([`network_policy::wants_policy`]).
    pub network_policy: Option<NetworkPolicy>,
    /// The effective settings the children were rendered from.
    pub settings: Settings,
    /// The in-cluster URL of the Service.
    pub url: String,
}

/// Renders the children of `object`. Pure: no I/O, same input, same output.
pub fn render(object: &ModelServer, config: &RenderConfig) -> Result<Children, RenderError> {
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
    Ok(Children {
        deployment: deployment::deployment(object, name, namespace, &settings, config),
        service: service::service(object, name, namespace),
        autoscaler: autoscaler::autoscaler(object, name, namespace),
        disruption_budget: disruption::disruption_budget(object, name, namespace),
        network_policy: network_policy::network_policy(object, name, namespace, &settings),
        url: service::url(object, name, namespace, &config.cluster_domain),
        settings,
    })
}

impl Children {
    /// The children as a multi-document YAML stream (Deployment, Service, then the autoscaler, the
    /// budget and the NetworkPolicy when present), the output of `modelserver-operator render`.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::SerializeError> {
        // k8s-openapi writes apiVersion and kind itself.
        let mut documents = vec![
            serde_saphyr::to_string(&self.deployment)?,
            serde_saphyr::to_string(&self.service)?,
        ];
        if let Some(autoscaler) = &self.autoscaler {
            documents.push(serde_saphyr::to_string(autoscaler)?);
        }
        if let Some(budget) = &self.disruption_budget {
            documents.push(serde_saphyr::to_string(budget)?);
        }
        if let Some(policy) = &self.network_policy {
            documents.push(serde_saphyr::to_string(policy)?);
        }
        Ok(documents
            .into_iter()
            .map(|d| format!("---\n{d}"))
            .collect::<String>())
    }
}

#[cfg(test)]
mod tests;
