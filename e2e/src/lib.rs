//! End-to-end test support: the local control plane and helpers.
//!
//! The control plane is `e2e/cluster.sh` (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kwok). `make e2e` starts it, exports [`KUBECONFIG_ENV`] and [`KUBECTL_ENV`],
//! runs this crate's `#[ignore]`d tests with `--include-ignored`, and stops it. Without those
//! variables the helpers ask `e2e/cluster.sh` (so the tests also run against `make cluster-up`).

pub mod gitops_health;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind, ObjectMeta};
use kube::discovery::{Scope, pinned_kind};
use kube::{Client, Config, Resource};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Environment variable with the path of the admin kubeconfig (set by `make e2e`).
pub const KUBECONFIG_ENV: &str = "MODELSERVER_E2E_KUBECONFIG";
/// Environment variable with the path of the pinned kubectl binary (set by `make e2e`).
pub const KUBECTL_ENV: &str = "MODELSERVER_E2E_KUBECTL";
/// The field manager the e2e suite applies objects with.
pub const FIELD_MANAGER: &str = "modelserver-e2e";
/// The name of the ModelServer CRD.
pub const CRD_NAME: &str = "modelservers.modelserver.dev";
/// The CRD file the operator ships, relative to the repository root.
pub const CRD_FILE: &str = "crds/modelserver.dev_modelservers.yaml";

/// Errors of the e2e helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `e2e/cluster.sh` failed or could not be run.
    #[error("e2e/cluster.sh {command} failed (is the cluster up? run `make cluster-up`): {detail}")]
    ClusterScript {
        /// The subcommand.
        command: String,
        /// What went wrong.
        detail: String,
    },
    /// A file could not be read.
    #[error("reading {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A YAML file could not be parsed.
    #[error("parsing {path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// The kubeconfig could not be loaded.
    #[error("kubeconfig {path}: {detail}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A Kubernetes API call failed.
    #[error("{context}: {cause}")]
    Kube {
        /// What was being done.
        context: String,
        /// The client's error.
        cause: Box<kube::Error>,
    },
    /// kubectl could not be started or failed.
    #[error("kubectl {args}: {detail}")]
    Kubectl {
        /// The arguments.
        args: String,
        /// What went wrong (its stderr when it ran).
        detail: String,
    },
    /// A condition did not hold before its deadline.
    #[error("timed out after {timeout:?} waiting for {what}; last observation: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        timeout: Duration,
        /// The last thing the check saw.
        last: String,
    },
    /// A manifest is not a Kubernetes object.
    #[error("{0}")]
    Manifest(String),
}

