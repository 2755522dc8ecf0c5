//! The pod lifecycle on a real node: kubelet, containerd and kube-proxy run the real sidecar and
//! real Python workers from real images (`e2e/node.sh`, `e2e/images.sh`). What kwok cannot show:
//! readiness only after the model loads, preStop drain, SIGTERM order, rollouts through a
//! ClusterIP without a lost request, crash loops and pull failures in status, Pod Security
//! admission, disruption budgets, and an admin port that other pods cannot drain.
//!
//! Every namespace here enforces the restricted Pod Security Standard, so every test also shows
//! that the rendered pods are admitted and run under it. Each test has its own namespace and its
//! own operator (the real binary, with the chart's RBAC). `make e2e` starts the cluster with the
//! real node, pushes the images and exports their names ([`images`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The operator harness of tests/operator; this binary uses only part of it.
mod autoscale;
#[allow(dead_code)]
#[path = "../operator/harness.rs"]
mod harness;
mod load;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use harness::{Operator, OperatorIdentity, condition, is, operator_identity, summary};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use load::{Load, LoadReport, PREDICT_BODY};
use modelserver_crds::ModelServer;
use modelserver_e2e::{Kubectl, TestNamespace, client, install_crds, repo_root, wait_until};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

/// The field manager the tests apply ModelServers with, as a user would.
const USER: &str = "e2e-user";
/// Pods on the real node pull images, start Python and load models: give them time on a busy
/// two-core machine.
const CONVERGE: Duration = Duration::from_secs(240);
/// The label and taint of the real node (e2e/node.sh).
const REAL_NODE_KEY: &str = "modelserver.dev/node";
const REAL_NODE_VALUE: &str = "real";
/// The pod label naming the ModelServer (the operator's instance label).
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// The label of a canary's pods: the name of the ModelServer whose canary they are.
const CANARY_OF_LABEL: &str = "modelserver.dev/canary-of";
/// Where the sidecar's admin port is in every model pod.
const ADMIN_PORT: u16 = 9090;
/// The uid every image here runs as.
const IMAGE_UID: i64 = 65532;

/// The images `e2e/cluster.sh images` pushed to the cluster's registry.
struct Images {
    sidecar: String,
    iris: String,
    iris_http: String,
    python: String,
}

/// From the environment `make e2e` sets, or from the cluster's `images.env`.
fn images() -> Result<Images> {
    let mut found: BTreeMap<String, String> = std::env::vars()
        .filter_map(|(k, v)| {
            k.strip_prefix("MODELSERVER_E2E_")
                .map(|k| (k.to_owned(), v))
        })
        .collect();
    if !found.contains_key("SIDECAR_IMAGE") {
        let cluster = std::env::var("MODELSERVER_E2E_CLUSTER").unwrap_or_else(|_| "dev".into());
        let file = repo_root().join(format!("e2e/.state/{cluster}/images.env"));
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "no MODELSERVER_E2E_SIDECAR_IMAGE and no {}: run `make e2e`, or \
                 `e2e/cluster.sh up --real-node && e2e/cluster.sh images`",
                file.display()
            )
        })?;
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                found.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    let get = |k: &str| {
        found
            .get(k)
            .cloned()
            .with_context(|| format!("image {k} not set"))
    };
    Ok(Images {
        sidecar: get("SIDECAR_IMAGE")?,
        iris: get("IRIS_IMAGE")?,
        iris_http: get("IRIS_HTTP_IMAGE")?,
        python: get("PYTHON_IMAGE")?,
    })
}

struct Setup {
    client: Client,
    kubectl: Kubectl,
    namespace: TestNamespace,
    identity: OperatorIdentity,
    images: Images,
    dir: tempfile::TempDir,
    operator: Option<Operator>,
}

impl Setup {
    /// A restricted namespace and an operator watching it with the real sidecar image.
    async fn new(prefix: &str) -> Result<Self> {
        Self::with_operator_args(prefix, &[]).await
    }

