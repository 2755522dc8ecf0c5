//! `ModelServer.spec`: what the user asks for.
//!
//! Every optional field stays absent unless the user sets it (`skip_serializing_if`), so a
//! server-side apply never sends `null` and the stored object equals the applied one. Defaults
//! live in [`crate::defaults`] and are stated in each field's description.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::rules;
use crate::status::ModelServerStatus;
pub use crate::traffic::{CanaryModelSpec, CanarySpec, ParentRef, RouteSpec};
use crate::values::{ByteQuantity, K8sDuration};

/// The desired state of a model server: the image and how its model runs, the serving settings of
/// the sidecar in each pod, lifecycle budgets, and the Deployment, Service, NetworkPolicy,
/// autoscaler and disruption budget around it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "modelserver.dev",
    version = "v1alpha1",
    kind = "ModelServer",
    plural = "modelservers",
    shortname = "ms",
    category = "all",
    category = "modelserver",
    namespaced,
    status = "ModelServerStatus",
    derive = "PartialEq",
    doc = "A model server: a Deployment of pods that each run the model's worker processes behind the modelserver sidecar, with a Service, a NetworkPolicy, and optionally a HorizontalPodAutoscaler and a PodDisruptionBudget.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Whether this generation is rolled out and its desired replicas are available",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        description = "Pods of the model server",
        json_path = ".status.replicas"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        description = "Pods that are ready and available",
        json_path = ".status.availableReplicas"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        description = "In-cluster URL of the Service",
        json_path = ".status.url"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Canary",
        type_ = "integer",
        description = "Percent of the requests for the canary (spec.canary.weight)",
        json_path = ".spec.canary.weight"
    ),
    validation = Rule::new(rules::NAME_IS_DNS_LABEL.rule).message(rules::NAME_IS_DNS_LABEL.message),
    validation = Rule::new(rules::CANARY_NAME_FITS.rule).message(rules::CANARY_NAME_FITS.message)
)]
#[x_kube(validation = Rule::new(rules::UPSTREAM_PORT_DIFFERS.rule).message(rules::UPSTREAM_PORT_DIFFERS.message))]
#[x_kube(validation = Rule::new(rules::WORKER_PORTS_CLEAR.rule).message(rules::WORKER_PORTS_CLEAR.message))]
#[x_kube(validation = Rule::new(rules::GRPC_PORTS_CLEAR.rule).message(rules::GRPC_PORTS_CLEAR.message))]
#[x_kube(validation = Rule::new(rules::UPSTREAM_GRPC_PORT_DIFFERS.rule).message(rules::UPSTREAM_GRPC_PORT_DIFFERS.message))]
#[x_kube(validation = Rule::new(rules::CANARY_DIFFERS.rule).message(rules::CANARY_DIFFERS.message))]
#[x_kube(validation = Rule::new(rules::CANARY_COMMAND_NEEDS_COMMAND.rule).message(rules::CANARY_COMMAND_NEEDS_COMMAND.message))]
#[serde(rename_all = "camelCase")]
pub struct ModelServerSpec {
    /// The container image holding the model and its runtime (for example
    /// registry.example.com/acme/iris:1.4.0). In managed mode it must contain the model command;
    /// the sidecar binary is copied in by an init container, so the image needs no changes.
    #[schemars(length(min = 1))]
    pub image: String,

    /// When the kubelet pulls the image: Always, IfNotPresent (the default) or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets in the same namespace used to pull the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,

    /// Desired number of pods, default 1. Ignored while spec.autoscaling is set: then the
    /// HorizontalPodAutoscaler owns the replica count. Changed by `kubectl scale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,

    /// How the model runs: either a command the sidecar starts as worker processes (managed
    /// mode) or an upstream HTTP port the image's own server listens on (proxy mode).
    pub model: ModelSpec,

    /// The HTTP front door in each pod: port, workers, concurrency, limits, CORS, auth, logging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSpec>,