/// Result of the e2e helpers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn kube_err(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let context = context.into();
    move |source| Error::Kube {
        context,
        cause: Box::new(source),
    }
}

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Runs `e2e/cluster.sh <command>` and returns its trimmed stdout.
pub async fn cluster_script(command: &str) -> Result<String> {
    let script = repo_root().join("e2e/cluster.sh");
    let out = Command::new(&script)
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::ClusterScript {
            command: command.to_owned(),
            detail: format!("cannot run {}: {e}", script.display()),
        })?;
    if !out.status.success() {
        return Err(Error::ClusterScript {
            command: command.to_owned(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn path_from_env_or_script(var: &str, command: &str) -> Result<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
        _ => cluster_script(command).await.map(PathBuf::from),
    }
}

/// The admin kubeconfig: [`KUBECONFIG_ENV`], else what `e2e/cluster.sh kubeconfig` prints.
pub async fn kubeconfig_path() -> Result<PathBuf> {
    path_from_env_or_script(KUBECONFIG_ENV, "kubeconfig").await
}

/// The pinned kubectl: [`KUBECTL_ENV`], else what `e2e/cluster.sh kubectl-path` prints.
pub async fn kubectl_path() -> Result<PathBuf> {
    path_from_env_or_script(KUBECTL_ENV, "kubectl-path").await
}

/// A kube [`Client`] for the local cluster, authenticated as the cluster admin.
pub async fn client() -> Result<Client> {
    let path = kubeconfig_path().await?;
    let kc_err = |detail: String| Error::Kubeconfig {
        path: path.clone(),
        detail,
    };
    let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| kc_err(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| kc_err(e.to_string()))?;
    Client::try_from(config).map_err(kube_err("building the client"))
}

/// A kube [`Client`] for the local cluster that authenticates with a bearer `token` (e.g. a
/// ServiceAccount token from the TokenRequest API) instead of the admin certificate.
pub async fn client_with_token(token: &str) -> Result<Client> {
    let path = kubeconfig_path().await?;
    let kc_err = |detail: String| Error::Kubeconfig {
        path: path.clone(),
        detail,
    };
    let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| kc_err(e.to_string()))?;
    let mut value = serde_json::to_value(&kubeconfig).map_err(|e| kc_err(e.to_string()))?;
    let users = value
        .get_mut("users")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| kc_err("no users".to_owned()))?;
    for user in users {
        user["user"] = serde_json::json!({ "token": token });
    }
    let kubeconfig: Kubeconfig =
        serde_json::from_value(value).map_err(|e| kc_err(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| kc_err(e.to_string()))?;
    Client::try_from(config).map_err(kube_err("building the client"))
}

/// Polls `check` every 250 ms until it yields `Ok(Some(value))`, or fails after `timeout`.
///
/// `check` returns `Ok(None)` (not yet) or `Err(observation)`, which is kept for the timeout
/// message; neither stops the polling. `what` names the condition in that message.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<Option<T>, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("nothing yet");
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(Some(value))) => return Ok(value),
            Ok(Ok(None)) => {}
            Ok(Err(observation)) => last = observation,
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What a kubectl run printed.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    /// Whether it exited 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// The pinned kubectl (the version of the cluster), bound to the admin kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// Locates kubectl and the kubeconfig as [`kubectl_path`] and [`kubeconfig_path`] do.
    pub async fn new() -> Result<Self> {
        Ok(Self {
            binary: kubectl_path().await?,
            kubeconfig: kubeconfig_path().await?,
        })
    }

    /// The kubectl binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs kubectl with `args` (and `stdin`, if any); a non-zero exit is not an error here.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<KubectlOutput> {
        let joined = args.join(" ");
        // The discovery cache lives beside the kubeconfig, in the cluster's state dir.
        let cache = self
            .kubeconfig
            .parent()
            .map(|dir| dir.join("kubectl-cache"))
            .unwrap_or_else(|| std::env::temp_dir().join("modelserver-e2e-kubectl-cache"));
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let fail = |detail: String| Error::Kubectl {
            args: joined.clone(),
            detail,
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.binary.display())))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .await
                .map_err(|e| fail(format!("writing stdin: {e}")))?;
            drop(pipe);
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("waiting for it: {e}")))?;
        Ok(KubectlOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs kubectl and returns its stdout; a non-zero exit is an error carrying its stderr.
    pub async fn run_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args, None).await?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(Error::Kubectl {
                args: args.join(" "),
                detail: out.stderr.trim().to_owned(),
            })
        }
    }
}

