//! Running the real `modelserver-operator` binary against the local control plane, as the
//! ServiceAccount the Helm chart creates, with exactly the RBAC objects the chart renders (with
//! leader election on, which adds the Role for the Lease).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use kube::Client;
use modelserver_crds::ModelServer;
use modelserver_e2e::gitops_health::{expected_for, gitops_health};
use modelserver_e2e::{
    Kubectl, apply_manifest, kubeconfig_path, read_yaml_documents, repo_root, wait_until,
};
use serde_json::Value;
use tokio::process::{Child, Command};

/// The chart the RBAC comes from.
pub const CHART: &str = "charts/modelserver-operator";
/// The namespace the chart is rendered for.
pub const OPERATOR_NAMESPACE: &str = "modelserver-system";
/// Kinds of the bundle the harness applies: the identity and its permissions, not the Deployment.
const RBAC_KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// The operator's ServiceAccount, set up from the bundle.
#[derive(Debug, Clone)]
pub struct OperatorIdentity {
    /// Namespace of the ServiceAccount (and of the leader-election Lease).
    pub namespace: String,
    /// A kubeconfig authenticating as the ServiceAccount.
    pub kubeconfig: PathBuf,
}

/// `helm template` of the chart, with leader election on.
async fn chart_documents(dir: &Path) -> Result<Vec<Value>> {
    let tools = repo_root().join("hack/chart/tools.sh");
    let helm = Command::new(&tools).arg("helm").output().await?;
    if !helm.status.success() {
        bail!(
            "{} helm: {}",
            tools.display(),
            String::from_utf8_lossy(&helm.stderr)
        );
    }
    let helm = String::from_utf8(helm.stdout)?.trim().to_owned();
    let rendered = Command::new(&helm)
        .args(["template", "modelserver-operator"])
        .arg(repo_root().join(CHART))
        .args([
            "--namespace",
            OPERATOR_NAMESPACE,
            "--set",
            "leaderElection.enabled=true",
        ])
        .output()
        .await?;
    if !rendered.status.success() {
        bail!(
            "helm template: {}",
            String::from_utf8_lossy(&rendered.stderr)
        );
    }
    let file = dir.join("chart.yaml");
    std::fs::write(&file, &rendered.stdout)?;
    Ok(read_yaml_documents(&file)?)
}

/// Applies the chart's RBAC objects and writes a kubeconfig with a token of its ServiceAccount.
pub async fn operator_identity(
    client: &Client,
    kubectl: &Kubectl,
    dir: &Path,
) -> Result<OperatorIdentity> {
    let documents = chart_documents(dir).await?;
    apply_manifest(
        client,
        OPERATOR_NAMESPACE,
        &serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}),
    )
    .await?;
    let mut service_account = None;
    let kind = |d: &Value| {
        d.get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    // Namespaces first, so the namespaced objects have somewhere to go.
    let mut ordered: Vec<&Value> = documents
        .iter()
        .filter(|d| kind(d) == "Namespace")
        .collect();
    ordered.extend(
        documents
            .iter()
            .filter(|d| kind(d) != "Namespace" && RBAC_KINDS.contains(&kind(d).as_str())),
    );
    for document in ordered {
        let namespace = document
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(OPERATOR_NAMESPACE)
            .to_owned();
        if kind(document) == "ServiceAccount" {
            let name = document
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            service_account = Some((namespace.clone(), name.to_owned()));
        }
        apply_manifest(client, &namespace, document)
            .await
            .with_context(|| format!("applying {} from {CHART}", kind(document)))?;
    }
    let Some((namespace, name)) = service_account else {
        bail!("{CHART} renders no ServiceAccount");
    };
    let token = kubectl
        .run_ok(&[
            "create",
            "token",
            &name,
            "-n",
            &namespace,
            "--duration",
            "2h",
        ])
        .await?
        .trim()
        .to_owned();
    let kubeconfig = dir.join("operator.kubeconfig");
    write_token_kubeconfig(&kubeconfig, &token).await?;
    Ok(OperatorIdentity {
        namespace,
        kubeconfig,
    })
}

/// The admin kubeconfig with its user replaced by a bearer token (JSON is valid YAML).
async fn write_token_kubeconfig(path: &Path, token: &str) -> Result<()> {
    let admin = kubeconfig_path().await?;
    let text = std::fs::read_to_string(&admin)?;
    let mut config: Value =
        serde_saphyr::from_str(&text).context("parsing the admin kubeconfig")?;
    if let Some(users) = config.get_mut("users").and_then(Value::as_array_mut) {
        for user in users {
            user["user"] = serde_json::json!({ "token": token });
        }
    }
    std::fs::write(path, serde_json::to_vec_pretty(&config)?)?;
    Ok(())
}

