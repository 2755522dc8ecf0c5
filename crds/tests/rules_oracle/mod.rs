//! An independent oracle for the tests: every CEL rule of `modelserver_crds::rules` written a
//! second time, by hand, in Rust. The product evaluates the CEL text itself; the tests require
//! the interpreter and this oracle to give the same verdict on many inputs, so a misread rule
//! (or an interpreter that disagrees with the API server's reading) shows up here.

use modelserver_crds::rules::*;
use modelserver_crds::spec::{AutoscalingMetric, CanarySpec, ModelServerSpec, ModelSpec};
use modelserver_crds::{ModelServer, defaults};

const ADMIN_PORT: i32 = modelserver_contract::defaults::ADMIN_PORT as i32;
const SERVER_PORT: i32 = modelserver_contract::defaults::PORT as i32;

/// Runs every rule over a ModelServer and returns the broken ones, in [`ALL`] order.
pub fn validate(object: &ModelServer) -> Vec<&'static str> {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let spec = &object.spec;
    let server = spec.server.as_ref();
    let cors = server.and_then(|s| s.cors.as_ref());
    let lifecycle = spec.lifecycle.as_ref();
    let checks: [(CelRule, bool); 41] = [
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
            optional(server.and_then(|s| s.port), |p| p != ADMIN_PORT),
        ),
        (UPSTREAM_PORT_DIFFERS, upstream_port_differs(spec)),
        (
            WORKER_PORT_BASE_NEEDS_COMMAND,
            spec.model.worker_port_base.is_none() || spec.model.command.is_some(),
        ),
        (WORKER_PORTS_CLEAR, worker_ports_clear(spec)),
        (
            MAX_REQUESTS_JITTER_NEEDS_MAX,
            optional(server, |s| {
                s.max_requests_jitter.is_none() || s.max_requests_per_worker.is_some()
            }),
        ),
        (
            GRPC_PORT_BASE_NEEDS_COMMAND,
            spec.model.grpc_port_base.is_none() || spec.model.command.is_some(),
        ),
        (GRPC_PORTS_CLEAR, grpc_ports_clear(spec)),
        (UPSTREAM_GRPC_PORT_DIFFERS, upstream_grpc_port_differs(spec)),
        (
            UPSTREAM_AUTH_HEADER_IS_USABLE,
            optional(
                spec.model
                    .upstream
                    .as_ref()
                    .and_then(|u| u.auth.as_ref())
                    .and_then(|a| a.header.as_deref()),
                usable_header,
            ),
        ),
        (
            MAX_UPLOAD_SIZE_IS_QUANTITY,
            optional(
                server.and_then(|s| s.max_upload_size.as_ref().map(|q| q.as_str())),
                |q| {
                    is_plain_quantity(q)
                        && modelserver_units::parse_quantity_bytes(q).is_ok_and(|b| b > 0)
                },
            ),
        ),
        (
            MAX_WORKER_MEMORY_IS_QUANTITY,
            optional(
                server.and_then(|s| s.max_worker_memory.as_ref().map(|q| q.as_str())),
                |q| {
                    is_plain_quantity(q)
                        && modelserver_units::parse_quantity_bytes(q).is_ok_and(|b| b > 0)
                },
            ),
        ),
        (
            REQUEST_TIMEOUT_IS_DURATION,
            optional(
                server.and_then(|s| s.request_timeout.as_ref().map(|d| d.as_str())),
                is_positive_duration,
            ),
        ),
        (
            MAX_QUEUE_WAIT_IS_DURATION,
            optional(
                server.and_then(|s| s.max_queue_wait.as_ref().map(|d| d.as_str())),
                is_positive_duration,
            ),
        ),
        (
            CORS_MAX_AGE_IS_DURATION,
            optional(
                cors.and_then(|c| c.max_age.as_ref().map(|d| d.as_str())),
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
                lifecycle.and_then(|l| l.startup_timeout.as_ref().map(|d| d.as_str())),
                is_positive_duration,
            ),
        ),
        (
            DRAIN_DELAY_IS_DURATION,
            optional(
                lifecycle.and_then(|l| l.drain_delay.as_ref().map(|d| d.as_str())),
                |d| d == "0" || is_duration_syntax(d),
            ),
        ),
        (
            DRAIN_TIMEOUT_IS_DURATION,
            optional(
                lifecycle.and_then(|l| l.drain_timeout.as_ref().map(|d| d.as_str())),
                is_positive_duration,
            ),
        ),
        (
            SHUTDOWN_TIMEOUT_IS_DURATION,
            optional(
                lifecycle.and_then(|l| l.shutdown_timeout.as_ref().map(|d| d.as_str())),
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
        (
            CANARY_NAME_FITS,
            spec.canary.is_none() || name.len() <= CANARY_NAME_MAX,
        ),
        (
            CANARY_DIFFERS,
            optional(spec.canary.as_ref(), |c| canary_differs(spec, c)),
        ),
        (
            CANARY_COMMAND_NEEDS_COMMAND,
            optional(spec.canary.as_ref(), |c| {
                c.model.as_ref().and_then(|m| m.command.as_ref()).is_none()
                    || spec.model.command.is_some()
            }),
        ),
        (
            CANARY_ENV_NOT_RESERVED,
            optional(
                spec.canary
                    .as_ref()
                    .and_then(|c| c.model.as_ref())
                    .and_then(|m| m.env.as_ref()),
                |env| env.iter().all(|e| !e.name.starts_with("MODELSERVER_")),
            ),
        ),
        (
            TARGET_CONCURRENCY_NEEDS_CONCURRENCY,
            optional(spec.autoscaling.as_ref(), |a| {
                a.target_concurrency.is_none() || a.metric == Some(AutoscalingMetric::Concurrency)
            }),
        ),
        (
            TARGET_CPU_NEEDS_CPU,
            optional(spec.autoscaling.as_ref(), |a| {
                a.target_cpu_utilization.is_none()
                    || a.metric.is_none_or(|m| m == AutoscalingMetric::Cpu)
            }),
        ),
        (
            SCALE_DOWN_DELAY_IS_DURATION,
            optional(
                spec.autoscaling
                    .as_ref()
                    .and_then(|a| a.scale_down_delay.as_ref().map(|d| d.as_str())),
                |d| {
                    is_duration_syntax(d)
                        && modelserver_units::parse_duration(d)
                            .is_ok_and(|d| d <= std::time::Duration::from_secs(3600))
                },
            ),
        ),
        (
            ROUTE_PATH_PREFIX_IS_PATH,
            optional(
                spec.route.as_ref().and_then(|r| r.path_prefix.as_deref()),
                is_clean_path,
            ),
        ),
        (
            TRACING_ENDPOINT_IS_HTTP_URL,
            optional(
                server
                    .and_then(|s| s.tracing.as_ref())
                    .map(|t| t.endpoint.as_str()),
                is_otlp_http_url,
            ),
        ),
        (
            TRACING_SAMPLING_RATIO_IS_RATIO,
            optional(
                server
                    .and_then(|s| s.tracing.as_ref())
                    .and_then(|t| t.sampling_ratio.as_deref()),
                is_ratio,
            ),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(rule, _)| rule.message)
        .collect()
}

/// A rule on an optional field holds when the field is absent (CEL skips absent fields).
fn optional<T>(value: Option<T>, check: impl FnOnce(T) -> bool) -> bool {
    value.is_none_or(check)
}

/// The canary overrides something, and an image it names is not the stable one.
fn canary_differs(spec: &ModelServerSpec, canary: &CanarySpec) -> bool {
    let model = canary.model.as_ref();
    canary
        .image
        .as_ref()
        .is_some_and(|image| *image != spec.image)
        || canary.resources.is_some()
        || model.is_some_and(|m| m.command.is_some() || m.args.is_some() || m.env.is_some())
}

fn is_clean_path(path: &str) -> bool {
    path.starts_with('/')
        && !["//", "#", "?", "%2f", "%2F"]
            .iter()
            .any(|s| path.contains(s))
        && !path.ends_with("/.")
        && !path.ends_with("/..")
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
        .unwrap_or(SERVER_PORT);
    upstream.port != public && upstream.port != ADMIN_PORT
}

fn usable_header(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !modelserver_contract::values::RESERVED_HEADERS
            .contains(&name.to_ascii_lowercase().as_str())
}

fn grpc_ports_clear(spec: &ModelServerSpec) -> bool {
    let Some(base) = spec.model.grpc_port_base else {
        return true;
    };
    let server = spec.server.as_ref();
    let workers = server.and_then(|s| s.workers).unwrap_or(1);
    let public = server.and_then(|s| s.port).unwrap_or(SERVER_PORT);
    let ports = base..base + workers;
    let clear_of_workers = spec
        .model
        .worker_port_base
        .is_none_or(|w| w > base + workers - 1 || base > w + workers - 1);
    base + workers - 1 <= 65535
        && !ports.contains(&public)
        && !ports.contains(&ADMIN_PORT)
        && clear_of_workers
}

fn upstream_grpc_port_differs(spec: &ModelServerSpec) -> bool {
    let Some(upstream) = &spec.model.upstream else {
        return true;
    };
    let Some(grpc) = upstream.grpc_port else {
        return true;
    };
    let public = spec
        .server
        .as_ref()
        .and_then(|s| s.port)
        .unwrap_or(SERVER_PORT);
    grpc != upstream.port && grpc != public && grpc != ADMIN_PORT
}

fn worker_ports_clear(spec: &ModelServerSpec) -> bool {
    let Some(base) = spec.model.worker_port_base else {
        return true;
    };
    let server = spec.server.as_ref();
    let workers = server.and_then(|s| s.workers).unwrap_or(1);
    let public = server.and_then(|s| s.port).unwrap_or(SERVER_PORT);
    let ports = base..base + workers;
    base + workers - 1 <= 65535 && !ports.contains(&public) && !ports.contains(&ADMIN_PORT)
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
fn is_dns_1035_label(name: &str) -> bool {
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

/// `^http://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$`.
fn is_otlp_http_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~/-".contains(&b))
}

/// `^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$`.
fn is_ratio(text: &str) -> bool {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let fraction_ok = |digit: fn(&u8) -> bool| {
        fraction.is_none_or(|f| (1..=6).contains(&f.len()) && f.as_bytes().iter().all(digit))
    };
    match whole {
        "0" => fraction_ok(u8::is_ascii_digit),
        "1" => fraction_ok(|b| *b == b'0'),
        _ => false,
    }
}