/// A namespace of its own for one test, named `e2e-<prefix>-<random>`.
#[derive(Clone)]
pub struct TestNamespace {
    client: Client,
    name: String,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestNamespace {
    /// Creates the namespace and waits until its default ServiceAccount exists (pods need it).
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        let api: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("e2e-{prefix}-")),
                labels: Some([("modelserver.dev/e2e".to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = api
            .create(&PostParams::default(), &ns)
            .await
            .map_err(kube_err(format!("creating namespace e2e-{prefix}-*")))?;
        let name = created
            .metadata
            .name
            .ok_or_else(|| Error::Manifest("the created namespace has no name".to_owned()))?;
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        wait_until(
            &format!("serviceaccount default in namespace {name}"),
            Duration::from_secs(60),
            || async {
                match sa.get_opt("default").await {
                    Ok(found) => Ok(found.map(|_| ())),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
        Ok(Self {
            client: client.clone(),
            name,
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the namespace (without waiting for its contents to go).
    pub async fn delete(self) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.delete(&self.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(kube_err(format!("deleting namespace {}", self.name))(e)),
        }
    }
}

/// Reads every YAML document of a file as JSON values (empty documents are skipped).
pub fn read_yaml_documents(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        cause: source,
    })?;
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Installs `crds/` the way a user does (`kubectl apply --server-side -f crds/`) and waits until
/// the ModelServer CRD is Established. Fails when [`CRD_FILE`] does not exist.
pub async fn install_crds(client: &Client, kubectl: &Kubectl) -> Result<()> {
    let file = repo_root().join(CRD_FILE);
    if !file.is_file() {
        return Err(Error::Read {
            path: file,
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "the CRD file is missing"),
        });
    }
    let dir = repo_root().join("crds");
    let dir = dir.to_string_lossy();
    kubectl
        .run_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            FIELD_MANAGER,
            "-f",
            &dir,
        ])
        .await?;
    wait_crd_established(client, CRD_NAME, Duration::from_secs(60)).await?;
    wait_modelservers_served(client, Duration::from_secs(60)).await
}

/// Environment variable naming the directory of the Gateway API's CRDs (`make e2e` sets it from
/// `e2e/gateway-api.sh crds`; without it the script is run).
pub const GATEWAY_API_CRDS_ENV: &str = "MODELSERVER_E2E_GATEWAY_API_CRDS";
/// The HTTPRoute CRD's name.
pub const HTTPROUTE_CRD: &str = "httproutes.gateway.networking.k8s.io";
/// The Gateway CRD's name.
pub const GATEWAY_CRD: &str = "gateways.gateway.networking.k8s.io";

/// Installs the Gateway API's standard CRDs (the version pinned in `e2e/versions.env`) the way a
/// platform team does (`kubectl apply --server-side`), and waits until HTTPRoutes and Gateways
/// are served. Idempotent: tests running at once may each call it.
pub async fn install_gateway_api(client: &Client, kubectl: &Kubectl) -> Result<()> {
    let dir = dir_from_env_or_script(GATEWAY_API_CRDS_ENV, "e2e/gateway-api.sh", &["crds"]).await?;
    install_crd_files(
        client,
        kubectl,
        &dir,
        |name| name.starts_with("gateway.networking.k8s.io_") && !name.contains("_vap_"),
        "gateway.networking.k8s.io/v1",
        &[(HTTPROUTE_CRD, "httproutes"), (GATEWAY_CRD, "gateways")],
    )
    .await
}

/// Environment variable naming the directory of KEDA's CRDs (`make e2e` sets it from
/// `e2e/keda/build.sh crds`; without it the script is run).
pub const KEDA_CRDS_ENV: &str = "MODELSERVER_E2E_KEDA_CRDS";
/// The ScaledObject CRD's name.
pub const SCALEDOBJECT_CRD: &str = "scaledobjects.keda.sh";

/// Installs KEDA's CRDs (from the Go module of the version `e2e/keda/go.mod` pins) and waits
/// until ScaledObjects are served. Idempotent.
pub async fn install_keda_crds(client: &Client, kubectl: &Kubectl) -> Result<()> {
    let dir = dir_from_env_or_script(KEDA_CRDS_ENV, "e2e/keda/build.sh", &["crds"]).await?;
    install_crd_files(
        client,
        kubectl,
        &dir,
        |name| {
            (name.starts_with("keda.sh_") || name.starts_with("eventing.keda.sh_"))
                && name.ends_with(".yaml")
        },
        "keda.sh/v1alpha1",
        &[(SCALEDOBJECT_CRD, "scaledobjects")],
    )
    .await
}

/// The directory in `$var`, else what `script args` prints.
async fn dir_from_env_or_script(var: &str, script: &str, args: &[&str]) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let path = repo_root().join(script);
    let command = format!("{script} {}", args.join(" "));
    let out = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::ClusterScript {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::ClusterScript {
            command,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Applies the CRD files of `dir` whose names `wanted` accepts (server-side, sorted), waits until
/// each of `crds` (name, plural) is Established and discovery lists its plural in
/// `group_version` (the operator asks discovery).
async fn install_crd_files(
    client: &Client,
    kubectl: &Kubectl,
    dir: &Path,
    wanted: impl Fn(&str) -> bool,
    group_version: &str,
    crds: &[(&str, &str)],
) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|cause| Error::Read {
        path: dir.to_path_buf(),
        cause,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&wanted))
        .collect();
    files.sort();
    for file in &files {
        let file = file.to_string_lossy();
        kubectl
            .run_ok(&[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                FIELD_MANAGER,
                "-f",
                &file,
            ])
            .await?;
    }
    for (crd, _) in crds {
        wait_crd_established(client, crd, Duration::from_secs(60)).await?;
    }
    // Discovery lists them a moment after they are Established; the operator asks discovery.
    wait_until(
        &format!("discovery to list {group_version}"),
        Duration::from_secs(60),
        || async {
            let list = client
                .list_api_group_resources(group_version)
                .await
                .map_err(|e| e.to_string())?;
            let names: Vec<&str> = list.resources.iter().map(|r| r.name.as_str()).collect();
            if crds.iter().all(|(_, plural)| names.contains(plural)) {
                Ok(Some(()))
            } else {
                Err(format!("listed: {names:?}"))
            }
        },
    )
    .await
}

/// Waits until the API server serves the ModelServer resource: a moment after the CRD is
/// Established its endpoint can still answer "404 page not found".
pub async fn wait_modelservers_served(client: &Client, timeout: Duration) -> Result<()> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &modelserver_resource());
    wait_until(
        "the modelservers resource to be served",
        timeout,
        || async {
            api.list(&kube::api::ListParams::default().limit(1))
                .await
                .map(|_| Some(()))
                .map_err(|e| e.to_string())
        },
    )
    .await
}

/// Waits until the CRD `name` has the condition Established=True.
pub async fn wait_crd_established(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_until(
        &format!("CRD {name} to be Established"),
        timeout,
        || async {
            let crd = api.get_opt(name).await.map_err(|e| e.to_string())?;
            let Some(crd) = crd else {
                return Err(format!("CRD {name} does not exist"));
            };
            let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                Ok(Some(()))
            } else {
                Err(format!("conditions: {conditions:?}"))
            }
        },
    )
    .await
}

