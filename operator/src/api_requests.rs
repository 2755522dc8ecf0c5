//! Counts the operator's API requests in [`Metrics`], by kind and verb, with a tower layer on the
//! kube client's service: every request the controller's client sends passes through it, so no
//! call site can forget to count one.
//!
//! What is counted, as `modelserver_operator_api_reads_total{kind}` and
//! `modelserver_operator_api_writes_total{kind,verb}`:
//! - a GET of one object (or of its subresource) is a read; lists and watches are not counted
//!   (the controller's watches are a fixed cost, not a per-reconcile one);
//! - every other method is a write, its verb `create` (POST), `replace` (PUT), `apply` (PATCH
//!   with a server-side apply body), `patch` (any other PATCH), `delete` or `deletecollection`,
//!   followed by `-<subresource>` for a subresource (`apply-status`).
//!
//! The kind comes from the path's resource: the kinds the operator works with are named as
//! Kubernetes names them (`Deployment`, `ModelServer`, `Event`); any other resource is counted
//! under its plural.

use std::task::{Context, Poll};

use http::{Method, Request, header};
use k8s_openapi::Resource as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service as CoreService};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Resource as _;
use modelserver_crds::ModelServer;
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// The content type of a server-side apply patch.
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// Kinds by resource (plural), for the resources the operator works with.
const KINDS: [(&str, &str); 9] = [
    (Deployment::URL_PATH_SEGMENT, Deployment::KIND),
    (CoreService::URL_PATH_SEGMENT, CoreService::KIND),
    (
        HorizontalPodAutoscaler::URL_PATH_SEGMENT,
        HorizontalPodAutoscaler::KIND,
    ),
    (
        PodDisruptionBudget::URL_PATH_SEGMENT,
        PodDisruptionBudget::KIND,
    ),
    (NetworkPolicy::URL_PATH_SEGMENT, NetworkPolicy::KIND),
    (Pod::URL_PATH_SEGMENT, Pod::KIND),
    (Event::URL_PATH_SEGMENT, Event::KIND),
    (Lease::URL_PATH_SEGMENT, Lease::KIND),
    (Secret::URL_PATH_SEGMENT, Secret::KIND),
];

/// One counted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// A GET of one object.
    Read {
        /// The object's kind.
        kind: String,
    },
    /// Anything that is not a GET.
    Write {
        /// The object's kind.
        kind: String,
        /// What was done (see the module documentation).
        verb: String,
    },
}

/// How a request is counted, or `None` for a list or a watch (or a path that names no
/// resource, such as discovery).
pub fn classify<B>(request: &Request<B>) -> Option<Counted> {
    let target = Target::parse(request.uri().path())?;
    let kind = kind_of(target.resource);
    let subresource = |verb: &str| match target.subresource {
        Some(sub) => format!("{verb}-{sub}"),
        None => verb.to_owned(),
    };
    let method = request.method();
    if method == Method::GET {
        return target.name.map(|_| Counted::Read { kind });
    }
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "replace",
        Method::PATCH if is_apply(request) => "apply",
        Method::PATCH => "patch",
        Method::DELETE if target.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => return None,
    };
    Some(Counted::Write {
        kind,
        verb: subresource(verb),
    })
}

fn is_apply<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with(APPLY_PATCH))
}

/// The kind of the resource `plural`, or the plural itself for a resource the operator does not
/// know.
fn kind_of(plural: &str) -> String {
    if plural == ModelServer::plural(&()) {
        return ModelServer::kind(&()).into_owned();
    }
    KINDS
        .iter()
        .find(|(resource, _)| *resource == plural)
        .map_or(plural, |(_, kind)| kind)
        .to_owned()
}

/// The resource, object and subresource a request path names.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    resource: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// Parses `/api/v1/...` and `/apis/<group>/<version>/...`, namespaced or not.
    fn parse(path: &'a str) -> Option<Self> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest = match segments.as_slice() {
            ["api", _version, rest @ ..] | ["apis", _, _version, rest @ ..] => rest,
            _ => return None,
        };
        // `namespaces/<ns>/<resource>...` is namespaced; `namespaces/<name>` is a Namespace.
        let rest = match rest {
            ["namespaces", _namespace, rest @ ..] if !rest.is_empty() => rest,
            rest => rest,
        };
        match rest {
            [resource, tail @ ..] if tail.len() <= 2 => Some(Self {
                resource,
                name: tail.first().copied(),
                subresource: tail.get(1).copied(),
            }),
            _ => None,
        }
    }
}

/// The layer: wrap the kube client's service in it (`ClientBuilder::with_layer`).
#[derive(Clone)]
pub struct CountRequestsLayer {
    metrics: Metrics,
}