    /// Startup and shutdown budgets: how long the model may take to load, and how a pod drains
    /// its in-flight requests before it stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleSpec>,

    /// Compute resources of the model container (requests and limits), as in a Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Autoscale the pods on CPU utilization (a HorizontalPodAutoscaler) or on concurrency (a
    /// KEDA ScaledObject). Removing this field deletes the autoscaler and returns the replica
    /// count to spec.replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// The PodDisruptionBudget. By default one is created with maxUnavailable 1 whenever the
    /// desired replicas (or autoscaling.minReplicas) are 2 or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<DisruptionSpec>,

    /// The rolling-update strategy of the Deployment. Default maxSurge 25%, maxUnavailable 0, so
    /// a rollout never drops below the desired ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,

    /// The Service in front of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,

    /// Settings passed through to the pod template: labels, annotations, scheduling, service
    /// account and priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodSpec>,

    /// The NetworkPolicy that admits traffic to the pods only on the public port
    /// (server.port) and the sidecar's admin port 9090. On by default: without it, in proxy mode
    /// any pod could call the model's own port (model.upstream.port) on the pod IP and bypass
    /// the sidecar's auth, limits and queue. It needs a CNI that enforces NetworkPolicies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// Expose the model outside the cluster through a Gateway API HTTPRoute named after the
    /// ModelServer (needs the Gateway API CRDs and a Gateway controller). status.url then shows
    /// the route's URL and the RouteAccepted condition what the Gateway said. Removing this field
    /// deletes the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteSpec>,

    /// A canary: a second version of the model that takes `weight` percent of the requests.
    /// Promote it by moving its overrides into the spec and removing this field; abort it by
    /// removing this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
}

/// When the kubelet pulls the image.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull only when the image is not on the node.
    IfNotPresent,
    /// Never pull; the image must be on the node.
    Never,
}

impl ImagePullPolicy {
    /// The value as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// How the model runs. Exactly one of command (managed mode) and upstream (proxy mode).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(rules::MODEL_COMMAND_XOR_UPSTREAM.rule).message(rules::MODEL_COMMAND_XOR_UPSTREAM.message))]
#[x_kube(validation = Rule::new(rules::MODEL_READINESS_PATH_NEEDS_COMMAND.rule).message(rules::MODEL_READINESS_PATH_NEEDS_COMMAND.message))]
#[x_kube(validation = Rule::new(rules::WORKER_PORT_BASE_NEEDS_COMMAND.rule).message(rules::WORKER_PORT_BASE_NEEDS_COMMAND.message))]
#[x_kube(validation = Rule::new(rules::GRPC_PORT_BASE_NEEDS_COMMAND.rule).message(rules::GRPC_PORT_BASE_NEEDS_COMMAND.message))]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Managed mode: the worker command (for example ["python", "/app/worker.py"]). The
    /// sidecar starts server.workers copies, each serving HTTP/1.1 on the Unix socket named by
    /// $MODELSERVER_SOCKET (uvicorn --uds, gunicorn --bind unix:, or the standard library), or,
    /// with workerPortBase set, on 127.0.0.1 at the port in $MODELSERVER_WORKER_PORT.
    /// $(VAR) references are expanded from the worker's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub command: Option<Vec<String>>,

    /// Arguments appended to command (managed mode), or the model container's arguments
    /// (proxy mode). $(VAR) references are expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// Working directory of the model process; the image's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,

    /// Environment variables of the model container (and so of every worker). Names starting
    /// with MODELSERVER_ are reserved for the sidecar's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::MODEL_ENV_NOT_RESERVED.rule).message(rules::MODEL_ENV_NOT_RESERVED.message))]
    #[schemars(length(max = 512))]
    pub env: Option<Vec<EnvVar>>,

    /// Sources of environment variables (ConfigMaps, Secrets) for the model container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFromSource>>,