/// The ModelServer API resource (`modelserver.dev/v1alpha1`, plural `modelservers`).
pub fn modelserver_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("modelserver.dev", "v1alpha1", "ModelServer"),
        "modelservers",
    )
}

/// An [`Api`] over ModelServers in `namespace`.
pub fn modelservers(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &modelserver_resource())
}

/// A manifest resolved against the cluster's discovery: the object (its namespace set when the
/// kind is namespaced) and an [`Api`] for it.
struct Resolved {
    obj: DynamicObject,
    name: String,
    kind: String,
    resource: ApiResource,
    namespace: Option<String>,
    api: Api<DynamicObject>,
}

async fn resolve(
    client: &Client,
    namespace: &str,
    manifest: &serde_json::Value,
) -> Result<Resolved> {
    let mut obj: DynamicObject = serde_json::from_value(manifest.clone())
        .map_err(|e| Error::Manifest(format!("not a Kubernetes object: {e}")))?;
    let types = obj
        .types
        .clone()
        .ok_or_else(|| Error::Manifest("the manifest has no apiVersion/kind".to_owned()))?;
    let gvk = GroupVersionKind::try_from(&types)
        .map_err(|e| Error::Manifest(format!("bad apiVersion/kind: {e}")))?;
    let name = obj
        .metadata
        .name
        .clone()
        .ok_or_else(|| Error::Manifest(format!("a {} without metadata.name", gvk.kind)))?;
    let (resource, caps) = pinned_kind(client, &gvk)
        .await
        .map_err(kube_err(format!("discovering {}", gvk.kind)))?;
    let (api, namespace) = if caps.scope == Scope::Namespaced {
        obj.metadata.namespace = Some(namespace.to_owned());
        (
            Api::namespaced_with(client.clone(), namespace, &resource),
            Some(namespace.to_owned()),
        )
    } else {
        (Api::all_with(client.clone(), &resource), None)
    };
    Ok(Resolved {
        obj,
        name,
        kind: gvk.kind,
        resource,
        namespace,
        api,
    })
}

