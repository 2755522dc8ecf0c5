//! The CEL rules, evaluated by `modelserver_crds::validate` over the generated schema, give the
//! same verdict as an independent Rust oracle (`rules_oracle.rs`) on many inputs; and every
//! example is judged as intended.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

mod rules_oracle;

use modelserver_crds::{ModelServer, load, rules, validate};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Messages of the CEL rules that fail, as the API server would evaluate them.
fn cel_messages(document: &Value) -> Vec<String> {
    let mut messages: Vec<String> = validate::validate_document(document)
        .into_iter()
        .map(|v| v.message)
        .collect();
    messages.sort();
    messages
}

/// Messages of the rules the oracle says fail.
fn rust_messages(document: &Value) -> Vec<String> {
    // A duration or quantity that does not parse cannot be read as a typed object at all.
    let Ok(object) = serde_json::from_value::<ModelServer>(document.clone()) else {
        return vec![UNPARSEABLE.to_owned()];
    };
    let mut messages: Vec<String> = rules_oracle::validate(&object)
        .into_iter()
        .map(str::to_owned)
        .collect();
    messages.sort();
    messages
}

fn document(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "modelserver.dev/v1alpha1", "kind": "ModelServer",
        "metadata": {"name": name, "namespace": "ml"}, "spec": spec})
}

fn managed(extra: Value) -> Value {
    let mut spec = json!({"image": "i", "model": {"command": ["python3", "w.py"]}});
    merge(&mut spec, extra);
    spec
}

fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(base), Value::Object(extra)) = (base, extra) {
        for (k, v) in extra {
            match base.get_mut(&k) {
                Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                _ => {
                    base.insert(k, v);
                }
            }
        }
    }
}

/// The oracle's verdict on a document whose values do not even parse.
const UNPARSEABLE: &str = "a value does not parse";

fn assert_same_verdict(document: &Value) {
    let cel = cel_messages(document);
    let rust = rust_messages(document);
    if rust == [UNPARSEABLE] {
        assert!(
            !cel.is_empty(),
            "CEL accepts {document}, which does not parse"
        );
    } else {
        assert_eq!(cel, rust, "CEL and Rust disagree on {document}");
    }
}

#[test]
fn every_rule_has_a_message_and_a_distinct_text() {
    for rule in rules::ALL {
        assert!(!rule.message.is_empty() && !rule.rule.is_empty());
        assert_eq!(
            rules::ALL
                .iter()
                .filter(|r| r.message == rule.message)
                .count(),
            1
        );
    }
}

#[test]
fn duration_rules_agree() {
    for value in [
        "1s",
        "0s",
        "0",
        "1m30s",
        ".5s",
        "1.5h",
        "10",
        "-1s",
        "5 s",
        "1d",
        "250ms",
        "3us",
        "1h0m",
        "s",
        "",
        "2562047h",
        "2562048h",
        "5124095576030431h",
    ] {
        for spec in [
            json!({"server": {"requestTimeout": value}}),
            json!({"server": {"maxQueueWait": value}}),
            json!({"server": {"cors": {"maxAge": value}}}),
            json!({"lifecycle": {"startupTimeout": value, "drainDelay": value}}),
            json!({"lifecycle": {"drainTimeout": value, "shutdownTimeout": value}}),
        ] {
            assert_same_verdict(&document("iris", managed(spec)));
        }
    }
}

#[test]
fn quantity_rule_agrees() {
    for value in [
        "100Mi", "1", "0", "0Mi", "0.5", "1.5Gi", "100MB", "1e3", ".5Ki", "Mi", "-1", "1k", "2E",
        "10m",
    ] {
        for field in ["maxUploadSize", "maxWorkerMemory"] {
            assert_same_verdict(&document(
                "iris",
                managed(json!({"server": {field: value}})),
            ));
        }
    }
}

#[test]
fn name_rule_agrees() {
    for name in [
        "iris",
        "a",
        "iris-2",
        "2iris",
        "iris.v2",
        "iris-",
        &"a".repeat(63),
        &"a".repeat(64),
    ] {
        assert_same_verdict(&document(name, managed(json!({}))));
    }
}

