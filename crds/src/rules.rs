//! The validation rules of the ModelServer API, as the CEL text the API server evaluates
//! (`x-kubernetes-validations` in the generated CRD, so `kubectl apply` and Argo CD reject a bad
//! object at once). Each rule is written here once: `modelserver-operator render` and the
//! operator evaluate this same text with a CEL interpreter ([`crate::validate`]). This module
//! depends on nothing in the crate, so the types can attach the rules without a cycle.

use const_format::formatcp;
use modelserver_contract::defaults::{ADMIN_PORT, PORT, WORKERS};

/// One CEL rule: where it is attached, its expression, and the message a person reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CelRule {
    /// The JSON path of the schema node the rule is attached to (`self` in the expression).
    pub path: &'static str,
    /// The CEL expression; true means valid.
    pub rule: &'static str,
    /// The message the API server (and `render`) reports when the rule is false.
    pub message: &'static str,
}

/// Pattern of a Kubernetes duration as CEL's `duration()` and [`modelserver_units::parse_duration`] read it.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))*$";

/// The object name must be a DNS-1035 label: it names the Service and is a label value.
pub const NAME_IS_DNS_LABEL: CelRule = CelRule {
    path: "",
    rule: "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    message: "metadata.name must be a DNS-1035 label (at most 63 lowercase letters, digits or '-', starting with a letter and ending with a letter or digit) because it names the Service",
};

/// Exactly one way to run the model.
pub const MODEL_COMMAND_XOR_UPSTREAM: CelRule = CelRule {
    path: "spec.model",
    rule: "has(self.command) != has(self.upstream)",
    message: "exactly one of spec.model.command and spec.model.upstream must be set",
};

/// The sidecar's settings come from the spec, never from the model's env.
pub const MODEL_ENV_NOT_RESERVED: CelRule = CelRule {
    path: "spec.model.env",
    rule: "self.all(e, !e.name.startsWith('MODELSERVER_'))",
    message: "spec.model.env may not set MODELSERVER_* variables: the operator sets them from spec.server and spec.lifecycle",
};

/// `model.readinessPath` belongs to managed mode; proxy mode has `upstream.readinessPath`.
pub const MODEL_READINESS_PATH_NEEDS_COMMAND: CelRule = CelRule {
    path: "spec.model",
    rule: "!has(self.readinessPath) || has(self.command)",
    message: "spec.model.readinessPath applies to spec.model.command; with spec.model.upstream set spec.model.upstream.readinessPath instead",
};

/// Readiness paths are absolute HTTP paths.
pub const READINESS_PATH_IS_ABSOLUTE: CelRule = CelRule {
    path: "spec.model.readinessPath",
    rule: "self.startsWith('/')",
    message: "spec.model.readinessPath must be an absolute path starting with '/'",
};

/// Upstream readiness paths are absolute HTTP paths.
pub const UPSTREAM_READINESS_PATH_IS_ABSOLUTE: CelRule = CelRule {
    path: "spec.model.upstream.readinessPath",
    rule: "self.startsWith('/')",
    message: "spec.model.upstream.readinessPath must be an absolute path starting with '/'",
};

/// The public port may not take the sidecar's admin port.
pub const SERVER_PORT_NOT_ADMIN: CelRule = CelRule {
    path: "spec.server.port",
    rule: formatcp!("self != {ADMIN_PORT}"),
    message: formatcp!(
        "spec.server.port may not be {ADMIN_PORT}: the sidecar's admin port (probes, drain, metrics) uses it"
    ),
};

/// In proxy mode the sidecar and the model listen on different ports.
pub const UPSTREAM_PORT_DIFFERS: CelRule = CelRule {
    path: "spec",
    rule: formatcp!(
        "!has(self.model.upstream) || (self.model.upstream.port != (has(self.server) && has(self.server.port) ? self.server.port : {PORT}) && self.model.upstream.port != {ADMIN_PORT})"
    ),
    message: formatcp!(
        "spec.model.upstream.port must differ from spec.server.port (default {PORT}) and from the admin port {ADMIN_PORT}: the sidecar listens on those"
    ),
};

