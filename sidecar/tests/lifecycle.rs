//! Lifecycle with the real binary and real iris workers: readiness while models load, drain
//! (preStop) and SIGTERM under load, a worker killed mid-request, crash loops, env-only
//! configuration as the operator renders it, proxy mode, and install.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

async fn get_json(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_while_workers_load_then_200() {
    let sc = Sidecar::serve(&["--workers", "2"], &["--load-delay", "4"]);
    let c = client();

    let (status, body) = get_json(&c, &sc.admin_url("/readyz")).await;
    assert_eq!((status, &body["ready"]), (503, &Value::Bool(false)));
    let (status, body) = get_json(&c, &sc.url("/v2/health/ready")).await;
    assert_eq!(status, 503);
    assert_eq!(body, serde_json::json!({"ready": false}));
    // Alive all along.
    for url in [
        sc.admin_url("/livez"),
        sc.url("/v2/health/live"),
        sc.url("/ping"),
    ] {
        assert_eq!(c.get(&url).send().await.unwrap().status(), 200, "{url}");
    }
    assert_eq!(sc.metric(&c, "modelserver_ready").await, 0.0);

    sc.wait_ready(&c).await;
    let (status, body) = get_json(&c, &sc.url("/v2/health/ready")).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"ready": true}));
    let status = sc.status(&c).await;
    for w in status["workers"].as_array().unwrap() {
        assert_eq!(w["state"], "ready", "{status}");
        assert!(w["pid"].as_u64().is_some());
    }
    assert_eq!(sc.metric(&c, "modelserver_workers_ready").await, 2.0);
    assert_eq!(sc.metric(&c, "modelserver_ready").await, 1.0);
    let r = c
        .post(sc.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Starts 4 requests that the workers hold until released, and waits until all are in flight.
async fn four_held_requests(
    c: &reqwest::Client,
    sc: &Sidecar,
    gate: &str,
) -> Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>> {
    let held = (0..4)
        .map(|_| {
            tokio::spawn(
                c.post(sc.url(&format!("/predict?gate={gate}")))
                    .body(IRIS_ROWS)
                    .send(),
            )
        })
        .collect();
    wait_for("4 requests in flight", DEADLINE, || async {
        sc.status(c).await["in_flight"] == 4
    })
    .await;
    held
}

/// The shared part of the drain and SIGTERM tests, after draining was started.
async fn drains_under_load(
    c: &reqwest::Client,
    sc: &Sidecar,
    held: Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>>,
    gate: &str,
) {
    let sockets = sc.worker_sockets(c).await;
    // Readiness turns 503 at once...
    wait_for("readiness 503", DEADLINE, || async {
        c.get(sc.admin_url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;
    assert_eq!(
        get_json(c, &sc.url("/v2/health/ready")).await,
        (503, serde_json::json!({"ready": false}))
    );
    // ...while the sidecar keeps serving new requests during the drain delay.
    let fresh = client();
    let r = fresh
        .post(sc.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "served during the drain delay");
    assert_eq!(sc.metric(c, "modelserver_draining").await, 1.0);
    // The drain's deadline, for the DrainStuck alert: its start (a moment ago, still within the
    // 5 s drain delay) + 5 s + 60 s.
    let deadline = sc
        .metric(c, "modelserver_drain_deadline_timestamp_seconds")
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now + 59.0..=now + 65.5).contains(&deadline),
        "deadline {deadline}, now {now}"
    );

    // After the drain delay: new connections are refused, in-flight requests still run.
    wait_for(
        "the public port to refuse connections",
        DEADLINE,
        || async { refuses_connections(sc.public) },
    )
    .await;
    for socket in &sockets {
        let answer = worker_request(socket, "POST", &format!("/release?gate={gate}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    for request in held {
        let r = request.await.unwrap().expect("in-flight request completes");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["predictions"], serde_json::json!(IRIS_CLASSES));
    }
}

const DRAIN_FLAGS: [&str; 10] = [
    "--workers",
    "2",
    "--executor-threads",
    "3",
    "--drain-delay",
    "5s",
    "--drain-timeout",
    "60s",
    "--shutdown-timeout",
    "10s",
];
/// Drain delay + drain timeout + shutdown timeout + margin.
const DRAIN_BUDGET: Duration = Duration::from_secs(5 + 60 + 10 + 30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_in_flight_requests_then_exits_zero() {
    let mut sc = Sidecar::serve(&DRAIN_FLAGS, &[]);
    let c = client();
    sc.wait_ready(&c).await;
    let held = four_held_requests(&c, &sc, "d").await;

    // The preStop hook, exactly as the operator renders it: no arguments, admin port from env.
    let admin_port = sc.admin.port().to_string();
    let prestop = std::thread::spawn(move || {
        run_to_end(
            &["drain"],
            &[
                ("MODELSERVER_ADMIN_PORT", admin_port.as_str()),
                ("MODELSERVER_DRAIN_DELAY", "5s"),
                ("MODELSERVER_DRAIN_TIMEOUT", "60s"),
            ],
        )
    });
    drains_under_load(&c, &sc, held, "d").await;

    let out = prestop.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "drain failed: {stderr}");
    assert!(stderr.contains("drained"), "{stderr}");
    let status = sc.wait_exit(DRAIN_BUDGET);
    assert_eq!(status.code(), Some(0), "log:\n{}", sc.logs());
    assert!(sc.logged("drained: no requests in flight"));
    assert!(sc.logged("SIGTERM: shutting down"), "workers got SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_like_prestop() {
    let mut sc = Sidecar::serve(&DRAIN_FLAGS, &[]);
    let c = client();
    sc.wait_ready(&c).await;
    let held = four_held_requests(&c, &sc, "t").await;
    sc.signal(Signal::SIGTERM);
    drains_under_load(&c, &sc, held, "t").await;
    let status = sc.wait_exit(DRAIN_BUDGET);
    assert_eq!(status.code(), Some(0), "log:\n{}", sc.logs());
    assert!(sc.logged("SIGTERM received"));
}

#[test]
fn drain_without_a_sidecar_fails_clearly() {
    let port = free_port().to_string();
    let out = run_to_end(&["drain"], &[("MODELSERVER_ADMIN_PORT", port.as_str())]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_fails_only_its_request_and_comes_back() {
    let sc = Sidecar::serve(&["--workers", "2", "--executor-threads", "1"], &[]);
    let c = client();
    sc.wait_ready(&c).await;

    let victim_req = tokio::spawn(c.post(sc.url("/predict?gate=k")).body(IRIS_ROWS).send());
    wait_for("the first request in flight", DEADLINE, || async {
        sc.status(&c).await["in_flight"] == 1
    })
    .await;
    let status = sc.status(&c).await;
    let victim = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["in_flight"] == 1)
        .unwrap()
        .clone();
    let victim_id = victim["id"].as_u64().unwrap();
    let survivor_id = 1 - victim_id;
    let survivor_socket = std::path::PathBuf::from(
        status["workers"][survivor_id as usize]["socket"]
            .as_str()
            .unwrap(),
    );

    let other_req = tokio::spawn(c.post(sc.url("/predict?gate=k")).body(IRIS_ROWS).send());
    wait_for("both requests in flight", DEADLINE, || async {
        sc.status(&c).await["in_flight"] == 2
    })
    .await;

    let pid = i32::try_from(victim["pid"].as_u64().unwrap()).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();

    let r = victim_req.await.unwrap().unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains(&format!("worker {victim_id}")), "{msg}");

    let answer = worker_request(&survivor_socket, "POST", "/release?gate=k");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let r = other_req.await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "the other worker's request is unaffected");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["worker"].as_u64(), Some(survivor_id));

    // The pod stayed ready on the survivor; wait for the victim itself to serve again.
    wait_for("the killed worker to be ready again", DEADLINE, || async {
        sc.status(&c).await["workers"][victim_id as usize]["ready"] == true
    })
    .await;
    let status = sc.status(&c).await;
    let restarted = &status["workers"][victim_id as usize];
    assert_eq!(restarted["restarts"], 1, "{status}");
    assert_ne!(restarted["pid"].as_u64(), Some(pid as u64));
    assert!(
        restarted["last_exit"].as_str().unwrap().contains("SIGKILL"),
        "{status}"
    );
    assert_eq!(
        sc.metric(&c, "modelserver_worker_restarts_total").await,
        1.0
    );
    assert_eq!(
        sc.metric(&c, "modelserver_rejected_total{reason=\"worker_error\"}")
            .await,
        1.0
    );
    for _ in 0..4 {
        let r = c
            .post(sc.url("/predict"))
            .body(IRIS_ROWS)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// A termination-message file in a fresh temporary directory (never the real
/// `/dev/termination-log` of the machine running the tests).
fn termination_log() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("termination-log");
    let path = path.to_string_lossy().into_owned();
    (dir, path)
}

#[test]
fn crash_loop_ends_the_sidecar_non_zero() {
    let (_dir, log) = termination_log();
    let args = serve_command(
        &["--max-worker-restarts", "2", "--termination-log", &log],
        &["python3", "-c", "import sys; sys.exit(3)"],
    );
    let mut sc = Sidecar::start(&args, &[]);
    let status = sc.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1), "log:\n{}", sc.logs());
    assert!(sc.logged("crash loop"), "log:\n{}", sc.logs());
    assert!(sc.logged("exited 3 times"), "log:\n{}", sc.logs());
    assert!(sc.logged("exit code 3"), "log:\n{}", sc.logs());
    let message = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        message,
        "WorkerCrashLoop: worker 0 exited 3 times in 10m; last exit: exit code 3\n\
         worker 0 wrote nothing to stderr\n"
    );
}

