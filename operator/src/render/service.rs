//! The Service: `service.port` to the pods' `http` port. The admin port stays out of it.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use modelserver_crds::{ModelServer, defaults};

use crate::render::meta::{child_meta, selector_labels};
use crate::render::names;

/// Renders the Service of `object`.
pub fn service(object: &ModelServer, name: &str, namespace: &str) -> Service {
    let spec = object.spec.service.clone().unwrap_or_default();
    let mut metadata = child_meta(object, name, namespace);
    metadata.annotations = spec.annotations;
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(
                spec.type_
                    .map_or(defaults::SERVICE_TYPE, |t| t.as_str())
                    .to_owned(),
            ),
            selector: Some(selector_labels(name)),
            ports: Some(vec![ServicePort {
                name: Some(names::HTTP_PORT_NAME.to_owned()),
                port: service_port(object),
                target_port: Some(IntOrString::String(names::HTTP_PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The port clients use.
pub fn service_port(object: &ModelServer) -> i32 {
    object
        .spec
        .service
        .as_ref()
        .and_then(|s| s.port)
        .unwrap_or(defaults::SERVICE_PORT)
}

/// The in-cluster URL of the Service, as `status.url` shows it: https when the public port
/// serves TLS, the port left out when it is the scheme's own.
pub fn url(object: &ModelServer, name: &str, namespace: &str, cluster_domain: &str) -> String {
    let port = service_port(object);
    let host = format!("{name}.{namespace}.svc.{cluster_domain}");
    let tls = object.spec.server.as_ref().is_some_and(|s| s.tls.is_some());
    let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
    if port == default_port {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}