#[test]
fn model_rules_agree() {
    for model in [
        json!({"command": ["p"]}),
        json!({"upstream": {"port": 8000}}),
        json!({"command": ["p"], "upstream": {"port": 8000}}),
        json!({}),
        json!({"args": ["x"]}),
        json!({"command": ["p"], "readinessPath": "/ready"}),
        json!({"command": ["p"], "readinessPath": "ready"}),
        json!({"upstream": {"port": 8000}, "readinessPath": "/ready"}),
        json!({"upstream": {"port": 8000, "readinessPath": "/v2/health/ready"}}),
        json!({"upstream": {"port": 8000, "readinessPath": "health"}}),
        json!({"upstream": {"port": 8080}}),
        json!({"upstream": {"port": 9090}}),
        json!({"command": ["p"], "env": [{"name": "A", "value": "1"}]}),
        json!({"command": ["p"], "env": [{"name": "A"}, {"name": "MODELSERVER_PORT", "value": "1"}]}),
    ] {
        assert_same_verdict(&document("iris", json!({"image": "i", "model": model})));
    }
    for (upstream, server) in [(8000, 8000), (8000, 8001), (8080, 8001), (9090, 8001)] {
        let spec = json!({"image": "i", "model": {"upstream": {"port": upstream}}, "server": {"port": server}});
        assert_same_verdict(&document("iris", spec));
    }
}

#[test]
fn worker_port_rules_agree() {
    assert_same_verdict(&document(
        "iris",
        json!({"image": "i", "model": {"upstream": {"port": 8000}, "workerPortBase": 8000}}),
    ));
    // Around the public port (default and set), the admin port and the last TCP port, with the
    // default worker count and with several workers.
    for base in [
        1, 8000, 8073, 8077, 8078, 8080, 8081, 9087, 9090, 9091, 65_534, 65_535,
    ] {
        for server in [
            json!({}),
            json!({"workers": 1}),
            json!({"workers": 3}),
            json!({"workers": 3, "port": 9000}),
            json!({"port": 8000}),
        ] {
            let spec = json!({
                "image": "i",
                "model": {"command": ["p"], "workerPortBase": base},
                "server": server,
            });
            assert_same_verdict(&document("iris", spec));
        }
    }
}

#[test]
fn grpc_port_rules_agree() {
    for (grpc, http) in [
        (8000, None),
        (8000, Some(8000)),
        (8002, Some(8000)),
        (8001, Some(8000)),
        (7998, Some(8000)),
        (7997, Some(8000)),
        (8079, None),
        (9089, None),
        (65_534, None),
    ] {
        for server in [
            json!({}),
            json!({"workers": 3}),
            json!({"workers": 3, "port": 7000}),
        ] {
            let mut model = json!({"command": ["p"], "grpcPortBase": grpc});
            if let Some(http) = http {
                model["workerPortBase"] = json!(http);
            }
            let spec = json!({"image": "i", "model": model, "server": server});
            assert_same_verdict(&document("iris", spec));
        }
    }
    for (port, grpc, server) in [
        (8000, 8001, 8080),
        (8000, 8000, 8080),
        (8000, 8080, 8080),
        (8000, 9090, 8080),
        (8000, 7000, 7000),
        (8000, 8080, 7000),
    ] {
        let spec = json!({"image": "i", "model": {"upstream": {"port": port, "grpcPort": grpc}}, "server": {"port": server}});
        assert_same_verdict(&document("iris", spec));
    }
    assert_same_verdict(&document(
        "iris",
        json!({"image": "i", "model": {"upstream": {"port": 8000}, "grpcPortBase": 8100}}),
    ));
}

