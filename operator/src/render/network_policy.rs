//! The NetworkPolicy: ingress to the pods only on the public port and the admin port.
//!
//! Without it every port of a pod is open to every other pod. In proxy mode the model's own
//! server listens where its image says; if that is the pod IP, `podIP:<upstream port>` reaches
//! the model without the sidecar's token check, upload limit, timeout and queue. The policy
//! closes every port but the two the sidecar serves. It takes effect only with a CNI that
//! enforces NetworkPolicies; the model should listen on 127.0.0.1 either way.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use modelserver_crds::{ModelServer, defaults};

use crate::render::Settings;
use crate::render::meta::{child_meta, label_selector};

/// The only policy type: the policy restricts what reaches the pods, not what they call.
pub const POLICY_TYPE_INGRESS: &str = "Ingress";
/// The protocol of both admitted ports.
pub const PROTOCOL_TCP: &str = "TCP";

/// Whether `object` gets a NetworkPolicy: `networkPolicy.enabled`, default true.
pub fn wants_policy(object: &ModelServer) -> bool {
    object
        .spec
        .network_policy
        .as_ref()
        .and_then(|n| n.enabled)
        .unwrap_or(defaults::NETWORK_POLICY_ENABLED)
}

/// Renders the NetworkPolicy of `object`, or nothing when it is turned off.
///
/// Two ingress rules: TCP to the public port from any source (the Service and its clients), and
/// TCP to the admin port from `networkPolicy.metricsFrom` (any source when unset) for metrics
/// scrapers. Kubelet probes come from the node, which enforcing CNIs admit without a rule.
pub fn network_policy(
    object: &ModelServer,
    name: &str,
    namespace: &str,
    settings: &Settings,
) -> Option<NetworkPolicy> {
    if !wants_policy(object) {
        return None;
    }
    let metrics_from = object
        .spec
        .network_policy
        .as_ref()
        .and_then(|n| n.metrics_from.clone());
    Some(NetworkPolicy {
        metadata: child_meta(object, name, namespace),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(label_selector(name)),
            policy_types: Some(vec![POLICY_TYPE_INGRESS.to_owned()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(vec![tcp_port(settings.port())]),
                },
                NetworkPolicyIngressRule {
                    from: metrics_from,
                    ports: Some(vec![tcp_port(settings.admin_port())]),
                },
            ]),
            egress: None,
        }),
    })
}

/// A TCP port by number: numbers mean the same in every CNI, names depend on the container.
fn tcp_port(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some(PROTOCOL_TCP.to_owned()),
        end_port: None,
    }
}