/// Server-side applies one manifest (any kind the cluster serves) with strict field validation,
/// as the operator and GitOps tools do.
///
/// A namespaced object is put into `namespace`, whatever its manifest says. Returns the object the
/// API server stored, or the API server's error (e.g. a CEL rule's rejection).
pub async fn apply_manifest(
    client: &Client,
    namespace: &str,
    manifest: &serde_json::Value,
) -> Result<DynamicObject> {
    let r = resolve(client, namespace, manifest).await?;
    let params = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict();
    r.api
        .patch(&r.name, &params, &Patch::Apply(&r.obj))
        .await
        .map_err(kube_err(format!("applying {} {}", r.kind, r.name)))
}

/// Creates one manifest as `kubectl create` (and `kubectl apply` of a new object) does: a POST
/// with `fieldValidation=Strict`, so an unknown field is an error naming it
/// (`unknown field "spec.x"`).
///
/// A namespaced object is put into `namespace`, whatever its manifest says.
pub async fn create_manifest(
    client: &Client,
    namespace: &str,
    manifest: &serde_json::Value,
) -> Result<DynamicObject> {
    let r = resolve(client, namespace, manifest).await?;
    let body = serde_json::to_vec(&r.obj)
        .map_err(|e| Error::Manifest(format!("serializing {} {}: {e}", r.kind, r.name)))?;
    let url = DynamicObject::url_path(&r.resource, r.namespace.as_deref());
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let mut request = kube::core::Request::new(url)
        .create(&params, body)
        .map_err(|e| Error::Manifest(format!("building the request: {e}")))?;
    let uri = request.uri().to_string();
    let sep = if uri.contains('?') { '&' } else { '?' };
    *request.uri_mut() = format!("{uri}{sep}fieldValidation=Strict")
        .parse()
        .map_err(|e| Error::Manifest(format!("bad request URI {uri}: {e}")))?;
    client
        .request::<DynamicObject>(request)
        .await
        .map_err(kube_err(format!("creating {} {}", r.kind, r.name)))
}

/// The message of an API server rejection inside `err`, if it is one.
pub fn api_error_message(err: &Error) -> Option<&str> {
    match err {
        Error::Kube { cause, .. } => match cause.as_ref() {
            kube::Error::Api(status) => Some(status.message.as_str()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_cluster_script() {
        assert!(repo_root().join("e2e/cluster.sh").is_file());
    }

    #[test]
    fn modelserver_resource_is_the_crd_plural() {
        let r = modelserver_resource();
        assert_eq!(r.api_version, "modelserver.dev/v1alpha1");
        assert_eq!(r.plural, "modelservers");
    }

    #[tokio::test]
    async fn wait_until_times_out_with_the_last_observation() {
        let err = wait_until("never", Duration::from_millis(300), || async {
            Err::<Option<()>, _>("still no".to_owned())
        })
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("never") && text.contains("still no"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn wait_until_returns_the_value() {
        let mut n = 0;
        let v = wait_until("third try", Duration::from_secs(5), || {
            n += 1;
            let now = n;
            async move { Ok(if now >= 3 { Some(now) } else { None }) }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
    }
}