    /// [`Setup::new`] with `extra` flags for the operator.
    async fn with_operator_args(prefix: &str, extra: &[&str]) -> Result<Self> {
        let images = images()?;
        let client = client().await?;
        let kubectl = Kubectl::new().await?;
        install_crds(&client, &kubectl).await?;
        let namespace = TestNamespace::create(&client, prefix).await?;
        Api::<Namespace>::all(client.clone())
            .patch(
                namespace.name(),
                &PatchParams::apply(USER),
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": namespace.name(), "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                    }}
                })),
            )
            .await?;
        let dir = tempfile::tempdir()?;
        let identity = operator_identity(&client, &kubectl, dir.path()).await?;
        let mut setup = Self {
            client,
            kubectl,
            namespace,
            identity,
            images,
            dir,
            operator: None,
        };
        setup.operator = Some(
            Operator::start_with_image(
                &setup.identity,
                setup.ns(),
                setup.dir.path(),
                "operator",
                &setup.images.sidecar,
                extra,
            )
            .await?,
        );
        Ok(setup)
    }

    fn ns(&self) -> &str {
        self.namespace.name()
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), self.ns())
    }

    /// The operator's log, for failure messages.
    fn operator_log(&self) -> String {
        self.operator
            .as_ref()
            .map(Operator::log_tail)
            .unwrap_or_default()
    }

    /// The iris example on the real node, changed by `edit`.
    fn iris(&self, name: &str, edit: impl FnOnce(&mut Value)) -> Result<Value> {
        let path = repo_root().join("examples/iris/modelserver.yaml");
        let mut manifest: Value = serde_saphyr::from_str(&std::fs::read_to_string(path)?)?;
        manifest["metadata"] = json!({"name": name, "namespace": self.ns()});
        let spec = &mut manifest["spec"];
        spec["image"] = json!(self.images.iris);
        spec["replicas"] = json!(1);
        spec["model"]["env"] = json!([{"name": "IRIS_LOAD_DELAY", "value": "0"}]);
        spec["resources"] =
            json!({"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}});
        // kube-proxy drops a not-ready endpoint within a second here; 3 s is plenty.
        spec["lifecycle"] = json!({"startupTimeout": "2m", "drainDelay": "3s", "drainTimeout": "30s", "shutdownTimeout": "5s"});
        on_real_node(&mut manifest);
        edit(&mut manifest);
        Ok(manifest)
    }

    async fn apply(&self, manifest: &Value) -> Result<ModelServer> {
        let name = manifest["metadata"]["name"].as_str().context("name")?;
        Ok(self
            .api::<ModelServer>()
            .patch(
                name,
                &PatchParams::apply(USER).force(),
                &Patch::Apply(manifest),
            )
            .await?)
    }

    /// Waits until the status describes the current generation and `check` holds.
    async fn wait_status(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&ModelServer) -> bool,
    ) -> Result<ModelServer> {
        harness::wait_status(&self.api(), name, what, timeout, check)
            .await
            .map_err(|e| anyhow::anyhow!("{e}\n{}", self.operator_log()))
    }

    async fn wait_ready(&self, name: &str) -> Result<ModelServer> {
        self.wait_status(name, &format!("ModelServer {name} Ready"), CONVERGE, |o| {
            is(o, "Ready", "True")
        })
        .await
    }

    /// Waits until the ModelServer is Stalled with `reason`; returns the condition's message.
    async fn wait_stalled(&self, name: &str, reason: &str) -> Result<String> {
        let stalled = self
            .wait_status(name, &format!("Stalled/{reason}"), CONVERGE, |o| {
                condition(o, "Stalled").is_some_and(|c| c.status == "True" && c.reason == reason)
            })
            .await?;
        assert!(is(&stalled, "Ready", "False"), "{}", summary(&stalled));
        Ok(condition(&stalled, "Stalled")
            .map(|c| c.message.clone())
            .unwrap_or_default())
    }

    /// The ModelServer's pods that are not being deleted.
    async fn pods(&self, name: &str) -> Result<Vec<Pod>> {
        let pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}")))
            .await?;
        Ok(pods
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect())
    }

    /// Waits until exactly `count` pods of `name` exist, all Ready, none terminating.
    async fn wait_pods_ready(&self, name: &str, count: usize) -> Result<Vec<Pod>> {
        self.wait_selected_pods_ready(&format!("{INSTANCE_LABEL}={name}"), count)
            .await
    }

    /// Waits until exactly `count` pods match `selector`, all Ready, none terminating.
    async fn wait_selected_pods_ready(&self, selector: &str, count: usize) -> Result<Vec<Pod>> {
        let api = self.api::<Pod>();
        let selector = selector.to_owned();
        Ok(wait_until(
            &format!("{count} ready pods of {selector} and no others"),
            CONVERGE,
            || {
                let api = api.clone();
                let selector = selector.clone();
                async move {
                    let pods = api
                        .list(&ListParams::default().labels(&selector))
                        .await
                        .map_err(|e| e.to_string())?
                        .items;
                    let ready = pods.iter().filter(|p| pod_ready(p)).count();
                    if pods.len() == count && ready == count {
                        Ok(Some(pods))
                    } else {
                        Err(format!(
                            "{} pods, {ready} ready: {}",
                            pods.len(),
                            pod_summaries(&pods)
                        ))
                    }
                }
            },
        )
        .await?)
    }

    /// The ClusterIP and port of the ModelServer's Service.
    async fn service_addr(&self, name: &str) -> Result<SocketAddr> {
        let service = self.api::<Service>().get(name).await?;
        let spec = service.spec.context("service spec")?;
        let ip = spec.cluster_ip.context("clusterIP")?;
        let port = spec.ports.unwrap_or_default().first().context("port")?.port;
        Ok(SocketAddr::new(ip.parse()?, u16::try_from(port)?))
    }

    /// Runs a one-shot Python script in a pod of its own on the real node; returns its output.
    async fn run_client_pod(&self, name: &str, script: &str) -> Result<String> {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": self.ns()},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "nodeSelector": {REAL_NODE_KEY: REAL_NODE_VALUE},
                "tolerations": [{"key": REAL_NODE_KEY, "operator": "Equal", "value": REAL_NODE_VALUE, "effect": "NoSchedule"}],
                "securityContext": {"runAsNonRoot": true, "runAsUser": IMAGE_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "client", "image": self.images.python,
                    "command": ["python3", "-c", script],
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true},
                }],
            }
        }))?;
        let api = self.api::<Pod>();
        api.create(&PostParams::default(), &pod).await?;
        let phase = wait_until(&format!("client pod {name} to finish"), CONVERGE, || {
            let api = api.clone();
            async move {
                let pod = api.get(name).await.map_err(|e| e.to_string())?;
                let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
                match phase.as_str() {
                    "Succeeded" | "Failed" => Ok(Some(phase)),
                    other => Err(format!("phase {other}")),
                }
            }
        })
        .await?;
        let logs = self
            .kubectl
            .run_ok(&["logs", "-n", self.ns(), name])
            .await?;
        ensure!(phase == "Succeeded", "client pod {name} failed: {logs}");
        Ok(logs)
    }

    async fn finish(mut self) {
        drop(self.operator.take());
        let _ = self.namespace.clone().delete().await;
    }
}

/// Puts a ModelServer's pods on the real node: its label and its taint.
fn on_real_node(manifest: &mut Value) {
    manifest["spec"]["pod"] = json!({
        "nodeSelector": {REAL_NODE_KEY: REAL_NODE_VALUE},
        "tolerations": [{"key": REAL_NODE_KEY, "operator": "Equal", "value": REAL_NODE_VALUE, "effect": "NoSchedule"}],
    });
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_summaries(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            let states: Vec<String> = p
                .status
                .iter()
                .flat_map(|s| {
                    s.init_container_statuses
                        .iter()
                        .flatten()
                        .chain(s.container_statuses.iter().flatten())
                })
                .map(|c| {
                    let state = c.state.as_ref();
                    let what = if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
                        format!("waiting {}", w.reason.clone().unwrap_or_default())
                    } else if state.and_then(|s| s.running.as_ref()).is_some() {
                        format!("running ready={}", c.ready)
                    } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                        format!("terminated {}", t.exit_code)
                    } else {
                        "unknown".to_owned()
                    };
                    format!("{}:{what}:restarts={}", c.name, c.restart_count)
                })
                .collect();
            format!("{} [{}]", p.name_any(), states.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn pod_ip(pod: &Pod) -> Result<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("pod has no IP")
}

/// A POST /predict through `addr` with a fresh connection; returns status and body.
async fn predict(addr: &str, headers: &[(&str, &str)]) -> Result<(u16, Value)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut request = http
        .post(format!("http://{addr}/predict"))
        .header("content-type", "application/json")
        .body(PREDICT_BODY);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Waits until a prediction through `addr` (a ClusterIP) answers 200: kube-proxy programs a new