/// TCP workers belong to managed mode.
pub const WORKER_PORT_BASE_NEEDS_COMMAND: CelRule = CelRule {
    path: "spec.model",
    rule: "!has(self.workerPortBase) || has(self.command)",
    message: "spec.model.workerPortBase applies to spec.model.command (managed workers); with spec.model.upstream the model's own port is spec.model.upstream.port",
};

/// Jitter spreads a request limit; alone it means nothing.
pub const MAX_REQUESTS_JITTER_NEEDS_MAX: CelRule = CelRule {
    path: "spec.server",
    rule: "!has(self.maxRequestsJitter) || has(self.maxRequestsPerWorker)",
    message: "spec.server.maxRequestsJitter needs spec.server.maxRequestsPerWorker: the jitter is added to that limit",
};

/// The highest TCP port.
const LAST_TCP_PORT: u16 = u16::MAX;

/// The public port in a rule at `spec`.
const SPEC_PUBLIC_PORT: &str =
    formatcp!("(has(self.server) && has(self.server.port) ? self.server.port : {PORT})");

/// TCP workers' ports stay within 65535 and clear of the sidecar's own ports.
pub const WORKER_PORTS_CLEAR: CelRule = CelRule {
    path: "spec",
    rule: formatcp!(
        "!has(self.model.workerPortBase) || ({LAST_TCP_PORT} >= {WORKER_LAST_PORT} && ({SPEC_PUBLIC_PORT} < self.model.workerPortBase || {SPEC_PUBLIC_PORT} > {WORKER_LAST_PORT}) && ({ADMIN_PORT} < self.model.workerPortBase || {ADMIN_PORT} > {WORKER_LAST_PORT}))"
    ),
    message: formatcp!(
        "spec.model.workerPortBase .. workerPortBase + server.workers - 1 must end at or below 65535 and hold neither spec.server.port (default {PORT}) nor the admin port {ADMIN_PORT}: the sidecar listens on those"
    ),
};

/// gRPC workers belong to managed mode.
pub const GRPC_PORT_BASE_NEEDS_COMMAND: CelRule = CelRule {
    path: "spec.model",
    rule: "!has(self.grpcPortBase) || has(self.command)",
    message: "spec.model.grpcPortBase applies to spec.model.command (managed workers); with spec.model.upstream set spec.model.upstream.grpcPort instead",
};

/// The workers' gRPC ports, `grpcPortBase` .. `grpcPortBase + workers - 1`.
const GRPC_LAST_PORT: &str = formatcp!(
    "self.model.grpcPortBase + (has(self.server) && has(self.server.workers) ? self.server.workers : {WORKERS}) - 1"
);
/// The last of the workers' HTTP ports, `workerPortBase + workers - 1`.
const WORKER_LAST_PORT: &str = formatcp!(
    "self.model.workerPortBase + (has(self.server) && has(self.server.workers) ? self.server.workers : {WORKERS}) - 1"
);

/// The workers' gRPC ports stay within 65535, clear of the sidecar's ports and of the workers'
/// HTTP ports.
pub const GRPC_PORTS_CLEAR: CelRule = CelRule {
    path: "spec",
    rule: formatcp!(
        "!has(self.model.grpcPortBase) || ({LAST_TCP_PORT} >= {GRPC_LAST_PORT} && ({SPEC_PUBLIC_PORT} < self.model.grpcPortBase || {SPEC_PUBLIC_PORT} > {GRPC_LAST_PORT}) && ({ADMIN_PORT} < self.model.grpcPortBase || {ADMIN_PORT} > {GRPC_LAST_PORT}) && (!has(self.model.workerPortBase) || self.model.workerPortBase > {GRPC_LAST_PORT} || self.model.grpcPortBase > {WORKER_LAST_PORT}))"
    ),
    message: formatcp!(
        "spec.model.grpcPortBase .. grpcPortBase + server.workers - 1 must end at or below 65535 and hold neither spec.server.port (default {PORT}), the admin port {ADMIN_PORT}, nor a port of the workerPortBase range"
    ),
};

