//! Hardening found by an attack battery on the release binary, with the real binary and real iris
//! workers: the auth token never reaches the model's code (headers, argv, environment) unless
//! passthrough is asked for; the sidecar's CORS answer replaces the worker's; a hung worker is
//! noticed, taken out of rotation and restarted while the pod keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::ExitStatus;
use std::time::Instant;

use common::*;
use serde_json::Value;

const TOKEN: &str = "s3cret-tok3n";

/// Starts the binary and waits until it exits (Some, with its log) or logs "listening" (None,
/// after killing it): a refused configuration must stop it before it serves anything.
fn refused_before_listening(args: &[String], env: &[(&str, &str)]) -> Option<(ExitStatus, String)> {
    let (mut child, logs) = spawn(args, env);
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            // The reader threads may still be copying the last line, the error.
            let until = Instant::now() + DEADLINE;
            while Instant::now() < until
                && !logs
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|l| l.contains("modelserver-sidecar failed"))
            {
                std::thread::sleep(POLL);
            }
            return Some((status, logs.lock().unwrap().join("\n")));
        }
        if logs.lock().unwrap().iter().any(|l| l.contains("listening")) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "sidecar neither exited nor listened"
        );
        std::thread::sleep(POLL);
    }
}

/// `POST /echo` with `header: value`; the worker's report of what it received.
async fn echo(c: &reqwest::Client, sc: &Sidecar, header: &str, value: &str) -> Value {
    let r = c
        .post(sc.url("/echo"))
        .header(header, value)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{header}");
    r.json().await.unwrap()
}

/// The command lines of every worker, read from `/proc/<pid>/cmdline` with pids from `/status`.
async fn worker_cmdlines(c: &reqwest::Client, sc: &Sidecar) -> Vec<String> {
    let status = sc.status(c).await;
    status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let pid = w["pid"].as_u64().expect("worker pid");
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            String::from_utf8_lossy(&raw).replace('\0', " ")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_reaches_worker_code_unless_passed_through() {
    let c = client();
    let env = [
        ("MODELSERVER_AUTH_TOKEN", TOKEN),
        ("PUBLIC_LABEL", "hello"),
        // The same secret under another name (say, from the model's envFrom).
        ("COPY_OF_TOKEN", TOKEN),
    ];
    let sc = Sidecar::start(
        &serve_args(&["--workers", "2"], &["--label=$(PUBLIC_LABEL)"]),
        &env,
    );
    sc.wait_ready(&c).await;
    for (header, value) in [
        ("authorization", format!("Bearer {TOKEN}")),
        ("x-auth-token", TOKEN.to_string()),
    ] {
        let seen = echo(&c, &sc, header, &value).await;
        let headers = seen["headers"].as_object().unwrap();
        assert!(
            !headers.contains_key("authorization") && !headers.contains_key("x-auth-token"),
            "the worker received the token header ({header}): {seen}"
        );
        assert_eq!(seen["env_token"], Value::Null, "token in the environment");
        let names = seen["env_names"].as_array().unwrap();
        assert!(
            !names.contains(&Value::from("COPY_OF_TOKEN")),
            "a copy of the token in the environment"
        );
        assert!(names.contains(&Value::from("PUBLIC_LABEL")), "{names:?}");
        let argv = seen["argv"].to_string();
        assert!(
            argv.contains("--label=hello"),
            "$(VAR) still expands: {argv}"
        );
        assert!(!argv.contains(TOKEN), "{argv}");
    }
    for cmdline in worker_cmdlines(&c, &sc).await {
        assert!(!cmdline.contains(TOKEN), "token in argv: {cmdline}");
    }
    assert!(sc.logged("COPY_OF_TOKEN"), "the hidden variable is named");
    assert!(!sc.logs().contains(TOKEN), "the token is never logged");
    drop(sc);

    // Passthrough: the model does its own auth with the same token.
    let mut env = env.to_vec();
    env.push(("MODELSERVER_AUTH_PASSTHROUGH", "true"));
    let sc = Sidecar::start(&serve_args(&[], &[]), &env);
    sc.wait_ready(&c).await;
    let seen = echo(&c, &sc, "authorization", &format!("Bearer {TOKEN}")).await;
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(seen["env_token"], TOKEN);
    assert!(
        seen["env_names"]
            .as_array()
            .unwrap()
            .contains(&Value::from("COPY_OF_TOKEN"))
    );
    let seen = echo(&c, &sc, "x-auth-token", TOKEN).await;
    assert_eq!(seen["headers"]["x-auth-token"], TOKEN);
    for cmdline in worker_cmdlines(&c, &sc).await {
        assert!(!cmdline.contains(TOKEN), "token in argv: {cmdline}");
    }
}

#[test]
fn a_command_that_would_expand_the_token_is_refused_at_start() {
    // The token's own variable, and another variable holding the same secret.
    for label in [
        "--label=$(MODELSERVER_AUTH_TOKEN)",
        "--label=x$(COPY_OF_TOKEN)",
    ] {
        let args = serve_args(&[], &[label]);
        let env = [("MODELSERVER_AUTH_TOKEN", TOKEN), ("COPY_OF_TOKEN", TOKEN)];
        let (status, log) = refused_before_listening(&args, &env)
            .unwrap_or_else(|| panic!("{label}: the sidecar started serving"));
        assert!(!status.success(), "{label}");
        assert!(
            log.contains("never expanded into a command line"),
            "{label}: {log}"
        );
        assert!(!log.contains(TOKEN), "the token is never logged: {log}");
    }
}

/// Every `Access-Control-*` header of a response, `name: value`.
fn cors_headers(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("access-control-"))
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecars_cors_answer_replaces_the_workers() {
    let sc = Sidecar::start(
        &serve_args(&[], &[]),
        &[
            ("MODELSERVER_CORS_ALLOW_ORIGINS", "https://app.example.com"),
            ("MODELSERVER_CORS_ALLOW_CREDENTIALS", "false"),
        ],
    );
    let c = client();
    sc.wait_ready(&c).await;
    // The worker tries to widen the policy.
    let url = sc.url(
        "/echo?header=Access-Control-Allow-Credentials:true\
         &header=Access-Control-Allow-Origin:https://evil.example.com\
         &header=Access-Control-Expose-Headers:x-internal\
         &header=Access-Control-Allow-Methods:DELETE\
         &header=X-Other:kept",
    );
    let r = c
        .post(&url)
        .header("origin", "https://app.example.com")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-other"], "kept", "other headers pass through");
    let mut cors = cors_headers(&r);
    cors.sort();
    assert_eq!(
        cors,
        vec![
            "access-control-allow-origin: https://app.example.com",
            "access-control-expose-headers: x-request-id",
        ],
        "only the sidecar's CORS answer"
    );
    // No Origin: no origin is allowed, by the sidecar or by the worker.
    let r = c.post(&url).body("x").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        cors_headers(&r),
        vec!["access-control-expose-headers: x-request-id"]
    );
}

