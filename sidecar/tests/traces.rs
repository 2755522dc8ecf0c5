//! Tracing with the real sidecar binary, the real iris worker (`--test-hooks`, whose `/echo`
//! answers with the headers it received) and a fake OTLP/HTTP receiver in the test that decodes
//! the protobuf: W3C trace context continued or started and passed to the worker, the three
//! spans with their links and attributes, parent-based and ratio sampling, and a collector that
//! is down costing no request. `make trace-test` runs the same against a real Jaeger.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod otlp;

use common::{DEADLINE, Sidecar, client, wait_for};
use serde_json::Value;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Sidecar flags for tracing to `endpoint` with `ratio`, as the operator renders them.
fn trace_flags(endpoint: &str, ratio: &str) -> Vec<String> {
    [
        "--otlp-endpoint",
        endpoint,
        "--trace-sampling",
        ratio,
        "--modelserver-name",
        "iris",
        "--pod-name",
        "iris-7d4b9c-xk2lp",
        "--pod-namespace",
        "ml",
        "--access-log",
        "false",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

fn start(endpoint: &str, ratio: &str) -> Sidecar {
    let flags = trace_flags(endpoint, ratio);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Sidecar::serve(&flags, &[])
}

/// `POST /echo` with `headers`; the headers the worker saw.
async fn echo(sidecar: &Sidecar, headers: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    let mut request = client().post(sidecar.url("/echo")).body("{}");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["headers"].as_object().unwrap().clone()
}

/// The worker's `traceparent`: (trace id, parent span id, flags).
fn split(traceparent: &str) -> (String, String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00", "{traceparent}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// Waits until the receiver holds `count` spans of `trace_id`; returns them by name.
async fn wait_spans(
    received: &otlp::Received,
    trace_id: &str,
    count: usize,
) -> std::collections::BTreeMap<String, otlp::Span> {
    wait_for(
        &format!("{count} spans of trace {trace_id}"),
        DEADLINE,
        || async { received.trace(trace_id).len() >= count },
    )
    .await;
    let spans = received.trace(trace_id);
    assert_eq!(spans.len(), count, "{spans:#?}");
    spans.into_iter().map(|s| (s.name.clone(), s)).collect()
}

#[tokio::test]
async fn a_callers_trace_is_continued_and_its_decision_kept() {
    let (collector, received) = otlp::start().await;
    // Ratio 0: only the caller's sampled flag can make a trace here.
    let sidecar = start(&format!("http://{collector}"), "0");
    let http = client();
    sidecar.wait_ready(&http).await;

    // Not sampled by the ratio, and unsampled callers: nothing recorded, context untouched.
    for _ in 0..20 {
        let seen = echo(&sidecar, &[]).await;
        assert!(!seen.contains_key("traceparent"), "{seen:?}");
    }
    let unsampled = format!("00-{TRACE_ID}-{CALLER_SPAN}-00");
    let seen = echo(
        &sidecar,
        &[("traceparent", &unsampled), ("tracestate", "k=v")],
    )
    .await;
    assert_eq!(seen["traceparent"], unsampled.as_str());
    assert_eq!(seen["tracestate"], "k=v");

    // A sampled caller: the worker sees the same trace, with the sidecar's worker span as
    // parent, the flags sampled, and the caller's tracestate.
    let sampled_trace = "0af7651916cd43dd8448eb211c80319c";
    let caller = format!("00-{sampled_trace}-{CALLER_SPAN}-01");
    let seen = echo(
        &sidecar,
        &[
            ("traceparent", &caller),
            ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
            ("x-request-id", "req-42"),
        ],
    )
    .await;
    let (trace, parent, flags) = split(seen["traceparent"].as_str().unwrap());
    assert_eq!(trace, sampled_trace);
    assert_ne!(
        parent, CALLER_SPAN,
        "the worker's parent is the sidecar's span"
    );
    assert_eq!(flags, "01");
    assert_eq!(
        seen["tracestate"],
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    );

    let spans = wait_spans(&received, sampled_trace, 3).await;
    let request = &spans["request"];
    let queue = &spans["queue wait"];
    let worker = &spans["worker"];
    // Links: caller -> request -> {queue wait, worker}; the worker span is the one the worker
    // was told about.
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(queue.parent_span_id, request.span_id);
    assert_eq!(worker.parent_span_id, request.span_id);
    assert_eq!(worker.span_id, parent);
    assert_eq!((request.kind, queue.kind, worker.kind), (2, 1, 3));
    for span in spans.values() {
        assert_eq!(span.trace_state, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
        assert_eq!(span.resource["service.name"], "iris");
        assert_eq!(span.resource["k8s.pod.name"], "iris-7d4b9c-xk2lp");
        assert_eq!(span.resource["k8s.namespace.name"], "ml");
        assert_eq!(span.resource["modelserver.name"], "iris");
        assert_eq!(span.scope, "modelserver-sidecar");
        assert!(span.start <= span.end, "{span:?}");
        assert_eq!(span.status_code, 0, "{span:?}");
    }
    // Attributes of the request span.
    let attrs = &request.attributes;
    assert_eq!(attrs["http.request.method"], "POST");
    assert_eq!(attrs["url.path"], "/echo");
    assert_eq!(attrs["http.response.status_code"], "200");
    assert_eq!(attrs["modelserver.name"], "iris");
    assert_eq!(attrs["k8s.namespace.name"], "ml");
    assert_eq!(attrs["k8s.pod.name"], "iris-7d4b9c-xk2lp");
    assert_eq!(attrs["modelserver.request_id"], "req-42");
    assert_eq!(worker.attributes["http.response.status_code"], "200");
    assert_eq!(worker.attributes["modelserver.backend"], "worker 0");
    assert_eq!(queue.attributes["modelserver.backend"], "worker 0");
    assert_eq!(worker.events, ["response head"]);
    // Order in time: the queue wait, then the worker, both inside the request.
    assert!(request.start <= queue.start && queue.end <= worker.start);
    assert!(worker.end <= request.end);

    // Ratio 0 exported nothing else: spans leave in order, and only the sampled trace's came.
    let all = received.spans();
    assert_eq!(all.len(), 3, "{all:#?}");
    wait_for("exported spans counted", DEADLINE, || async {
        sidecar
            .metric(&http, r#"modelserver_trace_spans_total{result="exported"}"#)
            .await
            == 3.0
    })
    .await;
    assert_eq!(
        sidecar
            .metric(&http, r#"modelserver_trace_spans_total{result="dropped"}"#)
            .await,
        0.0
    );
}

#[tokio::test]
async fn a_trace_is_started_when_the_caller_sent_none_or_an_invalid_one() {
    let (collector, received) = otlp::start().await;
    let sidecar = start(&format!("http://{collector}/"), "1");
    let http = client();
    sidecar.wait_ready(&http).await;

    // No traceparent: a new trace, sampled (ratio 1), a root request span.
    let seen = echo(&sidecar, &[("tracestate", "orphan=1")]).await;
    let (trace, parent, flags) = split(seen["traceparent"].as_str().unwrap());
    assert_eq!(flags, "01");
    assert!(
        !seen.contains_key("tracestate"),
        "a tracestate without its traceparent is dropped: {seen:?}"
    );
    let spans = wait_spans(&received, &trace, 3).await;
    assert_eq!(spans["request"].parent_span_id, "");
    assert_eq!(spans["worker"].span_id, parent);

    // Invalid ones (version ff, all-zero trace id, uppercase) are ignored: a new trace.
    for invalid in [
        format!("ff-{TRACE_ID}-{CALLER_SPAN}-01"),
        format!("00-{}-{CALLER_SPAN}-01", "0".repeat(32)),
        format!("00-{}-{CALLER_SPAN}-01", TRACE_ID.to_uppercase()),
    ] {
        let seen = echo(&sidecar, &[("traceparent", &invalid)]).await;
        let (trace, _, flags) = split(seen["traceparent"].as_str().unwrap());
        assert_ne!(trace, TRACE_ID, "{invalid}");
        assert_ne!(trace, "0".repeat(32), "{invalid}");
        assert_eq!(flags, "01");
        let spans = wait_spans(&received, &trace, 3).await;
        assert_eq!(spans["request"].parent_span_id, "", "{invalid}");
    }

    // A worker error is the worker span's and the request span's error.
    let response = http
        .get(sidecar.url("/no-such-path"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let spans = wait_spans(&received, TRACE_ID, 3).await;
    assert_eq!(
        spans["worker"].status_code, 2,
        "a 4xx fails the client span"
    );
    assert_eq!(
        spans["request"].status_code, 0,
        "a 4xx is not the server's error"
    );
    assert_eq!(
        spans["request"].attributes["http.response.status_code"],
        "404"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_loses_no_request() {
    // A port nothing listens on: every export is refused.
    let closed = common::free_port();
    let sidecar = start(&format!("http://127.0.0.1:{closed}"), "1");
    let http = client();
    sidecar.wait_ready(&http).await;
    let requests = 200;
    let mut tasks = Vec::new();
    for _ in 0..requests / 20 {
        let http = http.clone();
        let url = sidecar.url("/predict");
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..20 {
                let response = http
                    .post(&url)
                    .json(&serde_json::json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
                    .send()
                    .await
                    .unwrap();
                ok += usize::from(response.status() == 200);
            }
            ok
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += task.await.unwrap();
    }
    assert_eq!(ok, requests, "every request answered 200");
    // Every span either failed to export or was dropped, and the sidecar said so.
    let series = |result: &'static str| {
        let http = http.clone();
        let sidecar = &sidecar;
        async move {
            sidecar
                .metric(
                    &http,
                    &format!("modelserver_trace_spans_total{{result=\"{result}\"}}"),
                )
                .await
        }
    };
    wait_for("all spans accounted for", DEADLINE, || async {
        series("failed").await + series("dropped").await == f64::from(3 * requests as u32)
    })
    .await;
    assert_eq!(series("exported").await, 0.0);
    assert!(sidecar.logged("trace export failed"));
}

// Multi-thread: the test thread blocks waiting for the exit while the receiver must answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_spans_leave_before_the_sidecar_exits() {
    let (collector, received) = otlp::start().await;
    let mut flags = trace_flags(&format!("http://{collector}"), "0");
    flags.extend(["--drain-delay".to_owned(), "0s".to_owned()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut sidecar = Sidecar::serve(&flags, &[]);
    let http = client();
    sidecar.wait_ready(&http).await;
    let trace = "5c1e0b1a9d3f4e2a8b7c6d5e4f3a2b1c";
    echo(
        &sidecar,
        &[("traceparent", &format!("00-{trace}-{CALLER_SPAN}-01"))],
    )
    .await;
    sidecar.signal(nix::sys::signal::Signal::SIGTERM);
    let status = sidecar.wait_exit(DEADLINE);
    assert!(status.success(), "{status}");
    // Exported before the exit, not left in the queue.
    let spans = received.trace(trace);
    assert_eq!(spans.len(), 3, "{spans:#?}");
}