/// Service's rules a moment after the pods are Ready.
async fn wait_service_answers(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<Value> {
    Ok(wait_until(
        &format!("a prediction through the Service at {addr}"),
        Duration::from_secs(60),
        || async move {
            match predict(&addr.to_string(), headers).await {
                Ok((200, body)) => Ok(Some(body)),
                Ok((code, body)) => Err(format!("{code}: {body}")),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
    .await?)
}

/// Changes one env var of the model, which rolls the pods.
fn set_env(manifest: &mut Value, name: &str, value: &str) {
    let env = manifest["spec"]["model"]["env"]
        .as_array_mut()
        .expect("model.env is a list");
    env.retain(|e| e["name"] != name);
    env.push(json!({"name": name, "value": value}));
}

/// Runs a rollout of `name` (by `edit`) under load through its ClusterIP; returns the counts.
async fn rollout_under_load(
    setup: &Setup,
    name: &str,
    manifest: &mut Value,
    replicas: usize,
    edit: impl FnOnce(&mut Value),
) -> Result<LoadReport> {
    let addr = setup.service_addr(name).await?;
    wait_service_answers(addr, &[]).await?;
    let load = Load::start(addr, "/predict", 4, &[]);
    wait_answered(&load, "load flowing through the ClusterIP", 50).await?;
    let before: Vec<String> = setup
        .pods(name)
        .await?
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    edit(manifest);
    setup.apply(manifest).await?;
    setup
        .wait_status(name, "the rollout to finish", CONVERGE, |o| {
            is(o, "Ready", "True")
        })
        .await?;
    let after = setup.wait_pods_ready(name, replicas).await?;
    ensure!(
        after.iter().all(|p| !before.contains(&p.name_any())),
        "the rollout left old pods: before {before:?}, after {}",
        pod_summaries(&after)
    );
    // A little more traffic on the new pods only, then stop.
    wait_answered(&load, "load on the new pods", 50).await?;
    Ok(load.stop().await)
}

fn report(what: &str, r: &LoadReport) {
    eprintln!(
        "{what}: {} requests: {} ok on new connections, {} ok on keep-alive connections \
         ({} told to reconnect), {} failed {:?}",
        r.total(),
        r.fresh_ok,
        r.keepalive_ok,
        r.reconnects,
        r.failed,
        r.failures
    );
}

#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn iris_is_ready_only_after_its_model_loads_and_answers_through_its_service() -> Result<()> {
    let setup = Setup::new("rn-ready").await?;
    let load_delay = 8;
    let manifest = setup.iris("iris", |m| {
        set_env(m, "IRIS_LOAD_DELAY", &load_delay.to_string());
    })?;
    setup.apply(&manifest).await?;

    // While the model loads the container runs but the pod is not Ready, and neither is the
    // ModelServer.
    let pods = setup.api::<Pod>();
    let loading = wait_until("the model container running", CONVERGE, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(&format!("{INSTANCE_LABEL}=iris")))
                .await
                .map_err(|e| e.to_string())?;
            let running = list.items.into_iter().find(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
                    .any(|c| {
                        c.name == "model" && c.state.as_ref().is_some_and(|s| s.running.is_some())
                    })
            });
            Ok(running)
        }
    })
    .await?;
    let ms = setup.api::<ModelServer>().get("iris").await?;
    assert!(
        !is(&ms, "Ready", "True"),
        "Ready while the model loads: {}",
        summary(&ms)
    );

    setup.wait_ready("iris").await?;
    let pod = pods.get(&loading.name_any()).await?;
    let status = pod.status.as_ref().context("pod status")?;
    let started = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "model")
        .and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.clone())
        .context("model container startedAt")?;
    let ready_at = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .and_then(|c| c.last_transition_time.clone())
        .context("Ready transition time")?;
    let loading_took = ready_at.0.as_second() - started.0.as_second();
    assert!(
        loading_took >= load_delay - 1,
        "the pod became Ready {loading_took}s after its container started, before the model's \
         {load_delay}s load"
    );

    // Through the Service's ClusterIP (kube-proxy) from this machine...
    let addr = setup.service_addr("iris").await?;
    let body = wait_service_answers(addr, &[]).await?;
    assert_eq!(body["predictions"][0], "setosa", "{body}");

    // ...and from another pod, which also tries to drain the model through its admin port.
    let pod_ip = pod_ip(&pod)?;
    let script = format!(
        r#"
import json, urllib.request, urllib.error
out = {{}}
req = urllib.request.Request("http://{addr}/predict", data=b'{PREDICT_BODY}', headers={{"Content-Type": "application/json"}})
out["predict"] = json.load(urllib.request.urlopen(req, timeout=20))
try:
    r = urllib.request.urlopen(urllib.request.Request("http://{pod_ip}:{ADMIN_PORT}/drain", data=b"", method="POST"), timeout=20)
    out["drain"] = r.status
except urllib.error.HTTPError as e:
    out["drain"] = e.code
    out["drain_body"] = e.read().decode()
out["readyz"] = urllib.request.urlopen("http://{pod_ip}:{ADMIN_PORT}/readyz", timeout=20).status
print(json.dumps(out))
"#
    );
    let output = setup.run_client_pod("client", &script).await?;
    let out: Value = serde_json::from_str(output.trim()).with_context(|| output.clone())?;
    assert_eq!(out["predict"]["predictions"][0], "setosa", "{out}");
    assert_eq!(
        out["drain"], 403,
        "POST /drain from another pod must be refused: {out}"
    );
    assert_eq!(out["readyz"], 200, "{out}");
    // The model was not drained: the pod is still Ready, its container never restarted.
    let pod = pods.get(&loading.name_any()).await?;
    assert!(
        pod_ready(&pod),
        "{}",
        pod_summaries(std::slice::from_ref(&pod))
    );
    let restarts: i32 = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| c.restart_count)
        .sum();
    assert_eq!(restarts, 0, "{}", pod_summaries(std::slice::from_ref(&pod)));

    // The restricted Pod Security Standard admitted the pod; inside, the model runs as 65532
    // on a read-only root filesystem with no capabilities.
    let probe = setup
        .kubectl
        .run_ok(&[
            "exec", "-n", setup.ns(), &pod.name_any(), "-c", "model", "--", "python3", "-c",
            "import errno, os\ntry:\n    open('/probe', 'w')\n    rofs = 'writable'\nexcept OSError as e:\n    rofs = errno.errorcode[e.errno]\ncap = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0]\nprint(os.getuid(), rofs, cap)",
        ])
        .await?;
    assert_eq!(
        probe.trim(),
        format!("{IMAGE_UID} EROFS 0000000000000000"),
        "{probe}"
    );
    setup.finish().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn a_rolling_update_under_load_through_the_cluster_ip_loses_no_request() -> Result<()> {
    let setup = Setup::new("rn-rollout").await?;
    let mut manifest = setup.iris("iris", |m| {
        m["spec"]["replicas"] = json!(2);
        set_env(m, "IRIS_LOAD_DELAY", "2");
    })?;
    setup.apply(&manifest).await?;
    setup.wait_ready("iris").await?;
    setup.wait_pods_ready("iris", 2).await?;
    let report_ = rollout_under_load(&setup, "iris", &mut manifest, 2, |m| {
        set_env(m, "IRIS_ROLLOUT", "2");
    })
    .await?;
    report("managed-mode rollout", &report_);
    assert_eq!(
        report_.failed, 0,
        "requests failed during the rollout: {:?}",
        report_.failures
    );
    assert!(
        report_.reconnects >= 1,
        "no keep-alive client was told to reconnect (Connection: close) by a draining pod"
    );
    assert!(
        report_.total() >= 200,
        "too little load to show anything: {report_:?}"
    );
    setup.finish().await;
    Ok(())
}

