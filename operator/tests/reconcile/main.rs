//! Reconcile scenarios against an in-process fake API server ([`fake_api`]): for each, the
//! exact requests one reconcile sends (method, path, query; the key parts of their bodies), what
//! the API server holds afterwards, and the request counters of the layer on the client.
//!
//! The scenarios play the watches: [`Cluster::deliver`] brings every change the fake API server
//! holds into the operator's caches, through the same trigger filter the controller uses, and
//! says which ModelServers that triggers. Between deliveries the caches are stale, as they are
//! right after a write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_api;
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use modelserver_crds::ModelServer;
use modelserver_crds::status::ConditionType;
use modelserver_operator::controller::backoff::Backoff;
use modelserver_operator::controller::cache::{Caches, Feed, Feeds, Triggers, Watched};
use modelserver_operator::controller::optional_api::OptionalApi;
use modelserver_operator::controller::{
    Context, ControllerConfig, Error, Scope, apply::APPLIED_HASH_ANNOTATION, pod_watch, reconcile,
    routed_through,
};
use modelserver_operator::labels;
use modelserver_operator::metrics::Metrics;
use modelserver_operator::render::RenderConfig;
use modelserver_operator::render::gateway::{Gateway, HTTPRoute};
use modelserver_operator::render::keda::ScaledObject;
use serde_json::{Value, json};

use fake_api::{FakeApi, Sent};

const NS: &str = "ml";
/// The query of every server-side apply of the operator's.
const APPLY: &str = "force=true&fieldManager=modelserver-operator";
/// The query of the apply that hands `spec.replicas` to a second field manager.
const HANDOVER: &str = "force=true&fieldManager=modelserver-operator-handover";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ml/events";

fn modelserver(name: &str) -> String {
    format!("/apis/modelserver.dev/v1alpha1/namespaces/{NS}/modelservers/{name}")
}
fn deployment(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}")
}
fn service(name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/services/{name}")
}
fn autoscaler(name: &str) -> String {
    format!("/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/{name}")
}
fn budget(name: &str) -> String {
    format!("/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{name}")
}
fn policy(name: &str) -> String {
    format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{name}")
}
/// The Gateway API's path prefix.
const GATEWAY_API: &str = "/apis/gateway.networking.k8s.io/v1";
fn route(name: &str) -> String {
    format!("{GATEWAY_API}/namespaces/{NS}/httproutes/{name}")
}
fn gateway(name: &str) -> String {
    format!("{GATEWAY_API}/namespaces/{NS}/gateways/{name}")
}
fn pod(name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/pods/{name}")
}

/// The status subresource of the ModelServer `name`.
fn status(name: &str) -> String {
    format!("{}/status", modelserver(name))
}

fn get(path: &str) -> String {
    format!("GET {path}")
}
fn apply(path: &str) -> String {
    format!("PATCH {path}?{APPLY}")
}

/// One kind's watch, played by the scenario: its store's writer and the controller's trigger
/// filter.
struct Watch<K: Watched> {
    feed: Feed<K>,
    triggers: Triggers<K>,
}

impl<K: Watched> Watch<K> {
    fn new(mut feed: Feed<K>) -> Self {
        // The first list, of an empty namespace.
        feed.writer.apply_watcher_event(&watcher::Event::Init);
        feed.writer.apply_watcher_event(&watcher::Event::InitDone);
        let triggers = Triggers::new(feed.seen.clone());
        Self { feed, triggers }
    }

    /// Delivers what changed under `prefix` since the store last saw it, as the watch's events
    /// (objects without the managed-by label excepted, as the watch's selector does, unless
    /// `everything`); returns the objects that trigger a reconcile.
    fn deliver(
        &mut self,
        api: &FakeApi,
        prefix: &str,
        store: &Store<K>,
        everything: bool,
    ) -> Vec<K> {
        let mut events = Vec::new();
        let mut live = BTreeSet::new();
        for value in api.list(prefix) {
            let mut object: K = serde_json::from_value(value).expect("an object");
            let managed = object.labels().get(labels::MANAGED_BY).map(String::as_str)
                == Some(labels::OPERATOR_NAME);
            if !everything && !managed {
                continue;
            }
            live.insert(object.name_any());
            let key = ObjectRef::new(&object.name_any()).within(NS);
            let cached = store.get(&key).and_then(|c| c.resource_version());
            if cached != object.resource_version() {
                object.trim();
                events.push(watcher::Event::Apply(object));
            }
        }
        for gone in store
            .state()
            .iter()
            .filter(|o| !live.contains(&o.name_any()))
        {
            events.push(watcher::Event::Delete(K::clone(gone)));
        }
        let mut news = Vec::new();
        for event in events {
            self.feed.writer.apply_watcher_event(&event);
            news.extend(self.triggers.news(event));
        }
        news
    }
}

