//! Reconcile scenarios against an in-process fake API server ([`fake_api`]): for each, the
//! exact requests one reconcile sends (method, path, query; the key parts of their bodies), what
//! the API server holds afterwards, and the request counters of the layer on the client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_api;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use modelserver_crds::ModelServer;
use modelserver_crds::status::ConditionType;
use modelserver_operator::controller::backoff::Backoff;
use modelserver_operator::controller::{
    Context, ControllerConfig, Error, Scope, apply::APPLIED_HASH_ANNOTATION, reconcile,
};
use modelserver_operator::metrics::Metrics;
use modelserver_operator::render::RenderConfig;
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

/// The operator's view of one namespace: the fake API server, and a reconcile context whose
/// client talks to it.
struct Cluster {
    api: FakeApi,
    metrics: Metrics,
    context: Arc<Context>,
    pods: Writer<Pod>,
    _models: Writer<ModelServer>,
}

impl Cluster {
    fn new() -> Self {
        let api = FakeApi::default();
        let metrics = Metrics::new().expect("metrics");
        let client = api.client(&metrics, NS);
        let (store, models) = reflector::store::<ModelServer>();
        let (pods, mut pod_writer) = reflector::store::<Pod>();
        pod_writer.apply_watcher_event(&watcher::Event::Init);
        pod_writer.apply_watcher_event(&watcher::Event::InitDone);
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
            },
            metrics: metrics.clone(),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            store,
            pods,
        });
        Self {
            api,
            metrics,
            context,
            pods: pod_writer,
            _models: models,
        }
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
    async fn ready(&self, name: &str) {
        self.reconcile(name).await.expect("reconcile");
        self.roll_out(name);
        self.reconcile(name).await.expect("reconcile");
        assert_eq!(
            self.condition(name, ConditionType::Ready),
            is("True", "Available")
        );
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
    let cluster = Cluster::new();
    cluster.create("iris", iris());

    let action = cluster.reconcile("iris").await.expect("reconcile");

    assert_eq!(action, Action::requeue(Duration::from_secs(600)));
    let sent = cluster.api.take_sent();
    let lines = lines(&sent);
    assert_eq!(
        lines,
        [
            get(&deployment("iris")),
            apply(&deployment("iris")),
            get(&service("iris")),
            apply(&service("iris")),
            // No autoscaling, one replica: no HPA and no PDB, and none to delete.
            get(&autoscaler("iris")),
            get(&budget("iris")),
            get(&policy("iris")),
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
    assert_eq!(
        reads,
        ones(&[
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service"
        ])
    );
    let mut expected = ones(&[
        "Deployment/apply",
        "ModelServer/apply-status",
        "NetworkPolicy/apply",
        "Service/apply",
    ]);
    expected.insert("Event/create".into(), 2);
    assert_eq!(writes, expected);
}

#[tokio::test]
async fn an_unchanged_modelserver_is_read_and_not_written() {
    let cluster = Cluster::new();
    cluster.create("iris", iris());
    cluster.reconcile("iris").await.expect("reconcile");
    cluster.api.take_sent();
    cluster.roll_out("iris");

    // The Deployment rolled out: only the status changes (and its flips are announced).
    cluster.reconcile("iris").await.expect("reconcile");
    let sent = cluster.api.take_sent();
    let lines = lines(&sent);
    assert_eq!(
        lines,
        [
            get(&deployment("iris")),
            get(&service("iris")),
            get(&autoscaler("iris")),
            get(&budget("iris")),
            get(&policy("iris")),
            apply(&status("iris")),
            format!("POST {EVENTS}"),
        ]
    );
    // Ready=True is news; Reconciling=False is quiet, Stalled did not flip.
    assert_eq!(events(&sent), [event("Normal", "Available", "Ready=True")]);
    let (reads_before, writes_before) = cluster.counters();

    // At rest: one GET per child, no write at all.
    for _ in 0..2 {
        cluster.reconcile("iris").await.expect("reconcile");
        assert_eq!(
            cluster.sent(),
            [
                get(&deployment("iris")),
                get(&service("iris")),
                get(&autoscaler("iris")),
                get(&budget("iris")),
                get(&policy("iris")),
            ]
        );
    }
    let (reads, writes) = cluster.counters();
    assert_eq!(writes, writes_before, "no write counted at rest");
    for (kind, count) in reads {
        assert_eq!(
            count,
            reads_before[&kind] + 2,
            "{kind}: one GET per reconcile"
        );
    }
}

#[tokio::test]
async fn drift_in_a_managed_field_is_set_back_and_fields_others_added_are_left_alone() {
    let cluster = Cluster::new();
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
    cluster.reconcile("iris").await.expect("reconcile");

    let sent = cluster.api.take_sent();
    let lines = lines(&sent);
    assert_eq!(
        lines,
        [
            get(&deployment("iris")),
            get(&service("iris")),
            apply(&service("iris")),
            get(&autoscaler("iris")),
            get(&budget("iris")),
            get(&policy("iris")),
        ]
    );
    let port = &body_of(&sent, &apply(&service("iris")))["spec"]["ports"][0]["port"];
    assert_eq!(port, 80);
    let live = cluster.api.get(&deployment("iris")).expect("deployment");
    assert_eq!(
        live["metadata"]["annotations"]["example.com/owner"],
        "team-a"
    );
}

#[tokio::test]
async fn a_spec_change_reapplies_what_it_changes_and_reports_the_rollout() {
    let cluster = Cluster::new();
    cluster.create("iris", iris());
    cluster.ready("iris").await;

    cluster.edit_spec("iris", |spec| {
        spec["image"] = "registry.example.com/acme/iris:1.5.0".into();
    });
    cluster.reconcile("iris").await.expect("reconcile");

    let sent = cluster.api.take_sent();
    let lines = lines(&sent);
    assert_eq!(
        lines,
        [
            get(&deployment("iris")),
            apply(&deployment("iris")),
            get(&service("iris")),
            get(&autoscaler("iris")),
            get(&budget("iris")),
            get(&policy("iris")),
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
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "iris-7d9f-abcde", "namespace": NS,
            "labels": {"app.kubernetes.io/instance": "iris"},
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
    }))
    .expect("a pod");
    cluster
        .pods
        .apply_watcher_event(&watcher::Event::Apply(pod));

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
    cluster.pods.apply_watcher_event(&watcher::Event::Delete(
        serde_json::from_value(json!({"metadata": {"name": "iris-7d9f-abcde", "namespace": NS}}))
            .expect("a pod"),
    ));
    cluster.roll_out("iris");
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
    let cluster = Cluster::new();
    let mut spec = iris();
    spec["replicas"] = 3.into();
    cluster.create("iris", spec);
    cluster.ready("iris").await;

    cluster.edit_spec("iris", |spec| {
        spec["autoscaling"] =
            json!({"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilization": 70});
    });
    cluster.reconcile("iris").await.expect("reconcile");

    let sent = cluster.api.take_sent();
    let lines = lines(&sent);
    assert_eq!(
        lines,
        [
            get(&deployment("iris")),
            // The operator owns spec.replicas: a second manager takes it first ...
            format!("PATCH {}?{HANDOVER}", deployment("iris")),
            // ... so the apply without it does not reset the count.
            apply(&deployment("iris")),
            get(&service("iris")),
            get(&autoscaler("iris")),
            apply(&autoscaler("iris")),
            get(&budget("iris")),
            get(&policy("iris")),
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
    cluster
        .api
        .update(&deployment("iris"), |d| d["spec"]["replicas"] = 5.into());
    cluster.roll_out("iris");
    cluster.reconcile("iris").await.expect("reconcile");
    let sent = cluster.api.take_sent();
    let writes: Vec<String> = sent
        .iter()
        .filter(|s| s.method != http::Method::GET && !s.path.starts_with(EVENTS))
        .map(ToString::to_string)
        .collect();
    assert_eq!(writes, [apply(&status("iris"))]);
    assert_eq!(
        cluster.api.get(&deployment("iris")).expect("deployment")["spec"]["replicas"],
        5
    );
    cluster.reconcile("iris").await.expect("reconcile");
    assert_eq!(
        cluster.sent(),
        [
            // apply_deployment's look at the replicas' owner, then apply's own.
            get(&deployment("iris")),
            get(&deployment("iris")),
            get(&service("iris")),
            get(&autoscaler("iris")),
            get(&budget("iris")),
            get(&policy("iris")),
        ],
        "at rest with an autoscaler: no write"
    );
}

#[tokio::test]
async fn removing_autoscaling_deletes_the_hpa_and_gives_the_replicas_back_to_the_spec() {
    let cluster = Cluster::new();
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
    cluster.reconcile("iris").await.expect("reconcile");

    let sent = cluster.api.take_sent();
    let lines = lines(&sent);
    assert_eq!(
        lines,
        [
            get(&deployment("iris")),
            apply(&deployment("iris")),
            get(&service("iris")),
            get(&autoscaler("iris")),
            format!("DELETE {}", autoscaler("iris")),
            // minReplicas 2 before, replicas 4 now: the same budget, not written again.
            get(&budget("iris")),
            get(&policy("iris")),
            apply(&status("iris")),
            format!("POST {EVENTS}"),
            format!("PATCH {EVENTS}/*"),
        ]
    );
    assert_eq!(
        body_of(&sent, &format!("DELETE {}", autoscaler("iris")))["propagationPolicy"],
        "Background"
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
}

#[tokio::test]
async fn a_child_of_the_same_name_that_the_modelserver_does_not_control_is_not_deleted() {
    let cluster = Cluster::new();
    cluster.create("iris", iris());
    let foreign = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "iris", "namespace": NS, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "other",
            "uid": "uid-other", "controller": true,
        }]},
        "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "other"}},
    });
    cluster.api.insert(&autoscaler("iris"), foreign);

    cluster.reconcile("iris").await.expect("reconcile");

    assert_eq!(
        cluster.sent(),
        [
            get(&deployment("iris")),
            apply(&deployment("iris")),
            get(&service("iris")),
            apply(&service("iris")),
            // Looked at, found to belong to someone else, left alone.
            get(&autoscaler("iris")),
            get(&budget("iris")),
            get(&policy("iris")),
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
    let cluster = Cluster::new();
    cluster.create("iris", iris());
    cluster.ready("iris").await;
    let (_, writes_before) = cluster.counters();

    cluster.api.update(&modelserver("iris"), |m| {
        m["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z".into();
    });
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
