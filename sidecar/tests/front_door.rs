//! The public port with the real binary and real iris workers: forwarding, request ids, upload
//! limits, timeouts, back-pressure, auth, CORS, streaming, metrics, docs and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};

use bytes::Bytes;
use common::*;
use serde_json::Value;

fn chunked_body(total: usize, chunk: usize) -> reqwest::Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..total.div_ceil(chunk))
        .map(|i| Ok(Bytes::from(vec![b'x'; chunk.min(total - i * chunk)])))
        .collect();
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

fn assert_json_error(body: &str, needle: &str) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {body}"));
    assert!(
        msg.contains(needle),
        "error {msg:?} should mention {needle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_predictions_and_keeps_or_adds_the_request_id() {
    let sc = Sidecar::serve(&["--workers", "2"], &[]);
    let c = client();
    sc.wait_ready(&c).await;

    let r = c
        .post(sc.url("/predict"))
        .header("x-request-id", "test-req-7")
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "test-req-7");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["predictions"], serde_json::json!(IRIS_CLASSES));
    assert_eq!(v["request_id"], "test-req-7", "the worker saw the same id");
    assert!(v["worker"].as_u64().unwrap() < 2);
    assert_eq!(v["workers"], 2);
    assert_eq!(v["executor_threads"], 4);

    let r = c
        .post(sc.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(id.len() >= 16, "a generated id: {id:?}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["request_id"], id.as_str());

    // The log lines reach the harness through a pipe and a reader thread: wait for each one.
    wait_for("the access log line", DEADLINE, || async {
        sc.logged("test-req-7")
    })
    .await;
    wait_for("the generated id in the access log", DEADLINE, || async {
        sc.logged(&id)
    })
    .await;

    // Both workers take requests when they are concurrent.
    let mut seen = std::collections::BTreeSet::new();
    let calls: Vec<_> = (0..2)
        .map(|_| c.post(sc.url("/predict?delay=1")).body(IRIS_ROWS).send())
        .collect();
    for r in futures::future::join_all(calls).await {
        let v: Value = r.unwrap().json().await.unwrap();
        seen.insert(v["worker"].as_u64().unwrap());
    }
    assert_eq!(
        seen.len(),
        2,
        "least-loaded dispatch spreads concurrent requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_limit_applies_with_and_without_content_length() {
    let sc = Sidecar::serve(&["--max-upload-size", "1Ki"], &[]);
    let c = client();
    sc.wait_ready(&c).await;

    // Declared too large: refused before the worker sees it.
    let r = c
        .post(sc.url("/echo"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_json_error(&r.text().await.unwrap(), "upload limit of 1024 bytes");

    // Chunked, crossing the limit while streaming.
    let r = c
        .post(sc.url("/echo"))
        .body(chunked_body(4096, 256))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_json_error(&r.text().await.unwrap(), "upload limit");

    // Chunked under the limit and exactly at it with Content-Length: forwarded whole.
    let r = c
        .post(sc.url("/echo"))
        .body(chunked_body(1000, 100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["bytes"], 1000);
    let r = c
        .post(sc.url("/echo"))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["bytes"], 1024);

    assert_eq!(
        sc.metric(&c, "modelserver_rejected_total{reason=\"too_large\"}")
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_gets_504() {
    let sc = Sidecar::serve(&["--request-timeout", "1s"], &[]);
    let c = client();
    sc.wait_ready(&c).await;
    let r = c
        .post(sc.url("/predict?delay=10"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_json_error(&r.text().await.unwrap(), "request timeout of 1s");
    assert_eq!(
        sc.metric(&c, "modelserver_rejected_total{reason=\"timeout\"}")
            .await,
        1.0
    );
    // The sidecar still serves.
    let r = c
        .post(sc.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_before_its_answer_is_logged_and_counted_as_499() {
    let sc = Sidecar::serve(&[], &[]);
    let c = client();
    sc.wait_ready(&c).await;
    let addr = sc
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /predict?delay=30 HTTP/1.1\r\nHost: x\r\nx-request-id: left-early-1\r\n\
         content-length: {}\r\n\r\n{IRIS_ROWS}",
        IRIS_ROWS.len()
    )
    .unwrap();
    wait_for("the request to reach a worker", DEADLINE, || async {
        sc.metric(&c, "modelserver_inflight_requests").await == 1.0
    })
    .await;
    drop(stream);
    wait_for("the 499 line of the request", DEADLINE, || async {
        sc.logs()
            .lines()
            .any(|l| l.contains("left-early-1") && l.contains("status=499"))
    })
    .await;
    assert_eq!(
        sc.metric(&c, "modelserver_requests_total{code=\"499\"}")
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_503_with_retry_after() {
    let sc = Sidecar::serve(
        &[
            "--workers",
            "1",
            "--executor-threads",
            "1",
            "--max-queue",
            "1",
            // The count bound is under test: the time bound must not end the wait first.
            "--max-queue-wait",
            "60s",
        ],
        &[],
    );
    let c = client();
    sc.wait_ready(&c).await;

    let held = tokio::spawn(c.post(sc.url("/predict?gate=q")).body(IRIS_ROWS).send());
    wait_for("one request in flight", DEADLINE, || async {
        sc.status(&c).await["in_flight"] == 1
    })
    .await;
    let queued = tokio::spawn(c.post(sc.url("/predict?gate=q")).body(IRIS_ROWS).send());
    wait_for("one request queued", DEADLINE, || async {
        sc.status(&c).await["queue"] == 1
    })
    .await;
    assert_eq!(sc.metric(&c, "modelserver_queue_depth").await, 1.0);
    assert_eq!(sc.metric(&c, "modelserver_inflight_requests").await, 1.0);

    let r = c
        .post(sc.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_json_error(&r.text().await.unwrap(), "queue is full");

    release(&c, &sc, "q").await;
    assert_eq!(held.await.unwrap().unwrap().status(), 200);
    assert_eq!(queued.await.unwrap().unwrap().status(), 200);
    assert_eq!(
        sc.metric(&c, "modelserver_rejected_total{reason=\"queue_full\"}")
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_token_is_required_except_on_health_paths() {
    let sc = Sidecar::start(
        &serve_args(&[], &[]),
        &[("MODELSERVER_AUTH_TOKEN", "s3cret")],
    );
    let c = client();
    sc.wait_ready(&c).await;

    let r = c
        .post(sc.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_json_error(&r.text().await.unwrap(), "token");

    for (name, value) in [("authorization", "Bearer wrong"), ("x-auth-token", "s3cre")] {
        let r = c
            .post(sc.url("/predict"))
            .header(name, value)
            .body(IRIS_ROWS)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}: {value}");
    }
    for (name, value) in [
        ("authorization", "Bearer s3cret"),
        ("x-auth-token", "s3cret"),
    ] {
        let r = c
            .post(sc.url("/predict"))
            .header(name, value)
            .body(IRIS_ROWS)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}: {value}");
    }
    for path in ["/ping", "/v2/health/live", "/v2/health/ready"] {
        let r = c.get(sc.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} needs no token");
    }
    // Docs are not health paths.
    let r = c.get(sc.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The admin port is never authenticated.
    let r = c.get(sc.admin_url("/status")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        sc.metric(&c, "modelserver_rejected_total{reason=\"unauthorized\"}")
            .await,
        4.0
    );
    assert!(!sc.logs().contains("s3cret"), "the token is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_allowed_and_denied() {
    let sc = Sidecar::start(
        &serve_args(&[], &[]),
        &[
            (
                "MODELSERVER_CORS_ALLOW_ORIGINS",
                "https://app.example.com,https://b.example.com",
            ),
            ("MODELSERVER_CORS_ALLOW_METHODS", "GET,POST"),
            (
                "MODELSERVER_CORS_ALLOW_HEADERS",
                "Content-Type,Authorization",
            ),
            ("MODELSERVER_CORS_ALLOW_CREDENTIALS", "true"),
            ("MODELSERVER_CORS_MAX_AGE", "10m"),
            ("MODELSERVER_AUTH_TOKEN", "tok"),
        ],
    );
    let c = client();
    sc.wait_ready(&c).await;

    // Allowed preflight: answered by the sidecar (no token needed, never reaches the worker).
    let r = c
        .request(reqwest::Method::OPTIONS, sc.url("/predict"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "600");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        headers.contains("content-type") && headers.contains("authorization"),
        "{headers}"
    );
    assert!(!h.contains_key("server"), "not forwarded to the worker");

    // Denied preflight: no CORS headers at all.
    let r = c
        .request(reqwest::Method::OPTIONS, sc.url("/predict"))
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    let cors: Vec<_> = r
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "denied origin got {cors:?}");

    // Actual requests.
    let r = c
        .post(sc.url("/predict"))
        .header("origin", "https://b.example.com")
        .header("authorization", "Bearer tok")
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://b.example.com"
    );
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    let r = c
        .post(sc.url("/predict"))
        .header("origin", "https://evil.example.com")
        .header("authorization", "Bearer tok")
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert!(
        !r.headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "denied origin got CORS headers: {:?}",
        r.headers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_response_arrives_chunk_by_chunk() {
    let sc = Sidecar::serve(&["--workers", "1"], &[]);
    let c = client();
    sc.wait_ready(&c).await;

    let mut r = c
        .get(sc.url("/stream?chunks=3&gate=s"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    // The worker holds the rest of the stream until released, so the first event can only
    // arrive if the sidecar passes it on as it is produced.
    let first = tokio::time::timeout(DEADLINE, r.chunk())
        .await
        .expect("first event before the stream ends")
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&first).to_string();
    assert!(
        first.starts_with("data: ") && first.contains("\"chunk\": 0"),
        "{first:?}"
    );
    assert!(!first.contains("\"chunk\": 1"));

    release(&c, &sc, "s").await;
    let mut rest = String::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        rest.contains("\"chunk\": 1") && rest.contains("\"chunk\": 2"),
        "{rest:?}"
    );
    assert_eq!(
        sc.status(&c).await["in_flight"],
        0,
        "slot released when the stream ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_traffic_sent() {
    let sc = Sidecar::start(
        &serve_args(&["--workers", "2"], &[]),
        &[("MODELSERVER_AUTH_TOKEN", "tok")],
    );
    let c = client();
    sc.wait_ready(&c).await;
    assert_eq!(sc.metric(&c, "modelserver_ready").await, 1.0);
    assert_eq!(sc.metric(&c, "modelserver_workers_ready").await, 2.0);
    assert_eq!(sc.metric(&c, "modelserver_draining").await, 0.0);

    for _ in 0..3 {
        let r = c
            .post(sc.url("/predict"))
            .header("x-auth-token", "tok")
            .body(IRIS_ROWS)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        let r = c
            .post(sc.url("/predict"))
            .body(IRIS_ROWS)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = c
        .get(sc.url("/no-such-path"))
        .header("x-auth-token", "tok")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the worker's own 404 passes through");

    assert_eq!(
        sc.metric(&c, "modelserver_requests_total{code=\"200\"}")
            .await,
        3.0
    );
    assert_eq!(
        sc.metric(&c, "modelserver_requests_total{code=\"401\"}")
            .await,
        2.0
    );
    assert_eq!(
        sc.metric(&c, "modelserver_requests_total{code=\"404\"}")
            .await,
        1.0
    );
    assert_eq!(
        sc.metric(&c, "modelserver_request_duration_seconds_count")
            .await,
        6.0
    );
    assert_eq!(
        sc.metric(&c, "modelserver_rejected_total{reason=\"unauthorized\"}")
            .await,
        2.0
    );
    assert_eq!(sc.metric(&c, "modelserver_inflight_requests").await, 0.0);
    assert_eq!(sc.metric(&c, "modelserver_queue_depth").await, 0.0);
    assert_eq!(
        sc.metric(&c, "modelserver_worker_restarts_total").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let sc = Sidecar::serve(&[], &[]);
    let c = client();
    sc.wait_ready(&c).await;

    // Not HTTP at all.
    let mut raw = std::net::TcpStream::connect(sc.public).unwrap();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    raw.write_all(b"NOT HTTP\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");

    // Bad model input: the worker's JSON error passes through.
    let r = c
        .post(sc.url("/predict"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_json_error(&r.text().await.unwrap(), "not JSON");
    let r = c
        .post(sc.url("/predict"))
        .body(r#"{"instances": [[1, 2]]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_json_error(&r.text().await.unwrap(), "4 numbers");

    // A method the sidecar's own endpoints do not take.
    let r = c.post(sc.url("/v2/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_json_error(&r.text().await.unwrap(), "method not allowed");
    assert_eq!(
        c.get(sc.admin_url("/nope")).send().await.unwrap().status(),
        404
    );
}

/// Arguments, environment, and what the error must mention.
type BadSetting = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn bad_settings_are_refused_with_the_reason() {
    let cases: [BadSetting; 7] = [
        (
            &["serve", "--", "x"],
            &[("MODELSERVER_REQUEST_TIMEOUT", "soon")],
            "invalid duration",
        ),
        (
            &["serve", "--", "x"],
            &[("MODELSERVER_MAX_UPLOAD_SIZE", "lots")],
            "invalid byte quantity",
        ),
        (
            &["serve", "--", "x"],
            &[("MODELSERVER_WORKERS", "0")],
            "--workers",
        ),
        (
            &["serve", "--", "x"],
            &[("MODELSERVER_DOCS", "maybe")],
            "maybe",
        ),
        (&["serve"], &[], "COMMAND"),
        (&["proxy"], &[], "--upstream"),
        (
            &[
                "serve",
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--admin-port",
                "0",
                "--",
                "x",
            ],
            &[
                ("MODELSERVER_CORS_ALLOW_ORIGINS", "*"),
                ("MODELSERVER_CORS_ALLOW_CREDENTIALS", "true"),
            ],
            "allow-credentials",
        ),
    ];
    for (args, env, needle) in cases {
        let out = run_to_end(args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?} {env:?}: {stderr:?} lacks {needle:?}"
        );
    }
    let out = run_to_end(
        &[
            "proxy",
            "--upstream",
            "nowhere",
            "--port",
            "0",
            "--admin-port",
            "0",
        ],
        &[("MODELSERVER_BIND", "127.0.0.1")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected HOST:PORT"));
    let out = run_to_end(
        &["serve", "--", "x"],
        &[("MODELSERVER_LOG_LEVEL", "verbose")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a level"));

    // A port that is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run_to_end(
        &[
            "serve",
            "--bind",
            "127.0.0.1",
            "--admin-port",
            "0",
            "--port",
            &port,
            "--",
            "x",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot listen on"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format() {
    let sc = Sidecar::start(&serve_args(&[], &[]), &[("MODELSERVER_LOG_FORMAT", "json")]);
    let c = client();
    sc.wait_ready(&c).await;
    c.post(sc.url("/predict"))
        .header("x-request-id", "json-req-1")
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    wait_for("the access log line", DEADLINE, || async {
        sc.logged("json-req-1")
    })
    .await;
    let line = sc
        .logs()
        .lines()
        .find(|l| l.contains("json-req-1"))
        .unwrap()
        .to_string();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["request_id"], "json-req-1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["path"], "/predict");
}

/// Voluntary context switches of the sidecar's `log-flush` thread so far (each one a wake-up).
fn log_flusher_wakeups(pid: i32) -> u64 {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        if std::fs::read_to_string(task.join("comm")).unwrap().trim() != "log-flush" {
            continue;
        }
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        return status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    }
    panic!("no log-flush thread in sidecar {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_sidecar_leaves_its_log_flusher_asleep_and_a_buffered_line_still_arrives() {
    let sc = Sidecar::serve(&["--workers", "1"], &[]);
    let c = client();
    sc.wait_ready(&c).await;
    // Idle: nothing is buffered, so the flusher is not woken (it used to wake every 200 ms).
    let before = log_flusher_wakeups(sc.pid());
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let idle = log_flusher_wakeups(sc.pid()) - before;
    assert!(idle <= 1, "the idle flusher woke {idle} times in 1.2 s");

    // A buffered access line wakes it, and reaches the log with no other line after it.
    let r = c
        .post(sc.url("/predict"))
        .header("x-request-id", "flushed-by-the-flusher")
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("the buffered access line", DEADLINE, || async {
        sc.logged("flushed-by-the-flusher")
    })
    .await;
}