/// The operator binary next to the test binaries (`make e2e` builds it first).
pub fn operator_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>/modelserver-operator
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?;
    let binary = profile_dir.join("modelserver-operator");
    if !binary.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p modelserver-operator` (make e2e does)",
            binary.display()
        );
    }
    Ok(binary)
}

/// The sidecar image of pods on kwok nodes, which never pull it.
const PLACEHOLDER_SIDECAR_IMAGE: &str = "registry.example.com/modelserver/modelserver-sidecar:e2e";

/// A running operator process, killed on drop.
pub struct Operator {
    child: Option<Child>,
    /// Where its /metrics, /healthz and /readyz are.
    pub metrics_addr: String,
    log: PathBuf,
}

impl Operator {
    /// Starts `modelserver-operator run` as the ServiceAccount, watching `namespace`, with
    /// `extra` flags; returns once /readyz answers 200. Pods get a placeholder sidecar image
    /// (kwok nodes run nothing).
    pub async fn start(
        identity: &OperatorIdentity,
        namespace: &str,
        dir: &Path,
        name: &str,
        extra: &[&str],
    ) -> Result<Self> {
        Self::start_with_image(
            identity,
            namespace,
            dir,
            name,
            PLACEHOLDER_SIDECAR_IMAGE,
            extra,
        )
        .await
    }

    /// [`Operator::start`] with a real sidecar image, for pods that run on the real node.
    pub async fn start_with_image(
        identity: &OperatorIdentity,
        namespace: &str,
        dir: &Path,
        name: &str,
        sidecar_image: &str,
        extra: &[&str],
    ) -> Result<Self> {
        let port = free_port()?;
        let metrics_addr = format!("127.0.0.1:{port}");
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(operator_binary()?)
            .args([
                "run",
                "--namespace",
                namespace,
                "--metrics-addr",
                &metrics_addr,
            ])
            .args(["--sidecar-image", sidecar_image])
            .args(["--leader-election-namespace", &identity.namespace])
            .args(extra)
            .env("KUBECONFIG", &identity.kubeconfig)
            .env("POD_NAME", name)
            .env("RUST_LOG", "info,modelserver_operator=debug")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .context("starting modelserver-operator")?;
        let operator = Self {
            child: Some(child),
            metrics_addr,
            log,
        };
        let url = format!("http://{}/readyz", operator.metrics_addr);
        wait_until(
            &format!("operator {name} ready"),
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    match reqwest::get(&url).await {
                        Ok(r) if r.status().is_success() => Ok(Some(())),
                        Ok(r) => Err(format!("/readyz answered {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", operator.log_tail()))?;
        Ok(operator)
    }

    /// The metrics, as `name{labels}` -> value.
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>> {
        let text = reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(name, value)| value.parse().ok().map(|v| (name.to_owned(), v)))
            .collect())
    }

    /// Sum of a metric over all its label sets.
    pub async fn total(&self, metric: &str) -> Result<f64> {
        Ok(self
            .metrics()
            .await?
            .iter()
            .filter(|(name, _)| name.as_str() == metric || name.starts_with(&format!("{metric}{{")))
            .map(|(_, v)| v)
            .sum())
    }

    /// Stops the process with SIGTERM (a graceful stop) and waits for it.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        self.signal("-TERM").await
    }

    /// Kills the process with SIGKILL (no chance to release anything) and waits for it.
    pub async fn kill(&mut self) -> Result<std::process::ExitStatus> {
        self.signal("-KILL").await
    }

    async fn signal(&mut self, signal: &str) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        let pid = child.id().context("no pid")?;
        Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await?;
        Ok(tokio::time::timeout(Duration::from_secs(30), child.wait()).await??)
    }

    /// The last lines the operator logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(120);
        format!(
            "--- operator log ({}) ---\n{}",
            self.log.display(),
            lines[start..].join("\n")
        )
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The condition of `type_` in a ModelServer's status.
pub fn condition<'a>(
    object: &'a ModelServer,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    object
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the condition `type_` has `status`.
pub fn is(object: &ModelServer, type_: &str, status: &str) -> bool {
    condition(object, type_).is_some_and(|c| c.status == status)
}

/// Generation, observed generation and conditions, for failure messages.
pub fn summary(object: &ModelServer) -> String {
    let conditions: Vec<String> = object
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .map(|c| format!("{}={}({}: {})", c.type_, c.status, c.reason, c.message))
        .collect();
    format!(
        "generation {:?}, observedGeneration {:?}, {}",
        object.metadata.generation,
        object.status.as_ref().and_then(|s| s.observed_generation),
        conditions.join(" ")
    )
}

/// Waits until the ModelServer's status describes its current generation and `check` holds;
/// then the GitOps tools, run with their own code on that object, must agree with its
/// conditions ([`assert_gitops_agree`]): every phase a test waits for is checked that way.
pub async fn wait_status(
    api: &kube::Api<ModelServer>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&ModelServer) -> bool,
) -> Result<ModelServer> {
    let object = wait_status_only(api, name, what, timeout, check).await?;
    assert_gitops_agree(&object).await?;
    Ok(object)
}

/// Flux's kstatus and Argo CD's health check (gopher-lua) on `object` say what its conditions
/// say: Stalled is Failed/Degraded, Ready is Current/Healthy, otherwise InProgress/Progressing.
pub async fn assert_gitops_agree(object: &ModelServer) -> Result<()> {
    let verdicts = gitops_health(&serde_json::to_value(object)?).await?;
    let (kstatus, argocd) = expected_for(
        is(object, "Stalled", "True"),
        is(object, "Reconciling", "True"),
        is(object, "Ready", "True"),
    );
    if verdicts.kstatus.status != kstatus || verdicts.argocd.status != argocd {
        bail!(
            "the GitOps tools disagree with the conditions ({}): kstatus {:?}, Argo CD {:?}; expected {kstatus} and {argocd}",
            summary(object),
            verdicts.kstatus,
            verdicts.argocd
        );
    }
    Ok(())
}

/// [`wait_status`] without the GitOps check.
pub async fn wait_status_only(
    api: &kube::Api<ModelServer>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&ModelServer) -> bool,
) -> Result<ModelServer> {
    Ok(wait_until(what, timeout, || {
        let api = api.clone();
        let check = &check;
        async move {
            let object = api.get(name).await.map_err(|e| e.to_string())?;
            let current = object.status.as_ref().and_then(|s| s.observed_generation)
                == object.metadata.generation;
            if current && check(&object) {
                Ok(Some(object))
            } else {
                Err(summary(&object))
            }
        }
    })
    .await?)
}