/// In proxy mode the upstream's gRPC port is its own.
pub const UPSTREAM_GRPC_PORT_DIFFERS: CelRule = CelRule {
    path: "spec",
    rule: formatcp!(
        "!has(self.model.upstream) || !has(self.model.upstream.grpcPort) || (self.model.upstream.grpcPort != self.model.upstream.port && self.model.upstream.grpcPort != {SPEC_PUBLIC_PORT} && self.model.upstream.grpcPort != {ADMIN_PORT})"
    ),
    message: formatcp!(
        "spec.model.upstream.grpcPort must differ from spec.model.upstream.port, spec.server.port (default {PORT}) and the admin port {ADMIN_PORT}"
    ),
};

/// The upstream credential's header is a plain header name the proxy does not own.
pub const UPSTREAM_AUTH_HEADER_IS_USABLE: CelRule = CelRule {
    path: "spec.model.upstream.auth.header",
    rule: "self.matches('^[A-Za-z0-9][A-Za-z0-9_-]*$') && !(self.lowerAscii() in ['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect'])",
    message: "spec.model.upstream.auth.header must be a header name of letters, digits, '-' and '_' (such as X-Api-Key), and not one the proxy itself sets (Host, Content-Length, Transfer-Encoding, Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, Expect)",
};

/// Upload limits are byte quantities.
pub const MAX_UPLOAD_SIZE_IS_QUANTITY: CelRule = quantity_rule(
    "spec.server.maxUploadSize",
    "spec.server.maxUploadSize must be a byte quantity greater than zero, such as 100Mi, 1Gi or 500M",
);

/// The worker memory ceiling is a byte quantity.
pub const MAX_WORKER_MEMORY_IS_QUANTITY: CelRule = quantity_rule(
    "spec.server.maxWorkerMemory",
    "spec.server.maxWorkerMemory must be a byte quantity greater than zero, such as 512Mi, 2Gi or 500M",
);

/// The request timeout is a positive duration.
pub const REQUEST_TIMEOUT_IS_DURATION: CelRule = duration_rule(
    "spec.server.requestTimeout",
    "spec.server.requestTimeout must be a duration greater than zero, such as 60s or 2m",
);

/// The queue's time bound is a positive duration.
pub const MAX_QUEUE_WAIT_IS_DURATION: CelRule = duration_rule(
    "spec.server.maxQueueWait",
    "spec.server.maxQueueWait must be a duration greater than zero, such as 1s or 500ms",
);

/// CORS max age is a duration.
pub const CORS_MAX_AGE_IS_DURATION: CelRule = duration_rule(
    "spec.server.cors.maxAge",
    "spec.server.cors.maxAge must be a duration greater than zero, such as 10m",
);

/// A wildcard origin never goes with credentials (browsers refuse it, and it would be unsafe).
pub const CORS_NO_WILDCARD_WITH_CREDENTIALS: CelRule = CelRule {
    path: "spec.server.cors",
    rule: "!(has(self.allowCredentials) && self.allowCredentials && has(self.allowOrigins) && self.allowOrigins.exists(o, o == '*'))",
    message: "cors.allowOrigins may not contain '*' when allowCredentials is true",
};

/// Enabled CORS needs at least one origin: there is no default wildcard.
pub const CORS_ENABLED_NEEDS_ORIGINS: CelRule = CelRule {
    path: "spec.server.cors",
    rule: "!(has(self.enabled) && self.enabled) || (has(self.allowOrigins) && self.allowOrigins.size() > 0)",
    message: "spec.server.cors.allowOrigins must list at least one origin when cors is enabled (there is no default wildcard)",
};

/// Origins are `scheme://host[:port]` with no path, or `*`.
pub const CORS_ORIGINS_WELL_FORMED: CelRule = CelRule {
    path: "spec.server.cors.allowOrigins",
    rule: "self.all(o, o == '*' || o.matches('^https?://[^/*?#,]+$'))",
    message: "each spec.server.cors.allowOrigins entry must be '*' or an origin such as https://app.example.com (scheme and host, optional port, no path)",
};

/// Startup budget.
pub const STARTUP_TIMEOUT_IS_DURATION: CelRule = duration_rule(
    "spec.lifecycle.startupTimeout",
    "spec.lifecycle.startupTimeout must be a duration greater than zero, such as 10m",
);

/// Drain delay (may be zero).
pub const DRAIN_DELAY_IS_DURATION: CelRule = CelRule {
    path: "spec.lifecycle.drainDelay",
    rule: "self == '0' || self.matches('^([0-9]+(\\\\.[0-9]*)?|\\\\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\\\\.[0-9]*)?|\\\\.[0-9]+)(ns|us|µs|ms|s|m|h))*$')",
    message: "spec.lifecycle.drainDelay must be a duration such as 5s (0s to turn the delay off)",
};