/// The ModelServer a child's controller reference names.
fn owner<K: kube::Resource>(child: &K) -> Option<String> {
    child
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true) && r.kind == "ModelServer")
        .map(|r| r.name.clone())
}

/// The watches of the controller, played by the scenario.
struct Watches {
    modelservers: Watch<ModelServer>,
    deployments: Watch<k8s_openapi::api::apps::v1::Deployment>,
    services: Watch<k8s_openapi::api::core::v1::Service>,
    autoscalers: Watch<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>,
    budgets: Watch<k8s_openapi::api::policy::v1::PodDisruptionBudget>,
    policies: Watch<k8s_openapi::api::networking::v1::NetworkPolicy>,
    pods: Watch<Pod>,
    routes: Watch<HTTPRoute>,
    gateways: Watch<Gateway>,
    scaled_objects: Watch<ScaledObject>,
}

impl Watches {
    fn new(feeds: Feeds) -> Self {
        Self {
            modelservers: Watch::new(feeds.modelservers),
            deployments: Watch::new(feeds.deployments),
            services: Watch::new(feeds.services),
            autoscalers: Watch::new(feeds.autoscalers),
            budgets: Watch::new(feeds.budgets),
            policies: Watch::new(feeds.policies),
            pods: Watch::new(feeds.pods),
            routes: Watch::new(feeds.routes),
            gateways: Watch::new(feeds.gateways),
            scaled_objects: Watch::new(feeds.scaled_objects),
        }
    }
}

/// The operator's view of one namespace: the fake API server, and a reconcile context whose
/// client talks to it.
struct Cluster {
    api: FakeApi,
    metrics: Metrics,
    context: Arc<Context>,
    watches: Watches,
}

impl Cluster {
    fn new() -> Self {
        Self::with_gateway_api(false)
    }

