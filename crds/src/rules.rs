//! The validation rules of the ModelServer API.
//!
//! Each rule exists twice, on purpose: as CEL text that the API server evaluates
//! (`x-kubernetes-validations` in the generated CRD, so `kubectl apply` and Argo CD reject a bad
//! object at once), and as a Rust function over the typed spec that `modelserver-operator render`
//! runs without a cluster. Both report the same message. The tests in this crate evaluate the CEL
//! text with a real CEL interpreter on the same inputs as the Rust function and require the same
//! verdict, so the two cannot drift apart.

use crate::spec::{ModelServerSpec, ModelSpec};
use crate::{ModelServer, defaults};

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
    rule: "self != 9090",
    message: "spec.server.port may not be 9090: the sidecar's admin port (probes, drain, metrics) uses it",
};

/// In proxy mode the sidecar and the model listen on different ports.
pub const UPSTREAM_PORT_DIFFERS: CelRule = CelRule {
    path: "spec",
    rule: "!has(self.model.upstream) || (self.model.upstream.port != (has(self.server) && has(self.server.port) ? self.server.port : 8080) && self.model.upstream.port != 9090)",
    message: "spec.model.upstream.port must differ from spec.server.port (default 8080) and from the admin port 9090: the sidecar listens on those",
};

/// Upload limits are byte quantities.
pub const MAX_UPLOAD_SIZE_IS_QUANTITY: CelRule = CelRule {
    path: "spec.server.maxUploadSize",
    rule: r"self.matches('^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$') && quantity(self).isGreaterThan(quantity('0'))",
    message: "spec.server.maxUploadSize must be a byte quantity greater than zero, such as 100Mi, 1Gi or 500M",
};

/// The request timeout is a positive duration.
pub const REQUEST_TIMEOUT_IS_DURATION: CelRule = duration_rule(
    "spec.server.requestTimeout",
    "spec.server.requestTimeout must be a duration greater than zero, such as 60s or 2m",
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
    MAX_UPLOAD_SIZE_IS_QUANTITY,
    REQUEST_TIMEOUT_IS_DURATION,
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
];

/// A positive-duration rule for the field at `path`.
const fn duration_rule(path: &'static str, message: &'static str) -> CelRule {
    CelRule {
        path,
        rule: "self.matches('^([0-9]+(\\\\.[0-9]*)?|\\\\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\\\\.[0-9]*)?|\\\\.[0-9]+)(ns|us|µs|ms|s|m|h))*$') && duration(self) > duration('0s')",
        message,
    }
}

/// One broken rule: where, and the rule's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The JSON path the rule is attached to.
    pub path: &'static str,
    /// The rule's message.
    pub message: &'static str,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Runs every rule over a ModelServer and returns the broken ones, in [`ALL`] order.