    /// Managed mode: the path each worker answers with 200 once its model is loaded. Default
    /// /ready. The pod is ready only when every worker is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::READINESS_PATH_IS_ABSOLUTE.rule).message(rules::READINESS_PATH_IS_ABSOLUTE.message))]
    #[schemars(length(max = 1024))]
    pub readiness_path: Option<String>,

    /// Managed mode, for servers that bind TCP only (gunicorn, DRUM, KServe's ModelServer,
    /// uvicorn without --uds): worker i serves on 127.0.0.1 at workerPortBase + i, given to it in
    /// $MODELSERVER_WORKER_PORT (for example --port=$(MODELSERVER_WORKER_PORT)), instead of on a
    /// Unix socket; readiness, restarts, slots and drain are the same. The range may not hold
    /// server.port or the admin port 9090. Unset: Unix sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub worker_port_base: Option<i32>,

    /// Managed mode: each worker also serves gRPC (HTTP/2 without TLS) on 127.0.0.1 at
    /// grpcPortBase + i, given to it in $MODELSERVER_GRPC_PORT. gRPC calls to the public port
    /// (Content-Type application/grpc) go there, under the same auth, slots, queue, limits and
    /// drain; readiness stays the HTTP readinessPath. The range may not hold server.port, the
    /// admin port 9090 or a workerPortBase port. Unset: gRPC calls go to the workers' HTTP
    /// address over HTTP/2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub grpc_port_base: Option<i32>,

    /// Proxy mode: the image serves HTTP itself on this port; the sidecar runs beside it and
    /// forwards requests to 127.0.0.1:port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSpec>,
}

/// The model's own HTTP server, in proxy mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamSpec {
    /// The port the model's server listens on inside the pod (127.0.0.1). Must differ from
    /// server.port and from the admin port 9090.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// The path that answers 200 once the model is loaded. Default /ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::UPSTREAM_READINESS_PATH_IS_ABSOLUTE.rule).message(rules::UPSTREAM_READINESS_PATH_IS_ABSOLUTE.message))]
    #[schemars(length(max = 1024))]
    pub readiness_path: Option<String>,

    /// The port the model's server serves gRPC on (HTTP/2 without TLS, 127.0.0.1), as KServe,
    /// Triton and MLServer do beside their HTTP port. gRPC calls to the public port go there,
    /// under the same auth, slots, queue, limits and drain. Must differ from port, server.port
    /// and the admin port 9090. Unset: gRPC calls go to port over HTTP/2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub grpc_port: Option<i32>,

    /// A credential the sidecar sends the model's server, for a server that wants its own
    /// token (the sidecar's own auth is spec.server.auth). Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<UpstreamAuthSpec>,
}

/// The credential of the model's own server, in proxy mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamAuthSpec {
    /// The Secret key holding the credential. The sidecar adds it to every request to the
    /// upstream, readiness probes included, as "Authorization: Bearer <value>" or as the raw
    /// value in header. It replaces a client's header of that name, is never logged, and that
    /// header is removed from the upstream's responses.
    pub token_secret_ref: SecretKeyRef,

    /// The header that carries the value as is (for example X-Api-Key). Default
    /// Authorization, with the value after "Bearer ".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::UPSTREAM_AUTH_HEADER_IS_USABLE.rule).message(rules::UPSTREAM_AUTH_HEADER_IS_USABLE.message))]
    #[schemars(length(max = 256))]
    pub header: Option<String>,
}

