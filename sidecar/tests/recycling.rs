//! Worker recycling (`--max-requests-per-worker`) and start-up insight, with the real binary and
//! real Python workers: under load from several clients every request is answered while the
//! workers are replaced; a request a worker still holds when it reaches its limit finishes on
//! that worker after its replacement has taken new requests; TCP workers are recycled in place;
//! a slow-loading worker shows its load time in `/status`, the histogram and the log, and a
//! worker that dies while loading is logged with its last output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde_json::Value;

/// One prediction; its answer's worker pid, or the failure in words.
async fn predict(c: &reqwest::Client, sc: &Sidecar, query: &str) -> Result<u64, String> {
    let r = c
        .post(sc.url(&format!("/predict{query}")))
        .header("content-type", "application/json")
        .body(IRIS_ROWS)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if status != 200 || body["predictions"] != serde_json::json!(IRIS_CLASSES) {
        return Err(format!("{status}: {body}"));
    }
    body["pid"]
        .as_u64()
        .ok_or_else(|| format!("no pid: {body}"))
}

/// `clients` clients sending `each` predictions one after another; every pid that answered, and
/// the failures.
async fn load(
    c: &reqwest::Client,
    sc: &Sidecar,
    clients: usize,
    each: usize,
) -> (BTreeSet<u64>, Vec<String>) {
    let runs = (0..clients).map(|_| async {
        let mut pids = Vec::new();
        let mut failures = Vec::new();
        for _ in 0..each {
            match predict(c, sc, "").await {
                Ok(pid) => pids.push(pid),
                Err(e) => failures.push(e),
            }
        }
        (pids, failures)
    });
    let mut pids = BTreeSet::new();
    let mut failures = Vec::new();
    for (p, f) in futures::future::join_all(runs).await {
        pids.extend(p);
        failures.extend(f);
    }
    (pids, failures)
}

/// Sum of one numeric field over the workers in `/status`.
fn sum_field(status: &Value, field: &str) -> u64 {
    status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w[field].as_u64().unwrap())
        .sum()
}

/// True when no worker is due for recycling or loading its replacement: each worker's
/// `requests` is under its `request_limit`. Without new requests nothing changes after that.
fn settled(status: &Value) -> bool {
    status["workers"].as_array().unwrap().iter().all(|w| {
        w["request_limit"]
            .as_u64()
            .is_none_or(|limit| w["requests"].as_u64().unwrap() < limit)
    })
}

