//! Tracing into a real OTLP receiver: Jaeger v1.76.0 (all-in-one, in-memory storage), built
//! from its Go module by `sidecar/tests/jaeger/build.sh`, the real sidecar and the real iris
//! worker, everything on 127.0.0.1. Requests with and without a caller's `traceparent`; then
//! Jaeger's query API (`/api/traces/<id>`) must hold the three spans with the ModelServer's
//! service name, the pod's attributes and the parent links.
//!
//! Ignored by plain `cargo test` (it needs the Jaeger binary); `make trace-test` (part of
//! `make test`) builds Jaeger and runs it with `MODELSERVER_TEST_JAEGER` set to the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use std::time::Instant;

use common::{ChildGuard, DEADLINE, POLL, Sidecar, client, free_port, wait_for};
use serde_json::Value;

/// Jaeger's configuration: OTLP/HTTP in, memory storage, the query API; every port on loopback,
/// its own telemetry off (no metrics port).
fn jaeger_config(otlp: u16, query_http: u16, query_grpc: u16) -> String {
    format!(
        r#"
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 1000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"#
    )
}

/// Tags of a Jaeger span or process as key -> value text.
fn tags(list: &Value) -> BTreeMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let value = match &t["value"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (t["key"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}

/// Waits until Jaeger returns `count` spans for `trace_id`; returns the trace.
async fn jaeger_trace(http: &reqwest::Client, query: u16, trace_id: &str, count: usize) -> Value {
    let url = format!("http://127.0.0.1:{query}/api/traces/{trace_id}");
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(response) = http.get(&url).send().await
            && response.status() == 200
        {
            let body: Value = response.json().await.unwrap();
            if body["data"][0]["spans"].as_array().map_or(0, Vec::len) >= count {
                return body["data"][0].clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "Jaeger did not return {count} spans of trace {trace_id}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
#[ignore = "needs Jaeger: run `make trace-test`"]
async fn jaeger_receives_the_three_spans_with_their_links() {
    let jaeger = std::env::var("MODELSERVER_TEST_JAEGER").expect(
        "MODELSERVER_TEST_JAEGER names the jaeger binary (make trace-test builds it with sidecar/tests/jaeger/build.sh)",
    );
    let (otlp, query_http, query_grpc) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jaeger.yaml");
    std::fs::write(&config, jaeger_config(otlp, query_http, query_grpc)).unwrap();
    let _jaeger = ChildGuard(
        Command::new(&jaeger)
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start jaeger"),
    );
    let http = client();
    wait_for("Jaeger's query API", DEADLINE, || async {
        http.get(format!("http://127.0.0.1:{query_http}/api/services"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    let endpoint = format!("http://127.0.0.1:{otlp}");
    let sidecar = Sidecar::serve(
        &[
            "--otlp-endpoint",
            &endpoint,
            "--trace-sampling",
            "1",
            "--modelserver-name",
            "iris",
            "--pod-name",
            "iris-7d4b9c-xk2lp",
            "--pod-namespace",
            "ml",
        ],
        &[],
    );
    sidecar.wait_ready(&http).await;

    // A bounded number of requests: with the caller's trace, and without any.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut started = Vec::new();
    for i in 0..5 {
        let mut request = http.post(sidecar.url("/echo")).body("{}");
        if i == 0 {
            request = request.header("traceparent", format!("00-{caller_trace}-{caller_span}-01"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let traceparent = body["headers"]["traceparent"].as_str().unwrap().to_owned();
        let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();
        if i == 0 {
            assert_eq!(trace_id, caller_trace);
        }
        started.push((trace_id, traceparent.split('-').nth(2).unwrap().to_owned()));
    }

    for (index, (trace_id, worker_parent)) in started.iter().enumerate() {
        let trace = jaeger_trace(&http, query_http, trace_id, 3).await;
        if index == 0 {
            println!(
                "Jaeger's answer for trace {trace_id}:\n{}",
                serde_json::to_string_pretty(&trace).unwrap()
            );
        }
        let spans: BTreeMap<String, &Value> = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["operationName"].as_str().unwrap().to_owned(), s))
            .collect();
        assert_eq!(
            spans.keys().collect::<Vec<_>>(),
            ["queue wait", "request", "worker"],
            "{trace}"
        );
        let parent_of = |span: &Value| -> Option<String> {
            span["references"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["refType"] == "CHILD_OF")
                .map(|r| r["spanID"].as_str().unwrap().to_owned())
        };
        let request_id = spans["request"]["spanID"].as_str().unwrap().to_owned();
        assert_eq!(
            parent_of(spans["queue wait"]).as_deref(),
            Some(request_id.as_str())
        );
        assert_eq!(
            parent_of(spans["worker"]).as_deref(),
            Some(request_id.as_str())
        );
        assert_eq!(
            spans["worker"]["spanID"].as_str(),
            Some(worker_parent.as_str())
        );
        if index == 0 {
            assert_eq!(parent_of(spans["request"]).as_deref(), Some(caller_span));
        } else {
            assert_eq!(parent_of(spans["request"]), None, "a root span");
        }
        let request_tags = tags(&spans["request"]["tags"]);
        assert_eq!(request_tags["span.kind"], "server");
        assert_eq!(request_tags["http.request.method"], "POST");
        assert_eq!(request_tags["url.path"], "/echo");
        assert_eq!(request_tags["http.response.status_code"], "200");
        assert_eq!(request_tags["k8s.pod.name"], "iris-7d4b9c-xk2lp");
        assert_eq!(tags(&spans["worker"]["tags"])["span.kind"], "client");
        for span in spans.values() {
            let process = &trace["processes"][span["processID"].as_str().unwrap()];
            assert_eq!(process["serviceName"], "iris", "{trace}");
            let process_tags = tags(&process["tags"]);
            assert_eq!(process_tags["k8s.pod.name"], "iris-7d4b9c-xk2lp");
            assert_eq!(process_tags["k8s.namespace.name"], "ml");
            assert_eq!(process_tags["modelserver.name"], "iris");
        }
    }
    // Jaeger lists the ModelServer as a service.
    let services: Value = http
        .get(format!("http://127.0.0.1:{query_http}/api/services"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        services["data"]
            .as_array()
            .unwrap()
            .contains(&Value::from("iris")),
        "{services}"
    );
}