/// Streams a container's log until it exits.
async fn follow_log(
    setup: &Setup,
    pod: &str,
    container: &str,
) -> Result<tokio::task::JoinHandle<String>> {
    let mut child = tokio::process::Command::new(setup.kubectl.binary())
        .args(["--kubeconfig"])
        .arg(modelserver_e2e::kubeconfig_path().await?)
        .args(["logs", "-f", "-n", setup.ns(), pod, "-c", container])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdout = child.stdout.take().context("stdout")?;
    Ok(tokio::spawn(async move {
        let mut text = String::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(120), stdout.read_to_string(&mut text)).await;
        let _ = child.kill().await;
        text
    }))
}

/// Watches a pod until it is gone; returns the last state seen of each container. A watch,
/// not polling: the terminated states may be visible for only a moment before the pod goes.
async fn watch_until_deleted(
    api: &Api<Pod>,
    name: &str,
) -> Result<BTreeMap<String, k8s_openapi::api::core::v1::ContainerStateTerminated>> {
    use futures::TryStreamExt as _;
    use kube::runtime::watcher;
    let mut last = BTreeMap::new();
    let mut seen = false;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(api.clone(), config));
    let watch = async {
        while let Some(event) = events.try_next().await? {
            match event {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                    seen = true;
                    for c in pod.status.iter().flat_map(|s| {
                        s.init_container_statuses
                            .iter()
                            .flatten()
                            .chain(s.container_statuses.iter().flatten())
                    }) {
                        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.clone()) {
                            last.insert(c.name.clone(), t);
                        }
                    }
                }
                watcher::Event::Delete(_) => return anyhow::Ok(()),
                // Already gone when the watch started.
                watcher::Event::InitDone if !seen => return anyhow::Ok(()),
                watcher::Event::Init | watcher::Event::InitDone => {}
            }
        }
        bail!("the watch of pod {name} ended")
    };
    tokio::time::timeout(CONVERGE, watch)
        .await
        .with_context(|| format!("pod {name} not deleted within {CONVERGE:?}"))??;
    Ok(last)
}