/// Drain budget.
pub const DRAIN_TIMEOUT_IS_DURATION: CelRule = duration_rule(
    "spec.lifecycle.drainTimeout",
    "spec.lifecycle.drainTimeout must be a duration greater than zero, such as 30s",
);

/// Worker stop budget.
pub const SHUTDOWN_TIMEOUT_IS_DURATION: CelRule = duration_rule(
    "spec.lifecycle.shutdownTimeout",
    "spec.lifecycle.shutdownTimeout must be a duration greater than zero, such as 10s",
);

/// The autoscaler's range is not empty.
pub const AUTOSCALING_RANGE: CelRule = CelRule {
    path: "spec.autoscaling",
    rule: "self.maxReplicas >= (has(self.minReplicas) ? self.minReplicas : 1)",
    message: "spec.autoscaling.maxReplicas must be >= minReplicas (default 1)",
};

/// A concurrency target belongs to concurrency autoscaling.
pub const TARGET_CONCURRENCY_NEEDS_CONCURRENCY: CelRule = CelRule {
    path: "spec.autoscaling",
    rule: "!has(self.targetConcurrency) || (has(self.metric) && self.metric == 'concurrency')",
    message: "spec.autoscaling.targetConcurrency applies to metric concurrency: set spec.autoscaling.metric to concurrency, or remove targetConcurrency",
};

/// A CPU target belongs to CPU autoscaling.
pub const TARGET_CPU_NEEDS_CPU: CelRule = CelRule {
    path: "spec.autoscaling",
    rule: "!has(self.targetCPUUtilization) || !has(self.metric) || self.metric == 'cpu'",
    message: "spec.autoscaling.targetCPUUtilization applies to metric cpu (the default): remove it, or use targetConcurrency with metric concurrency",
};

/// The scale-down window is a duration the autoscaler accepts (at most an hour).
pub const SCALE_DOWN_DELAY_IS_DURATION: CelRule = CelRule {
    path: "spec.autoscaling.scaleDownDelay",
    rule: "self.matches('^([0-9]+(\\\\.[0-9]*)?|\\\\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\\\\.[0-9]*)?|\\\\.[0-9]+)(ns|us|µs|ms|s|m|h))*$') && duration(self) >= duration('0s') && duration(self) <= duration('1h')",
    message: "spec.autoscaling.scaleDownDelay must be a duration from 0s to 1h, such as 5m",
};

/// A PodDisruptionBudget takes one of its two forms.
pub const DISRUPTION_ONE_FORM: CelRule = CelRule {
    path: "spec.disruption",
    rule: "!(has(self.maxUnavailable) && has(self.minAvailable))",
    message: "set at most one of spec.disruption.maxUnavailable and spec.disruption.minAvailable",
};

/// A rolling update must be able to make progress.
pub const ROLLOUT_CAN_PROGRESS: CelRule = CelRule {
    path: "spec.rollout",
    rule: "!((has(self.maxSurge) ? string(self.maxSurge) : '25%') in ['0', '0%'] && (has(self.maxUnavailable) ? string(self.maxUnavailable) : '0') in ['0', '0%'])",
    message: "spec.rollout.maxSurge and spec.rollout.maxUnavailable may not both be 0 (maxUnavailable defaults to 0): the rollout could never progress",
};

/// Peers for the admin port belong to the NetworkPolicy, which `enabled: false` turns off.
pub const NETWORK_POLICY_METRICS_FROM_NEEDS_POLICY: CelRule = CelRule {
    path: "spec.networkPolicy",
    rule: "!has(self.metricsFrom) || !has(self.enabled) || self.enabled",
    message: "spec.networkPolicy.metricsFrom has no effect with spec.networkPolicy.enabled false: remove metricsFrom, or enable the policy",
};

/// The longest ModelServer name that leaves room for the `-canary` suffix of the canary's
/// Deployment and Service (63 characters, a DNS-1035 label).
pub const CANARY_NAME_MAX: usize = 56;