    /// A cluster that serves the Gateway API and KEDA, or neither.
    fn with_gateway_api(gateway_api: bool) -> Self {
        let api = FakeApi::default();
        let metrics = Metrics::new().expect("metrics");
        let client = api.client(&metrics, NS);
        let (caches, feeds) = Caches::new();
        let watches = Watches::new(feeds);
        let context = Arc::new(Context {
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: "modelserver-operator".into(),
                    instance: None,
                },
            ),
            client,
            config: ControllerConfig {
                render: RenderConfig::default(),
                scope: Scope::Namespace(NS.into()),
                concurrency: 1,
                debounce: Duration::ZERO,
            },
            metrics: metrics.clone(),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            caches,
            gateway_api: OptionalApi::fixed(gateway_api),
            keda: OptionalApi::fixed(gateway_api),
        });
        Self {
            api,
            metrics,
            context,
            watches,
        }
    }

    /// The watches deliver every change since the last delivery: the caches catch up with the
    /// API server. Returns the ModelServers whose reconcile that triggers.
    fn deliver(&mut self) -> BTreeSet<String> {
        let api = &self.api;
        let caches = &self.context.caches;
        let w = &mut self.watches;
        let prefix = |kind: &str, group: &str| format!("{group}/namespaces/{NS}/{kind}/");
        let mut triggered = BTreeSet::new();
        triggered.extend(
            w.modelservers
                .deliver(
                    api,
                    &prefix("modelservers", "/apis/modelserver.dev/v1alpha1"),
                    caches.modelservers.store(),
                    true,
                )
                .iter()
                .map(ResourceExt::name_any),
        );
        let children = [
            w.deployments
                .deliver(
                    api,
                    &prefix("deployments", "/apis/apps/v1"),
                    caches.deployments.store(),
                    false,
                )
                .iter()
                .filter_map(owner)
                .collect::<Vec<_>>(),
            w.services
                .deliver(
                    api,
                    &prefix("services", "/api/v1"),
                    caches.services.store(),
                    false,
                )
                .iter()
                .filter_map(owner)
                .collect(),
            w.autoscalers
                .deliver(
                    api,
                    &prefix("horizontalpodautoscalers", "/apis/autoscaling/v2"),
                    caches.autoscalers.store(),
                    false,
                )
                .iter()
                .filter_map(owner)
                .collect(),
            w.budgets
                .deliver(
                    api,
                    &prefix("poddisruptionbudgets", "/apis/policy/v1"),
                    caches.budgets.store(),
                    false,
                )
                .iter()
                .filter_map(owner)
                .collect(),
            w.policies
                .deliver(
                    api,
                    &prefix("networkpolicies", "/apis/networking.k8s.io/v1"),
                    caches.policies.store(),
                    false,
                )
                .iter()
                .filter_map(owner)
                .collect(),
            w.pods
                .deliver(api, &prefix("pods", "/api/v1"), caches.pods.store(), false)
                .iter()
                .filter_map(|p| pod_watch::owner(p).map(|o| o.name))
                .collect(),
            w.scaled_objects
                .deliver(
                    api,
                    &prefix("scaledobjects", "/apis/keda.sh/v1alpha1"),
                    caches.scaled_objects.store(),
                    false,
                )
                .iter()
                .filter_map(owner)
                .collect(),
            w.routes
                .deliver(
                    api,
                    &prefix("httproutes", GATEWAY_API),
                    caches.routes.store(),
                    false,
                )
                .iter()
                .filter_map(owner)
                .collect(),
            // Every ModelServer whose route names a Gateway that changed (in this namespace).
            w.gateways
                .deliver(
                    api,
                    &prefix("gateways", GATEWAY_API),
                    caches.gateways.store(),
                    true,
                )
                .iter()
                .flat_map(|gateway| {
                    routed_through(caches.modelservers.store(), gateway)
                        .into_iter()
                        .map(|o| o.name)
                })
                .collect(),
        ];
        triggered.extend(children.into_iter().flatten());
        triggered
    }

    /// Creates the ModelServer `name` with `spec`, as `kubectl apply` would.
    fn create(&self, name: &str, spec: Value) {
        self.api.insert(
            &modelserver(name),
            json!({
                "apiVersion": "modelserver.dev/v1alpha1",
                "kind": "ModelServer",
                "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}")},
                "spec": spec,
            }),
        );
    }

    /// Changes the spec of the ModelServer `name` (its generation moves on).
    fn edit_spec(&self, name: &str, change: impl FnOnce(&mut Value)) {
        self.api
            .update(&modelserver(name), |object| change(&mut object["spec"]));
    }

    /// One reconcile of the ModelServer `name` as the API server holds it now.
    async fn reconcile(&self, name: &str) -> Result<Action, Error> {
        let object = self.api.get(&modelserver(name)).expect("the ModelServer");
        let object: ModelServer = serde_json::from_value(object).expect("a ModelServer");
        reconcile::reconcile(Arc::new(object), self.context.clone()).await
    }

    /// The requests sent since the last call, as `METHOD /path?query`.
    fn sent(&self) -> Vec<String> {
        lines(&self.api.take_sent())
    }

    /// The Deployment controller's part: the Deployment `name` has rolled out its latest
    /// generation and all its replicas are available.
    fn roll_out(&self, name: &str) {
        self.api.update(&deployment(name), |d| {
            let replicas = d["spec"]["replicas"].clone();
            d["status"] = json!({
                "observedGeneration": d["metadata"]["generation"],
                "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
            });
        });
    }

    /// Brings the ModelServer `name` to Ready and forgets the requests that took.
    /// The watches deliver everything first and after each reconcile.
    async fn ready(&mut self, name: &str) {
        self.deliver();
        self.reconcile(name).await.expect("reconcile");
        self.deliver();
        self.roll_out(name);
        self.deliver();
        self.reconcile(name).await.expect("reconcile");
        assert_eq!(
            self.condition(name, ConditionType::Ready),
            is("True", "Available")
        );
        self.deliver();
        self.api.take_sent();
    }

    /// `(status, reason)` of a condition of the stored ModelServer.
    fn condition(&self, name: &str, type_: ConditionType) -> (String, String) {
        let found = self.find_condition(name, type_);
        let text = |key: &str| found[key].as_str().unwrap_or_default().to_owned();
        (text("status"), text("reason"))
    }

    /// The message of a condition of the stored ModelServer.
    fn message(&self, name: &str, type_: ConditionType) -> String {
        let found = self.find_condition(name, type_);
        found["message"].as_str().unwrap_or_default().to_owned()
    }

    fn find_condition(&self, name: &str, type_: ConditionType) -> Value {
        let object = self.api.get(&modelserver(name)).expect("the ModelServer");
        object["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == type_.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no {type_} condition in {object}"))
    }

    /// The request counters of the layer on the client: `kind/verb` for writes, `kind` for reads.
    fn counters(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        let text = self.metrics.encode().expect("metrics");
        let mut reads = BTreeMap::new();
        let mut writes = BTreeMap::new();
        for line in text.lines() {
            let Some((series, value)) = line.split_once(' ') else {
                continue;
            };
            let value: u64 = value.parse().unwrap_or(0);
            let label = |name: &str| {
                series
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_default()
                    .to_owned()
            };
            if series.starts_with("modelserver_operator_api_reads_total{") {
                reads.insert(label("kind"), value);
            } else if series.starts_with("modelserver_operator_api_writes_total{") {
                writes.insert(format!("{}/{}", label("kind"), label("verb")), value);
            }
        }
        (reads, writes)
    }
}

/// A condition's `(status, reason)`, as [`Cluster::condition`] returns it.
fn is(status: &str, reason: &str) -> (String, String) {
    (status.to_owned(), reason.to_owned())
}