#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn deleting_a_pod_lets_its_slow_request_finish_then_drains_and_exits_cleanly() -> Result<()> {
    let setup = Setup::new("rn-delete").await?;
    let manifest = setup.iris("iris", |m| {
        set_env(m, "IRIS_TEST_HOOKS", "1");
    })?;
    setup.apply(&manifest).await?;
    setup.wait_ready("iris").await?;
    let pod = setup.wait_pods_ready("iris", 1).await?.remove(0);
    let name = pod.name_any();
    let ip = pod_ip(&pod)?;

    // A request that takes 6 s, straight to the pod.
    let slow = tokio::spawn({
        let ip = ip.clone();
        async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?;
            let response = http
                .post(format!("http://{ip}:8080/predict?delay=6"))
                .header("content-type", "application/json")
                .body(PREDICT_BODY)
                .send()
                .await?;
            anyhow::Ok((response.status().as_u16(), response.text().await?))
        }
    });
    let metrics = format!("http://{ip}:{ADMIN_PORT}/metrics");
    wait_until(
        "the slow request in flight",
        Duration::from_secs(30),
        || {
            let metrics = metrics.clone();
            async move {
                let text = reqwest::get(&metrics)
                    .await
                    .map_err(|e| e.to_string())?
                    .text()
                    .await
                    .map_err(|e| e.to_string())?;
                let inflight = text
                    .lines()
                    .find(|l| l.starts_with("modelserver_inflight_requests"))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .unwrap_or(0.0);
                if inflight >= 1.0 {
                    Ok(Some(()))
                } else {
                    Err(format!("inflight {inflight}"))
                }
            }
        },
    )
    .await?;
    let log = follow_log(&setup, &name, "model").await?;
    let watch = {
        let api = setup.api::<Pod>();
        let name = name.clone();
        tokio::spawn(async move { watch_until_deleted(&api, &name).await })
    };
    setup
        .api::<Pod>()
        .delete(&name, &DeleteParams::default())
        .await?;
    let (code, body) = slow.await??;
    assert_eq!(
        code, 200,
        "the in-flight request during the pod's deletion: {body}"
    );
    let terminated = watch.await??;
    let log = log.await?;
    let model = terminated
        .get("model")
        .with_context(|| format!("never saw the model container terminate: {terminated:?}"))?;
    assert_eq!(
        model.exit_code, 0,
        "the sidecar must exit 0 by itself before the grace period ends: {model:?}\n{log}"
    );
    // The design's order: preStop drain (readiness off, keep serving for the drain delay), stop
    // accepting, wait for in-flight requests, then stop the workers.
    let position = |needle: &str| log.lines().position(|l| l.contains(needle));
    let order = [
        position("drain requested"),
        position("stopped accepting"),
        position("drained: no requests in flight"),
        position("stopping workers"),
        position("stopped\""),
    ];
    assert!(
        order.iter().all(Option::is_some) && order.windows(2).all(|w| w[0] < w[1]),
        "lifecycle log out of order ({order:?}):\n{log}"
    );
    if let Some(sigterm) = position("SIGTERM received") {
        assert!(
            sigterm > order[0].unwrap_or(0),
            "SIGTERM came before the preStop drain:\n{log}"
        );
    }
    setup.finish().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn proxy_mode_runs_a_native_sidecar_around_the_model_and_rolls_without_loss() -> Result<()> {
    let setup = Setup::new("rn-proxy").await?;
    let mut manifest = json!({
        "apiVersion": "modelserver.dev/v1alpha1", "kind": "ModelServer",
        "metadata": {"name": "iris-http", "namespace": setup.ns()},
        "spec": {
            "image": setup.images.iris_http,
            "replicas": 2,
            "model": {
                "upstream": {"port": 8000, "readinessPath": "/ready"},
                "env": [{"name": "IRIS_LOAD_DELAY", "value": "1"}],
            },
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
            "lifecycle": {"startupTimeout": "2m", "drainDelay": "3s", "drainTimeout": "30s", "shutdownTimeout": "5s"},
        }
    });
    on_real_node(&mut manifest);
    setup.apply(&manifest).await?;
    setup.wait_ready("iris-http").await?;
    let pods = setup.wait_pods_ready("iris-http", 2).await?;

    // The native sidecar (an init container that keeps running) started before the model.
    let status = pods[0].status.as_ref().context("status")?;
    let started = |list: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
        list.iter()
            .flatten()
            .filter_map(|c| {
                Some((
                    c.name.clone(),
                    c.state.as_ref()?.running.as_ref()?.started_at.clone()?,
                ))
            })
            .collect::<Vec<_>>()
    };
    let sidecars = started(&status.init_container_statuses);
    let models = started(&status.container_statuses);
    ensure!(
        sidecars.len() == 1 && models.len() == 1,
        "want one running native sidecar and one model: {}",
        pod_summaries(&pods)
    );
    assert!(
        sidecars[0].1.0 <= models[0].1.0,
        "the sidecar started after the model: {sidecars:?} {models:?}"
    );

    let report_ = rollout_under_load(&setup, "iris-http", &mut manifest, 2, |m| {
        set_env(m, "IRIS_ROLLOUT", "2");
    })
    .await?;
    report("proxy-mode rollout", &report_);
    assert_eq!(
        report_.failed, 0,
        "requests failed during the rollout: {:?}",
        report_.failures
    );

    // On deletion the model stops first and the sidecar after it.
    let pod = setup.pods("iris-http").await?.remove(0);
    let name = pod.name_any();
    let watcher = {
        let api = setup.api::<Pod>();
        let name = name.clone();
        tokio::spawn(async move { watch_until_deleted(&api, &name).await })
    };
    setup
        .api::<Pod>()
        .delete(&name, &DeleteParams::default())
        .await?;
    let terminated = watcher.await??;
    let finished = |c: &str| terminated.get(c).and_then(|t| t.finished_at.clone());
    let sidecar_name = sidecars[0].0.as_str();
    if let (Some(model), Some(sidecar)) = (finished("model"), finished(sidecar_name)) {
        assert!(
            model.0 <= sidecar.0,
            "the sidecar stopped before the model: model {model:?}, sidecar {sidecar:?}"
        );
        assert_eq!(
            terminated["model"].exit_code, 0,
            "the model stops cleanly on SIGTERM: {terminated:?}"
        );
        assert_eq!(terminated[sidecar_name].exit_code, 0, "{terminated:?}");
    } else {
        bail!("did not see both containers terminate: {terminated:?}");
    }
    setup.finish().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn a_worker_that_fails_at_start_stalls_with_its_error_and_a_fix_recovers() -> Result<()> {
    let setup = Setup::new("rn-crash").await?;
    let mut manifest = setup.iris("iris", |m| {
        m["spec"]["model"]["command"] = json!([
            "python3",
            "-c",
            "import model_library_that_is_not_installed"
        ]);
        m["spec"]["model"]["args"] = json!([]);
        m["spec"]["lifecycle"]["maxWorkerRestarts"] = json!(2);
    })?;
    let applied = std::time::Instant::now();
    setup.apply(&manifest).await?;
    let message = setup.wait_stalled("iris", "WorkerCrashLoop").await?;
    eprintln!(
        "crash loop reported {:.1}s after apply: {message}",
        applied.elapsed().as_secs_f64()
    );
    assert!(
        message.contains("ModuleNotFoundError")
            && message.contains("model_library_that_is_not_installed"),
        "the status must carry the worker's last error lines: {message}"
    );

    let fixed = setup.iris("iris", |_| {})?;
    manifest["spec"]["model"] = fixed["spec"]["model"].clone();
    setup.apply(&manifest).await?;
    let ready = setup.wait_ready("iris").await?;
    assert!(is(&ready, "Stalled", "False"), "{}", summary(&ready));
    setup.finish().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn an_image_that_cannot_be_pulled_is_named_in_status_then_stalls_at_the_deadline()
-> Result<()> {
    let setup = Setup::new("rn-pull").await?;
    // Nothing listens on port 1 of loopback: the pull fails at once, on this machine.
    let image = "127.0.0.1:1/modelserver-e2e/no-such-model:1.0";
    let manifest = setup.iris("iris", |m| {
        m["spec"]["image"] = json!(image);
        m["spec"]["lifecycle"]["startupTimeout"] = json!("10s");
    })?;
    setup.apply(&manifest).await?;
    let pulling = setup
        .wait_status(
            "iris",
            "Reconciling while the kubelet retries the pull",
            CONVERGE,
            |o| {
                condition(o, "Reconciling")
                    .is_some_and(|c| c.status == "True" && c.message.contains(image))
            },
        )
        .await?;
    assert!(!is(&pulling, "Ready", "True"), "{}", summary(&pulling));
    // kube-controller-manager marks the progress deadline (derived from the 10 s startup budget).
    let message = setup
        .wait_stalled("iris", "ProgressDeadlineExceeded")
        .await?;
    assert!(
        message.contains(image),
        "the stalled status must name the image: {message}"
    );
    setup.finish().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn a_worker_killed_by_the_memory_limit_is_named_as_out_of_memory() -> Result<()> {
    let setup = Setup::new("rn-oom").await?;
    let manifest = setup.iris("iris", |m| {
        // Fills 400 MiB under a 128Mi limit: the cgroup's OOM killer picks the worker.
        m["spec"]["model"]["command"] = json!([
            "python3",
            "-c",
            "import time\nb = bytearray(400 * 1024 * 1024)\ntime.sleep(3600)"
        ]);
        m["spec"]["model"]["args"] = json!([]);
        m["spec"]["resources"]["limits"]["memory"] = json!("128Mi");
        m["spec"]["lifecycle"]["maxWorkerRestarts"] = json!(2);
    })?;
    setup.apply(&manifest).await?;
    let message = setup.wait_stalled("iris", "WorkerCrashLoop").await?;
    assert!(
        message.contains("killed by SIGKILL, likely out of memory (limit 128Mi)"),
        "the status must say the worker ran out of memory: {message}"
    );
    setup.finish().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn a_missing_secret_stalls_the_new_pods_while_the_old_ones_serve_and_creating_it_recovers()
-> Result<()> {
    let setup = Setup::new("rn-secret").await?;
    let mut manifest = setup.iris("iris", |_| {})?;
    setup.apply(&manifest).await?;
    setup.wait_ready("iris").await?;
    let old = setup.wait_pods_ready("iris", 1).await?;

    manifest["spec"]["server"]["auth"] =
        json!({"tokenSecretRef": {"name": "iris-token", "key": "token"}});
    setup.apply(&manifest).await?;
    let message = setup.wait_stalled("iris", "SecretNotFound").await?;
    assert!(
        message.contains("iris-token"),
        "the status must name the Secret: {message}"
    );
    // The old pod still serves (maxUnavailable 0), without auth as before.
    let addr = setup.service_addr("iris").await?;
    wait_service_answers(addr, &[])
        .await
        .context("the old pod must keep serving")?;
    assert!(pod_ready(
        &setup.api::<Pod>().get(&old[0].name_any()).await?
    ));

    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "iris-token", "namespace": setup.ns()},
        "stringData": {"token": "s3cret-e2e-token"},
    }))?;
    setup
        .api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await?;
    setup.wait_ready("iris").await?;
    let pods = setup.wait_pods_ready("iris", 1).await?;
    assert_ne!(
        pods[0].name_any(),
        old[0].name_any(),
        "the new pod must have replaced the old one"
    );
    // Only the new pod is left behind the Service: it wants the token.
    wait_service_answers(addr, &[("authorization", "Bearer s3cret-e2e-token")]).await?;
    let (code, body) = predict(&addr.to_string(), &[]).await?;
    assert_eq!(code, 401, "auth is now required: {body}");
    setup.finish().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn the_disruption_budget_refuses_an_eviction_that_would_break_it() -> Result<()> {
    let setup = Setup::new("rn-pdb").await?;
    let manifest = setup.iris("iris", |m| {
        m["spec"]["replicas"] = json!(2);
    })?;
    setup.apply(&manifest).await?;
    setup.wait_ready("iris").await?;
    let pods = setup.wait_pods_ready("iris", 2).await?;
    // The budget's status must have seen both pods before it allows anything.
    let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> = setup.api();
    wait_until("the budget allows one disruption", CONVERGE, || {
        let pdbs = pdbs.clone();
        async move {
            let pdb = pdbs.get("iris").await.map_err(|e| e.to_string())?;
            let allowed = pdb.status.map(|s| s.disruptions_allowed).unwrap_or(0);
            if allowed == 1 {
                Ok(Some(()))
            } else {
                Err(format!("disruptionsAllowed {allowed}"))
            }
        }
    })
    .await?;
    // kubectl, not the kube client: the client retries a 429 until the budget allows it.
    let evict = |pod: String| {
        let ns = setup.ns().to_owned();
        let kubectl = setup.kubectl.clone();
        async move {
            let eviction = json!({
                "apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": pod, "namespace": ns},
            })
            .to_string();
            kubectl
                .run(
                    &[
                        "create",
                        "--raw",
                        &format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction"),
                        "-f",
                        "-",
                    ],
                    Some(&eviction),
                )
                .await
        }
    };
    let first = evict(pods[0].name_any()).await?;
    assert!(
        first.success,
        "the first eviction must be allowed: {}",
        first.stderr
    );
    let second = evict(pods[1].name_any()).await?;
    assert!(
        !second.success,
        "the second eviction was not refused: {}",
        second.stdout
    );
    assert!(
        second.stderr.contains("disruption budget") && second.stderr.contains("TooManyRequests"),
        "{}",
        second.stderr
    );
    setup.finish().await;
    Ok(())
}

