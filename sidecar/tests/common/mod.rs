//! Process-level test harness: the real `modelserver-sidecar` binary with real Python workers
//! (examples/iris/worker.py) on real Unix sockets. Every sidecar binds 127.0.0.1 port 0 and the
//! harness reads the bound addresses from its "listening" log line. The sidecar runs in its own
//! process group (its workers inherit it), and the guard kills the whole group on drop, so a
//! failing test leaves no process behind.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Generous budget for anything that should happen "soon" on a busy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Poll interval.
pub const POLL: Duration = Duration::from_millis(50);

/// The sidecar binary under test.
pub const SIDECAR: &str = env!("CARGO_BIN_EXE_modelserver-sidecar");

/// Path of the iris example worker.
pub fn worker_py() -> String {
    repo_root()
        .join("examples/iris/worker.py")
        .to_string_lossy()
        .into_owned()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `serve` flags every test uses (loopback, ports picked by the OS), then `flags`, then the test
/// worker with its hooks and `worker` arguments.
pub fn serve_args(flags: &[&str], worker: &[&str]) -> Vec<String> {
    let worker_py = worker_py();
    let mut command = vec!["python3", worker_py.as_str(), "--test-hooks"];
    command.extend_from_slice(worker);
    serve_command(flags, &command)
}

/// `serve` on loopback with OS-picked ports, `flags`, and `command` as the worker command.
pub fn serve_command(flags: &[&str], command: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "serve",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--admin-port",
        "0",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    args.extend(flags.iter().map(ToString::to_string));
    args.push("--".into());
    args.extend(command.iter().map(ToString::to_string));
    args
}

/// `proxy` in front of `upstream` (`HOST:PORT`) on loopback with OS-picked ports, then `flags`.
pub fn proxy_command(upstream: &str, flags: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "proxy",
        "--upstream",
        upstream,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--admin-port",
        "0",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    args.extend(flags.iter().map(ToString::to_string));
    args
}

/// A running sidecar; killed with its workers when dropped.
pub struct Sidecar {
    child: Option<Child>,
    pid: i32,
    /// Public address.
    pub public: SocketAddr,
    /// Admin address.
    pub admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    exit: Option<ExitStatus>,
}

impl Sidecar {
    /// Starts `modelserver-sidecar serve` with the iris worker and waits until it listens.
    pub fn serve(flags: &[&str], worker: &[&str]) -> Self {
        Self::start(&serve_args(flags, worker), &[])
    }

    /// Starts the binary with exactly these arguments and extra environment (every inherited
    /// `MODELSERVER_*` variable removed first) and waits for its "listening" line.
    pub fn start(args: &[String], env: &[(&str, &str)]) -> Self {
        let (mut child, logs) = spawn(args, env);
        let pid = i32::try_from(child.id()).unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let found = find_addrs(&logs.lock().unwrap());
            if let Some((public, admin)) = found {
                return Self {
                    child: Some(child),
                    pid,
                    public,
                    admin,
                    logs,
                    exit: None,
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "sidecar exited with {status} before listening; log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "sidecar did not log its addresses; log:\n{}",
                logs.lock().unwrap().join("\n")
            );
            std::thread::sleep(POLL);
        }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A public URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.public, path)
    }

    /// An admin URL.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Every log line so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// True when some log line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Sends a signal to the sidecar only.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid), signal).unwrap();
    }

    /// Waits for the sidecar to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.exit = Some(status);
                // Let the log reader catch the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sidecar still running after {within:?}; log:\n{}",
                self.logs()
            );
            std::thread::sleep(POLL);
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.exit.is_none() && self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// `GET /status` on the admin port.
    pub async fn status(&self, client: &reqwest::Client) -> serde_json::Value {
        client
            .get(self.admin_url("/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The value of one series in `/metrics`, e.g. `modelserver_requests_total{code="200"}`.
    pub async fn metric(&self, client: &reqwest::Client, series: &str) -> f64 {
        let text = client
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric_value(&text, series)
            .unwrap_or_else(|| panic!("series {series} not in /metrics:\n{text}"))
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, client: &reqwest::Client) {
        let url = self.admin_url("/readyz");
        wait_for("the sidecar to become ready", DEADLINE, || async {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
    }

    /// The Unix sockets of the workers, from `/status`.
    pub async fn worker_sockets(&self, client: &reqwest::Client) -> Vec<PathBuf> {
        let status = self.status(client).await;
        status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| PathBuf::from(w["socket"].as_str().unwrap()))
            .collect()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        // The whole group: the sidecar and every worker it started.
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

/// Spawns the binary in its own process group, collecting stderr and stdout lines (and echoing
/// them to the test output, which the harness shows for failing tests).
pub fn spawn(args: &[String], env: &[(&str, &str)]) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut cmd = Command::new(SIDECAR);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (key, _) in std::env::vars() {
        if key.starts_with("MODELSERVER_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("start modelserver-sidecar");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    collect_lines(stderr, logs.clone());
    collect_lines(stdout, logs.clone());
    (child, logs)
}

fn collect_lines(stream: impl Read + Send + 'static, logs: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            eprintln!("  | {line}");
            logs.lock().unwrap().push(line);
        }
    });
}

/// Reads `public_addr=` and `admin_addr=` from the "listening" line (text or JSON format).
fn find_addrs(lines: &[String]) -> Option<(SocketAddr, SocketAddr)> {
    let line = lines.iter().find(|l| l.contains("listening"))?;
    Some((field(line, "public_addr")?, field(line, "admin_addr")?))
}

fn field(line: &str, name: &str) -> Option<SocketAddr> {
    let start = line.find(name)? + name.len();
    let rest = line[start..].trim_start_matches(['=', '"', ':']);
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Parses one series' value out of Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A client for tests: no proxy from the environment, generous timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

/// Polls `check` until it returns true; panics naming `what` after `within`.
pub async fn wait_for<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// One raw HTTP/1.1 request straight to a worker's Unix socket (bypassing the sidecar);
/// returns the status line and body.
pub fn worker_request(socket: &Path, method: &str, path: &str) -> String {
    let mut stream =
        UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: worker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Opens every gate named `gate` on every worker.
pub async fn release(client: &reqwest::Client, sidecar: &Sidecar, gate: &str) {
    for socket in sidecar.worker_sockets(client).await {
        let answer = worker_request(&socket, "POST", &format!("/release?gate={gate}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "release: {answer}");
    }
}

/// True when a new TCP connection to `addr` is refused.
pub fn refuses_connections(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
}

/// The test venv's python (fastapi, uvicorn, gunicorn from PyPI): `make test` exports
/// MODELSERVER_TEST_PYTHON=$(./hack/venv.sh); without it the calling test fails and says so.
pub fn test_python() -> String {
    match std::env::var("MODELSERVER_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "MODELSERVER_TEST_PYTHON is not set: run the tests via `make test`, or set it to the \
             python that ./hack/venv.sh prints (a venv with fastapi, uvicorn and gunicorn)"
        ),
    }
}

/// The first of `count` consecutive free TCP ports on loopback.
pub fn free_port_range(count: u16) -> u16 {
    for _ in 0..100 {
        let base = free_port();
        let Some(last) = base.checked_add(count - 1) else {
            continue;
        };
        let all_free = (base..=last).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no {count} consecutive free ports on loopback");
}

/// A free TCP port on loopback (for processes that cannot report the port they bound).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the binary to completion with these arguments and environment.
pub fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(SIDECAR);
    cmd.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("MODELSERVER_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run modelserver-sidecar")
}

/// The iris rows used across tests and the classes they belong to.
pub const IRIS_ROWS: &str =
    r#"{"instances": [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]]}"#;
/// Expected predictions for [`IRIS_ROWS`].
pub const IRIS_CLASSES: [&str; 3] = ["setosa", "versicolor", "virginica"];

/// A process started by a test, killed on drop (for upstreams in proxy mode).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
