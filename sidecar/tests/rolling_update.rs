//! A rolling update as a keep-alive client sees it: clients hold HTTP/1.1 connections to the old
//! pod's sidecar and send continuously; the old sidecar is drained exactly as the kubelet does it
//! (the preStop hook runs `modelserver-sidecar drain`, then SIGTERM once it returns) while new
//! connections go to the other sidecar, as a Service does once endpoints have moved. No request
//! may fail: every connection that served a request during the drain is told `Connection: close`
//! in a response and so is never reused after the sidecar closes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

/// Keep-alive clients.
const CLIENTS: usize = 8;
/// Pause between two requests of one client.
const SEND_EVERY: Duration = Duration::from_millis(20);
/// Rolling updates in one test run (the race is timing-dependent, so try it more than once).
const ROUNDS: usize = 3;
/// Successful requests each client makes on its connection to the old sidecar before the drain.
const WARM_UP: u64 = 5;
/// Short lifecycle settings keep each round at a few seconds.
const DRAIN_DELAY: &str = "1s";
const DRAIN_TIMEOUT: &str = "10s";
const SIDECAR_FLAGS: [&str; 10] = [
    "--drain-delay",
    DRAIN_DELAY,
    "--drain-timeout",
    DRAIN_TIMEOUT,
    "--shutdown-timeout",
    "5s",
    "--executor-threads",
    "8",
    "--access-log",
    "false",
];

/// One answer read off a keep-alive connection.
struct Answer {
    status: u16,
    close: bool,
    body: Vec<u8>,
}

/// A keep-alive HTTP/1.1 connection with a deliberately simple, strict client: it never retries
/// and never reconnects on its own, so every broken connection shows up as a failure.
struct Conn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            addr,
            reader: BufReader::new(stream),
        })
    }

    fn predict(&mut self) -> Result<Answer, String> {
        let request = format!(
            "POST /predict HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            self.addr,
            IRIS_ROWS.len(),
            IRIS_ROWS
        );
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| format!("read status line: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response".into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut close = false;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(|e| format!("read header: {e}"))?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                return Err(format!("bad header {header:?}"));
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "connection" => close |= value.eq_ignore_ascii_case("close"),
                "content-length" => length = value.parse().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
        let body = if chunked {
            self.read_chunked()?
        } else {
            let mut body = vec![0; length.ok_or("no Content-Length")?];
            self.reader
                .read_exact(&mut body)
                .map_err(|e| format!("read body: {e}"))?;
            body
        };
        Ok(Answer {
            status,
            close,
            body,
        })
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(|e| format!("read chunk size: {e}"))?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                line.clear();
                self.reader
                    .read_line(&mut line)
                    .map_err(|e| format!("read last chunk: {e}"))?;
                return Ok(body);
            }
            let mut chunk = vec![0; size + 2];
            self.reader
                .read_exact(&mut chunk)
                .map_err(|e| format!("read chunk: {e}"))?;
            body.extend_from_slice(&chunk[..size]);
        }
    }
}

/// Where new connections go (the Service's endpoints) and when clients move on to a fresh pod.
struct Route {
    target: Mutex<SocketAddr>,
    /// Bumped to make every client drop its connection (between two requests) and reconnect.
    generation: AtomicU64,
    stop: AtomicBool,
}

/// What one client saw.
#[derive(Default)]
struct ClientStats {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Responses that carried `Connection: close`.
    closes: AtomicU64,
    /// New connections opened because a response said `Connection: close`.
    reconnects_after_close: AtomicU64,
    /// Successful requests on the current connection.
    ok_on_current: AtomicU64,
    current: Mutex<Option<SocketAddr>>,
    errors: Mutex<Vec<String>>,
}

impl ClientStats {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        self.errors.lock().unwrap().push(what);
    }
}