#[test]
fn missing_worker_executable_is_reported() {
    let (_dir, log) = termination_log();
    let args = serve_command(
        &["--max-worker-restarts", "0", "--termination-log", &log],
        &["/nonexistent/model-server"],
    );
    let mut sc = Sidecar::start(&args, &[]);
    let status = sc.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1));
    assert!(
        sc.logged("could not start \"/nonexistent/model-server\""),
        "log:\n{}",
        sc.logs()
    );
    let message = std::fs::read_to_string(&log).unwrap();
    assert!(
        message.starts_with(
            "WorkerCrashLoop: worker 0 exited 1 times in 10m; last exit: could not start \"/nonexistent/model-server\""
        ),
        "{message}"
    );
}

#[test]
fn worker_failing_at_import_leaves_its_traceback_for_the_kubelet() {
    let (_dir, log) = termination_log();
    let args = serve_command(
        &["--max-worker-restarts", "1", "--termination-log", &log],
        &["python3", "-c", "import nonexistent_module"],
    );
    let mut sc = Sidecar::start(&args, &[]);
    let status = sc.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1), "log:\n{}", sc.logs());
    let message = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("WorkerCrashLoop: worker 0 exited 2 times in 10m; last exit: exit code 1"),
        "{message}"
    );
    assert_eq!(
        lines.get(1).copied(),
        Some("last output of worker 0:"),
        "{message}"
    );
    assert!(
        lines.contains(&"Traceback (most recent call last):"),
        "{message}"
    );
    assert_eq!(
        lines.last().copied(),
        Some("ModuleNotFoundError: No module named 'nonexistent_module'"),
        "{message}"
    );
    assert!(message.len() < 4096);
    // The worker's output still reaches the sidecar's own stderr, as before.
    assert!(
        sc.logged("ModuleNotFoundError: No module named 'nonexistent_module'"),
        "log:\n{}",
        sc.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_worker_is_named_out_of_memory_under_a_memory_limit() {
    // A cgroup v2 root with a 512Mi limit and no readable OOM counter.
    let cgroup = tempfile::tempdir().unwrap();
    std::fs::write(cgroup.path().join("memory.max"), "536870912\n").unwrap();
    let root = cgroup.path().to_string_lossy().into_owned();
    let (_dir, log) = termination_log();
    let args = serve_args(&["--termination-log", &log], &[]);
    let sc = Sidecar::start(&args, &[("MODELSERVER_CGROUP_ROOT", root.as_str())]);
    let c = client();
    sc.wait_ready(&c).await;
    let status = sc.status(&c).await;
    let pid = i32::try_from(status["workers"][0]["pid"].as_u64().unwrap()).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();

    wait_for("the worker's exit in /status", DEADLINE, || async {
        sc.status(&c).await["workers"][0]["restarts"] == 1
    })
    .await;
    let status = sc.status(&c).await;
    let worker = &status["workers"][0];
    assert_eq!(
        worker["last_exit"], "killed by SIGKILL, likely out of memory (limit 512Mi)",
        "{status}"
    );
    assert_eq!(worker["last_exit_reason"], "oom", "{status}");
    assert_eq!(
        sc.metric(&c, "modelserver_worker_exits_total{reason=\"oom\"}")
            .await,
        1.0
    );
    assert_eq!(
        sc.metric(&c, "modelserver_worker_exits_total{reason=\"signal\"}")
            .await,
        0.0
    );
    assert_eq!(
        sc.metric(&c, "modelserver_worker_restarts_total").await,
        1.0
    );
    wait_for("the exit reason in the log", DEADLINE, || async {
        sc.logged("worker 0 killed by SIGKILL, likely out of memory (limit 512Mi); restarting")
    })
    .await;
    sc.wait_ready(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_from_the_environment_alone() {
    let dir = tempfile::tempdir().unwrap();
    let socket_dir = dir.path().join("sockets");
    let socket_dir_str = socket_dir.to_string_lossy().into_owned();
    // Values as the operator renders them: strings, durations, quantities, "true"/"false".
    let env = [
        ("MODELSERVER_BIND", "127.0.0.1"),
        ("MODELSERVER_PORT", "0"),
        ("MODELSERVER_ADMIN_PORT", "0"),
        ("MODELSERVER_WORKERS", "2"),
        ("MODELSERVER_EXECUTOR_THREADS", "3"),
        ("MODELSERVER_MAX_QUEUE", "5"),
        ("MODELSERVER_MAX_UPLOAD_SIZE", "1Ki"),
        ("MODELSERVER_REQUEST_TIMEOUT", "2s"),
        ("MODELSERVER_READINESS_PATH", "/ready"),
        ("MODELSERVER_DOCS", "false"),
        ("MODELSERVER_CORS_ALLOW_ORIGINS", ""),
        ("MODELSERVER_AUTH_TOKEN", "tok"),
        ("MODELSERVER_LOG_LEVEL", "info"),
        ("MODELSERVER_LOG_FORMAT", "text"),
        ("MODELSERVER_ACCESS_LOG", "false"),
        ("MODELSERVER_DRAIN_DELAY", "0s"),
        ("MODELSERVER_DRAIN_TIMEOUT", "10s"),
        ("MODELSERVER_SHUTDOWN_TIMEOUT", "5s"),
        ("MODELSERVER_MAX_WORKER_RESTARTS", "3"),
        ("MODELSERVER_SOCKET_DIR", socket_dir_str.as_str()),
        ("IRIS_TEST_HOOKS", "1"),
    ];
    // `$(MODELSERVER_SOCKET)` must be expanded for the worker to listen where the sidecar looks.
    let args: Vec<String> = vec![
        "serve".into(),
        "--".into(),
        "python3".into(),
        worker_py(),
        "--socket".into(),
        "$(MODELSERVER_SOCKET)".into(),
    ];
    let mut sc = Sidecar::start(&args, &env);
    let c = client();
    sc.wait_ready(&c).await;

    let status = sc.status(&c).await;
    assert_eq!(status["max_queue"], 5);
    let workers = status["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(
        workers[1]["socket"].as_str().unwrap(),
        socket_dir.join("worker-1.sock").to_str().unwrap()
    );

    let r = c
        .post(sc.url("/predict"))
        .header("authorization", "Bearer tok")
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["workers"].as_u64(), v["executor_threads"].as_u64()),
        (Some(2), Some(3))
    );
    let r = c
        .post(sc.url("/echo"))
        .header("authorization", "Bearer tok")
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(
        c.post(sc.url("/predict"))
            .body(IRIS_ROWS)
            .send()
            .await
            .unwrap()
            .status()
            == 401
    );
    let r = c
        .request(reqwest::Method::OPTIONS, sc.url("/predict"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        !r.headers().contains_key("access-control-allow-origin"),
        "empty origin list means CORS off"
    );
    assert!(!sc.logged("access: request"), "access log off");

    sc.signal(Signal::SIGTERM);
    assert_eq!(
        sc.wait_exit(DEADLINE).code(),
        Some(0),
        "log:\n{}",
        sc.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_fronts_a_tcp_upstream() {
    let port = free_port();
    let upstream = Command::new("python3")
        .args([
            worker_py().as_str(),
            "--port",
            &port.to_string(),
            "--load-delay",
            "4",
            "--test-hooks",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut upstream = ChildGuard(upstream);
    let args: Vec<String> = [
        "proxy",
        "--upstream",
        &format!("localhost:{port}"),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--admin-port",
        "0",
        "--drain-delay",
        "0s",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let mut sc = Sidecar::start(&args, &[]);
    let c = client();
    assert_eq!(
        c.get(sc.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503,
        "not ready while the upstream loads"
    );
    sc.wait_ready(&c).await;
    let r = c
        .post(sc.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["predictions"], serde_json::json!(IRIS_CLASSES));
    let status = sc.status(&c).await;
    assert_eq!(status["mode"], "proxy");
    assert_eq!(
        status["workers"][0]["upstream"],
        format!("127.0.0.1:{port}")
    );

    // The model container's preStop drains the native sidecar; the sidecar must then outlive
    // the model: it keeps running (probes answer, readiness is off) until the kubelet's SIGTERM,
    // which comes after the model has exited.
    let drain = run_to_end(
        &[
            "drain",
            "--bind",
            "127.0.0.1",
            "--admin-port",
            &sc.admin.port().to_string(),
        ],
        &[],
    );
    assert!(drain.status.success(), "{drain:?}");
    wait_for(
        "the drained sidecar waiting for SIGTERM",
        DEADLINE,
        || async { sc.logged("waiting for SIGTERM") },
    )
    .await;
    assert!(
        sc.running(),
        "the native sidecar stopped before the model:\n{}",
        sc.logs()
    );
    assert_eq!(
        c.get(sc.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503,
        "not ready once drained"
    );
    sc.signal(Signal::SIGTERM);
    assert_eq!(sc.wait_exit(DEADLINE).code(), Some(0));
    assert!(
        upstream.0.try_wait().unwrap().is_none(),
        "the upstream is not the sidecar's to stop"
    );
}

#[test]
fn install_copies_a_working_executable() {
    let dir = tempfile::tempdir().unwrap();
    let target_dir = dir.path().join("modelserver/bin");
    let out = run_to_end(&["install", target_dir.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = target_dir.join("modelserver-sidecar");
    let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains("modelserver-sidecar"));

    let out = run_to_end(&["install", "/proc/no-such-dir"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot install"));
}

#[test]
fn drain_with_durations_whose_sum_overflows_fails_cleanly_instead_of_panicking() {
    // The API server accepts this drainDelay (it matches the duration pattern); the preStop hook
    // adds it to the drain timeout, which once panicked with "overflow when adding durations".
    let out = run_to_end(
        &["drain", "--bind", "127.0.0.1", "--admin-port", "1"],
        &[("MODELSERVER_DRAIN_DELAY", "5124095576030431h")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(101), "panicked: {stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}