/// The spec of a managed-mode ModelServer with one replica.
fn iris() -> Value {
    json!({
        "image": "registry.example.com/acme/iris:1.4.0",
        "model": {"command": ["python3", "/app/worker.py"]},
    })
}

/// `METHOD /path?query` of each request; an Event's name (made of a timestamp) is `*`.
fn lines(sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .map(|s| match s.path.strip_prefix(&format!("{EVENTS}/")) {
            Some(_) => format!("{} {EVENTS}/*", s.method),
            None => s.to_string(),
        })
        .collect()
}

/// `(type, reason, note prefix)` of the Events among `sent`, created or repeated.
fn events(sent: &[Sent]) -> Vec<(String, String, String)> {
    sent.iter()
        .filter(|s| s.path.starts_with(EVENTS))
        .filter_map(|s| s.body.as_ref())
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
            let note = text("note");
            let head = note.split(':').next().unwrap_or_default().to_owned();
            (text("type"), text("reason"), head)
        })
        .collect()
}

/// A set of ModelServer names, as [`Cluster::deliver`] returns it.
fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn event(type_: &str, reason: &str, head: &str) -> (String, String, String) {
    (type_.into(), reason.into(), head.into())
}

fn body_of<'a>(sent: &'a [Sent], line: &str) -> &'a Value {
    sent.iter()
        .find(|s| s.to_string() == line)
        .and_then(|s| s.body.as_ref())
        .unwrap_or_else(|| panic!("no request {line} with a body"))
}

#[tokio::test]
async fn a_new_modelserver_gets_its_children_applied_and_its_status_written() {
    let mut cluster = Cluster::new();
    cluster.create("iris", iris());
    assert_eq!(cluster.deliver(), names(&["iris"]));

    let action = cluster.reconcile("iris").await.expect("reconcile");

    assert_eq!(action, Action::requeue(Duration::from_secs(600)));
    let sent = cluster.api.take_sent();
    let lines = lines(&sent);
    assert_eq!(
        lines,
        [
            // Compared with the caches, which hold no child: no GET.
            apply(&deployment("iris")),
            apply(&service("iris")),
            // No autoscaling, one replica: no HPA and no PDB, and none to delete.
            apply(&policy("iris")),
            apply(&status("iris")),
            format!("POST {EVENTS}"),
            format!("POST {EVENTS}"),
        ]
    );
    // Each child: server-side applied whole, with its fingerprint and a controller reference.
    for path in [deployment("iris"), service("iris"), policy("iris")] {
        let body = body_of(&sent, &apply(&path));
        assert_eq!(body["metadata"]["name"], "iris");
        assert!(
            body["apiVersion"].is_string() && body["kind"].is_string(),
            "{body}"
        );
        assert!(body["metadata"]["annotations"][APPLIED_HASH_ANNOTATION].is_string());
        assert_eq!(
            body["metadata"]["ownerReferences"],
            json!([{
                "apiVersion": "modelserver.dev/v1alpha1", "kind": "ModelServer", "name": "iris",
                "uid": "uid-iris", "controller": true, "blockOwnerDeletion": true,
            }]),
            "{path}"
        );
    }
    assert_eq!(
        body_of(&sent, &apply(&deployment("iris")))["spec"]["replicas"],
        1
    );
    let written = body_of(&sent, &apply(&status("iris")));
    assert_eq!(written["apiVersion"], "modelserver.dev/v1alpha1");
    assert_eq!(written["kind"], "ModelServer");
    assert_eq!(written["status"]["observedGeneration"], 1);
    assert_eq!(written["status"]["url"], "http://iris.ml.svc.cluster.local");
    // The Deployment controller has not seen the new Deployment yet.
    assert_eq!(
        cluster.condition("iris", ConditionType::Reconciling),
        is("True", "DeploymentPending")
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::Ready),
        is("False", "DeploymentPending")
    );
    // Events for the conditions that are news; Stalled=False is quiet.
    assert_eq!(
        events(&sent),
        [
            event("Normal", "DeploymentPending", "Ready=False"),
            event("Normal", "DeploymentPending", "Reconciling=True"),
        ]
    );

    let (reads, writes) = cluster.counters();
    let ones = |kinds: &[&str]| -> BTreeMap<String, u64> {
        kinds.iter().map(|k| ((*k).to_owned(), 1)).collect()
    };
    assert_eq!(reads, BTreeMap::new(), "no GET");
    let mut expected = ones(&[
        "Deployment/apply",
        "ModelServer/apply-status",
        "NetworkPolicy/apply",
        "Service/apply",
    ]);
    expected.insert("Event/create".into(), 2);
    assert_eq!(writes, expected);

    // The echoes of those writes (three children, the status) trigger no reconcile.
    assert_eq!(cluster.deliver(), names(&[]));
}