fn client_loop(route: &Route, stats: &ClientStats) {
    let mut conn: Option<Conn> = None;
    let mut generation = route.generation.load(Ordering::SeqCst);
    let mut closed_by_server = false;
    while !route.stop.load(Ordering::SeqCst) {
        let now = route.generation.load(Ordering::SeqCst);
        if now != generation {
            generation = now;
            conn = None;
            closed_by_server = false;
        }
        if conn.is_none() {
            let addr = *route.target.lock().unwrap();
            match Conn::open(addr) {
                Ok(c) => {
                    if closed_by_server {
                        stats.reconnects_after_close.fetch_add(1, Ordering::SeqCst);
                        closed_by_server = false;
                    }
                    stats.ok_on_current.store(0, Ordering::SeqCst);
                    *stats.current.lock().unwrap() = Some(addr);
                    conn = Some(c);
                }
                Err(e) => {
                    stats.fail(format!("connect {addr}: {e}"));
                    std::thread::sleep(SEND_EVERY);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let addr = c.addr;
        match c.predict() {
            Ok(answer) => {
                let predicted = String::from_utf8_lossy(&answer.body).contains("predictions");
                if answer.status == 200 && predicted {
                    stats.ok.fetch_add(1, Ordering::SeqCst);
                    stats.ok_on_current.fetch_add(1, Ordering::SeqCst);
                } else {
                    stats.fail(format!(
                        "{addr}: status {}: {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body)
                    ));
                }
                if answer.close {
                    stats.closes.fetch_add(1, Ordering::SeqCst);
                    closed_by_server = true;
                    conn = None;
                    *stats.current.lock().unwrap() = None;
                }
            }
            Err(e) => {
                stats.fail(format!("{addr}: {e}"));
                conn = None;
                *stats.current.lock().unwrap() = None;
            }
        }
        std::thread::sleep(SEND_EVERY);
    }
}

fn total(stats: &[Arc<ClientStats>], field: impl Fn(&ClientStats) -> u64) -> u64 {
    stats.iter().map(|s| field(s)).sum()
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

fn all_on(stats: &[Arc<ClientStats>], addr: SocketAddr, min_ok: u64) -> bool {
    stats.iter().all(|s| {
        *s.current.lock().unwrap() == Some(addr) && s.ok_on_current.load(Ordering::SeqCst) >= min_ok
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_clients_lose_no_request_when_a_pod_drains() {
    let c = client();
    // The pod that stays: where the Service sends new connections while the old one drains.
    let stays = Sidecar::serve(&SIDECAR_FLAGS, &[]);
    stays.wait_ready(&c).await;

    let route = Arc::new(Route {
        target: Mutex::new(stays.public),
        generation: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let stats: Vec<Arc<ClientStats>> = (0..CLIENTS)
        .map(|_| Arc::new(ClientStats::default()))
        .collect();
    let clients: Vec<_> = stats
        .iter()
        .map(|s| {
            let (route, s) = (route.clone(), s.clone());
            std::thread::spawn(move || client_loop(&route, &s))
        })
        .collect();

    for round in 1..=ROUNDS {
        let mut old = Sidecar::serve(&SIDECAR_FLAGS, &[]);
        old.wait_ready(&c).await;
        // Every client moves to the old pod and uses its connection for a while.
        *route.target.lock().unwrap() = old.public;
        route.generation.fetch_add(1, Ordering::SeqCst);
        let old_addr = old.public;
        let warm = stats.clone();
        tokio::task::spawn_blocking(move || {
            wait_until("every client to use a connection to the old pod", || {
                all_on(&warm, old_addr, WARM_UP)
            });
        })
        .await
        .unwrap();
        let before = (
            total(&stats, |s| s.ok.load(Ordering::SeqCst)),
            total(&stats, |s| s.failed.load(Ordering::SeqCst)),
        );
        let closes_before: Vec<u64> = stats
            .iter()
            .map(|s| s.closes.load(Ordering::SeqCst))
            .collect();
        let reconnects_before = total(&stats, |s| s.reconnects_after_close.load(Ordering::SeqCst));

        // The kubelet: endpoints move to the pod that stays, the preStop hook runs `drain`, and
        // SIGTERM follows once it returns.
        *route.target.lock().unwrap() = stays.public;
        let admin_port = old.admin.port().to_string();
        let prestop = tokio::task::spawn_blocking(move || {
            run_to_end(
                &["drain"],
                &[
                    ("MODELSERVER_ADMIN_PORT", admin_port.as_str()),
                    ("MODELSERVER_DRAIN_DELAY", DRAIN_DELAY),
                    ("MODELSERVER_DRAIN_TIMEOUT", DRAIN_TIMEOUT),
                ],
            )
        })
        .await
        .unwrap();
        assert!(
            prestop.status.success(),
            "drain: {}",
            String::from_utf8_lossy(&prestop.stderr)
        );
        old.signal(Signal::SIGTERM);
        let status = tokio::task::spawn_blocking(move || {
            let status = old.wait_exit(DEADLINE);
            (status, old.logs())
        })
        .await
        .unwrap();
        assert_eq!(status.0.code(), Some(0), "log:\n{}", status.1);

        // Every client ends up on the pod that stays and keeps being served there.
        let settled = stats.clone();
        let stays_addr = stays.public;
        tokio::task::spawn_blocking(move || {
            wait_until("every client to be served by the pod that stays", || {
                all_on(&settled, stays_addr, 2)
            });
        })
        .await
        .unwrap();

        let ok = total(&stats, |s| s.ok.load(Ordering::SeqCst)) - before.0;
        let failed = total(&stats, |s| s.failed.load(Ordering::SeqCst)) - before.1;
        let closes: Vec<u64> = stats
            .iter()
            .zip(&closes_before)
            .map(|(s, b)| s.closes.load(Ordering::SeqCst) - b)
            .collect();
        let reconnects =
            total(&stats, |s| s.reconnects_after_close.load(Ordering::SeqCst)) - reconnects_before;
        eprintln!(
            "round {round}: {ok} requests answered, {failed} failed during the drain; \
             Connection: close seen per client {closes:?}; {reconnects} reconnects after it"
        );
        let errors: Vec<String> = stats
            .iter()
            .flat_map(|s| s.errors.lock().unwrap().clone())
            .collect();
        assert_eq!(failed, 0, "round {round}: failed requests: {errors:#?}");
        assert!(
            closes.iter().all(|&n| n >= 1),
            "round {round}: every client is told Connection: close, got {closes:?}"
        );
        assert!(
            reconnects >= CLIENTS as u64,
            "round {round}: every client reconnected after Connection: close, got {reconnects}"
        );
    }

    route.stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    let ok = total(&stats, |s| s.ok.load(Ordering::SeqCst));
    let failed = total(&stats, |s| s.failed.load(Ordering::SeqCst));
    eprintln!("all rounds: {ok} requests answered, {failed} failed");
    let errors: Vec<String> = stats
        .iter()
        .flat_map(|s| s.errors.lock().unwrap().clone())
        .collect();
    assert_eq!(failed, 0, "failed requests: {errors:#?}");
}
