//! Managed workers on TCP (`--worker-port-base`): real servers from PyPI that bind TCP only,
//! uvicorn with `--port $(MODELSERVER_WORKER_PORT)` and gunicorn with
//! `--bind 127.0.0.1:$(MODELSERVER_WORKER_PORT)`, supervised exactly like Unix-socket workers:
//! readiness per worker, both in rotation, a killed worker restarted on its port, a drain that
//! stops them all. Needs the test venv (`make test` exports MODELSERVER_TEST_PYTHON).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// Posts the iris rows `count` times at once; every answer must be 200 with the right
/// predictions. Returns the answers.
async fn predictions(c: &reqwest::Client, sc: &Sidecar, count: usize) -> Vec<Value> {
    let calls: Vec<_> = (0..count)
        .map(|_| {
            c.post(sc.url("/predict"))
                .header("content-type", "application/json")
                .body(IRIS_ROWS)
                .send()
        })
        .collect();
    let mut answers = Vec::new();
    for r in futures::future::join_all(calls).await {
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["predictions"], serde_json::json!(IRIS_CLASSES));
        answers.push(v);
    }
    answers
}

/// Posts the iris rows `count` times at once and returns how many answers each worker gave.
async fn predictions_per_worker(
    c: &reqwest::Client,
    sc: &Sidecar,
    count: usize,
) -> BTreeMap<u64, usize> {
    let mut per_worker = BTreeMap::new();
    for v in predictions(c, sc, count).await {
        *per_worker.entry(v["worker"].as_u64().unwrap()).or_default() += 1;
    }
    per_worker
}

/// The workers' ports and pids from `/status`.
async fn worker_ports_and_pids(c: &reqwest::Client, sc: &Sidecar) -> Vec<(Value, Value, Value)> {
    sc.status(c).await["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["port"].clone(), w["socket"].clone(), w["pid"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uvicorn_on_tcp_runs_as_managed_workers_and_a_killed_one_comes_back_on_its_port() {
    let python = test_python();
    let base = free_port_range(2);
    let app_dir = repo_root().join("examples/fastapi");
    let base_flag = base.to_string();
    let app_dir = app_dir.to_string_lossy();
    let args = serve_command(
        &[
            "--workers",
            "2",
            "--executor-threads",
            "2",
            "--worker-port-base",
            &base_flag,
            "--drain-delay",
            "0s",
        ],
        &[
            &python,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            "$(MODELSERVER_WORKER_PORT)",
            "--app-dir",
            &app_dir,
            "app:app",
        ],
    );
    let mut sc = Sidecar::start(&args, &[]);
    let c = client();
    sc.wait_ready(&c).await;

    let workers = worker_ports_and_pids(&c, &sc).await;
    assert_eq!(
        workers
            .iter()
            .map(|(port, socket, _)| (port.clone(), socket.clone()))
            .collect::<Vec<_>>(),
        vec![
            (Value::from(base), Value::Null),
            (Value::from(base + 1), Value::Null)
        ],
        "each worker on its own port, no socket"
    );
    // The workers really listen there, on loopback.
    for port in [base, base + 1] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(!refuses_connections(addr), "worker port {port}");
    }
    let per_worker = predictions_per_worker(&c, &sc, 8).await;
    assert_eq!(per_worker.len(), 2, "both workers answered: {per_worker:?}");

    // A worker killed outright is restarted on the same port and serves again.
    let pid = workers[0].2.as_i64().unwrap() as i32;
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    wait_for("worker 0 to be restarted and ready", DEADLINE, || async {
        let status = sc.status(&c).await;
        let w = &status["workers"][0];
        w["restarts"] == 1 && w["state"] == "ready" && w["pid"] != pid
    })
    .await;
    assert_eq!(sc.status(&c).await["workers"][0]["port"], Value::from(base));
    let per_worker = predictions_per_worker(&c, &sc, 8).await;
    assert_eq!(
        per_worker.len(),
        2,
        "both workers answer again: {per_worker:?}"
    );

    sc.signal(Signal::SIGTERM);
    assert_eq!(
        sc.wait_exit(DEADLINE).code(),
        Some(0),
        "log:\n{}",
        sc.logs()
    );
    for port in [base, base + 1] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            refuses_connections(addr),
            "worker port {port} closed after drain"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_binds_tcp_only_and_serves_as_managed_workers() {
    let python = test_python();
    let base = free_port_range(2);
    let base_flag = base.to_string();
    let app_dir = repo_root().join("examples/gunicorn");
    let app_dir = app_dir.to_string_lossy();
    let args = serve_command(
        &[
            "--workers",
            "2",
            "--worker-port-base",
            &base_flag,
            "--drain-delay",
            "0s",
        ],
        &[
            &python,
            "-m",
            "gunicorn",
            "--bind",
            "127.0.0.1:$(MODELSERVER_WORKER_PORT)",
            "--workers",
            "1",
            "--threads",
            "$(MODELSERVER_EXECUTOR_THREADS)",
            "--chdir",
            &app_dir,
            "app:application",
        ],
    );
    let mut sc = Sidecar::start(&args, &[]);
    let c = client();
    sc.wait_ready(&c).await;

    // Each worker saw its own port in MODELSERVER_WORKER_PORT.
    let ports_by_worker: BTreeMap<u64, Value> = predictions(&c, &sc, 8)
        .await
        .into_iter()
        .map(|v| (v["worker"].as_u64().unwrap(), v["port"].clone()))
        .collect();
    assert_eq!(
        ports_by_worker,
        BTreeMap::from([
            (0, Value::from(base.to_string())),
            (1, Value::from((base + 1).to_string()))
        ])
    );
    // The worker's own error passes through.
    let r = c
        .post(sc.url("/predict"))
        .body(r#"{"instances": [[1]]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    sc.signal(Signal::SIGTERM);
    assert_eq!(
        sc.wait_exit(DEADLINE).code(),
        Some(0),
        "log:\n{}",
        sc.logs()
    );
}

#[test]
fn a_worker_port_range_over_the_sidecars_own_ports_is_refused_at_start() {
    let worker = worker_py();
    for (flags, wanted) in [
        (
            [
                "--port",
                "8081",
                "--admin-port",
                "9090",
                "--workers",
                "4",
                "--worker-port-base",
                "8078",
            ],
            "MODELSERVER_WORKER_PORT_BASE: worker ports 8078-8081 include the sidecar's public port 8081",
        ),
        (
            [
                "--port",
                "8081",
                "--admin-port",
                "9090",
                "--workers",
                "2",
                "--worker-port-base",
                "9089",
            ],
            "MODELSERVER_WORKER_PORT_BASE: worker ports 9089-9090 include the sidecar's admin port 9090",
        ),
        (
            [
                "--port",
                "8081",
                "--admin-port",
                "9090",
                "--workers",
                "2",
                "--worker-port-base",
                "65535",
            ],
            "MODELSERVER_WORKER_PORT_BASE: worker ports 65535..65535+2 run past 65535",
        ),
    ] {
        let mut args = vec!["serve", "--bind", "127.0.0.1"];
        args.extend(flags);
        args.extend(["--", "python3", worker.as_str()]);
        let out = run_to_end(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(wanted), "{wanted:?} not in:\n{stderr}");
    }
}