#[tokio::test]
async fn the_deployments_progress_triggers_the_status_and_at_rest_nothing_is_sent() {
    let mut cluster = Cluster::new();
    cluster.create("iris", iris());
    cluster.deliver();
    cluster.reconcile("iris").await.expect("reconcile");
    cluster.api.take_sent();
    assert_eq!(
        cluster.deliver(),
        names(&[]),
        "the echoes of its own writes"
    );

    // The Deployment controller reports the rollout: news, for the status.
    cluster.roll_out("iris");
    assert_eq!(cluster.deliver(), names(&["iris"]));
    cluster.reconcile("iris").await.expect("reconcile");
    let sent = cluster.api.take_sent();
    // Only the status changes (and its flips are announced).
    assert_eq!(
        lines(&sent),
        [apply(&status("iris")), format!("POST {EVENTS}")]
    );
    // Ready=True is news; Reconciling=False is quiet, Stalled did not flip.
    assert_eq!(events(&sent), [event("Normal", "Available", "Ready=True")]);
    let (reads_before, writes_before) = cluster.counters();

    // The echo of the status write triggers no reconcile; a reconcile at rest (the periodic
    // resync) sends no request at all, whether the caches caught up or not.
    assert_eq!(cluster.deliver(), names(&[]));
    for _ in 0..2 {
        cluster.reconcile("iris").await.expect("reconcile");
        assert_eq!(cluster.sent(), Vec::<String>::new());
        cluster.deliver();
    }
    let (reads, writes) = cluster.counters();
    assert_eq!(writes, writes_before, "no write counted at rest");
    assert_eq!(reads, reads_before, "no read counted at rest");
    assert_eq!(reads, BTreeMap::new());
}

#[tokio::test]
async fn an_edited_child_triggers_a_reconcile_that_sets_its_managed_fields_back() {
    let mut cluster = Cluster::new();
    cluster.create("iris", iris());
    cluster.ready("iris").await;

    // Someone adds an annotation to the Deployment: theirs to keep, no write.
    cluster.api.update(&deployment("iris"), |d| {
        d["metadata"]["annotations"]["example.com/owner"] = "team-a".into();
    });
    // Someone edits the Service's port, a field the operator manages.
    cluster.api.update(&service("iris"), |s| {
        s["spec"]["ports"][0]["port"] = 8081.into();
    });
    // The watch events of the edits trigger the ModelServer's reconcile.
    assert_eq!(cluster.deliver(), names(&["iris"]));
    cluster.reconcile("iris").await.expect("reconcile");

    let sent = cluster.api.take_sent();
    assert_eq!(lines(&sent), [apply(&service("iris"))]);
    let port = &body_of(&sent, &apply(&service("iris")))["spec"]["ports"][0]["port"];
    assert_eq!(port, 80);
    let live = cluster.api.get(&deployment("iris")).expect("deployment");
    assert_eq!(
        live["metadata"]["annotations"]["example.com/owner"],
        "team-a"
    );
    assert_eq!(
        cluster.api.get(&service("iris")).expect("service")["spec"]["ports"][0]["port"],
        80
    );
    // Repaired: the echo of the repair is no news, and nothing more is sent.
    assert_eq!(cluster.deliver(), names(&[]));
    cluster.reconcile("iris").await.expect("reconcile");
    assert_eq!(cluster.sent(), Vec::<String>::new());

    // A child deleted by someone is news too, and put back.
    cluster.api.remove(&service("iris"));
    assert_eq!(cluster.deliver(), names(&["iris"]));
    cluster.reconcile("iris").await.expect("reconcile");
    assert_eq!(cluster.sent(), [apply(&service("iris"))]);
    assert!(cluster.api.get(&service("iris")).is_some());
}