/// Waits until `load` has answered `more` requests beyond what it had answered.
async fn wait_answered(load: &Load, what: &str, more: u64) -> Result<()> {
    let target = load.answered() + more;
    wait_until(what, Duration::from_secs(120), || {
        let answered = load.answered();
        async move {
            if answered >= target {
                Ok(Some(()))
            } else {
                Err(format!("{answered} of {target} answered"))
            }
        }
    })
    .await?;
    Ok(())
}

/// The canary behind the shared Service on the real node, under load through the ClusterIP:
/// added, measured, promoted, then a second canary added and aborted. No request may fail.
#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn a_canary_takes_its_share_and_its_promotion_and_abort_under_load_lose_no_request()
-> Result<()> {
    let setup = Setup::new("rn-canary").await?;
    let mut manifest = setup.iris("iris", |m| {
        m["spec"]["replicas"] = json!(3);
        m["spec"]["server"]["workers"] = json!(1);
        set_env(m, "MODEL_VERSION", "v1");
    })?;
    setup.apply(&manifest).await?;
    setup.wait_ready("iris").await?;
    setup.wait_pods_ready("iris", 3).await?;
    let addr = setup.service_addr("iris").await?;
    wait_service_answers(addr, &[]).await?;
    let stable_pods = format!("{INSTANCE_LABEL}=iris,!{CANARY_OF_LABEL}");
    let canary_pods = format!("{CANARY_OF_LABEL}=iris");
    let canary = |version: &str, weight: i32| json!({"weight": weight, "model": {"env": [{"name": "MODEL_VERSION", "value": version}]}});

    // 1. A canary at 34% of 3 pods: one canary pod, and the stable version gives up one pod
    //    once the canary's is available. Under load.
    let load = Load::start(addr, "/predict", 4, &[]);
    wait_answered(&load, "load flowing", 50).await?;
    manifest["spec"]["canary"] = canary("v2", 34);
    setup.apply(&manifest).await?;
    setup
        .wait_status("iris", "the canary ready", CONVERGE, |o| {
            is(o, "CanaryReady", "True") && is(o, "Ready", "True") && is(o, "Reconciling", "False")
        })
        .await?;
    setup.wait_selected_pods_ready(&stable_pods, 2).await?;
    setup.wait_selected_pods_ready(&canary_pods, 1).await?;
    wait_answered(&load, "load on both versions", 50).await?;
    let added = load.stop().await;
    report("adding the canary", &added);
    assert_eq!(added.failed, 0, "adding the canary: {:?}", added.failures);

    // 2. The split, counted per version on new connections (kube-proxy picks a pod per
    //    connection; a kept-alive connection stays on one pod).
    let split = Load::start_mixed(addr, "/predict", 4, 0, &[]);
    wait_answered(&split, "the split sample", 600).await?;
    let split = split.stop().await;
    let total: u64 = split.versions.values().sum();
    let canary_share = split.versions.get("v2").copied().unwrap_or(0) as f64 / total.max(1) as f64;
    eprintln!(
        "canary split: {:?} of {total}: canary {:.1}% (1 of 3 ready pods, weight 34)",
        split.versions,
        canary_share * 100.0
    );
    assert_eq!(split.failed, 0, "{:?}", split.failures);
    assert!(
        (0.15..=0.55).contains(&canary_share),
        "the canary got {:.1}% of the requests: {:?}",
        canary_share * 100.0,
        split.versions
    );
    let status = setup.api::<ModelServer>().get("iris").await?;
    let traffic = status
        .status
        .as_ref()
        .and_then(|s| s.canary.as_ref())
        .and_then(|c| c.traffic_percent);
    assert_eq!(traffic, Some(33), "1 of 3 ready pods");

    // 3. Promotion: the canary's change moves into the spec and spec.canary goes, under load.
    let load = Load::start(addr, "/predict", 4, &[]);
    wait_answered(&load, "load flowing", 50).await?;
    set_env(&mut manifest, "MODEL_VERSION", "v2");
    if let Some(spec) = manifest["spec"].as_object_mut() {
        spec.remove("canary");
    }
    setup.apply(&manifest).await?;
    setup
        .wait_status("iris", "the promotion rolled out", CONVERGE, |o| {
            is(o, "Ready", "True") && o.status.as_ref().is_some_and(|s| s.canary.is_none())
        })
        .await?;
    setup.wait_selected_pods_ready(&stable_pods, 3).await?;
    setup.wait_selected_pods_ready(&canary_pods, 0).await?;
    let before = load.stop().await;
    let after = Load::start_mixed(addr, "/predict", 2, 0, &[]);
    wait_answered(&after, "answers after the promotion", 100).await?;
    let after = after.stop().await;
    report("promotion", &before);
    assert_eq!(before.failed, 0, "promotion: {:?}", before.failures);
    assert_eq!(
        after.versions.keys().collect::<Vec<_>>(),
        ["v2"],
        "after the promotion only v2 answers: {:?}",
        after.versions
    );

    // 4. Abort: a second canary comes up, then spec.canary goes again, under load.
    manifest["spec"]["canary"] = canary("v3", 50);
    setup.apply(&manifest).await?;
    setup
        .wait_status("iris", "the second canary ready", CONVERGE, |o| {
            is(o, "CanaryReady", "True") && is(o, "Reconciling", "False")
        })
        .await?;
    let load = Load::start(addr, "/predict", 4, &[]);
    wait_answered(&load, "load on both versions", 100).await?;
    if let Some(spec) = manifest["spec"].as_object_mut() {
        spec.remove("canary");
    }
    setup.apply(&manifest).await?;
    setup.wait_selected_pods_ready(&canary_pods, 0).await?;
    setup.wait_selected_pods_ready(&stable_pods, 3).await?;
    setup.wait_ready("iris").await?;
    wait_answered(&load, "load after the abort", 50).await?;
    let aborted = load.stop().await;
    report("abort", &aborted);
    eprintln!("abort: answers by version {:?}", aborted.versions);
    assert_eq!(aborted.failed, 0, "abort: {:?}", aborted.failures);
    assert!(
        aborted.versions.contains_key("v3"),
        "the canary answered before the abort: {:?}",
        aborted.versions
    );
    setup.finish().await;
    Ok(())
}

