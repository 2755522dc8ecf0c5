//! Command-line interface of `modelserver-operator`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use modelserver_crds::load;
use serde_json::Value;

use crate::controller::{ControllerConfig, Scope};
use crate::error::CliError;
use crate::render::{self, RenderConfig};
use crate::run::LeaderElection;
use modelserver_contract::cli::LogFormat;
use modelserver_contract::env;

/// The operator's own environment variables, one per flag of `run` (the sidecar's are in
/// `modelserver_contract::env`; the log variables are shared with it).
pub mod operator_env {
    /// `--sidecar-image`.
    pub const SIDECAR_IMAGE: &str = "MODELSERVER_SIDECAR_IMAGE";
    /// `--sidecar-image-pull-policy`.
    pub const SIDECAR_IMAGE_PULL_POLICY: &str = "MODELSERVER_SIDECAR_IMAGE_PULL_POLICY";
    /// `--namespace`.
    pub const WATCH_NAMESPACE: &str = "MODELSERVER_WATCH_NAMESPACE";
    /// `--metrics-addr`.
    pub const METRICS_ADDR: &str = "MODELSERVER_METRICS_ADDR";
    /// `--leader-elect`.
    pub const LEADER_ELECT: &str = "MODELSERVER_LEADER_ELECT";
    /// `--leader-election-namespace` (the downward API's namespace of the operator's pod).
    pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
    /// `--concurrency`.
    pub const CONCURRENCY: &str = "MODELSERVER_CONCURRENCY";
    /// `--debounce`.
    pub const DEBOUNCE: &str = "MODELSERVER_DEBOUNCE";
    /// `--prometheus-url`.
    pub const PROMETHEUS_URL: &str = "MODELSERVER_PROMETHEUS_URL";
}

/// The ModelServer operator.
#[derive(Debug, Parser)]
#[command(name = "modelserver-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the objects a ModelServer file becomes, as multi-document YAML, without a cluster
    /// (for CI diffs and GitOps previews). An invalid file exits non-zero with the message the
    /// API server would give.
    Render(RenderArgs),
    /// Run the operator: watch ModelServers and reconcile them into their children.
    Run(RunArgs),
}

/// Flags of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Image holding the sidecar binary, used by every rendered pod.
    #[arg(long, env = operator_env::SIDECAR_IMAGE, default_value = render::DEFAULT_SIDECAR_IMAGE)]
    pub sidecar_image: String,
    /// Pull policy of the sidecar image in every rendered pod: Always, IfNotPresent or Never
    /// (default: the kubelet's, IfNotPresent unless the tag is `latest`).
    #[arg(long, env = operator_env::SIDECAR_IMAGE_PULL_POLICY,
          value_parser = ["Always", "IfNotPresent", "Never"])]
    pub sidecar_image_pull_policy: Option<String>,
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = operator_env::WATCH_NAMESPACE)]
    pub namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = operator_env::METRICS_ADDR, default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Elect a leader through a Lease, so that of several replicas only one reconciles.
    #[arg(long, env = operator_env::LEADER_ELECT, default_value_t = false)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = operator_env::POD_NAMESPACE, default_value = "default")]
    pub leader_election_namespace: String,
    /// How long a leader's lease lasts without renewal (a standby takes over after it).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: std::time::Duration,
    /// ModelServers reconciled at once.
    #[arg(long, env = operator_env::CONCURRENCY, default_value_t = 4)]
    pub concurrency: u16,
    /// How long a ModelServer's reconcile waits for more changes after one arrives (the wait
    /// restarts with each), so that a burst (a Deployment rolling out, several children
    /// changing) costs one reconcile. 0: none.
    #[arg(long, env = operator_env::DEBOUNCE, default_value = "1s", value_parser = parse_duration)]
    pub debounce: std::time::Duration,
    /// Log format: text or json.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level or tracing filter.
    #[arg(long, env = env::LOG_LEVEL, default_value = modelserver_contract::defaults::LOG_LEVEL)]
    pub log_level: String,
    /// Cluster DNS domain, for status.url.
    #[arg(long, default_value = render::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Where KEDA reaches the Prometheus that scrapes the sidecars, for ModelServers that
    /// autoscale on concurrency (written into their ScaledObjects).
    #[arg(long, env = operator_env::PROMETHEUS_URL, default_value = render::DEFAULT_PROMETHEUS_URL)]
    pub prometheus_url: String,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    modelserver_units::parse_duration(text).map_err(|e| e.to_string())
}