#[test]
fn upstream_auth_header_rule_agrees() {
    for header in [
        "X-Api-Key",
        "authorization",
        "x_token",
        "Host",
        "HOST",
        "content-length",
        "TE",
        "te-x",
        "Expect",
        "-x",
        "X Key",
        "X:Key",
        "ключ",
        "",
    ] {
        let spec = json!({
            "image": "i",
            "model": {"upstream": {"port": 8000, "auth": {"tokenSecretRef": {"name": "s", "key": "k"}, "header": header}}},
        });
        assert_same_verdict(&document("iris", spec));
    }
}

#[test]
fn server_and_cors_rules_agree() {
    for port in [80, 8080, 9090, 9091] {
        assert_same_verdict(&document(
            "iris",
            managed(json!({"server": {"port": port}})),
        ));
    }
    for cors in [
        json!({}),
        json!({"enabled": true}),
        json!({"enabled": true, "allowOrigins": []}),
        json!({"enabled": false}),
        json!({"enabled": true, "allowOrigins": ["*"]}),
        json!({"enabled": true, "allowOrigins": ["*"], "allowCredentials": true}),
        json!({"allowOrigins": ["https://a.example.com", "*"], "allowCredentials": true}),
        json!({"enabled": true, "allowOrigins": ["https://a.example.com"], "allowCredentials": true}),
        json!({"enabled": true, "allowOrigins": ["http://localhost:3000"]}),
        json!({"enabled": true, "allowOrigins": ["https://a.example.com/path"]}),
        json!({"enabled": true, "allowOrigins": ["a.example.com"]}),
        json!({"enabled": true, "allowOrigins": ["https://*.example.com"]}),
    ] {
        assert_same_verdict(&document(
            "iris",
            managed(json!({"server": {"cors": cors}})),
        ));
    }
}

#[test]
fn tracing_rules_agree() {
    for endpoint in [
        "http://otel-collector.observability:4318",
        "http://otel-collector.observability:4318/",
        "http://127.0.0.1:4318/otlp/base",
        "http://collector",
        "https://collector:4318",
        "collector:4318",
        "http://",
        "http://collector:4318?x=1",
        "http://collector:4318#x",
        "http://collector:123456",
        "http://user@collector:4318",
        "http://collector:4318/a b",
        "grpc://collector:4317",
    ] {
        assert_same_verdict(&document(
            "iris",
            managed(json!({"server": {"tracing": {"endpoint": endpoint}}})),
        ));
    }
    for ratio in [
        "0",
        "1",
        "0.1",
        "0.000001",
        "1.0",
        "1.000000",
        "0.5",
        "1.5",
        "1.01",
        ".5",
        "0.",
        "2",
        "-0.1",
        "0.0000001",
        "10%",
        "1e-3",
        "",
    ] {
        assert_same_verdict(&document(
            "iris",
            managed(json!({"server": {"tracing": {
                "endpoint": "http://collector:4318", "samplingRatio": ratio}}})),
        ));
    }
}

#[test]
fn recycling_rule_agrees() {
    for server in [
        json!({}),
        json!({"maxRequestsPerWorker": 1000}),
        json!({"maxRequestsJitter": 50}),
        json!({"maxRequestsJitter": 0}),
        json!({"maxRequestsPerWorker": 1000, "maxRequestsJitter": 50}),
        json!({"maxRequestsPerWorker": 1, "maxRequestsJitter": 0}),
    ] {
        assert_same_verdict(&document("iris", managed(json!({"server": server}))));
    }
}

#[test]
fn scaling_rules_agree() {
    for autoscaling in [
        json!({"maxReplicas": 1}),
        json!({"minReplicas": 2, "maxReplicas": 1}),
        json!({"minReplicas": 2, "maxReplicas": 2}),
        json!({"minReplicas": 3, "maxReplicas": 10}),
    ] {
        assert_same_verdict(&document(
            "iris",
            managed(json!({"autoscaling": autoscaling})),
        ));
    }
    for disruption in [
        json!({}),
        json!({"maxUnavailable": 1}),
        json!({"minAvailable": "50%"}),
        json!({"maxUnavailable": 1, "minAvailable": 1}),
    ] {
        assert_same_verdict(&document(
            "iris",
            managed(json!({"disruption": disruption})),
        ));
    }
    for rollout in [
        json!({}),
        json!({"maxSurge": 0}),
        json!({"maxSurge": "0%"}),
        json!({"maxSurge": 0, "maxUnavailable": 1}),
        json!({"maxSurge": 0, "maxUnavailable": "0"}),
        json!({"maxSurge": 1, "maxUnavailable": 0}),
        json!({"maxUnavailable": 0}),
        json!({"maxSurge": "50%", "maxUnavailable": "0%"}),
    ] {
        assert_same_verdict(&document("iris", managed(json!({"rollout": rollout}))));
    }
}