/// The sidecar's HTTP front door.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(rules::MAX_REQUESTS_JITTER_NEEDS_MAX.rule).message(rules::MAX_REQUESTS_JITTER_NEEDS_MAX.message))]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// The public HTTP port of each pod, which the Service targets. Default 8080; 9090 is the
    /// sidecar's admin port and is not allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    #[x_kube(validation = Rule::new(rules::SERVER_PORT_NOT_ADMIN.rule).message(rules::SERVER_PORT_NOT_ADMIN.message))]
    pub port: Option<i32>,

    /// Model worker processes per pod (managed mode), 1 to 64, default 1. Each loads its own
    /// copy of the model, so memory grows with this number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub workers: Option<i32>,

    /// Recycle a worker once it has been sent this many requests (managed mode), at least 1;
    /// unset (the default) never recycles. Like gunicorn's max_requests, for models that leak
    /// memory: a replacement starts first and takes new requests once ready, then the old worker
    /// finishes its requests and is stopped, so no request is lost (a worker on TCP,
    /// model.workerPortBase, keeps its port: it finishes its requests first and is then
    /// restarted in place). Recycles do not count toward lifecycle.maxWorkerRestarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_requests_per_worker: Option<i32>,

    /// Up to this many requests added at random to maxRequestsPerWorker, drawn for each worker
    /// run (like gunicorn's max_requests_jitter), so workers do not recycle all at once; at
    /// least 0, default 0. Needs maxRequestsPerWorker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_requests_jitter: Option<i32>,

    /// Recycle a worker whose resident memory (the RSS of its process, checked every 5s) is over
    /// this byte quantity (for example 2Gi), the same way as after maxRequestsPerWorker, before
    /// the container's memory limit kills the whole pod's model (managed mode). Unset (the
    /// default): no ceiling. Keep it under resources.limits.memory divided by server.workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::MAX_WORKER_MEMORY_IS_QUANTITY.rule).message(rules::MAX_WORKER_MEMORY_IS_QUANTITY.message))]
    #[schemars(length(max = 32))]
    pub max_worker_memory: Option<ByteQuantity>,

    /// Concurrent requests given to each worker (and its thread-pool size, passed as
    /// $MODELSERVER_EXECUTOR_THREADS), 1 to 256, default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub executor_threads: Option<i32>,

    /// Requests that may wait for a free executor slot, 0 to 65536, default 1024. Beyond it the
    /// sidecar answers 503 with Retry-After at once. A bound on memory: maxQueueWait, which
    /// refuses by time, acts first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65536))]
    pub max_queue: Option<i32>,

    /// Longest a request may wait for a free executor slot, as a duration (default 1s). A request
    /// whose wait, estimated from the queue ahead of it and the recent service time, would be
    /// longer gets 503 with Retry-After at once, so a burst the workers can serve within this
    /// time is served and a sustained overload is refused at arrival. After such a refusal, until
    /// the queue runs empty, a request may wait only about two executor slots' service time, so
    /// accepted requests keep their unloaded latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::MAX_QUEUE_WAIT_IS_DURATION.rule).message(rules::MAX_QUEUE_WAIT_IS_DURATION.message))]
    #[schemars(length(max = 32))]
    pub max_queue_wait: Option<K8sDuration>,

    /// Largest request body, as a byte quantity (for example 100Mi, the default, or 1Gi).
    /// Larger bodies get 413, whether or not they declare Content-Length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::MAX_UPLOAD_SIZE_IS_QUANTITY.rule).message(rules::MAX_UPLOAD_SIZE_IS_QUANTITY.message))]
    #[schemars(length(max = 32))]
    pub max_upload_size: Option<ByteQuantity>,

    /// Longest time a request may take, as a duration (default 60s). Slower requests get 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::REQUEST_TIMEOUT_IS_DURATION.rule).message(rules::REQUEST_TIMEOUT_IS_DURATION.message))]
    #[schemars(length(max = 32))]
    pub request_timeout: Option<K8sDuration>,

    /// Interactive API documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<DocsSpec>,

    /// Cross-origin resource sharing, answered by the sidecar so it works behind any ingress.
    /// Off by default; there is no default wildcard origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,

    /// Bearer-token authentication of every request except the health paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// TLS on the public port, from a Secret of type kubernetes.io/tls (tls.crt and tls.key,
    /// as cert-manager writes it). A renewed certificate is served to new connections without
    /// a restart and without dropping open ones; HTTP/2 or HTTP/1.1 is chosen by ALPN, and
    /// status.url says https. Probes stay on the plain admin port. Unset: plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Distributed tracing: the sidecar continues the caller's W3C trace context (traceparent,
    /// tracestate) or starts a trace, passes it on to the model, and exports a span for each
    /// request, its wait for a worker and the worker's time to an OpenTelemetry collector over
    /// OTLP/HTTP. Off (no per-request cost) while unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingSpec>,

    /// Log level of the sidecar: trace, debug, info (the default), warn or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,

    /// Log every request (method, path, status, duration, X-Request-ID). Default true. The lines
    /// are written in batches, at most 200ms after the request (as nginx's buffered access log),
    /// and always before any other log line; a sidecar killed with SIGKILL loses the last batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<bool>,
}

