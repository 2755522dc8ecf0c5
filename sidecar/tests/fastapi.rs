//! examples/fastapi under the real sidecar: uvicorn workers on `--uds $(MODELSERVER_SOCKET)`.
//! Needs the test venv (fastapi, uvicorn from PyPI): `make test` exports
//! MODELSERVER_TEST_PYTHON=$(./hack/venv.sh); without it this test fails and says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_app_runs_as_managed_uvicorn_workers() {
    let python = test_python();
    let app_dir = repo_root().join("examples/fastapi");
    let args: Vec<String> = vec![
        "serve".into(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "0".into(),
        "--admin-port".into(),
        "0".into(),
        "--workers".into(),
        "2".into(),
        "--executor-threads".into(),
        "2".into(),
        "--drain-delay".into(),
        "0s".into(),
        "--".into(),
        python,
        "-m".into(),
        "uvicorn".into(),
        "--uds".into(),
        "$(MODELSERVER_SOCKET)".into(),
        "--app-dir".into(),
        app_dir.to_string_lossy().into_owned(),
        "app:app".into(),
    ];
    let mut sc = Sidecar::start(&args, &[]);
    let c = client();
    sc.wait_ready(&c).await;

    let mut workers = std::collections::BTreeSet::new();
    for _ in 0..2 {
        let calls: Vec<_> = (0..4)
            .map(|_| {
                c.post(sc.url("/predict"))
                    .header("content-type", "application/json")
                    .header("x-request-id", "fastapi-1")
                    .body(IRIS_ROWS)
                    .send()
            })
            .collect();
        for r in futures::future::join_all(calls).await {
            let r = r.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["predictions"], serde_json::json!(IRIS_CLASSES));
            assert_eq!(v["request_id"], "fastapi-1");
            workers.insert(v["worker"].as_u64().unwrap());
        }
    }
    assert_eq!(workers.len(), 2, "both uvicorn workers answered");

    // FastAPI's validation error passes through unchanged.
    let r = c
        .post(sc.url("/predict"))
        .header("content-type", "application/json")
        .body(r#"{"instances": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // With sidecar docs off, FastAPI's own OpenAPI document is forwarded.
    let spec: Value = c
        .get(sc.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["info"]["title"], "iris");

    sc.signal(Signal::SIGTERM);
    assert_eq!(
        sc.wait_exit(DEADLINE).code(),
        Some(0),
        "log:\n{}",
        sc.logs()
    );
}