fn alive(pid: u64) -> bool {
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), None).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_recycled_under_load_without_losing_a_request() {
    let sc = Sidecar::serve(
        &[
            "--workers",
            "2",
            "--executor-threads",
            "2",
            "--max-requests-per-worker",
            "5",
            "--max-requests-jitter",
            "2",
        ],
        // Slow enough answers that the load outlasts several replacements' start-up.
        &["--predict-delay", "0.02"],
    );
    let c = client();
    sc.wait_ready(&c).await;
    let first: BTreeSet<u64> = sc.status(&c).await["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();

    let (clients, each) = (6, 60);
    let (pids, failures) = load(&c, &sc, clients, each).await;
    eprintln!(
        "recycling under load: {} requests, {} failures, {} worker pids answered",
        clients * each,
        failures.len(),
        pids.len()
    );
    assert_eq!(failures, Vec::<String>::new(), "every request succeeds");
    assert!(
        pids.difference(&first).count() >= 2,
        "replacements answered: first {first:?}, all {pids:?}"
    );

    // The last requests may have made a worker due; its replacement may still be loading.
    wait_for("the recycles under way to finish", DEADLINE, || async {
        settled(&sc.status(&c).await)
    })
    .await;
    let status = sc.status(&c).await;
    assert!(
        settled(&status),
        "no request since, nothing changes: {status}"
    );
    for worker in status["workers"].as_array().unwrap() {
        let limit = worker["request_limit"].as_u64();
        assert!(limit.is_some_and(|l| (5..=7).contains(&l)), "{status}");
    }
    let recycles = sum_field(&status, "recycles");
    eprintln!("recycling under load: {recycles} recycles");
    assert!(recycles >= 2, "{status}");
    assert_eq!(sum_field(&status, "restarts"), 0, "{status}");
    assert_eq!(
        sc.metric(&c, "modelserver_worker_recycles_total").await,
        recycles as f64
    );
    assert_eq!(
        sc.metric(&c, "modelserver_worker_restarts_total").await,
        0.0
    );
    assert_eq!(
        sc.metric(&c, "modelserver_worker_exits_total{reason=\"exit\"}")
            .await,
        0.0,
        "a recycled worker is stopped, not counted as an exit"
    );
    assert!(
        sc.metric(&c, "modelserver_worker_load_seconds_count").await >= 2.0 + recycles as f64,
        "every start's load time is recorded"
    );
    assert!(
        sc.logged("recycled: max requests reached"),
        "log:\n{}",
        sc.logs()
    );
    // The replaced runs are stopped once they have finished: only the current pids remain.
    let current: Vec<u64> = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    wait_for("the replaced workers to stop", DEADLINE, || async {
        pids.iter()
            .filter(|p| !current.contains(p))
            .all(|p| !alive(*p))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_finishes_on_its_worker_after_the_replacement_takes_new_ones() {
    let sc = Sidecar::serve(
        &[
            "--workers",
            "1",
            "--executor-threads",
            "4",
            "--max-requests-per-worker",
            "3",
        ],
        &[],
    );
    let c = client();
    sc.wait_ready(&c).await;
    let status = sc.status(&c).await;
    let old_pid = status["workers"][0]["pid"].as_u64().unwrap();
    let old_socket = std::path::PathBuf::from(status["workers"][0]["socket"].as_str().unwrap());

    let held = {
        let (c, url) = (c.clone(), sc.url("/predict?gate=held"));
        tokio::spawn(async move {
            c.post(url)
                .header("content-type", "application/json")
                .body(IRIS_ROWS)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    wait_for("the held request to reach the worker", DEADLINE, || async {
        sc.status(&c).await["in_flight"].as_u64() == Some(1)
    })
    .await;
    // Two more reach the limit of 3; the replacement starts and, once ready, takes new requests.
    for _ in 0..2 {
        assert_eq!(predict(&c, &sc, "").await, Ok(old_pid));
    }
    let due = &sc.status(&c).await["workers"][0];
    assert_eq!(
        (due["requests"].as_u64(), due["request_limit"].as_u64()),
        (Some(3), Some(3)),
        "the worker is due: {due}"
    );
    let deadline = std::time::Instant::now() + DEADLINE;
    let new_pid = loop {
        let pid = predict(&c, &sc, "").await.unwrap();
        if pid != old_pid {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the replacement to answer"
        );
        tokio::time::sleep(POLL).await;
    };
    let status = sc.status(&c).await;
    let worker = &status["workers"][0];
    assert_eq!(worker["pid"].as_u64(), Some(new_pid), "{status}");
    assert_eq!(
        (worker["recycles"].as_u64(), worker["restarts"].as_u64()),
        (Some(1), Some(0))
    );
    assert_ne!(worker["socket"].as_str(), old_socket.to_str(), "{status}");
    assert_eq!(
        (
            worker["requests"].as_u64(),
            worker["request_limit"].as_u64()
        ),
        (Some(1), Some(3)),
        "the replacement counts its own requests: {status}"
    );
    assert!(
        !held.is_finished(),
        "the held request is still on the old worker"
    );
    assert!(alive(old_pid), "the old worker waits for its request");

    let answer = worker_request(&old_socket, "POST", "/release?gate=held");
    assert!(answer.starts_with("HTTP/1.1 200"), "release: {answer}");
    let held = tokio::time::timeout(DEADLINE, held).await.unwrap().unwrap();
    assert_eq!(held["pid"].as_u64(), Some(old_pid), "{held}");
    assert_eq!(held["predictions"], serde_json::json!(IRIS_CLASSES));
    wait_for("the old worker to stop", DEADLINE, || async {
        !alive(old_pid)
    })
    .await;
    assert!(
        sc.logged("finished its requests and was stopped"),
        "log:\n{}",
        sc.logs()
    );
    assert_eq!(
        predict(&c, &sc, "").await,
        Ok(new_pid),
        "the replacement serves on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_the_memory_ceiling_is_recycled_without_losing_a_request() {
    // Every Python process is over 1 MiB: each run is replaced once it has been checked.
    let sc = Sidecar::serve(
        &[
            "--workers",
            "1",
            "--executor-threads",
            "2",
            "--max-worker-memory",
            "1Mi",
            "--worker-probe-period",
            "200ms",
        ],
        &["--predict-delay", "0.01"],
    );
    let c = client();
    sc.wait_ready(&c).await;
    let (mut requests, mut failures) = (0, Vec::new());
    let mut pids = BTreeSet::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    while sum_field(&sc.status(&c).await, "recycles") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no recycles:\n{}",
            sc.logs()
        );
        let (p, f) = load(&c, &sc, 2, 10).await;
        requests += 20;
        pids.extend(p);
        failures.extend(f);
    }
    eprintln!(
        "memory ceiling: {requests} requests, {} failures, {} worker pids answered",
        failures.len(),
        pids.len()
    );
    assert_eq!(failures, Vec::<String>::new(), "every request succeeds");
    let status = sc.status(&c).await;
    assert_eq!(sum_field(&status, "restarts"), 0, "{status}");
    assert!(
        sc.logged("recycled: memory ceiling reached"),
        "log:\n{}",
        sc.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_workers_are_recycled_in_place_without_losing_a_request() {
    let base = free_port_range(2).to_string();
    let worker_py = worker_py();
    let args = serve_command(
        &[
            "--workers",
            "2",
            "--executor-threads",
            "2",
            "--worker-port-base",
            &base,
            "--max-requests-per-worker",
            "5",
        ],
        &[
            "python3",
            &worker_py,
            "--port",
            "$(MODELSERVER_WORKER_PORT)",
        ],
    );
    let sc = Sidecar::start(&args, &[]);
    let c = client();
    sc.wait_ready(&c).await;

    let (clients, each) = (4, 25);
    let (pids, failures) = load(&c, &sc, clients, each).await;
    eprintln!(
        "TCP recycling under load: {} requests, {} failures, {} worker pids answered",
        clients * each,
        failures.len(),
        pids.len()
    );
    assert_eq!(failures, Vec::<String>::new(), "every request succeeds");
    assert!(pids.len() >= 3, "{pids:?}");
    let status = sc.status(&c).await;
    assert!(sum_field(&status, "recycles") >= 1, "{status}");
    assert_eq!(sum_field(&status, "restarts"), 0, "{status}");
    assert!(
        sc.logged("starting it again on its port"),
        "log:\n{}",
        sc.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_load_is_logged_as_it_goes_and_its_time_recorded() {
    // Over the first progress mark (10 s).
    const DELAY: f64 = 11.0;
    let sc = Sidecar::serve(&["--workers", "1"], &["--load-delay", "11"]);
    let c = client();
    wait_for("the worker to be loading", DEADLINE, || async {
        sc.status(&c).await["workers"][0]["loading_seconds"].is_f64()
    })
    .await;
    let worker = sc.status(&c).await["workers"][0].clone();
    assert!(worker["load_seconds"].is_null(), "{worker}");
    wait_for("the progress line", DEADLINE, || async {
        sc.logged("worker 0 still loading after 10s")
    })
    .await;
    sc.wait_ready(&c).await;
    wait_for("the ready line", DEADLINE, || async {
        sc.logged("worker ready")
    })
    .await;

    let worker = sc.status(&c).await["workers"][0].clone();
    let load = worker["load_seconds"].as_f64().unwrap();
    assert!(load >= DELAY, "{worker}");
    assert!(worker["loading_seconds"].is_null(), "{worker}");
    assert_eq!(
        sc.metric(&c, "modelserver_worker_load_seconds_count").await,
        1.0
    );
    assert!(sc.metric(&c, "modelserver_worker_load_seconds_sum").await >= DELAY);
    assert_eq!(
        sc.metric(&c, "modelserver_worker_load_seconds_bucket{le=\"10\"}")
            .await,
        0.0
    );
    assert_eq!(
        sc.metric(&c, "modelserver_worker_load_seconds_bucket{le=\"1800\"}")
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_while_loading_is_logged_with_its_last_output() {
    let args = serve_command(
        &["--workers", "1", "--max-worker-restarts", "0"],
        &[
            "python3",
            "-c",
            "import sys; sys.stderr.write('cannot open model.bin\\n'); sys.exit(3)",
        ],
    );
    let mut sc = Sidecar::start(&args, &[]);
    sc.wait_exit(DEADLINE);
    let logs = sc.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("worker 0 failed to start"))
        .unwrap_or_else(|| panic!("no failed-start line in:\n{logs}"));
    assert!(line.contains("exit code 3"), "{line}");
    assert!(line.contains("cannot open model.bin"), "{line}");
}
