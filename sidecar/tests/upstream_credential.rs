//! Proxy mode with the upstream's own credential (`MODELSERVER_UPSTREAM_CREDENTIAL`): a real
//! upstream that answers 401 to any request without its token is probed ready and served, the
//! client never needs (or sees) that token, a client's header of the same name is replaced, the
//! header is removed from responses, and the value appears in no log line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const CREDENTIAL: &str = "upstream-s3cret-7f3a";
const FRONT_TOKEN: &str = "front-door-token";

/// The test worker on TCP, answering 401 without `required` (`NAME:VALUE`).
fn upstream(port: u16, required: &str) -> ChildGuard {
    let child = Command::new("python3")
        .args([
            worker_py().as_str(),
            "--port",
            &port.to_string(),
            "--test-hooks",
            "--require-header",
            required,
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

fn proxy_args(port: u16, extra: &[&str]) -> Vec<String> {
    let flags = [&["--drain-delay", "0s", "--log-level", "debug"], extra].concat();
    proxy_command(&format!("127.0.0.1:{port}"), &flags)
}

async fn stop(mut sc: Sidecar) {
    sc.signal(Signal::SIGTERM);
    assert_eq!(
        sc.wait_exit(DEADLINE).code(),
        Some(0),
        "log:\n{}",
        sc.logs()
    );
    assert!(
        !sc.logs().contains(CREDENTIAL),
        "the credential was logged:\n{}",
        sc.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_credential_replaces_the_clients_token_on_the_way_to_the_upstream() {
    let port = free_port();
    let _upstream = upstream(port, &format!("Authorization:Bearer {CREDENTIAL}"));
    // The sidecar checks its own token and consumes it (no passthrough); the upstream gets its.
    let sc = Sidecar::start(
        &proxy_args(port, &[]),
        &[
            ("MODELSERVER_UPSTREAM_CREDENTIAL", CREDENTIAL),
            ("MODELSERVER_AUTH_TOKEN", FRONT_TOKEN),
        ],
    );
    let c = client();
    // Ready only because the readiness probes carry the credential too.
    sc.wait_ready(&c).await;

    let r = c
        .post(sc.url("/predict"))
        .bearer_auth(FRONT_TOKEN)
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["predictions"], serde_json::json!(IRIS_CLASSES));
    // Without the front door's token the sidecar refuses before the upstream.
    let r = c
        .post(sc.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    stop(sc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_header_carries_the_raw_credential_and_never_comes_back() {
    let port = free_port();
    let _upstream = upstream(port, &format!("X-Api-Key:{CREDENTIAL}"));
    let sc = Sidecar::start(
        &proxy_args(port, &["--upstream-credential-header", "X-Api-Key"]),
        &[("MODELSERVER_UPSTREAM_CREDENTIAL", CREDENTIAL)],
    );
    let c = client();
    sc.wait_ready(&c).await;

    // A client's own X-Api-Key is replaced; an upstream that answers with the header (here on
    // request) has it removed on the way back.
    let r = c
        .post(sc.url(&format!(
            "/echo?header=X-Api-Key:{CREDENTIAL}&header=X-Other:kept"
        )))
        .header("x-api-key", "forged")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-api-key").is_none(), "{:?}", r.headers());
    assert_eq!(r.headers()["x-other"], "kept");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["headers"]["x-api-key"], CREDENTIAL);
    assert!(v["headers"].get("authorization").is_none(), "{v}");
    stop(sc).await;
}

#[test]
fn an_unusable_credential_is_refused_at_start() {
    for (env, wanted) in [
        (
            vec![("MODELSERVER_UPSTREAM_CREDENTIAL_HEADER", "X-Api-Key")],
            "MODELSERVER_UPSTREAM_CREDENTIAL_HEADER is set but MODELSERVER_UPSTREAM_CREDENTIAL is not",
        ),
        (
            vec![("MODELSERVER_UPSTREAM_CREDENTIAL", "a\u{7}b")],
            "cannot appear in an HTTP header",
        ),
        (
            vec![
                ("MODELSERVER_UPSTREAM_CREDENTIAL", "x"),
                ("MODELSERVER_UPSTREAM_CREDENTIAL_HEADER", "Content-Length"),
            ],
            "the proxy itself sets",
        ),
    ] {
        let out = run_to_end(
            &[
                "proxy",
                "--upstream",
                "127.0.0.1:1",
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--admin-port",
                "0",
            ],
            &env,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(wanted), "{wanted:?} not in:\n{stderr}");
    }
}