#[tokio::test]
async fn a_spec_change_reapplies_what_it_changes_and_reports_the_rollout() {
    let mut cluster = Cluster::new();
    cluster.create("iris", iris());
    cluster.ready("iris").await;

    cluster.edit_spec("iris", |spec| {
        spec["image"] = "registry.example.com/acme/iris:1.5.0".into();
    });
    assert_eq!(cluster.deliver(), names(&["iris"]));
    cluster.reconcile("iris").await.expect("reconcile");

    let sent = cluster.api.take_sent();
    let lines = lines(&sent);
    assert_eq!(
        lines,
        [
            apply(&deployment("iris")),
            apply(&status("iris")),
            format!("POST {EVENTS}"),
            // The Recorder counts a repeat of an Event it published before (Reconciling=True,
            // DeploymentPending, after the first apply) on that Event.
            format!("PATCH {EVENTS}/*"),
        ]
    );
    let template = &body_of(&sent, &apply(&deployment("iris")))["spec"]["template"]["spec"];
    let images: Vec<&Value> = template["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["image"])
        .collect();
    assert!(
        images.contains(&&json!("registry.example.com/acme/iris:1.5.0")),
        "{images:?}"
    );
    let live = cluster.api.get(&deployment("iris")).expect("deployment");
    assert_eq!(live["metadata"]["generation"], 2);
    let stored = cluster.api.get(&modelserver("iris")).expect("modelserver");
    assert_eq!(stored["status"]["observedGeneration"], 2);
    assert_eq!(
        cluster.condition("iris", ConditionType::Ready),
        is("False", "DeploymentPending")
    );
    // Losing readiness is a warning.
    assert_eq!(
        events(&sent),
        [
            event("Warning", "DeploymentPending", "Ready=False"),
            event("Normal", "DeploymentPending", "Reconciling=True"),
        ]
    );
}

#[tokio::test]
async fn a_missing_auth_secret_is_read_from_the_pods_and_stalls_without_reading_secrets() {
    let mut cluster = Cluster::new();
    let mut spec = iris();
    spec["server"] = json!({"auth": {"tokenSecretRef": {"name": "iris-token", "key": "token"}}});
    cluster.create("iris", spec);
    // The kubelet cannot start the model container: the Secret does not exist.
    cluster.api.insert(&pod("iris-7d9f-abcde"), json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "iris-7d9f-abcde", "namespace": NS,
            "labels": {
                "app.kubernetes.io/instance": "iris",
                "app.kubernetes.io/managed-by": "modelserver-operator",
            },
        },
        "spec": {"containers": [{"name": "model", "image": "registry.example.com/acme/iris:1.4.0"}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [{
                "name": "model", "image": "registry.example.com/acme/iris:1.4.0", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {
                    "reason": "CreateContainerConfigError",
                    "message": "secret \"iris-token\" not found",
                }},
            }],
        },
    }));
    // The pod's problem is news.
    assert_eq!(cluster.deliver(), names(&["iris"]));

    cluster.reconcile("iris").await.expect("reconcile");

    let sent = cluster.api.take_sent();
    assert!(
        sent.iter().all(|s| !s.path.contains("/secrets")),
        "the operator reads no Secret: {sent:?}"
    );
    // The token reaches the pod from the Secret, by reference.
    let containers =
        &body_of(&sent, &apply(&deployment("iris")))["spec"]["template"]["spec"]["containers"];
    let token = containers[0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "MODELSERVER_AUTH_TOKEN")
        .map(|e| &e["valueFrom"]["secretKeyRef"]);
    assert_eq!(
        token.map(|r| (&r["name"], &r["key"])),
        Some((&json!("iris-token"), &json!("token")))
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::Stalled),
        is("True", "SecretNotFound")
    );
    let message = cluster.message("iris", ConditionType::Stalled);
    assert!(
        message.starts_with(
            "Secret \"iris-token\" not found: container model of pod iris-7d9f-abcde cannot start"
        ),
        "{message}"
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::Reconciling),
        is("False", "SecretNotFound")
    );
    assert_eq!(
        events(&sent),
        [
            event("Normal", "SecretNotFound", "Ready=False"),
            event("Warning", "SecretNotFound", "Stalled=True"),
        ]
    );

    // Once the Secret exists the kubelet starts the container; the next reconcile sees the pod
    // running and the rollout done.
    cluster.deliver();
    cluster.api.remove(&pod("iris-7d9f-abcde"));
    assert_eq!(cluster.deliver(), names(&["iris"]), "the problem is gone");
    cluster.roll_out("iris");
    cluster.deliver();
    cluster.reconcile("iris").await.expect("reconcile");
    assert_eq!(
        cluster.condition("iris", ConditionType::Ready),
        is("True", "Available")
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::Stalled),
        is("False", "NoProblems")
    );
}

