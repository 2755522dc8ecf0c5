//! Steady load through a Service's ClusterIP, with clients that never retry: a request that
//! fails is counted as failed, whatever the reason. Two kinds of client, as in front of a real
//! model: one that opens a new connection per request, and keep-alive clients that hold one
//! connection and reconnect only when a response says `Connection: close` (gateways, ingress
//! controllers and SDK sessions do this). Bounded: it stops when told, or at its deadline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// What one load run saw.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Requests answered 200 by the new-connection client.
    pub fresh_ok: u64,
    /// Requests answered 200 by the keep-alive clients.
    pub keepalive_ok: u64,
    /// Responses that asked the keep-alive clients to reconnect (`Connection: close`).
    pub reconnects: u64,
    /// Requests that failed: an error status, a connection error, or no answer in time.
    pub failed: u64,
    /// The first failures, for the test's message.
    pub failures: Vec<String>,
    /// Answers by the `model_version` they named (`-` for none).
    pub versions: BTreeMap<String, u64>,
}

impl LoadReport {
    /// All requests sent.
    pub fn total(&self) -> u64 {
        self.fresh_ok + self.keepalive_ok + self.failed
    }
}

#[derive(Default)]
struct Counters {
    fresh_ok: AtomicU64,
    keepalive_ok: AtomicU64,
    reconnects: AtomicU64,
    failed: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
    versions: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn answered_by(&self, version: String) {
        if let Ok(mut versions) = self.versions.lock() {
            *versions.entry(version).or_default() += 1;
        }
    }

    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut failures) = self.failures.lock()
            && failures.len() < 20
        {
            failures.push(what);
        }
    }
}

/// A load run in progress; [`Load::stop`] ends it and returns the counts.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
    counters: Arc<Counters>,
}

/// The request every client sends: one iris prediction.
pub const PREDICT_BODY: &str = r#"{"instances": [[5.1, 3.5, 1.4, 0.2]]}"#;
/// Pause between one client's requests.
const PACE: Duration = Duration::from_millis(20);
/// Longest a request may take before it counts as failed.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// Longest a load run may last, whatever the test does.
const RUN_LIMIT: Duration = Duration::from_secs(600);

impl Load {
    /// Starts one new-connection client and `keepalive` keep-alive clients against `target`
    /// (a ClusterIP and port on this machine's node network), each sending `POST path`.
    pub fn start(
        target: SocketAddr,
        path: &str,
        keepalive: usize,
        headers: &[(&str, &str)],
    ) -> Self {
        Self::start_mixed(target, path, 1, keepalive, headers)
    }

    /// Starts `fresh` new-connection clients and `keepalive` keep-alive clients. New
    /// connections are balanced per request (kube-proxy picks an endpoint per connection), so
    /// only they show how a Service splits requests between pods.
    pub fn start_mixed(
        target: SocketAddr,
        path: &str,
        fresh: usize,
        keepalive: usize,
        headers: &[(&str, &str)],
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let mut tasks = JoinSet::new();
        let headers: Arc<Vec<(String, String)>> = Arc::new(
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        let path: Arc<str> = path.into();
        for _ in 0..fresh {
            tasks.spawn(fresh_client(
                target,
                path.clone(),
                headers.clone(),
                stop.clone(),
                counters.clone(),
            ));
        }
        for _ in 0..keepalive {
            tasks.spawn(keepalive_client(
                target,
                path.clone(),
                headers.clone(),
                stop.clone(),
                counters.clone(),
            ));
        }
        Self {
            stop,
            tasks,
            counters,
        }
    }

    /// Requests answered so far (to wait until the load is really flowing).
    pub fn answered(&self) -> u64 {
        self.counters.fresh_ok.load(Ordering::Relaxed)
            + self.counters.keepalive_ok.load(Ordering::Relaxed)
    }

    /// Stops every client after its current request and returns what they saw.
    pub async fn stop(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
        let c = &self.counters;
        LoadReport {
            fresh_ok: c.fresh_ok.load(Ordering::Relaxed),
            keepalive_ok: c.keepalive_ok.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            failures: c.failures.lock().map(|f| f.clone()).unwrap_or_default(),
            versions: c.versions.lock().map(|v| v.clone()).unwrap_or_default(),
        }
    }
}

fn running(stop: &AtomicBool, started: tokio::time::Instant) -> bool {
    !stop.load(Ordering::Relaxed) && started.elapsed() < RUN_LIMIT
}

async fn connect(target: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// What one answered request told: whether the server asked to close the connection, and the
/// model version that answered.
struct Answer {
    close: bool,
    version: String,
}

/// Sends one request on `sender`; returns what the answer told.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    target: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> Result<Answer, String> {
    let mut request = Request::post(path)
        .header(header::HOST, target.to_string())
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from_static(PREDICT_BODY.as_bytes())))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        sender
            .ready()
            .await
            .map_err(|e| format!("not ready: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = response.status();
        let close = response
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        if status != http::StatusCode::OK {
            return Err(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let version = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["model_version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "-".to_owned());
        Ok(Answer { close, version })
    };
    tokio::time::timeout(REQUEST_DEADLINE, exchange)
        .await
        .map_err(|_| "no answer within 30s".to_owned())?
}

async fn fresh_client(
    target: SocketAddr,
    path: Arc<str>,
    headers: Arc<Vec<(String, String)>>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let started = tokio::time::Instant::now();
    while running(&stop, started) {
        let result = match connect(target).await {
            Ok(mut sender) => send(&mut sender, target, &path, &headers).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(answer) => {
                counters.fresh_ok.fetch_add(1, Ordering::Relaxed);
                counters.answered_by(answer.version);
            }
            Err(e) => counters.fail(format!("new-connection client: {e}")),
        }
        tokio::time::sleep(PACE).await;
    }
}

async fn keepalive_client(
    target: SocketAddr,
    path: Arc<str>,
    headers: Arc<Vec<(String, String)>>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let started = tokio::time::Instant::now();
    let mut connection: Option<SendRequest<Full<Bytes>>> = None;
    while running(&stop, started) {
        let sender = match connection.as_mut() {
            Some(sender) => sender,
            None => match connect(target).await {
                Ok(sender) => connection.insert(sender),
                Err(e) => {
                    counters.fail(format!("keep-alive client: {e}"));
                    tokio::time::sleep(PACE).await;
                    continue;
                }
            },
        };
        match send(sender, target, &path, &headers).await {
            Ok(Answer { close, version }) => {
                counters.keepalive_ok.fetch_add(1, Ordering::Relaxed);
                counters.answered_by(version);
                if close {
                    counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    connection = None;
                }
            }
            Err(e) => {
                // No retry: a client like Python's http.client surfaces this to its caller.
                counters.fail(format!("keep-alive client: {e}"));
                connection = None;
            }
        }
        tokio::time::sleep(PACE).await;
    }
}