pub fn validate(object: &ModelServer) -> Vec<Violation> {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let spec = &object.spec;
    let server = spec.server.as_ref();
    let cors = server.and_then(|s| s.cors.as_ref());
    let lifecycle = spec.lifecycle.as_ref();
    let checks: [(CelRule, bool); 22] = [
        (NAME_IS_DNS_LABEL, is_dns_1035_label(name)),
        (
            MODEL_COMMAND_XOR_UPSTREAM,
            command_xor_upstream(&spec.model),
        ),
        (
            MODEL_ENV_NOT_RESERVED,
            optional(spec.model.env.as_ref(), |env| {
                env.iter().all(|e| !e.name.starts_with("MODELSERVER_"))
            }),
        ),
        (
            MODEL_READINESS_PATH_NEEDS_COMMAND,
            spec.model.readiness_path.is_none() || spec.model.command.is_some(),
        ),
        (
            READINESS_PATH_IS_ABSOLUTE,
            optional(spec.model.readiness_path.as_deref(), |p| p.starts_with('/')),
        ),
        (
            UPSTREAM_READINESS_PATH_IS_ABSOLUTE,
            optional(
                spec.model
                    .upstream
                    .as_ref()
                    .and_then(|u| u.readiness_path.as_deref()),
                |p| p.starts_with('/'),
            ),
        ),
        (
            SERVER_PORT_NOT_ADMIN,
            optional(server.and_then(|s| s.port), |p| p != defaults::ADMIN_PORT),
        ),
        (UPSTREAM_PORT_DIFFERS, upstream_port_differs(spec)),
        (
            MAX_UPLOAD_SIZE_IS_QUANTITY,
            optional(server.and_then(|s| s.max_upload_size.as_deref()), |q| {
                is_plain_quantity(q)
                    && modelserver_units::parse_quantity_bytes(q).is_ok_and(|b| b > 0)
            }),
        ),
        (
            REQUEST_TIMEOUT_IS_DURATION,
            optional(
                server.and_then(|s| s.request_timeout.as_deref()),
                is_positive_duration,
            ),
        ),
        (
            CORS_MAX_AGE_IS_DURATION,
            optional(
                cors.and_then(|c| c.max_age.as_deref()),
                is_positive_duration,
            ),
        ),
        (
            CORS_NO_WILDCARD_WITH_CREDENTIALS,
            optional(cors, |c| {
                !(c.allow_credentials == Some(true)
                    && c.allow_origins.iter().flatten().any(|o| o == "*"))
            }),
        ),
        (
            CORS_ENABLED_NEEDS_ORIGINS,
            optional(cors, |c| {
                c.enabled != Some(true) || c.allow_origins.as_ref().is_some_and(|o| !o.is_empty())
            }),
        ),
        (
            CORS_ORIGINS_WELL_FORMED,
            optional(cors.and_then(|c| c.allow_origins.as_ref()), |origins| {
                origins.iter().all(|o| o == "*" || is_origin(o))
            }),
        ),
        (
            STARTUP_TIMEOUT_IS_DURATION,
            optional(
                lifecycle.and_then(|l| l.startup_timeout.as_deref()),
                is_positive_duration,
            ),
        ),
        (
            DRAIN_DELAY_IS_DURATION,
            optional(lifecycle.and_then(|l| l.drain_delay.as_deref()), |d| {
                d == "0" || is_duration_syntax(d)
            }),
        ),
        (
            DRAIN_TIMEOUT_IS_DURATION,
            optional(
                lifecycle.and_then(|l| l.drain_timeout.as_deref()),
                is_positive_duration,
            ),
        ),
        (
            SHUTDOWN_TIMEOUT_IS_DURATION,
            optional(
                lifecycle.and_then(|l| l.shutdown_timeout.as_deref()),
                is_positive_duration,
            ),
        ),
        (
            AUTOSCALING_RANGE,
            optional(spec.autoscaling.as_ref(), |a| {
                a.max_replicas >= a.min_replicas.unwrap_or(defaults::AUTOSCALING_MIN_REPLICAS)
            }),
        ),
        (
            DISRUPTION_ONE_FORM,
            optional(spec.disruption.as_ref(), |d| {
                !(d.max_unavailable.is_some() && d.min_available.is_some())
            }),
        ),
        (
            ROLLOUT_CAN_PROGRESS,
            optional(spec.rollout.as_ref(), |r| {
                let is_zero = |v: &str| v == "0" || v == "0%";
                let surge = r.max_surge.as_ref().map(int_or_string_text);
                let unavailable = r.max_unavailable.as_ref().map(int_or_string_text);
                !(is_zero(surge.as_deref().unwrap_or(defaults::ROLLOUT_MAX_SURGE))
                    && is_zero(unavailable.as_deref().unwrap_or("0")))
            }),
        ),
        (
            NETWORK_POLICY_METRICS_FROM_NEEDS_POLICY,
            optional(spec.network_policy.as_ref(), |n| {
                n.metrics_from.is_none() || n.enabled != Some(false)
            }),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(rule, _)| Violation {
            path: rule.path,
            message: rule.message,
        })
        .collect()
}

/// A rule on an optional field holds when the field is absent (CEL skips absent fields).
fn optional<T>(value: Option<T>, check: impl FnOnce(T) -> bool) -> bool {
    value.is_none_or(check)
}

fn command_xor_upstream(model: &ModelSpec) -> bool {
    model.command.is_some() != model.upstream.is_some()
}

fn upstream_port_differs(spec: &ModelServerSpec) -> bool {
    let Some(upstream) = &spec.model.upstream else {
        return true;
    };
    let public = spec
        .server
        .as_ref()
        .and_then(|s| s.port)
        .unwrap_or(defaults::SERVER_PORT);
    upstream.port != public && upstream.port != defaults::ADMIN_PORT
}

/// The text CEL's `string()` gives an int-or-string value.
fn int_or_string_text(value: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match value {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// `^[a-z]([-a-z0-9]*[a-z0-9])?$`, at most 63 characters.
pub fn is_dns_1035_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

/// `^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|...|E)?$`: the quantity forms a byte limit may take.
fn is_plain_quantity(text: &str) -> bool {
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_len);
    is_decimal(number)
        && matches!(
            suffix,
            "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "k" | "M" | "G" | "T" | "P" | "E"
        )
}

/// `[0-9]+(\.[0-9]*)?|\.[0-9]+`.
fn is_decimal(number: &str) -> bool {
    match number.split_once('.') {
        None => !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
        Some((whole, fraction)) => {
            whole.bytes().all(|b| b.is_ascii_digit())
                && fraction.bytes().all(|b| b.is_ascii_digit())
                && !(whole.is_empty() && fraction.is_empty())
        }
    }
}

/// The duration syntax of [`DURATION_PATTERN`]: one or more `<decimal><unit>` terms.
fn is_duration_syntax(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if !is_decimal(number) {
            return false;
        }
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .into_iter()
            .filter(|u| after.starts_with(u))
            .max_by_key(|u| u.len())
        else {
            return false;
        };
        rest = &after[unit.len()..];
    }
    true
}

fn is_positive_duration(text: &str) -> bool {
    is_duration_syntax(text) && modelserver_units::parse_duration(text).is_ok_and(|d| !d.is_zero())
}

/// `^https?://[^/*?#,]+$`.
fn is_origin(origin: &str) -> bool {
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    host.is_some_and(|h| !h.is_empty() && !h.contains(['/', '*', '?', '#', ',']))
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
    fn duration_syntax_accepts_go_durations_only() {
        for ok in ["1s", "1m30s", "1.5h", ".5s", "250ms", "3µs", "10us"] {
            assert!(is_duration_syntax(ok), "{ok}");
        }
        for bad in ["", "1", "s", "1x", "-1s", "1 s", "1..2s", "."] {
            assert!(!is_duration_syntax(bad), "{bad}");
        }
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_1035_label("iris"));
        assert!(is_dns_1035_label("a-1"));
        for bad in ["", "1abc", "Iris", "a_b", "a-", &"a".repeat(64)] {
            assert!(!is_dns_1035_label(bad), "{bad}");
        }
    }
}