#[tokio::test]
async fn adding_autoscaling_hands_the_replicas_over_without_a_scale_down_and_applies_the_hpa() {
    let mut cluster = Cluster::new();
    let mut spec = iris();
    spec["replicas"] = 3.into();
    cluster.create("iris", spec);
    cluster.ready("iris").await;

    cluster.edit_spec("iris", |spec| {
        spec["autoscaling"] =
            json!({"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilization": 70});
    });
    assert_eq!(cluster.deliver(), names(&["iris"]));
    cluster.reconcile("iris").await.expect("reconcile");

    let sent = cluster.api.take_sent();
    let lines = lines(&sent);
    assert_eq!(
        lines,
        [
            // The cache says the operator owns spec.replicas: the count to hand over is read
            // from the API server, not from a cache that may hold an older one ...
            get(&deployment("iris")),
            // ... a second manager takes it first ...
            format!("PATCH {}?{HANDOVER}", deployment("iris")),
            // ... so the apply without it does not reset the count.
            apply(&deployment("iris")),
            apply(&autoscaler("iris")),
            // The PDB (replicas 3 before, minReplicas 2 now) is the same: not written.
            // The new generation is observed; nothing flipped, so no Event.
            apply(&status("iris")),
        ]
    );
    let written = &body_of(&sent, &apply(&status("iris")))["status"];
    assert_eq!(written["observedGeneration"], 2);
    assert_eq!(
        cluster.condition("iris", ConditionType::Ready),
        is("True", "Available"),
        "the handover does not touch the pods"
    );
    let handover = body_of(&sent, &format!("PATCH {}?{HANDOVER}", deployment("iris")));
    assert_eq!(
        handover,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "iris"}, "spec": {"replicas": 3}})
    );
    let applied = body_of(&sent, &apply(&deployment("iris")));
    assert_eq!(applied["spec"].get("replicas"), None, "{applied}");
    let live = cluster.api.get(&deployment("iris")).expect("deployment");
    assert_eq!(
        live["spec"]["replicas"], 3,
        "never scaled down to the default of 1"
    );
    let hpa = cluster.api.get(&autoscaler("iris")).expect("the HPA");
    assert_eq!(hpa["spec"]["minReplicas"], 2);
    assert_eq!(hpa["spec"]["maxReplicas"], 5);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "iris");

    // The HPA scales (through /scale: another manager); the operator leaves the count alone and,
    // owning no replicas any more, hands nothing over again.
    assert_eq!(
        cluster.deliver(),
        names(&[]),
        "the echoes of its own writes"
    );
    cluster
        .api
        .update(&deployment("iris"), |d| d["spec"]["replicas"] = 5.into());
    cluster.roll_out("iris");
    assert_eq!(cluster.deliver(), names(&["iris"]));
    cluster.reconcile("iris").await.expect("reconcile");
    let sent = cluster.api.take_sent();
    let writes: Vec<String> = sent
        .iter()
        .filter(|s| !s.path.starts_with(EVENTS))
        .map(ToString::to_string)
        .collect();
    assert_eq!(writes, [apply(&status("iris"))], "no GET, no handover");
    assert_eq!(
        cluster.api.get(&deployment("iris")).expect("deployment")["spec"]["replicas"],
        5
    );
    cluster.deliver();
    cluster.reconcile("iris").await.expect("reconcile");
    assert_eq!(
        cluster.sent(),
        Vec::<String>::new(),
        "at rest with an autoscaler: no request (it was two GETs of the Deployment)"
    );
    let (reads, _) = cluster.counters();
    assert_eq!(
        reads,
        BTreeMap::from([("Deployment".to_owned(), 1)]),
        "the handover's"
    );
}

#[tokio::test]
async fn removing_autoscaling_deletes_the_hpa_and_gives_the_replicas_back_to_the_spec() {
    let mut cluster = Cluster::new();
    let mut spec = iris();
    spec["autoscaling"] = json!({"minReplicas": 2, "maxReplicas": 5});
    cluster.create("iris", spec);
    cluster.ready("iris").await;
    assert!(cluster.api.get(&autoscaler("iris")).is_some());
    assert!(
        cluster.api.get(&budget("iris")).is_some(),
        "minReplicas 2 gets a PDB"
    );

    cluster.edit_spec("iris", |spec| {
        spec.as_object_mut().expect("spec").remove("autoscaling");
        spec["replicas"] = 4.into();
    });
    assert_eq!(cluster.deliver(), names(&["iris"]));
    cluster.reconcile("iris").await.expect("reconcile");

    let sent = cluster.api.take_sent();
    let lines = lines(&sent);
    assert_eq!(
        lines,
        [
            apply(&deployment("iris")),
            // Decided from the cache: it holds the HPA, controlled by this ModelServer.
            format!("DELETE {}", autoscaler("iris")),
            // minReplicas 2 before, replicas 4 now: the same budget, not written again.
            apply(&status("iris")),
            format!("POST {EVENTS}"),
            format!("PATCH {EVENTS}/*"),
        ]
    );
    let delete = body_of(&sent, &format!("DELETE {}", autoscaler("iris")));
    assert_eq!(delete["propagationPolicy"], "Background");
    let hpa_uid = cluster.context.caches.autoscalers.store().state()[0].uid();
    assert_eq!(
        delete["preconditions"]["uid"].as_str(),
        hpa_uid.as_deref(),
        "only the HPA the cache holds, not a newer one of the same name"
    );
    assert_eq!(
        body_of(&sent, &apply(&deployment("iris")))["spec"]["replicas"],
        4
    );
    assert_eq!(cluster.api.get(&autoscaler("iris")), None);
    assert_eq!(
        cluster.api.get(&deployment("iris")).expect("deployment")["spec"]["replicas"],
        4
    );
    // Before the watch tells, the cache already knows the HPA is gone: no second DELETE.
    cluster.reconcile("iris").await.expect("reconcile");
    assert_eq!(cluster.sent(), Vec::<String>::new());
    // The deletion's echo triggers a reconcile (a deletion is always news) that sends nothing.
    assert_eq!(cluster.deliver(), names(&["iris"]));
    cluster.reconcile("iris").await.expect("reconcile");
    assert_eq!(cluster.sent(), Vec::<String>::new());
}

