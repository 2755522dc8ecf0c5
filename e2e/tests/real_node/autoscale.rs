//! The parts concurrency autoscaling needs, for real and on this machine only: a Prometheus
//! (built from its Go module) that scrapes the sidecars of one namespace's pods on the real
//! node, and KEDA (its operator and metrics API server, built from their Go module) registered
//! as the cluster's external metrics API. Every process listens on loopback, or on the node
//! network's host address (10.245.0.1, which the aggregator reaches through a Service), and is
//! killed when its handle drops; the APIService is removed by [`Keda::stop`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject};
use modelserver_e2e::{apply_manifest, wait_until};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The host's address on the real node's network (e2e/lib/netguard.sh `guard_node_ip`): pods
/// and the Services' kube-proxy rules reach host processes there.
const NODE_HOST_IP: &str = "10.245.0.1";
/// KEDA's namespace for its own objects.
const KEDA_NAMESPACE: &str = "keda";
/// The external metrics API KEDA serves.
const APISERVICE: &str = "v1beta1.external.metrics.k8s.io";

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn tool(var: &str) -> Result<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .with_context(|| format!("{var} is unset: run the suite with `make e2e`"))
}

fn spawn(program: &Path, args: &[String], env: &[(&str, &str)], log: &Path) -> Result<Child> {
    let file = std::fs::File::create(log)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// The last lines of a log, for failure messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- {} ---\n{}",
        path.display(),
        lines[lines.len().saturating_sub(25)..]
            .iter()
            .map(|l| l.chars().take(400).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// A Prometheus scraping the sidecars' admin ports in one namespace every second, with the
/// `namespace`, `pod` and `modelserver` labels the chart's PodMonitor gives them.
pub struct Prometheus {
    _child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its log.
    pub log: PathBuf,
}

impl Prometheus {
    /// The address it will listen on (chosen before it starts, so the operator can be told).
    pub fn address() -> Result<String> {
        Ok(format!("127.0.0.1:{}", free_port()?))
    }

    /// Starts it on `address` for the pods of `namespace`, discovering them with `kubeconfig`,
    /// and for the operator's metrics at `operator` (host:port).
    pub async fn start(
        dir: &Path,
        address: &str,
        namespace: &str,
        kubeconfig: &Path,
        operator: &str,
    ) -> Result<Self> {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                r#"global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: modelserver-sidecars
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: {kubeconfig}
        namespaces: {{names: [{namespace}]}}
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_container_port_name]
        regex: admin
        action: keep
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_instance]
        target_label: modelserver
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
  - job_name: modelserver-operator
    static_configs:
      - targets: ["{operator}"]
        labels: {{namespace: {namespace}, pod: modelserver-operator}}
"#,
                kubeconfig = kubeconfig.display()
            ),
        )?;
        let log = dir.join("prometheus.log");
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address={address}"),
            "--storage.tsdb.retention.time=1h".to_owned(),
        ];
        let child = spawn(&tool("MODELSERVER_E2E_PROMETHEUS")?, &args, &[], &log)?;
        let url = format!("http://{address}");
        let ready = format!("{url}/-/ready");
        wait_until("Prometheus ready", Duration::from_secs(60), || {
            let ready = ready.clone();
            async move {
                match reqwest::get(&ready).await {
                    Ok(r) if r.status().is_success() => Ok(Some(())),
                    Ok(r) => Err(r.status().to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await
        .with_context(|| tail(&log))?;
        Ok(Self {
            _child: child,
            url,
            log,
        })
    }

    /// The result vector of an instant query; an error when Prometheus refuses the query.
    pub async fn series(&self, promql: &str) -> Result<Vec<Value>> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            &[("query", promql)],
        )?;
        let body: Value = reqwest::Client::new().get(url).send().await?.json().await?;
        if body["status"] != "success" {
            bail!("{promql}: {}", body["error"]);
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The value of an instant query (0 when it returns nothing).
    pub async fn query(&self, promql: &str) -> Result<f64> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            &[("query", promql)],
        )?;
        let body: Value = reqwest::Client::new().get(url).send().await?.json().await?;
        let value = body["data"]["result"][0]["value"][1]
            .as_str()
            .map_or(Ok(0.0), str::parse::<f64>)?;
        Ok(value)
    }
}

/// KEDA's operator and metrics API server, with the external metrics APIService pointing at
/// the latter.
pub struct Keda {
    _operator: Child,
    _adapter: Child,
    client: Client,
    /// The operator's log.
    pub operator_log: PathBuf,
    /// The metrics API server's log.
    pub adapter_log: PathBuf,
}

impl Keda {
    /// Starts KEDA watching `namespace` with the admin `kubeconfig`, and registers its
    /// external metrics API; waits until the aggregator reports it Available.
    pub async fn start(
        client: &Client,
        dir: &Path,
        namespace: &str,
        kubeconfig: &Path,
    ) -> Result<Self> {
        let bin = tool("MODELSERVER_E2E_KEDA")?;
        let certs = dir.join("keda-certs");
        certificates(&certs).await?;
        let grpc = format!("127.0.0.1:{}", free_port()?);
        let secure_port = free_port()?;
        let kubeconfig = kubeconfig.to_string_lossy().into_owned();
        let env = [
            ("KUBECONFIG", kubeconfig.as_str()),
            ("WATCH_NAMESPACE", namespace),
            ("KEDA_CLUSTER_OBJECT_NAMESPACE", KEDA_NAMESPACE),
            ("POD_NAMESPACE", KEDA_NAMESPACE),
        ];
        let certs_arg = certs.to_string_lossy().into_owned();
        apply_manifest(
            client,
            KEDA_NAMESPACE,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KEDA_NAMESPACE}}),
        )
        .await?;
        let operator_log = dir.join("keda-operator.log");
        let operator = spawn(
            &bin.join("keda-operator"),
            &[
                format!("--metrics-bind-address=127.0.0.1:{}", free_port()?),
                format!("--health-probe-bind-address=127.0.0.1:{}", free_port()?),
                format!("--metrics-service-bind-address={grpc}"),
                format!("--cert-dir={certs_arg}"),
                "--enable-cert-rotation=false".to_owned(),
                "--leader-elect=false".to_owned(),
            ],
            &env,
            &operator_log,
        )?;
        let adapter_log = dir.join("keda-adapter.log");
        let adapter = spawn(
            &bin.join("keda-adapter"),
            &[
                format!("--secure-port={secure_port}"),
                format!("--bind-address={NODE_HOST_IP}"),
                format!("--cert-dir={certs_arg}"),
                format!("--tls-cert-file={certs_arg}/tls.crt"),
                format!("--tls-private-key-file={certs_arg}/tls.key"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                format!("--lister-kubeconfig={kubeconfig}"),
                format!("--metrics-service-address={grpc}"),
                format!("--port={}", free_port()?),
            ],
            &env,
            &adapter_log,
        )?;
        let keda = Self {
            _operator: operator,
            _adapter: adapter,
            client: client.clone(),
            operator_log,
            adapter_log,
        };
        keda.register(secure_port).await?;
        Ok(keda)
    }

    /// A Service without selector whose endpoint is the metrics API server on the host, and the
    /// APIService over it.
    async fn register(&self, port: u16) -> Result<()> {
        let ns = KEDA_NAMESPACE;
        for manifest in [
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "keda-metrics-apiserver", "namespace": ns},
                "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "keda-metrics-apiserver-host", "namespace": ns,
                    "labels": {"kubernetes.io/service-name": "keda-metrics-apiserver"}},
                "addressType": "IPv4",
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                "endpoints": [{"addresses": [NODE_HOST_IP], "conditions": {"ready": true}}]}),
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": {"name": APISERVICE},
                "spec": {"service": {"name": "keda-metrics-apiserver", "namespace": ns, "port": 443},
                    "group": "external.metrics.k8s.io", "version": "v1beta1",
                    "insecureSkipTLSVerify": true, "groupPriorityMinimum": 100, "versionPriority": 100}}),
        ] {
            apply_manifest(&self.client, ns, &manifest).await?;
        }
        let services: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &kube::api::ApiResource::from_gvk_with_plural(
                &kube::api::GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService"),
                "apiservices",
            ),
        );
        wait_until(
            "KEDA's external metrics API Available",
            Duration::from_secs(120),
            || {
                let services = services.clone();
                async move {
                    let service = services.get(APISERVICE).await.map_err(|e| e.to_string())?;
                    let available = service.data["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|c| c["type"] == "Available")
                        .cloned()
                        .unwrap_or(Value::Null);
                    if available["status"] == "True" {
                        Ok(Some(()))
                    } else {
                        Err(available.to_string())
                    }
                }
            },
        )
        .await
        .with_context(|| format!("{}\n{}", tail(&self.adapter_log), tail(&self.operator_log)))?;
        Ok(())
    }

    /// Removes the APIService (the processes stop when the handle drops): an APIService whose
    /// server is gone would leave the aggregator reporting an unavailable API.
    pub async fn stop(self) {
        let services: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &kube::api::ApiResource::from_gvk_with_plural(
                &kube::api::GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService"),
                "apiservices",
            ),
        );
        let _ = services.delete(APISERVICE, &DeleteParams::default()).await;
    }
}

/// A CA and one certificate (for 127.0.0.1, the host's node address and the Service names),
/// used by KEDA's gRPC metrics service (mutual TLS) and by its metrics API server.
async fn certificates(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let d = dir.display();
    let script = format!(
        r#"set -e
cd "{d}"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -subj /CN=keda-e2e-ca -days 2 -sha256 -out ca.crt
openssl ecparam -name prime256v1 -genkey -noout -out tls.key
openssl req -new -key tls.key -subj /CN=keda -out tls.csr
printf 'subjectAltName=IP:127.0.0.1,IP:{NODE_HOST_IP},DNS:localhost,DNS:keda-operator.keda.svc,DNS:keda-metrics-apiserver.keda.svc\nextendedKeyUsage=serverAuth,clientAuth\n' > ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -sha256 -extfile ext -out tls.crt
"#
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .await?;
    if !out.status.success() {
        bail!("openssl: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
