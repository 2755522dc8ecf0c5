//! gRPC through the sidecar, with real grpcio servers and clients from PyPI
//! (examples/grpc/server.py and client.py): HTTP/2 with prior knowledge on the public port,
//! calls passed to the upstream's or each worker's gRPC port with trailers intact (unary and
//! server streaming), the sidecar's own refusals as gRPC statuses (UNAUTHENTICATED,
//! RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, UNAVAILABLE), the standard health check from the
//! sidecar's readiness, and a rolling drain under gRPC load with no failed call. Needs the test
//! venv (`make test` exports MODELSERVER_TEST_PYTHON).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const TOKEN: &str = "grpc-test-token";

fn example(file: &str) -> String {
    repo_root()
        .join("examples/grpc")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

/// Runs one call of the example client against `target` and returns its JSON output.
fn call(target: &str, what: &[&str], token: Option<&str>) -> Value {
    let mut cmd = Command::new(test_python());
    cmd.arg(example("client.py")).arg(target).args(what);
    if let Some(token) = token {
        cmd.args(["--token", token]);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "client {what:?}: {e}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The example server as the proxy-mode upstream on these ports (HTTP, gRPC).
fn upstream(http: u16, grpc: u16) -> ChildGuard {
    let child = Command::new(test_python())
        .args([
            example("server.py").as_str(),
            "--port",
            &http.to_string(),
            "--grpc-port",
            &grpc.to_string(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

fn proxy_args(http: u16, grpc: u16, extra: &[&str]) -> Vec<String> {
    let grpc = format!("127.0.0.1:{grpc}");
    let flags = [&["--upstream-grpc", grpc.as_str()], extra].concat();
    proxy_command(&format!("127.0.0.1:{http}"), &flags)
}

/// A counter of `/metrics`, 0 before its first increment.
async fn counter(c: &reqwest::Client, sc: &Sidecar, series: &str) -> f64 {
    let text = c
        .get(sc.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric_value(&text, series).unwrap_or(0.0)
}

fn target(sc: &Sidecar) -> String {
    format!("127.0.0.1:{}", sc.public.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_through_proxy_mode_and_refusals_are_grpc_statuses() {
    let (http, grpc) = (free_port(), free_port());
    let mut sc = Sidecar::start(
        &proxy_args(
            http,
            grpc,
            &[
                "--executor-threads",
                "1",
                "--max-queue",
                "0",
                "--request-timeout",
                "2s",
                "--max-upload-size",
                "1Ki",
                "--drain-delay",
                "0s",
            ],
        ),
        &[("MODELSERVER_AUTH_TOKEN", TOKEN)],
    );
    let c = client();
    let t = target(&sc);
    // The health check needs no token and follows readiness: not serving before the upstream is.
    assert_eq!(
        call(&t, &["health"], None),
        json!({"status": "NOT_SERVING"})
    );
    let _upstream = upstream(http, grpc);
    sc.wait_ready(&c).await;
    assert_eq!(call(&t, &["health"], None), json!({"status": "SERVING"}));
    // Unary and server streaming, through auth.
    assert_eq!(
        call(&t, &["unary"], Some(TOKEN))["outputs"],
        json!(IRIS_CLASSES)
    );
    let streamed = call(&t, &["stream"], Some(TOKEN));
    assert_eq!(
        streamed
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["output"].clone())
            .collect::<Vec<_>>(),
        IRIS_CLASSES.map(Value::from).to_vec()
    );
    // The upstream's own error status passes through unchanged, with its details.
    let e = &call(&t, &["invalid"], Some(TOKEN))["error"];
    assert_eq!(e["code"], "INVALID_ARGUMENT", "{e}");
    assert_eq!(e["details"], "each input needs 4 numbers", "{e}");

    // The sidecar's refusals, as gRPC statuses with its reasons.
    let e = &call(&t, &["unary"], None)["error"];
    assert_eq!(e["code"], "UNAUTHENTICATED", "{e}");
    assert!(
        e["details"]
            .as_str()
            .unwrap()
            .contains("missing or invalid token"),
        "{e}"
    );
    let e = &call(&t, &["big", "4096"], Some(TOKEN))["error"];
    assert_eq!(e["code"], "RESOURCE_EXHAUSTED", "{e}");
    let e = &call(&t, &["slow", "5"], Some(TOKEN))["error"];
    assert_eq!(e["code"], "DEADLINE_EXCEEDED", "{e}");
    assert!(
        !e["details"].as_str().unwrap().contains("Deadline Exceeded"),
        "the sidecar's reason, not the client's own deadline: {e}"
    );
    // One slot, no queue: a call while another holds the slot is UNAVAILABLE. (The slow call the
    // sidecar gave up on keeps its slot until the upstream has finished it.)
    wait_for("the slot to be free", DEADLINE, || async {
        sc.status(&c).await["in_flight"] == 0
    })
    .await;
    let holder = {
        let t = t.clone();
        std::thread::spawn(move || call(&t, &["slow", "1.5"], Some(TOKEN)))
    };
    wait_for("the slow call to hold the slot", DEADLINE, || async {
        sc.status(&c).await["in_flight"] == 1
    })
    .await;
    let e = &call(&t, &["unary"], Some(TOKEN))["error"];
    assert_eq!(e["code"], "UNAVAILABLE", "{e}");
    let held = holder.join().unwrap();
    assert_eq!(held["waited"], true, "{held}");

    // Metrics keep the HTTP view of each answer.
    assert!(
        sc.metric(&c, r#"modelserver_rejected_total{reason="unauthorized"}"#)
            .await
            >= 1.0
    );
    assert!(
        sc.metric(&c, r#"modelserver_requests_total{code="504"}"#)
            .await
            >= 1.0
    );
    assert!(
        sc.metric(&c, r#"modelserver_requests_total{code="413"}"#)
            .await
            >= 1.0
    );
    assert!(
        sc.metric(&c, r#"modelserver_requests_total{code="503"}"#)
            .await
            >= 1.0
    );

    sc.signal(Signal::SIGTERM);
    assert_eq!(
        sc.wait_exit(DEADLINE).code(),
        Some(0),
        "log:\n{}",
        sc.logs()
    );
}

/// Managed workers serving HTTP readiness and gRPC on their own ports.
fn grpc_workers(extra: &[&str]) -> Sidecar {
    let (http_base, grpc_base) = (free_port_range(2), free_port_range(2));
    let (http_base, grpc_base) = (http_base.to_string(), grpc_base.to_string());
    let mut flags = vec![
        "--workers",
        "2",
        "--worker-port-base",
        &http_base,
        "--worker-grpc-port-base",
        &grpc_base,
    ];
    flags.extend(extra);
    let python = test_python();
    let server = example("server.py");
    let args = serve_command(&flags, &[&python, &server]);
    Sidecar::start(&args, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_workers_serve_grpc_on_their_own_ports() {
    let mut sc = grpc_workers(&["--drain-delay", "0s"]);
    let c = client();
    sc.wait_ready(&c).await;
    // A call whose own deadline (grpc-timeout) passes is DEADLINE_EXCEEDED with that deadline
    // named, and is not taken as a sign of a stuck worker. The client and the sidecar time the
    // same deadline: either the sidecar answers first (504, as DEADLINE_EXCEEDED) or the client
    // resets the stream first, and the call is logged as left by its client (499).
    let e = &call(&target(&sc), &["slow", "3", "0.5"], None)["error"];
    assert_eq!(e["code"], "DEADLINE_EXCEEDED", "{e}");
    wait_for(
        "the sidecar's answer to the expired call, or its log of the reset",
        DEADLINE,
        || async { sc.logged("status=504") || sc.logged("status=499") },
    )
    .await;
    assert!(
        !sc.logged("no answer within the request timeout"),
        "a client's deadline was reported as a stuck worker:\n{}",
        sc.logs()
    );
    let counts = call(&target(&sc), &["load", "2", "4"], None);
    assert_eq!(counts["failed"], 0, "{counts}");
    assert!(counts["ok"].as_u64().unwrap() > 0, "{counts}");
    assert_eq!(
        counts["workers"].as_object().unwrap().len(),
        2,
        "both workers served gRPC: {counts}"
    );
    sc.signal(Signal::SIGTERM);
    assert_eq!(
        sc.wait_exit(DEADLINE).code(),
        Some(0),
        "log:\n{}",
        sc.logs()
    );
}

/// Starts the example client's load run in the background; returns once it has started.
fn start_load(
    target: &str,
    seconds: &str,
    concurrency: &str,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(test_python())
        .args([
            example("client.py").as_str(),
            target,
            "load",
            seconds,
            concurrency,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("started"), "{line}");
    (child, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_drain_under_grpc_load_fails_no_call() {
    // Two pods' sidecars; the client balances over both, as over a headless Service's
    // endpoints. One drains (GOAWAY at once, listener closed after the drain delay) mid-load.
    let mut old = grpc_workers(&["--drain-delay", "2s"]);
    let new = grpc_workers(&["--drain-delay", "0s"]);
    let c = client();
    old.wait_ready(&c).await;
    new.wait_ready(&c).await;
    let both = format!(
        "ipv4:127.0.0.1:{},127.0.0.1:{}",
        old.public.port(),
        new.public.port()
    );
    let (mut load, mut out) = start_load(&both, "8", "8");
    let served = r#"modelserver_requests_total{code="200"}"#;
    wait_for("the old pod to serve gRPC load", DEADLINE, || async {
        counter(&c, &old, served).await >= 50.0
    })
    .await;
    old.signal(Signal::SIGTERM);
    assert_eq!(
        old.wait_exit(DEADLINE).code(),
        Some(0),
        "log:\n{}",
        old.logs()
    );

    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    load.wait().unwrap();
    let counts: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        counts["failed"], 0,
        "calls failed during the drain: {counts}"
    );
    assert!(counter(&c, &new, served).await >= 50.0, "{counts}");
    println!("rolling drain under gRPC load: {counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_with_a_grpc_port_are_recycled_in_place_without_a_failed_call() {
    // A gRPC port is fixed like a TCP port: the worker finishes its calls, stops and starts again
    // on the same ports, one worker at a time, while the other serves.
    let mut sc = grpc_workers(&["--max-requests-per-worker", "40", "--drain-delay", "0s"]);
    let c = client();
    sc.wait_ready(&c).await;
    let counts = call(&target(&sc), &["load", "6", "4"], None);
    assert_eq!(counts["failed"], 0, "{counts}");
    let status = sc.status(&c).await;
    let workers = status["workers"].as_array().unwrap();
    let recycles: u64 = workers
        .iter()
        .map(|w| w["recycles"].as_u64().unwrap())
        .sum();
    let restarts: u64 = workers
        .iter()
        .map(|w| w["restarts"].as_u64().unwrap())
        .sum();
    assert!(recycles >= 2, "{status}");
    assert_eq!(restarts, 0, "{status}");
    println!("gRPC load across in-place recycles: {counts}, {recycles} recycles");
    sc.signal(Signal::SIGTERM);
    assert_eq!(
        sc.wait_exit(DEADLINE).code(),
        Some(0),
        "log:\n{}",
        sc.logs()
    );
}