/// Distributed tracing of the requests through the sidecar.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver (protobuf over HTTP, port
    /// 4318 by convention), for example http://otel-collector.observability:4318: the sidecar
    /// POSTs spans to <endpoint>/v1/traces in batches, off the request path; when the collector
    /// is slow or down, spans are dropped (counted in modelserver_trace_spans_total) and no
    /// request waits or fails. Plain http only (OTLP over gRPC and https are not supported).
    /// The spans carry service.name = the ModelServer's name, k8s.namespace.name and
    /// k8s.pod.name.
    #[x_kube(validation = Rule::new(rules::TRACING_ENDPOINT_IS_HTTP_URL.rule).message(rules::TRACING_ENDPOINT_IS_HTTP_URL.message))]
    #[schemars(length(min = 1, max = 512))]
    pub endpoint: String,

    /// Share of new traces that are recorded and exported, a decimal from 0 to 1 written as a
    /// string ("0.1" is 10%, at most six decimals), chosen by trace id so every pod keeps or
    /// drops the same traces. Default "1": every trace, as the OpenTelemetry SDKs' default. A
    /// request whose caller sent a traceparent follows the caller's decision (its sampled flag)
    /// instead, so a trace is never recorded in part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::TRACING_SAMPLING_RATIO_IS_RATIO.rule).message(rules::TRACING_SAMPLING_RATIO_IS_RATIO.message))]
    #[schemars(length(max = 8))]
    pub sampling_ratio: Option<String>,
}

/// Interactive API documentation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DocsSpec {
    /// Serve /openapi.json and /docs on the public port. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Cross-origin resource sharing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(rules::CORS_NO_WILDCARD_WITH_CREDENTIALS.rule).message(rules::CORS_NO_WILDCARD_WITH_CREDENTIALS.message))]
#[x_kube(validation = Rule::new(rules::CORS_ENABLED_NEEDS_ORIGINS.rule).message(rules::CORS_ENABLED_NEEDS_ORIGINS.message))]
#[serde(rename_all = "camelCase")]
pub struct CorsSpec {
    /// Answer CORS preflights and add CORS headers. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Origins allowed to call the model, such as https://app.example.com. '*' allows any
    /// origin and is refused together with allowCredentials. Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::CORS_ORIGINS_WELL_FORMED.rule).message(rules::CORS_ORIGINS_WELL_FORMED.message))]
    #[schemars(length(max = 64), inner(length(max = 256)))]
    pub allow_origins: Option<Vec<String>>,

    /// Methods allowed in cross-origin requests. Default GET and POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), inner(length(max = 32)))]
    pub allow_methods: Option<Vec<String>>,

    /// Request headers allowed in cross-origin requests. Default Content-Type and
    /// Authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 256)))]
    pub allow_headers: Option<Vec<String>>,

    /// Allow cookies and Authorization on cross-origin requests. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,

    /// How long browsers may cache a preflight answer, as a duration. Default 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::CORS_MAX_AGE_IS_DURATION.rule).message(rules::CORS_MAX_AGE_IS_DURATION.message))]
    #[schemars(length(max = 32))]
    pub max_age: Option<K8sDuration>,
}