/// The canary's Deployment and Service are named `<name>-canary`, which must stay a DNS label.
pub const CANARY_NAME_FITS: CelRule = CelRule {
    path: "",
    rule: formatcp!("!has(self.spec.canary) || self.metadata.name.size() <= {CANARY_NAME_MAX}"),
    message: formatcp!(
        "metadata.name may have at most {CANARY_NAME_MAX} characters with spec.canary set: the canary's Deployment and Service are named <name>-canary"
    ),
};

/// A canary is a different version: it overrides something, and an image it names is not the
/// stable one. (Comparing the other overrides with the stable version's would cost the API server
/// more than a rule may; the operator refuses a canary whose pods would equal the stable
/// version's when it renders it.)
pub const CANARY_DIFFERS: CelRule = CelRule {
    path: "spec",
    rule: "!has(self.canary) || (has(self.canary.image) && self.canary.image != self.image) || has(self.canary.resources) || (has(self.canary.model) && (has(self.canary.model.command) || has(self.canary.model.args) || has(self.canary.model.env)))",
    message: "spec.canary must change something: an image other than spec.image, resources, or the model's command, args or env",
};

/// The canary's command replaces the worker command, which only managed mode has.
pub const CANARY_COMMAND_NEEDS_COMMAND: CelRule = CelRule {
    path: "spec",
    rule: "!has(self.canary) || !has(self.canary.model) || !has(self.canary.model.command) || has(self.model.command)",
    message: "spec.canary.model.command replaces spec.model.command, so it needs managed mode (spec.model.command); in proxy mode change the canary's image or args",
};

/// The canary's environment follows the model's rule.
pub const CANARY_ENV_NOT_RESERVED: CelRule = CelRule {
    path: "spec.canary.model.env",
    rule: "self.all(e, !e.name.startsWith('MODELSERVER_'))",
    message: "spec.canary.model.env may not set MODELSERVER_* variables: the operator sets them from spec.server and spec.lifecycle",
};

/// A route's path prefix is a clean absolute path, as Gateway API's own rules require.
pub const ROUTE_PATH_PREFIX_IS_PATH: CelRule = CelRule {
    path: "spec.route.pathPrefix",
    rule: "self.startsWith('/') && !self.contains('//') && !self.contains('#') && !self.contains('?') && !self.contains('%2f') && !self.contains('%2F') && !self.endsWith('/.') && !self.endsWith('/..')",
    message: "spec.route.pathPrefix must be an absolute path such as /models/iris (starting with '/', without '//', '?', '#', an encoded '/', or a trailing '/.' or '/..')",
};

/// The collector is reached over plain HTTP (OTLP/HTTP), at a host, an optional port and an
/// optional path; the sidecar reads exactly these forms.
pub const TRACING_ENDPOINT_IS_HTTP_URL: CelRule = CelRule {
    path: "spec.server.tracing.endpoint",
    rule: r"self.matches('^http://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$')",
    message: "spec.server.tracing.endpoint must be the http:// URL of an OTLP/HTTP collector, such as http://otel-collector.observability:4318 (host, optional port and path; no query; https is not supported)",
};

/// The sampling ratio is a decimal from 0 to 1.
pub const TRACING_SAMPLING_RATIO_IS_RATIO: CelRule = CelRule {
    path: "spec.server.tracing.samplingRatio",
    rule: r"self.matches('^(0(\\.[0-9]{1,6})?|1(\\.0{1,6})?)$')",
    message: "spec.server.tracing.samplingRatio must be a decimal from 0 to 1 written as a string, such as \"0.1\" for 10% (at most six decimals)",
};