#[test]
fn network_policy_rule_agrees() {
    let peers = json!([{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]);
    for policy in [
        json!({}),
        json!({"enabled": true}),
        json!({"enabled": false}),
        json!({"metricsFrom": peers}),
        json!({"enabled": true, "metricsFrom": peers}),
        json!({"enabled": false, "metricsFrom": peers}),
    ] {
        assert_same_verdict(&document("iris", managed(json!({"networkPolicy": policy}))));
    }
    // The disabled policy with peers is the one refused.
    let refused = document(
        "iris",
        managed(json!({"networkPolicy": {"enabled": false, "metricsFrom": peers}})),
    );
    assert_eq!(
        rust_messages(&refused),
        vec![
            rules::NETWORK_POLICY_METRICS_FROM_NEEDS_POLICY
                .message
                .to_owned()
        ]
    );
}

#[test]
fn canary_rules_agree() {
    let env = |name: &str, value: &str| json!([{"name": name, "value": value}]);
    let stable = managed(
        json!({"model": {"args": ["--v1"], "env": env("VERSION", "1")},
        "resources": {"limits": {"cpu": "1"}}}),
    );
    let canaries = [
        json!({"weight": 10}),
        json!({"weight": 10, "image": "i"}),
        json!({"weight": 10, "image": "j"}),
        json!({"weight": 0, "model": {"args": ["--v1"]}}),
        json!({"weight": 0, "model": {"args": ["--v2"]}}),
        json!({"weight": 50, "model": {"command": ["python3", "w.py"]}}),
        json!({"weight": 50, "model": {"command": ["python3", "w2.py"]}}),
        json!({"weight": 50, "model": {"env": env("VERSION", "1")}}),
        json!({"weight": 50, "model": {"env": env("VERSION", "2")}}),
        json!({"weight": 50, "model": {"env": env("MODELSERVER_PORT", "1")}}),
        json!({"weight": 100, "resources": {"limits": {"cpu": "1"}}}),
        json!({"weight": 100, "resources": {"limits": {"cpu": "2"}}}),
        json!({"weight": 100, "resources": {"requests": {"cpu": "1"}}}),
        json!({"weight": 100, "resources": {}}),
        json!({"weight": 5, "model": {"env": [{"name": "VERSION", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}}),
        json!({"weight": 5, "model": {"env": [{"name": "VERSION"}]}}),
    ];
    for canary in &canaries {
        let mut spec = stable.clone();
        merge(&mut spec, json!({"canary": canary}));
        assert_same_verdict(&document("iris", spec.clone()));
        assert_same_verdict(&document(&"a".repeat(rules::CANARY_NAME_MAX), spec.clone()));
        assert_same_verdict(&document(&"a".repeat(rules::CANARY_NAME_MAX + 1), spec));
    }
    // Proxy mode: a canary command has no worker command to replace.
    let proxy = json!({"image": "i", "model": {"upstream": {"port": 8000}},
        "canary": {"weight": 5, "model": {"command": ["serve"]}}});
    assert_same_verdict(&document("iris", proxy.clone()));
    assert_eq!(
        rust_messages(&document("iris", proxy)),
        vec![rules::CANARY_COMMAND_NEEDS_COMMAND.message.to_owned()]
    );
    // A canary that overrides nothing, or only names the stable image, is refused.
    for canary in [json!({"weight": 10}), json!({"weight": 10, "image": "i"})] {
        let mut same = stable.clone();
        merge(&mut same, json!({"canary": canary}));
        assert_eq!(
            cel_messages(&document("iris", same)),
            vec![rules::CANARY_DIFFERS.message.to_owned()]
        );
    }
}

#[test]
fn autoscaling_metric_rules_agree() {
    for autoscaling in [
        json!({"maxReplicas": 3}),
        json!({"maxReplicas": 3, "metric": "cpu", "targetCPUUtilization": 50}),
        json!({"maxReplicas": 3, "metric": "concurrency", "targetCPUUtilization": 50}),
        json!({"maxReplicas": 3, "targetCPUUtilization": 50}),
        json!({"maxReplicas": 3, "metric": "concurrency", "targetConcurrency": 8}),
        json!({"maxReplicas": 3, "metric": "cpu", "targetConcurrency": 8}),
        json!({"maxReplicas": 3, "targetConcurrency": 8}),
        json!({"maxReplicas": 3, "scaleDownDelay": "30s"}),
        json!({"maxReplicas": 3, "scaleDownDelay": "0s"}),
        json!({"maxReplicas": 3, "scaleDownDelay": "1h"}),
        json!({"maxReplicas": 3, "scaleDownDelay": "61m"}),
        json!({"maxReplicas": 3, "scaleDownDelay": "soon"}),
    ] {
        assert_same_verdict(&document(
            "iris",
            managed(json!({"autoscaling": autoscaling})),
        ));
    }
}

#[test]
fn route_rule_agrees() {
    for prefix in [
        "/",
        "/models/iris",
        "models",
        "/a//b",
        "/a?b",
        "/a#b",
        "/a%2Fb",
        "/a/.",
        "/a/..",
        "/a.b",
    ] {
        let spec =
            managed(json!({"route": {"parentRefs": [{"name": "gw"}], "pathPrefix": prefix}}));
        assert_same_verdict(&document("iris", spec));
    }
}

/// Every ModelServer manifest under examples/, with the message its `# expect:` line names.
fn examples() -> Vec<(PathBuf, Option<String>)> {
    let mut found = Vec::new();
    let mut dirs = vec![repo_root().join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                if !text.lines().any(|l| l.trim_end() == "kind: ModelServer") {
                    continue;
                }
                let expect = text
                    .lines()
                    .find_map(|l| l.strip_prefix("# expect: "))
                    .map(str::to_owned);
                found.push((path, expect));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn valid_examples_load_and_pass_cel() {
    let valid: Vec<_> = examples()
        .into_iter()
        .filter(|(_, e)| e.is_none())
        .collect();
    assert!(
        valid.len() >= 3,
        "expected the iris, upstream and autoscaled examples: {valid:?}"
    );
    for (path, _) in valid {
        let text = std::fs::read_to_string(&path).unwrap();
        let object = load::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let document = serde_json::to_value(&object).unwrap();
        assert_eq!(
            cel_messages(&document),
            Vec::<String>::new(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn invalid_examples_fail_with_their_rule_message() {
    let invalid: Vec<_> = examples()
        .into_iter()
        .filter_map(|(p, e)| e.map(|e| (p, e)))
        .collect();
    for rule in rules::ALL {
        assert!(
            invalid.iter().any(|(_, expect)| expect == rule.message),
            "no file in examples/invalid breaks the rule {:?}",
            rule.message
        );
    }
    for (path, expect) in invalid {
        assert!(
            path.starts_with(repo_root().join("examples/invalid")),
            "{}",
            path.display()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let error = load::from_yaml(&text).expect_err(&path.display().to_string());
        assert!(
            error.to_string().contains(&expect),
            "{}: {error}",
            path.display()
        );
        if rules::ALL.iter().any(|r| r.message == expect) {
            let document: Value = serde_saphyr::from_str(&text).unwrap();
            assert!(
                cel_messages(&document).contains(&expect),
                "{}: the CEL rule did not reject it",
                path.display()
            );
        }
    }
}
