//! Connection and forwarding hardening against misbehaving clients and slow workers, with the
//! real binary and real Python workers: slot accounting after 504s, clients that stop reading,
//! early 413s, client-side body faults, and the connection limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use common::*;

/// A request the sidecar timed out (504) still runs in the worker: its slot stays taken until the
/// worker has finished, so the worker never gets more requests at once than executorThreads.
#[tokio::test]
async fn a_timed_out_request_keeps_its_slot_until_the_worker_is_done() {
    let sidecar = Sidecar::serve(
        &["--executor-threads", "1", "--request-timeout", "700ms"],
        &[],
    );
    let client = client();
    sidecar.wait_ready(&client).await;

    // Held in the worker past the timeout.
    let held = client
        .post(sidecar.url("/predict?gate=held"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 504);
    let status = sidecar.status(&client).await;
    assert_eq!(status["workers"][0]["in_flight"], 1, "{status}");

    // The worker still runs the first request on its only slot: a second one must not reach it
    // (it would answer 200 at once); it waits in the queue and times out there.
    let second = client
        .post(sidecar.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.status(),
        504,
        "the worker was given a second request while its only slot was busy"
    );

    // Once the worker finishes the first request the slot is free again.
    release(&client, &sidecar, "held").await;
    wait_for("the slot to be freed", DEADLINE, || async {
        sidecar.status(&client).await["workers"][0]["in_flight"] == 0
    })
    .await;
    let third = client
        .post(sidecar.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 200);
    assert_eq!(
        sidecar
            .metric(&client, r#"modelserver_rejected_total{reason="timeout"}"#)
            .await,
        2.0
    );
}

/// A client that asks for a long response and never reads it is cut off after the response write
/// timeout, which frees its worker slot: the next request is served.
#[tokio::test]
async fn a_client_that_stops_reading_loses_its_slot_after_the_write_timeout() {
    let sidecar = Sidecar::serve(
        &[
            "--executor-threads",
            "1",
            "--response-write-timeout",
            "1s",
            "--request-timeout",
            "15s",
            // The next request waits for the slot longer than the default queue bound (1s).
            "--max-queue-wait",
            "15s",
        ],
        &[],
    );
    let client = client();
    sidecar.wait_ready(&client).await;

    // A small receive window, so the response backs up quickly; several MB of events.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(sidecar.public).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stalled,
        b"GET /stream?chunks=200000 HTTP/1.1\r\nHost: test\r\n\r\n",
    )
    .await
    .unwrap();
    wait_for("the stream to take the only slot", DEADLINE, || async {
        sidecar.status(&client).await["workers"][0]["in_flight"] == 1
    })
    .await;

    let started = Instant::now();
    let next = client
        .post(sidecar.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(
        next.status(),
        200,
        "the client that never reads kept the only slot"
    );
    eprintln!("next request served after {:?}", started.elapsed());
    assert!(sidecar.logged("client stopped reading its response"));
    drop(stalled);
}

/// A client that writes its whole body before reading (urllib, requests) gets the early 413 for
/// a declared Content-Length over the limit, not a reset connection.
#[test]
fn an_early_413_reaches_a_client_that_writes_its_whole_body_first() {
    let sidecar = Sidecar::serve(&["--max-upload-size", "1Mi"], &[]);
    let body = vec![b'x'; 2 * 1024 * 1024];
    for attempt in 0..5 {
        let mut stream = TcpStream::connect(sidecar.public).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        write!(
            stream,
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        // A client still sending when the answer comes (on loopback a fast client would have
        // written the whole body into the socket buffers before the sidecar even parsed the
        // headers): wait for the 413 to arrive, then write the body, then read.
        let mut first = [0u8; 1];
        assert_eq!(stream.peek(&mut first).unwrap(), 1);
        let written = stream.write_all(&body);
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            written.is_ok() && answer.starts_with("HTTP/1.1 413"),
            "attempt {attempt}: write {written:?}, read {read:?}, answer {answer:?}"
        );
        assert!(answer.contains("upload limit"), "{answer}");
    }
}

/// Sends `raw` on a new connection, half-closes it when `half_close`, and returns everything the
/// sidecar answers until it closes.
fn raw_exchange(sidecar: &Sidecar, raw: &[u8], half_close: bool) -> String {
    let mut stream = TcpStream::connect(sidecar.public).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(raw).unwrap();
    if half_close {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut answer = Vec::new();
    // A reset after the answer is fine: the answer is what counts.
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A malformed chunked body and a client that leaves mid-upload are the client's fault: 400 (when
/// it can still be answered), `rejected_total{reason="client_error"}`, no warning, and nothing
/// counted against the worker.
#[tokio::test]
async fn client_body_faults_are_blamed_on_the_client() {
    let sidecar = Sidecar::serve(&[], &[]);
    let client = client();
    sidecar.wait_ready(&client).await;

    let malformed = raw_exchange(
        &sidecar,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n",
        false,
    );
    assert!(malformed.starts_with("HTTP/1.1 400"), "{malformed}");
    assert!(
        malformed.contains(r#"{"error":"the request body could not be read"#),
        "{malformed}"
    );

    // Half of the declared body, then the client stops sending.
    let mut truncated =
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n".to_vec();
    truncated.extend_from_slice(&[b'x'; 50_000]);
    let answer = raw_exchange(&sidecar, &truncated, true);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    wait_for("both faults to be counted", DEADLINE, || async {
        sidecar
            .metric(
                &client,
                r#"modelserver_rejected_total{reason="client_error"}"#,
            )
            .await
            == 2.0
    })
    .await;
    let metrics = client
        .get(sidecar.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric_value(
            &metrics,
            r#"modelserver_rejected_total{reason="worker_error"}"#
        ),
        Some(0.0),
        "{metrics}"
    );
    assert!(!sidecar.logged("WARN"), "{}", sidecar.logs());
}

/// A flood of idle connections under a low open file limit: the public port closes those over
/// its limit at once (and says so in the log, once), the admin port keeps answering probes, and
/// the public port serves again once the flood is gone. Oversized request heads get 431.
#[tokio::test]
async fn a_connection_flood_leaves_the_probes_answering() {
    let sidecar = Sidecar::serve(&["--max-connections", "100"], &[]);
    let client = client();
    sidecar.wait_ready(&client).await;
    // Lower the running sidecar's open file limit, as a small container limit would.
    let lowered = std::process::Command::new("prlimit")
        .args(["--pid", &sidecar.pid().to_string(), "--nofile=256:256"])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(lowered.success());

    let mut flood = Vec::new();
    for _ in 0..400 {
        flood.push(TcpStream::connect(sidecar.public).unwrap());
    }
    wait_for("the connection limit to be logged", DEADLINE, || async {
        sidecar.logged("connection limit reached")
    })
    .await;
    let probe = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    for path in ["/livez", "/readyz", "/metrics"] {
        let answer = probe.get(sidecar.admin_url(path)).send().await;
        assert!(
            answer.as_ref().is_ok_and(|r| r.status() == 200),
            "{path} during the flood: {answer:?}"
        );
    }
    let refusals = sidecar.logs().matches("connection limit reached").count();
    assert_eq!(refusals, 1, "the refusal log line is rate-limited");
    assert!(
        !sidecar.logged("accept failed"),
        "the sidecar ran out of file descriptors"
    );

    drop(flood);
    wait_for("the public port to serve again", DEADLINE, || async {
        probe
            .post(sidecar.url("/predict"))
            .body(IRIS_ROWS)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    let mut huge = TcpStream::connect(sidecar.public).unwrap();
    huge.set_read_timeout(Some(DEADLINE)).unwrap();
    let filler = "a".repeat(100 * 1024);
    let _ = write!(
        huge,
        "GET /ping HTTP/1.1\r\nHost: test\r\nX-Filler: {filler}\r\n\r\n"
    );
    let mut answer = Vec::new();
    let _ = huge.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

/// Reads one HTTP/1.1 response with a `Content-Length` body: (head, body).
fn read_response(reader: &mut std::io::BufReader<TcpStream>) -> (String, String) {
    use std::io::BufRead;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).unwrap();
        assert!(read > 0, "connection closed after {head:?}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// A request refused before it reaches a worker (503: nothing can take it) has its body read and
/// dropped, so the client's keep-alive connection stays usable: the next request on it gets its
/// answer, not a reset (which a client reusing the connection would see as an error, not a 503).
#[test]
fn a_refused_request_leaves_its_keep_alive_connection_usable() {
    // A worker that never gets ready and no queue: every request is refused at once.
    let sidecar = Sidecar::start(
        &serve_command(&["--max-queue", "0"], &["sleep", "600"]),
        &[],
    );
    let stream = TcpStream::connect(sidecar.public).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = std::io::BufReader::new(stream);
    // A small body arrives with its head and is dropped at once; a larger one is drained by a
    // task of its own.
    for (request, size) in [16, 64 * 1024, 16, 64 * 1024].into_iter().enumerate() {
        let body = vec![b'x'; size];
        write!(
            writer,
            "POST /predict HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        writer.write_all(&body).unwrap();
        let (head, answer) = read_response(&mut reader);
        assert!(
            head.starts_with("HTTP/1.1 503"),
            "request {request}: {head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "request {request}: {head}"
        );
        assert!(answer.contains("queue"), "{answer}");
    }
}