/// Waits until the Deployment `name` has `count` replicas, all ready, and no other pods; returns
/// how long that took.
async fn wait_scaled(setup: &Setup, name: &str, count: usize, what: &str) -> Result<Duration> {
    let started = std::time::Instant::now();
    let deployments = setup.api::<k8s_openapi::api::apps::v1::Deployment>();
    wait_until(what, CONVERGE, || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get(name).await.map_err(|e| e.to_string())?;
            let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let ready = d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            let total = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let count = i32::try_from(count).unwrap_or(i32::MAX);
            if desired == count && ready == count && total == count {
                Ok(Some(()))
            } else {
                Err(format!("desired {desired}, ready {ready}, total {total}"))
            }
        }
    })
    .await?;
    setup.wait_pods_ready(name, count).await?;
    Ok(started.elapsed())
}

/// Concurrency autoscaling for real: a Prometheus scraping the real node's sidecars, KEDA's
/// operator and metrics API server, the kube-controller-manager's HPA controller. Load through
/// the ClusterIP scales the ModelServer up; when it drops to a trickle, back down; no request
/// fails on the way.
#[tokio::test]
#[ignore = "needs the local control plane with the real node: make e2e"]
async fn concurrency_autoscaling_with_keda_scales_up_under_load_and_back_down_losing_nothing()
-> Result<()> {
    // KEDA's CRDs before the operator starts, so its discovery finds them at once.
    modelserver_e2e::install_keda_crds(&client().await?, &Kubectl::new().await?).await?;
    let prometheus_address = autoscale::Prometheus::address()?;
    let prometheus_url = format!("http://{prometheus_address}");
    let setup =
        Setup::with_operator_args("rn-keda", &["--prometheus-url", &prometheus_url]).await?;
    let kubeconfig = modelserver_e2e::kubeconfig_path().await?;
    let operator_metrics = setup
        .operator
        .as_ref()
        .map(|o| o.metrics_addr.clone())
        .context("operator")?;
    let prometheus = autoscale::Prometheus::start(
        setup.dir.path(),
        &prometheus_address,
        setup.ns(),
        &kubeconfig,
        &operator_metrics,
    )
    .await?;
    let keda =
        autoscale::Keda::start(&setup.client, setup.dir.path(), setup.ns(), &kubeconfig).await?;
    let logs = || {
        format!(
            "{}\n{}\n{}\n{}",
            autoscale::tail(&keda.operator_log),
            autoscale::tail(&keda.adapter_log),
            autoscale::tail(&prometheus.log),
            setup.operator_log()
        )
    };

    let manifest = setup.iris("iris", |m| {
        if let Some(spec) = m["spec"].as_object_mut() {
            spec.remove("replicas");
        }
        m["spec"]["server"]["workers"] = json!(1);
        m["spec"]["server"]["executorThreads"] = json!(2);
        m["spec"]["server"]["maxQueue"] = json!(256);
        // Requests wait while pods are added (about 15 s here) rather than being refused after
        // the default 1 s: a model that autoscales wants a queue budget as long as a scale-up.
        m["spec"]["server"]["maxQueueWait"] = json!("30s");
        m["spec"]["model"]["args"] = json!(["--model", "/app/model.json", "--predict-delay", "0.25"]);
        m["spec"]["autoscaling"] = json!({"metric": "concurrency", "minReplicas": 1, "maxReplicas": 3,
            "targetConcurrency": 2, "scaleDownDelay": "20s"});
    })?;
    setup.apply(&manifest).await?;
    setup.wait_ready("iris").await?;
    setup.wait_pods_ready("iris", 1).await?;
    let series = format!(
        "count(modelserver_ready{{namespace=\"{}\",modelserver=\"iris\"}})",
        setup.ns()
    );
    wait_until("Prometheus scraping the sidecar", CONVERGE, || {
        let (prometheus, series) = (&prometheus, series.clone());
        async move {
            match prometheus.query(&series).await {
                Ok(v) if v >= 1.0 => Ok(Some(())),
                Ok(v) => Err(format!("{v} sidecars scraped")),
                Err(e) => Err(format!("{e:#}")),
            }
        }
    })
    .await
    .with_context(logs)?;

    // Nine clients, each holding a request for 250 ms: about nine requests in flight and waiting,
    // 2 per pod wanted: KEDA's HPA asks for 5, capped at 3.
    let addr = setup.service_addr("iris").await?;
    wait_service_answers(addr, &[]).await?;
    let load_started = std::time::Instant::now();
    let load = Load::start(addr, "/predict", 8, &[]);
    let up = wait_scaled(&setup, "iris", 3, "scaled up to 3 ready pods under load")
        .await
        .with_context(logs)?;
    wait_answered(&load, "load on the new pods", 100).await?;
    // The chart's Grafana dashboard, every query against this Prometheus under this load.
    dashboard_queries_have_data(&prometheus, setup.ns(), "iris").await?;
    let busy = load.stop().await;

    // A trickle (one client): KEDA's HPA wants one pod again after the 20 s window.
    let trickle = Load::start_mixed(addr, "/predict", 1, 0, &[]);
    let down = wait_scaled(&setup, "iris", 1, "scaled back down to 1 pod")
        .await
        .with_context(logs)?;
    wait_answered(&trickle, "answers after the scale-down", 10).await?;
    let quiet = trickle.stop().await;
    eprintln!(
        "concurrency autoscaling: 1 -> 3 pods in {:.1}s under load, 3 -> 1 in {:.1}s after it \
         (scaleDownDelay 20s); {} requests under load, {} failed; {} during the scale-down, {} failed",
        up.as_secs_f64(),
        down.as_secs_f64(),
        busy.total(),
        busy.failed,
        quiet.total(),
        quiet.failed
    );
    report("scale-up", &busy);
    report("scale-down", &quiet);
    assert_eq!(busy.failed, 0, "under load: {:?}", busy.failures);
    assert_eq!(
        quiet.failed, 0,
        "during the scale-down: {:?}",
        quiet.failures
    );
    let ms = setup.api::<ModelServer>().get("iris").await?;
    assert!(is(&ms, "Ready", "True"), "{}", summary(&ms));
    // The picture of the dashboard in the docs comes from here (hack/dashboard-png.sh).
    if let Some(out) = std::env::var_os("MODELSERVER_E2E_DASHBOARD_PNG") {
        let seconds = (load_started.elapsed().as_secs() + 30).to_string();
        let status = tokio::process::Command::new(repo_root().join("hack/dashboard-png.sh"))
            .args([
                prometheus.url.as_str(),
                setup.ns(),
                "iris",
                seconds.as_str(),
            ])
            .arg(&out)
            .status()
            .await?;
        ensure!(status.success(), "hack/dashboard-png.sh failed");
    }
    keda.stop().await;
    setup.finish().await;
    Ok(())
}