/// TLS on the public port.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// The Secret (type kubernetes.io/tls, in the ModelServer's namespace) holding tls.crt
    /// (the certificate chain) and tls.key (its private key), mounted into the sidecar's
    /// container.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// Bearer-token authentication.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// The Secret key holding the token. Requests must send "Authorization: Bearer <token>" or
    /// "X-Auth-Token: <token>"; others get 401. The health paths stay open for probes.
    pub token_secret_ref: SecretKeyRef,
}

/// A key of a Secret in the ModelServer's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Log level of the sidecar: trace, debug, info (the default), warn or error.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including per-request internals.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal operation.
    Info,
    /// Problems that did not fail a request.
    Warn,
    /// Failures only.
    Error,
}

impl LogLevel {
    /// The level as the sidecar's MODELSERVER_LOG_LEVEL takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Startup and shutdown budgets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleSpec {
    /// How long the model may take to load before the pod is restarted (the startupProbe
    /// budget), as a duration. Default 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::STARTUP_TIMEOUT_IS_DURATION.rule).message(rules::STARTUP_TIMEOUT_IS_DURATION.message))]
    #[schemars(length(max = 32))]
    pub startup_timeout: Option<K8sDuration>,

    /// After readiness turns false on shutdown, keep serving this long so every endpoint,
    /// kube-proxy and ingress stops sending traffic first. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::DRAIN_DELAY_IS_DURATION.rule).message(rules::DRAIN_DELAY_IS_DURATION.message))]
    #[schemars(length(max = 32))]
    pub drain_delay: Option<K8sDuration>,

    /// Then wait at most this long for in-flight requests to finish. Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::DRAIN_TIMEOUT_IS_DURATION.rule).message(rules::DRAIN_TIMEOUT_IS_DURATION.message))]
    #[schemars(length(max = 32))]
    pub drain_timeout: Option<K8sDuration>,

    /// Then give the workers this long between SIGTERM and SIGKILL. Default 10s. The pod's
    /// terminationGracePeriodSeconds is drainDelay + drainTimeout + shutdownTimeout + 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::SHUTDOWN_TIMEOUT_IS_DURATION.rule).message(rules::SHUTDOWN_TIMEOUT_IS_DURATION.message))]
    #[schemars(length(max = 32))]
    pub shutdown_timeout: Option<K8sDuration>,

    /// Worker restarts allowed within 10 minutes, 0 to 1000, default 5. One more and the
    /// sidecar exits non-zero, so Kubernetes shows the crash loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_worker_restarts: Option<i32>,
}

/// Autoscaling: on CPU utilization with a HorizontalPodAutoscaler (the default), or on
/// concurrency (the requests in flight and waiting in each pod's sidecar) with a KEDA
/// ScaledObject over the sidecar's metrics in Prometheus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(rules::AUTOSCALING_RANGE.rule).message(rules::AUTOSCALING_RANGE.message))]
#[x_kube(validation = Rule::new(rules::TARGET_CONCURRENCY_NEEDS_CONCURRENCY.rule).message(rules::TARGET_CONCURRENCY_NEEDS_CONCURRENCY.message))]
#[x_kube(validation = Rule::new(rules::TARGET_CPU_NEEDS_CPU.rule).message(rules::TARGET_CPU_NEEDS_CPU.message))]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Fewest pods, default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,

    /// Most pods; must be >= minReplicas.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,

    /// What to scale on. cpu (the default): a HorizontalPodAutoscaler on the pods' CPU
    /// utilization. concurrency: a KEDA ScaledObject (KEDA must be installed) whose Prometheus
    /// trigger sums the sidecars' modelserver_inflight_requests and modelserver_queue_depth
    /// across the ModelServer's pods, so a model waiting on a GPU or I/O scales too. The
    /// Prometheus address is the operator's --prometheus-url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<AutoscalingMetric>,

    /// Target average CPU utilization of the pods, in percent of their CPU request, 1 to 100,
    /// default 70. The model container needs a CPU request for this to work. Only with metric
    /// cpu.
    #[serde(
        default,
        rename = "targetCPUUtilization",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization: Option<i32>,

    /// Target requests per pod, in flight and waiting, with metric concurrency: the pods are
    /// scaled to the total divided by this. Default server.workers x server.executorThreads
    /// (the pod's slots), so pods are added when requests start to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub target_concurrency: Option<i32>,

    /// How long the load must have been lower before pods are removed (the autoscaler's
    /// scale-down stabilization window), at most 1h. Default 5m, the HorizontalPodAutoscaler's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(rules::SCALE_DOWN_DELAY_IS_DURATION.rule).message(rules::SCALE_DOWN_DELAY_IS_DURATION.message))]
    #[schemars(length(max = 32))]
    pub scale_down_delay: Option<K8sDuration>,
}

