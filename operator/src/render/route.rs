//! The HTTPRoute of `spec.route`: the ModelServer's Service (and the canary's, by weight, once
//! the canary can answer) behind the Gateways it names, and the URL the route gives the model.

use std::time::Duration;

use modelserver_crds::ModelServer;
use modelserver_crds::spec::RouteSpec;

use crate::render::gateway::{
    BackendRef, Gateway, HTTPRoute, HTTPS, HttpPathMatch, HttpRouteMatch, HttpRouteRule,
    HttpRouteSpec, HttpRouteTimeouts, Listener, PATH_PREFIX, ParentReference,
};
use crate::render::meta::child_meta;
use crate::render::service::service_port;
use crate::render::{Settings, canary};

/// What the Gateway's timeout adds to the sidecar's request timeout, so the sidecar's own 504
/// (which names the cause, and counts in its metrics) reaches the client first.
pub const TIMEOUT_SLACK: Duration = Duration::from_secs(5);
/// The path every request has.
const ROOT: &str = "/";

/// Renders the HTTPRoute of `object`, or nothing without `spec.route`. The canary's Service is
/// a backend only when `canary_ready` (a ready canary pod), so no request goes to a canary that
/// cannot answer; until then the stable Service takes every request.
pub fn route(
    object: &ModelServer,
    name: &str,
    namespace: &str,
    settings: &Settings,
    canary_ready: bool,
) -> Option<HTTPRoute> {
    let spec = object.spec.route.as_ref()?;
    let port = service_port(object);
    let stable = |weight| BackendRef {
        name: name.to_owned(),
        port,
        weight,
    };
    let backend_refs = match object.spec.canary.as_ref() {
        Some(c) if canary_ready => vec![
            stable(Some(100 - c.weight)),
            BackendRef {
                name: canary::name(name),
                port,
                weight: Some(c.weight),
            },
        ],
        _ => vec![stable(None)],
    };
    let request_timeout = settings
        .sidecar
        .server()
        .map(|s| s.request_timeout.saturating_add(TIMEOUT_SLACK));
    Some(HTTPRoute {
        metadata: child_meta(object, name, namespace),
        spec: HttpRouteSpec {
            parent_refs: spec.parent_refs.iter().map(parent_reference).collect(),
            hostnames: spec.hostnames.clone().unwrap_or_default(),
            rules: vec![HttpRouteRule {
                matches: vec![HttpRouteMatch {
                    path: Some(HttpPathMatch {
                        type_: PATH_PREFIX.to_owned(),
                        value: spec.path_prefix.clone().unwrap_or_else(|| ROOT.to_owned()),
                    }),
                }],
                backend_refs,
                timeouts: request_timeout.map(|t| HttpRouteTimeouts {
                    request: Some(gateway_duration(t)),
                }),
            }],
        },
        status: None,
    })
}

/// The route's reference to a Gateway.
pub fn parent_reference(parent: &modelserver_crds::spec::ParentRef) -> ParentReference {
    ParentReference {
        name: parent.name.clone(),
        namespace: parent.namespace.clone(),
        section_name: parent.section_name.clone(),
        port: parent.port,
    }
}