/// Every query of the chart's Grafana dashboard (its variables set to `namespace` and `name`,
/// `$__rate_interval` to 1m) runs on `prometheus`, and each returns data, but those that count
/// what a healthy run does not have: 5xx and 503 answers, failed reconciles, and the operator's
/// API reads (it reads from its caches: none in steady state). `make chart-prometheus-test`
/// sets those off on purpose.
async fn dashboard_queries_have_data(
    prometheus: &autoscale::Prometheus,
    namespace: &str,
    name: &str,
) -> Result<()> {
    let path = repo_root().join("charts/modelserver-operator/files/dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut empty = Vec::new();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().context("a target without expr")?;
            let concrete = expr
                .replace("$__rate_interval", "1m")
                .replace("$namespace", namespace)
                .replace("$modelserver", name);
            let series = prometheus.series(&concrete).await?;
            checked += 1;
            let healthy_empty = [
                "code=~\"5..\"",
                "code=\"503\"",
                "result=\"error\"",
                "api_reads_total",
            ]
            .iter()
            .any(|p| concrete.contains(p));
            if series.is_empty() && !healthy_empty {
                empty.push(format!("{}: {concrete}", panel["title"]));
            }
        }
    }
    eprintln!(
        "dashboard: {checked} queries run on the live Prometheus, {} empty",
        empty.len()
    );
    ensure!(checked >= 20, "only {checked} dashboard queries");
    ensure!(
        empty.is_empty(),
        "dashboard queries without data: {empty:#?}"
    );
    Ok(())
}
