//! Each sidecar setting's field description (what `kubectl explain` shows) states the default the
//! sidecar really applies, the contract's, so prose and code cannot drift apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use modelserver_contract::defaults as sidecar;
use modelserver_crds::{defaults as crd, generate};
use serde_json::Value;

fn description(schema: &Value, path: &str) -> String {
    let mut node = schema;
    for part in path.split('.') {
        node = &node["properties"][part];
    }
    node["description"]
        .as_str()
        .unwrap_or_else(|| panic!("{path} has no description"))
        .to_owned()
}

#[test]
fn every_described_default_is_the_one_applied() {
    let schema = serde_json::to_value(generate::openapi_schema().unwrap()).unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("spec.server.port", format!("Default {}", sidecar::PORT)),
        (
            "spec.server.port",
            format!("{} is the", sidecar::ADMIN_PORT),
        ),
        (
            "spec.server.workers",
            format!("default {}", sidecar::WORKERS),
        ),
        (
            "spec.server.executorThreads",
            format!("default {}", sidecar::EXECUTOR_THREADS),
        ),
        (
            "spec.server.maxQueue",
            format!("default {}", sidecar::MAX_QUEUE),
        ),
        (
            "spec.server.maxQueueWait",
            format!("default {}", sidecar::MAX_QUEUE_WAIT),
        ),
        (
            "spec.server.maxUploadSize",
            format!("{}, the default", sidecar::MAX_UPLOAD_SIZE),
        ),
        (
            "spec.server.requestTimeout",
            format!("default {}", sidecar::REQUEST_TIMEOUT),
        ),
        (
            "spec.server.cors.maxAge",
            format!("Default {}", sidecar::CORS_MAX_AGE),
        ),
        (
            "spec.server.logLevel",
            format!("{} (the default)", sidecar::LOG_LEVEL),
        ),
        (
            "spec.server.accessLog",
            format!("Default {}", sidecar::ACCESS_LOG),
        ),
        (
            "spec.model.readinessPath",
            format!("Default {}", sidecar::READINESS_PATH),
        ),
        (
            "spec.lifecycle.drainDelay",
            format!("Default {}", sidecar::DRAIN_DELAY),
        ),
        (
            "spec.lifecycle.drainTimeout",
            format!("Default {}", sidecar::DRAIN_TIMEOUT),
        ),
        (
            "spec.lifecycle.shutdownTimeout",
            format!("Default {}", sidecar::SHUTDOWN_TIMEOUT),
        ),
        (
            "spec.lifecycle.maxWorkerRestarts",
            format!("default {}", sidecar::MAX_WORKER_RESTARTS),
        ),
        (
            "spec.lifecycle.startupTimeout",
            format!("Default {}", crd::STARTUP_TIMEOUT),
        ),
        ("spec.replicas", format!("default {}", crd::REPLICAS)),
        (
            "spec.service.port",
            format!("Default {}", crd::SERVICE_PORT),
        ),
    ];
    let mut wrong = Vec::new();
    for (path, expected) in &cases {
        let text = description(&schema, path).replace('\n', " ");
        if !text.contains(expected.as_str()) {
            wrong.push(format!("{path}: expected {expected:?} in {text:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