/// Every rule, for the tests and for documentation.
pub const ALL: &[CelRule] = &[
    NAME_IS_DNS_LABEL,
    MODEL_COMMAND_XOR_UPSTREAM,
    MODEL_ENV_NOT_RESERVED,
    MODEL_READINESS_PATH_NEEDS_COMMAND,
    READINESS_PATH_IS_ABSOLUTE,
    UPSTREAM_READINESS_PATH_IS_ABSOLUTE,
    SERVER_PORT_NOT_ADMIN,
    UPSTREAM_PORT_DIFFERS,
    WORKER_PORT_BASE_NEEDS_COMMAND,
    WORKER_PORTS_CLEAR,
    MAX_REQUESTS_JITTER_NEEDS_MAX,
    GRPC_PORT_BASE_NEEDS_COMMAND,
    GRPC_PORTS_CLEAR,
    UPSTREAM_GRPC_PORT_DIFFERS,
    UPSTREAM_AUTH_HEADER_IS_USABLE,
    MAX_UPLOAD_SIZE_IS_QUANTITY,
    MAX_WORKER_MEMORY_IS_QUANTITY,
    REQUEST_TIMEOUT_IS_DURATION,
    MAX_QUEUE_WAIT_IS_DURATION,
    CORS_MAX_AGE_IS_DURATION,
    CORS_NO_WILDCARD_WITH_CREDENTIALS,
    CORS_ENABLED_NEEDS_ORIGINS,
    CORS_ORIGINS_WELL_FORMED,
    STARTUP_TIMEOUT_IS_DURATION,
    DRAIN_DELAY_IS_DURATION,
    DRAIN_TIMEOUT_IS_DURATION,
    SHUTDOWN_TIMEOUT_IS_DURATION,
    AUTOSCALING_RANGE,
    DISRUPTION_ONE_FORM,
    ROLLOUT_CAN_PROGRESS,
    NETWORK_POLICY_METRICS_FROM_NEEDS_POLICY,
    CANARY_NAME_FITS,
    CANARY_DIFFERS,
    CANARY_COMMAND_NEEDS_COMMAND,
    CANARY_ENV_NOT_RESERVED,
    ROUTE_PATH_PREFIX_IS_PATH,
    TARGET_CONCURRENCY_NEEDS_CONCURRENCY,
    TARGET_CPU_NEEDS_CPU,
    SCALE_DOWN_DELAY_IS_DURATION,
    TRACING_ENDPOINT_IS_HTTP_URL,
    TRACING_SAMPLING_RATIO_IS_RATIO,
];

/// A positive-byte-quantity rule for the field at `path`.
const fn quantity_rule(path: &'static str, message: &'static str) -> CelRule {
    CelRule {
        path,
        rule: r"self.matches('^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$') && quantity(self).isGreaterThan(quantity('0'))",
        message,
    }
}

/// A positive-duration rule for the field at `path`.
const fn duration_rule(path: &'static str, message: &'static str) -> CelRule {
    CelRule {
        path,
        rule: "self.matches('^([0-9]+(\\\\.[0-9]*)?|\\\\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\\\\.[0-9]*)?|\\\\.[0-9]+)(ns|us|µs|ms|s|m|h))*$') && duration(self) > duration('0s')",
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duration_pattern_constant_matches_the_rule_text() {
        // The rule strings escape the pattern for CEL inside Rust; keep the readable copy honest.
        let unescaped = REQUEST_TIMEOUT_IS_DURATION.rule.replace("\\\\", "\\");
        assert!(unescaped.contains(DURATION_PATTERN), "{unescaped}");
    }

    #[test]
    fn the_header_rule_refuses_every_header_the_sidecar_refuses() {
        for name in modelserver_contract::values::RESERVED_HEADERS {
            assert!(
                UPSTREAM_AUTH_HEADER_IS_USABLE
                    .rule
                    .contains(&format!("'{name}'")),
                "{name}"
            );
        }
    }

    #[test]
    fn the_port_rules_name_the_contracts_ports() {
        assert_eq!(SERVER_PORT_NOT_ADMIN.rule, "self != 9090");
        assert!(UPSTREAM_PORT_DIFFERS.rule.contains(": 8080)"));
        assert_eq!(
            WORKER_PORTS_CLEAR.rule,
            "!has(self.model.workerPortBase) || (65535 >= self.model.workerPortBase + (has(self.server) && has(self.server.workers) ? self.server.workers : 1) - 1 && ((has(self.server) && has(self.server.port) ? self.server.port : 8080) < self.model.workerPortBase || (has(self.server) && has(self.server.port) ? self.server.port : 8080) > self.model.workerPortBase + (has(self.server) && has(self.server.workers) ? self.server.workers : 1) - 1) && (9090 < self.model.workerPortBase || 9090 > self.model.workerPortBase + (has(self.server) && has(self.server.workers) ? self.server.workers : 1) - 1))"
        );
    }
}