impl RunArgs {
    /// The controller settings these flags describe.
    pub fn controller_config(&self) -> ControllerConfig {
        ControllerConfig {
            render: RenderConfig {
                sidecar_image: self.sidecar_image.clone(),
                sidecar_image_pull_policy: self.sidecar_image_pull_policy.clone(),
                cluster_domain: self.cluster_domain.clone(),
                prometheus_url: self.prometheus_url.clone(),
                ..RenderConfig::default()
            },
            scope: match &self.namespace {
                Some(namespace) => Scope::Namespace(namespace.clone()),
                None => Scope::Cluster,
            },
            concurrency: self.concurrency.max(1),
            debounce: self.debounce,
        }
    }

    /// The leader-election settings, when asked for.
    pub fn leader_election(&self) -> Option<LeaderElection> {
        self.leader_elect.then(|| LeaderElection {
            namespace: self.leader_election_namespace.clone(),
            identity: std::env::var("POD_NAME")
                .or_else(|_| std::env::var("HOSTNAME"))
                .map(|host| format!("{host}-{}", std::process::id()))
                .unwrap_or_else(|_| format!("modelserver-operator-{}", std::process::id())),
            lease_duration: self.leader_election_lease_duration,
        })
    }
}

/// Flags of `render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The ModelServer manifest (YAML; documents of other kinds are skipped). `-` reads stdin.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Image holding the sidecar binary.
    #[arg(long, env = operator_env::SIDECAR_IMAGE, default_value = render::DEFAULT_SIDECAR_IMAGE)]
    pub sidecar_image: String,
    /// Namespace for a ModelServer without metadata.namespace.
    #[arg(long, default_value = render::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Cluster DNS domain.
    #[arg(long, default_value = render::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Where KEDA reaches Prometheus (concurrency autoscaling).
    #[arg(long, env = operator_env::PROMETHEUS_URL, default_value = render::DEFAULT_PROMETHEUS_URL)]
    pub prometheus_url: String,
}

/// Renders every ModelServer document of `args.file` to `out`.
pub fn run_render(args: &RenderArgs, out: &mut impl Write) -> Result<(), CliError> {
    let path = args.file.display().to_string();
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|source| CliError::Read {
            path: path.clone(),
            cause: source,
        })?
    } else {
        std::fs::read_to_string(&args.file).map_err(|source| CliError::Read {
            path: path.clone(),
            cause: source,
        })?
    };
    let config = RenderConfig {
        sidecar_image: args.sidecar_image.clone(),
        cluster_domain: args.cluster_domain.clone(),
        default_namespace: args.namespace.clone(),
        prometheus_url: args.prometheus_url.clone(),
        ..RenderConfig::default()
    };
    let load_error = |source| CliError::Load {
        path: path.clone(),
        cause: source,
    };
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| load_error(load::LoadError::Yaml(Box::new(e))))?;
    let mut rendered = 0;
    for document in documents {
        if document.is_null() {
            continue;
        }
        if document.get("kind").and_then(Value::as_str) != Some(modelserver_crds::KIND) {
            continue;
        }
        let object = load::from_value(document).map_err(load_error)?;
        let children = render::render(&object, &config).map_err(|source| CliError::Render {
            path: path.clone(),
            cause: source,
        })?;
        let yaml = children
            .to_yaml()
            .map_err(|e| CliError::Output(e.to_string()))?;
        out.write_all(yaml.as_bytes())
            .map_err(|e| CliError::Output(e.to_string()))?;
        rendered += 1;
    }
    if rendered == 0 {
        return Err(CliError::Empty { path });
    }
    Ok(())
}