/// What the autoscaler scales on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AutoscalingMetric {
    /// CPU utilization (a HorizontalPodAutoscaler).
    Cpu,
    /// Requests in flight and waiting per pod (a KEDA ScaledObject).
    Concurrency,
}

/// The PodDisruptionBudget.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(rules::DISRUPTION_ONE_FORM.rule).message(rules::DISRUPTION_ONE_FORM.message))]
#[serde(rename_all = "camelCase")]
pub struct DisruptionSpec {
    /// Create the budget. Default: true when the desired replicas (or autoscaling.minReplicas)
    /// are 2 or more, false otherwise (a budget on one pod would block node drains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Pods that voluntary disruptions may take down at once, a number or a percentage.
    /// Default 1 when minAvailable is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,

    /// Pods that must stay available during voluntary disruptions, a number or a percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
}

/// The Deployment's rolling update.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(rules::ROLLOUT_CAN_PROGRESS.rule).message(rules::ROLLOUT_CAN_PROGRESS.message))]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Extra pods a rollout may create above the desired count, a number or a percentage.
    /// Default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,

    /// Desired pods a rollout may take away before their replacements are ready, a number or a
    /// percentage. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// The Service in front of the pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// ClusterIP (the default), NodePort or LoadBalancer.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,

    /// The Service port, which targets server.port on the pods. Default 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,

    /// Annotations of the Service (for example for a cloud load balancer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// How the Service is exposed.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    /// A cluster-internal virtual IP.
    ClusterIP,
    /// A port on every node, plus a ClusterIP.
    NodePort,
    /// A cloud load balancer, plus a NodePort and a ClusterIP.
    LoadBalancer,
}

impl ServiceType {
    /// The value as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// The NetworkPolicy of the pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(rules::NETWORK_POLICY_METRICS_FROM_NEEDS_POLICY.rule).message(rules::NETWORK_POLICY_METRICS_FROM_NEEDS_POLICY.message))]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create a networking.k8s.io/v1 NetworkPolicy named after the ModelServer that selects
    /// its pods and admits ingress TCP only to server.port (from anywhere) and to the admin port
    /// 9090 (from metricsFrom, or from anywhere). Every other port of the pods, such as
    /// model.upstream.port in proxy mode or a port a worker opens, is closed to other pods.
    /// Default true; false deletes the policy. The policy takes effect only with a CNI that
    /// enforces NetworkPolicies (Calico, Cilium, ...); kubelet probes come from the node, which
    /// such CNIs admit. In proxy mode the model should still listen on 127.0.0.1 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Who may reach the admin port 9090 (metrics at /metrics, probes): NetworkPolicy peers
    /// (podSelector, namespaceSelector, ipBlock), for example the namespace of Prometheus.
    /// Default: any source. The public port stays open to any source either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub metrics_from: Option<Vec<NetworkPolicyPeer>>,
}

/// Settings passed through to the pod template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Extra labels on the pods. The app.kubernetes.io labels the operator sets win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Extra annotations on the pods (for example for a metrics scraper or a mesh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// The ServiceAccount the pods run as; the namespace's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Node labels the pods must be scheduled onto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Node and pod affinity of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// How the pods spread across topology domains (zones, nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,

    /// The PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}