/// A duration as Gateway API writes it (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`): hours, minutes,
/// seconds and milliseconds, the zero ones left out, rounded up to a millisecond.
pub fn gateway_duration(duration: Duration) -> String {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    let parts = [
        (millis / 3_600_000, "h"),
        (millis / 60_000 % 60, "m"),
        (millis / 1000 % 60, "s"),
        (millis % 1000, "ms"),
    ];
    let text: String = parts
        .iter()
        .filter(|(value, _)| *value > 0)
        .map(|(value, unit)| format!("{value}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_owned()
    } else {
        text
    }
}

/// The URL clients use through the route: the first host name of `spec.route` that is not a
/// wildcard (else the listener's, else the Gateway's first address), the scheme and port of the
/// Gateway's listener (`http` on port 80 when the Gateway is unknown), then the path prefix.
/// `None` when no host name is known.
pub fn url(spec: &RouteSpec, gateway: Option<&Gateway>) -> Option<String> {
    let parent = spec.parent_refs.first()?;
    let listener = gateway.and_then(|g| listener(g, parent));
    let host = spec
        .hostnames
        .iter()
        .flatten()
        .chain(listener.and_then(|l| l.hostname.as_ref()))
        .find(|h| !h.starts_with('*'))
        .cloned()
        .or_else(|| {
            gateway
                .and_then(|g| g.status.as_ref())
                .and_then(|s| s.addresses.first())
                .map(|a| a.value.clone())
        })?;
    let tls = listener.is_some_and(|l| l.protocol == HTTPS);
    let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
    let port = listener.map_or(default_port, |l| l.port);
    let authority = if port == default_port {
        host
    } else {
        format!("{host}:{port}")
    };
    let path = spec
        .path_prefix
        .as_deref()
        .filter(|p| *p != ROOT)
        .unwrap_or_default();
    Some(format!("{scheme}://{authority}{path}"))
}

/// The listener of `gateway` that `parent` names (by section name and port), else the first
/// HTTP or HTTPS one.
fn listener<'a>(
    gateway: &'a Gateway,
    parent: &modelserver_crds::spec::ParentRef,
) -> Option<&'a Listener> {
    gateway
        .spec
        .listeners
        .iter()
        .filter(|l| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|l| parent.port.is_none_or(|p| p == l.port))
        .find(|l| l.protocol == "HTTP" || l.protocol == HTTPS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::gateway::{GatewayAddress, GatewaySpec, GatewayStatus};
    use modelserver_crds::spec::ParentRef;

    #[test]
    fn durations_take_the_gateway_api_form() {
        assert_eq!(gateway_duration(Duration::from_secs(65)), "1m5s");
        assert_eq!(gateway_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(gateway_duration(Duration::from_secs(48 * 3600)), "48h");
        assert_eq!(gateway_duration(Duration::from_micros(1)), "1ms");
        assert_eq!(gateway_duration(Duration::ZERO), "0s");
    }

    fn gateway(listeners: Vec<Listener>, address: Option<&str>) -> Gateway {
        let mut gateway = Gateway::new("public", GatewaySpec { listeners });
        gateway.status = Some(GatewayStatus {
            addresses: address
                .map(|a| GatewayAddress { value: a.into() })
                .into_iter()
                .collect(),
        });
        gateway
    }

    fn listener(name: &str, protocol: &str, port: i32, hostname: Option<&str>) -> Listener {
        Listener {
            name: name.into(),
            hostname: hostname.map(Into::into),
            port,
            protocol: protocol.into(),
        }
    }

    fn spec(
        section: Option<&str>,
        hostnames: Option<Vec<&str>>,
        prefix: Option<&str>,
    ) -> RouteSpec {
        RouteSpec {
            parent_refs: vec![ParentRef {
                name: "public".into(),
                section_name: section.map(Into::into),
                ..ParentRef::default()
            }],
            hostnames: hostnames.map(|h| h.into_iter().map(Into::into).collect()),
            path_prefix: prefix.map(Into::into),
        }
    }

    #[test]
    fn the_url_takes_host_scheme_and_port_from_route_and_listener() {
        let gw = gateway(
            vec![
                listener("http", "HTTP", 80, None),
                listener("https", "HTTPS", 8443, Some("*.example.com")),
            ],
            Some("10.0.0.7"),
        );
        let hosts = Some(vec!["*.models.example.com", "iris.example.com"]);
        assert_eq!(
            url(
                &spec(Some("https"), hosts.clone(), Some("/v1/iris")),
                Some(&gw)
            )
            .as_deref(),
            Some("https://iris.example.com:8443/v1/iris")
        );
        assert_eq!(
            url(&spec(Some("http"), hosts, Some("/")), Some(&gw)).as_deref(),
            Some("http://iris.example.com")
        );
        // No host name anywhere: the Gateway's address.
        assert_eq!(
            url(&spec(None, None, None), Some(&gw)).as_deref(),
            Some("http://10.0.0.7")
        );
        // Unknown Gateway: plain HTTP on the route's host name, or nothing.
        assert_eq!(
            url(&spec(None, Some(vec!["iris.example.com"]), None), None).as_deref(),
            Some("http://iris.example.com")
        );
        assert_eq!(url(&spec(None, None, None), None), None);
    }
}
