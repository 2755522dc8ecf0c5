//! Hostile requests against the real binary, each with the answer it must get: request
//! smuggling attempts, malformed framing, oversized heads, a slowloris header dribble, and paths
//! that try to leave the forwarded space. One sidecar serves every case; the whole battery takes
//! a few seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Header read timeout for the battery (the default is 30 s).
const HEADER_TIMEOUT: &str = "1s";
/// Longest wait for one case's answer and close.
const CASE_DEADLINE: Duration = Duration::from_secs(10);

/// Sends `raw` on a fresh connection and returns everything the sidecar answers until it closes
/// the connection (every case ends with an error, which closes it, or asks for the close).
/// Not half-closed: the sidecar takes a client's EOF for the end of the connection.
fn exchange(sidecar: &Sidecar, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(sidecar.public).unwrap();
    stream.set_read_timeout(Some(CASE_DEADLINE)).unwrap();
    // The sidecar may close before reading everything (that is an answer too).
    let _ = stream.write_all(raw);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status codes of every response in `answer`, in order.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, m)| answer.get(i + m.len()..i + m.len() + 3)?.parse().ok())
        .collect()
}

fn start() -> Sidecar {
    Sidecar::serve(
        &[
            "--max-upload-size",
            "1Mi",
            "--header-read-timeout",
            HEADER_TIMEOUT,
        ],
        &[],
    )
}

#[tokio::test]
async fn hostile_requests_get_the_expected_answers() {
    let sidecar = start();
    let client = client();
    sidecar.wait_ready(&client).await;

    let long = "a".repeat(100 * 1024);
    let cases: Vec<(&str, Vec<u8>, Vec<u16>)> = vec![
        (
            "CL and TE together: the chunked body wins and the connection is closed after the answer, \
             so the smuggled request is never run",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            vec![200],
        ),
        (
            "two different Content-Length headers",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
            vec![400],
        ),
        (
            "an invalid chunk size",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n".to_vec(),
            vec![400],
        ),
        (
            "a chunk size that overflows",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n".to_vec(),
            vec![400],
        ),
        (
            "a Transfer-Encoding other than chunked",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nhello".to_vec(),
            vec![400],
        ),
        (
            "an oversized header",
            format!("GET /ping HTTP/1.1\r\nHost: t\r\nX-Filler: {long}\r\n\r\n").into_bytes(),
            vec![431],
        ),
        (
            "an oversized URI",
            format!("GET /ping?{long} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes(),
            vec![431],
        ),
        (
            "a declared body over the upload limit, the client waiting for 100 Continue",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\nExpect: 100-continue\r\n\r\n".to_vec(),
            vec![413],
        ),
        (
            "a request line that is not HTTP",
            b"HELLO\r\n\r\n".to_vec(),
            vec![400],
        ),
        (
            "path traversal is forwarded as it is, not resolved against the sidecar's routes",
            b"GET /../../etc/passwd HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
            vec![404],
        ),
        (
            "an encoded path is not decoded into an admin route",
            b"POST /%2e%2e/drain HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            vec![404],
        ),
        (
            "admin paths do not exist on the public port",
            b"POST /drain HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            vec![404],
        ),
        (
            "absolute-form target to another host",
            b"GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n".to_vec(),
            vec![404],
        ),
    ];
    let mut failures = Vec::new();
    for (what, raw, expected) in &cases {
        let answer = exchange(&sidecar, raw);
        let got = statuses(&answer);
        if &got != expected {
            failures.push(format!(
                "{what}: expected {expected:?}, got {got:?}: {answer:.300}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!sidecar.logged("smuggled"), "{}", sidecar.logs());
    // The sidecar is still healthy after all that.
    let ok = client.get(sidecar.url("/ping")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(sidecar.status(&client).await["in_flight"] == 0);
}

/// A client that dribbles its headers a byte at a time never finishes them: the header read
/// timeout closes the connection (a 408 may precede the close).
#[test]
fn a_slowloris_header_dribble_hits_the_header_timeout() {
    let sidecar = start();
    let mut stream = TcpStream::connect(sidecar.public).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let dribble = b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    let mut closed = false;
    let mut answer = Vec::new();
    for byte in dribble.iter().chain(std::iter::repeat(&b'a')) {
        if stream.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) | Err(_) if started.elapsed() > DEADLINE => break,
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed, "still open after {elapsed:?}: {answer}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(10),
        "closed after {elapsed:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}