/// Worker `id`'s row in `/status`.
async fn worker_row(c: &reqwest::Client, sc: &Sidecar, id: usize) -> Value {
    sc.status(c).await["workers"][id].clone()
}

/// `POST /predict`: the status and the worker that answered.
async fn predict(c: &reqwest::Client, sc: &Sidecar) -> (u16, Option<u64>) {
    let r = c
        .post(sc.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["worker"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_leaves_rotation_and_is_restarted_while_the_pod_serves() {
    let sc = Sidecar::serve(
        &[
            "--workers",
            "2",
            "--request-timeout",
            "3s",
            "--worker-probe-period",
            "300ms",
            "--worker-probe-timeout",
            "1s",
            "--worker-probe-failures",
            "3",
        ],
        &[],
    );
    let c = client();
    sc.wait_ready(&c).await;
    let pid = worker_row(&c, &sc, 0).await["pid"].as_u64().unwrap();

    // Watch /readyz for the whole test: the pod must stay Ready while worker 1 serves.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let readyz = {
        let (c, url, watching) = (c.clone(), sc.admin_url("/readyz"), watching.clone());
        tokio::spawn(async move {
            let mut not_ready = Vec::new();
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                let status = c.get(&url).send().await.unwrap().status().as_u16();
                if status != 200 {
                    not_ready.push(status);
                }
                tokio::time::sleep(POLL).await;
            }
            not_ready
        })
    };

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    // Detected within a few probe periods: out of rotation (or already being restarted).
    let detection = std::time::Duration::from_secs(20);
    wait_for(
        "the stopped worker to leave rotation",
        detection,
        || async { worker_row(&c, &sc, 0).await["state"] != "ready" },
    )
    .await;
    // Every request goes to worker 1 (or to worker 0 once it is back): no 504.
    for _ in 0..10 {
        let (status, _) = predict(&c, &sc).await;
        assert_eq!(status, 200, "a request went to the hung worker");
    }
    wait_for("the hung worker to be restarted", DEADLINE, || async {
        let row = worker_row(&c, &sc, 0).await;
        row["state"] == "ready" && row["restarts"] == 1 && row["pid"].as_u64() != Some(pid)
    })
    .await;
    let row = worker_row(&c, &sc, 0).await;
    assert_eq!(row["last_exit_reason"], "hung", "{row}");
    assert!(
        row["last_exit"].as_str().unwrap().contains("GET /ready"),
        "{row}"
    );
    assert_eq!(
        sc.metric(&c, "modelserver_worker_exits_total{reason=\"hung\"}")
            .await,
        1.0
    );
    assert!(sc.logged("worker 0 hung"), "{}", sc.logs());

    // Both serve again.
    let seen = std::sync::Mutex::new([false, false]);
    wait_for("both workers to answer", DEADLINE, || async {
        let (status, worker) = predict(&c, &sc).await;
        assert_eq!(status, 200);
        let mut seen = seen.lock().unwrap();
        if let Some(w) = worker {
            seen[usize::try_from(w).unwrap()] = true;
        }
        *seen == [true, true]
    })
    .await;
    assert_eq!(sc.metric(&c, "modelserver_workers_ready").await, 2.0);
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let not_ready = readyz.await.unwrap();
    assert!(not_ready.is_empty(), "/readyz answered {not_ready:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_timeout_has_its_worker_probed_at_once() {
    // Probes are a minute apart: only the timed-out request can bring the hang to light soon.
    let sc = Sidecar::serve(
        &[
            "--workers",
            "2",
            "--request-timeout",
            "1s",
            "--worker-probe-period",
            "60s",
            "--worker-probe-timeout",
            "500ms",
            "--worker-probe-failures",
            "2",
        ],
        &[],
    );
    let c = client();
    sc.wait_ready(&c).await;
    let pid = worker_row(&c, &sc, 0).await["pid"].as_u64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    // Round robin sends one of two requests to the stopped worker.
    let mut timed_out = 0;
    for _ in 0..2 {
        if predict(&c, &sc).await.0 == 504 {
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 1, "one request went to the stopped worker");
    // The timeout (one failure) and the probe it triggers (two) call it hung, well within the
    // probe period.
    wait_for(
        "the hung worker to be restarted",
        std::time::Duration::from_secs(20),
        || async { worker_row(&c, &sc, 0).await["last_exit_reason"] == "hung" },
    )
    .await;
    let row = worker_row(&c, &sc, 0).await;
    assert!(
        row["last_exit"]
            .as_str()
            .unwrap()
            .contains("a request past the request timeout"),
        "{row}"
    );
}
