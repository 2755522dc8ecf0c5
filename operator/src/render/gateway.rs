//! The two Gateway API kinds (`gateway.networking.k8s.io/v1`) the operator uses, with only the
//! fields it writes or reads: the HTTPRoute it renders (and whose status it reads), and the
//! Gateway whose listener makes the route's URL. Fields the API server or a Gateway controller
//! add are ignored when an object is read back; server-side apply keeps them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The Gateway API version the operator writes and reads.
pub const VERSION: &str = "v1";
/// `group/version` of the Gateway API, as discovery names it.
pub const GROUP_VERSION: &str = "gateway.networking.k8s.io/v1";
/// The resource (plural) of HTTPRoutes, as discovery lists it.
pub const HTTP_ROUTES: &str = "httproutes";
/// The resource (plural) of Gateways, as discovery lists it.
pub const GATEWAYS: &str = "gateways";
/// The route condition a Gateway sets when it accepts the route.
pub const ACCEPTED: &str = "Accepted";
/// The route condition a Gateway sets when it resolved every backend.
pub const RESOLVED_REFS: &str = "ResolvedRefs";
/// The path match type of a prefix.
pub const PATH_PREFIX: &str = "PathPrefix";
/// A listener protocol that terminates TLS.
pub const HTTPS: &str = "HTTPS";

/// `HTTPRoute.spec`: which Gateways, which host names, and the rules.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    plural = "httproutes",
    namespaced,
    status = "HttpRouteStatus",
    derive = "PartialEq",
    derive = "Default",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways (listeners) the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// Host names the route answers for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The route's rules (the operator writes one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
}

/// A Gateway (or one of its listeners) a route names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// The Gateway's name.
    pub name: String,
    /// The Gateway's namespace (the route's when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The listener's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// The listener's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// One rule: what it matches, where it sends the requests, and its timeouts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Request matches (any of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    /// The Services the requests go to, by weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
}

/// A request match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// The path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
}

/// A path match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// `PathPrefix`, `Exact` or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The path.
    pub value: String,
}

/// A Service the route sends requests to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// The Service's name (in the route's namespace).
    pub name: String,
    /// The Service's port.
    pub port: i32,
    /// The share of requests, relative to the other backends' weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

/// A rule's timeouts, as Gateway API durations (such as `31s` or `1m30s`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// How long the Gateway waits for the whole answer to a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

/// `HTTPRoute.status`: what each Gateway said about the route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteStatus {
    /// One entry per Gateway (and controller) that reports on the route.
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// What one Gateway's controller said about the route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The Gateway the entry is about.
    pub parent_ref: ParentReference,
    /// The controller that wrote the entry.
    #[serde(default)]
    pub controller_name: String,
    /// `Accepted`, `ResolvedRefs` and the controller's own.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// `Gateway.spec`: its listeners (only read).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "Gateway",
    plural = "gateways",
    namespaced,
    status = "GatewayStatus",
    derive = "PartialEq",
    derive = "Default",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The listeners.
    #[serde(default)]
    pub listeners: Vec<Listener>,
}

/// A listener of a Gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// The listener's name (a route's sectionName).
    pub name: String,
    /// The host name it serves (may be a wildcard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Its port.
    pub port: i32,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP` or a controller's own.
    pub protocol: String,
}

/// `Gateway.status`: the addresses it got (only read).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Addresses the Gateway is reachable at (IPs or host names).
    #[serde(default)]
    pub addresses: Vec<GatewayAddress>,
}

/// One address of a Gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAddress {
    /// The IP address or host name.
    pub value: String,
}