#[tokio::test]
async fn an_hpa_applied_and_unwanted_again_before_the_watch_tells_is_deleted() {
    let mut cluster = Cluster::new();
    cluster.create("iris", iris());
    cluster.ready("iris").await;

    cluster.edit_spec("iris", |spec| {
        spec["autoscaling"] = json!({"minReplicas": 1, "maxReplicas": 5});
    });
    cluster.deliver();
    cluster.reconcile("iris").await.expect("reconcile");
    assert!(cluster.api.get(&autoscaler("iris")).is_some());
    cluster.api.take_sent();

    // The HPA's watch event has not arrived: its store does not hold it, the operator's own
    // write does.
    cluster.edit_spec("iris", |spec| {
        spec.as_object_mut().expect("spec").remove("autoscaling");
    });
    cluster.reconcile("iris").await.expect("reconcile");
    let sent = cluster.sent();
    assert!(
        sent.contains(&format!("DELETE {}", autoscaler("iris"))),
        "{sent:?}"
    );
    assert_eq!(cluster.api.get(&autoscaler("iris")), None);
}

#[tokio::test]
async fn a_child_of_the_same_name_that_the_modelserver_does_not_control_is_not_deleted() {
    let mut cluster = Cluster::new();
    cluster.create("iris", iris());
    let foreign = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        // Labelled as the operator's (copied by hand, say): in the cache.
        "metadata": {"name": "iris", "namespace": NS,
            "labels": {"app.kubernetes.io/managed-by": "modelserver-operator"},
            "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "other",
            "uid": "uid-other", "controller": true,
        }]},
        "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "other"}},
    });
    cluster.api.insert(&autoscaler("iris"), foreign);
    cluster.deliver();
    assert_eq!(cluster.context.caches.autoscalers.store().len(), 1);

    cluster.reconcile("iris").await.expect("reconcile");

    assert_eq!(
        cluster.sent(),
        [
            apply(&deployment("iris")),
            apply(&service("iris")),
            // The cached HPA belongs to someone else: left alone.
            apply(&policy("iris")),
            apply(&status("iris")),
            format!("POST {EVENTS}"),
            format!("POST {EVENTS}"),
        ]
    );
    assert!(cluster.api.get(&autoscaler("iris")).is_some());
}

#[tokio::test]
async fn a_modelserver_being_deleted_is_left_to_garbage_collection() {
    let mut cluster = Cluster::new();
    cluster.create("iris", iris());
    cluster.ready("iris").await;
    let (_, writes_before) = cluster.counters();

    cluster.api.update(&modelserver("iris"), |m| {
        m["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z".into();
    });
    assert_eq!(cluster.deliver(), names(&["iris"]));
    let action = cluster.reconcile("iris").await.expect("reconcile");

    assert_eq!(action, Action::await_change());
    assert_eq!(cluster.sent(), Vec::<String>::new(), "no request at all");
    assert_eq!(cluster.counters().1, writes_before);
    // The garbage collector deletes every child through its controller reference.
    for path in [deployment("iris"), service("iris"), policy("iris")] {
        let child = cluster.api.get(&path).expect("child");
        let owners = child["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            owners
                .iter()
                .any(|o| o["uid"] == "uid-iris" && o["controller"] == true),
            "{path}: {owners:?}"
        );
    }
}

#[tokio::test]
async fn an_invalid_spec_is_reported_and_no_child_is_touched() {
    let cluster = Cluster::new();
    let mut spec = iris();
    // Stored before a validation rule existed: both modes at once.
    spec["model"]["upstream"] = json!({"port": 8000});
    cluster.create("iris", spec);

    let action = cluster.reconcile("iris").await.expect("reconcile");

    assert_eq!(action, Action::await_change());
    let sent = cluster.api.take_sent();
    // Only the status: Ready=False (first status: Normal) and Stalled=True (Warning).
    assert_eq!(
        lines(&sent),
        [
            apply(&status("iris")),
            format!("POST {EVENTS}"),
            format!("POST {EVENTS}"),
        ]
    );
    assert_eq!(
        events(&sent),
        [
            event("Normal", "InvalidSpec", "Ready=False"),
            event("Warning", "InvalidSpec", "Stalled=True"),
        ]
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::Stalled),
        is("True", "InvalidSpec")
    );
    let message = cluster.message("iris", ConditionType::Stalled);
    assert!(message.contains("exactly one of"), "{message}");
}