impl CountRequestsLayer {
    /// Counts into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service the layer makes: counts each request, then passes it on unchanged. A request is
/// counted when it is sent, whatever its outcome.
#[derive(Clone)]
pub struct CountRequests<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B> Service<Request<B>> for CountRequests<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match classify(&request) {
            Some(Counted::Read { kind }) => self.metrics.record_read(&kind),
            Some(Counted::Write { kind, verb }) => self.metrics.record_write(&kind, &verb),
            None => {}
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt as _;

    use super::*;

    fn request(method: Method, uri: &str, content_type: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        builder.body(()).expect("a request")
    }

    fn read(kind: &str) -> Option<Counted> {
        Some(Counted::Read { kind: kind.into() })
    }

    fn write(kind: &str, verb: &str) -> Option<Counted> {
        Some(Counted::Write {
            kind: kind.into(),
            verb: verb.into(),
        })
    }

    #[test]
    fn requests_are_classified_by_kind_and_verb() {
        let apply = Some(APPLY_PATCH);
        let merge = Some("application/merge-patch+json");
        let deployments = "/apis/apps/v1/namespaces/ml/deployments";
        let cases = [
            (
                Method::GET,
                format!("{deployments}/iris"),
                None,
                read("Deployment"),
            ),
            (Method::GET, deployments.to_owned(), None, None),
            (
                Method::GET,
                format!("{deployments}?watch=true&resourceVersion=1"),
                None,
                None,
            ),
            (
                Method::GET,
                "/api/v1/pods?labelSelector=a%3Db".to_owned(),
                None,
                None,
            ),
            (
                Method::PATCH,
                format!("{deployments}/iris?fieldManager=m&force=true"),
                apply,
                write("Deployment", "apply"),
            ),
            (
                Method::PATCH,
                "/apis/modelserver.dev/v1alpha1/namespaces/ml/modelservers/iris/status".to_owned(),
                apply,
                write("ModelServer", "apply-status"),
            ),
            (
                Method::GET,
                "/apis/modelserver.dev/v1alpha1/namespaces/ml/modelservers/iris/status".to_owned(),
                None,
                read("ModelServer"),
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/ml/events".to_owned(),
                None,
                write("Event", "create"),
            ),
            (
                Method::PATCH,
                "/apis/events.k8s.io/v1/namespaces/ml/events/iris.1".to_owned(),
                merge,
                write("Event", "patch"),
            ),
            (
                Method::DELETE,
                "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/iris".to_owned(),
                None,
                write("HorizontalPodAutoscaler", "delete"),
            ),
            (
                Method::DELETE,
                "/apis/policy/v1/namespaces/ml/poddisruptionbudgets".to_owned(),
                None,
                write("PodDisruptionBudget", "deletecollection"),
            ),
            (
                Method::PUT,
                "/apis/networking.k8s.io/v1/namespaces/ml/networkpolicies/iris".to_owned(),
                None,
                write("NetworkPolicy", "replace"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/ml/services/iris".to_owned(),
                None,
                read("Service"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/ml".to_owned(),
                None,
                read("namespaces"),
            ),
            (
                Method::GET,
                "/api/v1/nodes/n1".to_owned(),
                None,
                read("nodes"),
            ),
            (
                Method::GET,
                "/apis/example.com/v1/namespaces/ml/widgets/w".to_owned(),
                None,
                read("widgets"),
            ),
            (Method::GET, "/version".to_owned(), None, None),
            (Method::GET, "/apis/apps/v1".to_owned(), None, None),
        ];
        for (method, uri, content_type, expected) in cases {
            let request = request(method.clone(), &uri, content_type);
            assert_eq!(classify(&request), expected, "{method} {uri}");
        }
    }

    #[tokio::test]
    async fn the_layer_counts_every_request_it_passes_on_and_passes_it_on_unchanged() {
        let metrics = Metrics::new().expect("metrics");
        let inner = tower::service_fn(|request: Request<()>| async move {
            Ok::<_, Infallible>(format!("{} {}", request.method(), request.uri()))
        });
        let mut service = CountRequestsLayer::new(metrics.clone()).layer(inner);
        let uri = "/apis/apps/v1/namespaces/ml/deployments/iris?fieldManager=m&force=true";
        for (method, content_type) in [
            (Method::GET, None),
            (Method::GET, None),
            (Method::PATCH, Some(APPLY_PATCH)),
            (Method::DELETE, None),
        ] {
            let sent = format!("{method} {uri}");
            let answer = service
                .ready()
                .await
                .expect("ready")
                .call(request(method, uri, content_type))
                .await
                .expect("answer");
            assert_eq!(answer, sent);
        }
        let text = metrics.encode().expect("encode");
        for line in [
            "modelserver_operator_api_reads_total{kind=\"Deployment\"} 2",
            "modelserver_operator_api_writes_total{kind=\"Deployment\",verb=\"apply\"} 1",
            "modelserver_operator_api_writes_total{kind=\"Deployment\",verb=\"delete\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
