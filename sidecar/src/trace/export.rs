//! The exporter task: takes finished spans from the bounded queue, batches them (up to
//! [`MAX_BATCH`] spans, or what arrived within [`BATCH_DELAY`] of the first) and POSTs each batch
//! as OTLP/HTTP protobuf to `<endpoint>/v1/traces`, one request at a time. A batch the collector
//! does not take (unreachable, slow, an error status) is dropped and counted; nothing is
//! retried, so a collector that is down costs the sidecar one failed connection per batch.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, oneshot};

use super::{BATCH_DELAY, EXPORT_TIMEOUT, MAX_BATCH, SpanCounters, otlp};
use crate::trace::span::SpanRecord;

/// The OTLP/HTTP path of traces, appended to the endpoint.
pub const TRACES_PATH: &str = "/v1/traces";
/// Least time between two warnings about failed exports.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Sends batches of spans to the collector; run it with [`Exporter::run`].
pub struct Exporter {
    url: String,
    resource: Vec<(&'static str, String)>,
    receiver: mpsc::Receiver<Box<SpanRecord>>,
    flushes: mpsc::Receiver<oneshot::Sender<()>>,
    counters: SpanCounters,
    last_warning: Option<Instant>,
    held_back: u64,
}

impl Exporter {
    pub(crate) fn new(
        endpoint: &str,
        resource: Vec<(&'static str, String)>,
        receiver: mpsc::Receiver<Box<SpanRecord>>,
        flushes: mpsc::Receiver<oneshot::Sender<()>>,
        counters: SpanCounters,
    ) -> Self {
        Self {
            url: format!("{}{TRACES_PATH}", endpoint.trim_end_matches('/')),
            resource,
            receiver,
            flushes,
            counters,
            last_warning: None,
            held_back: 0,
        }
    }

    /// Exports until every [`super::Tracer`] is gone.
    pub async fn run(mut self) {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let uri: Uri = match self.url.parse() {
            Ok(uri) => uri,
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "tracing off: the OTLP endpoint is not a URL");
                return;
            }
        };
        tracing::info!(url = %self.url, "exporting traces over OTLP/HTTP");
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                span = self.receiver.recv() => {
                    let Some(first) = span else { break };
                    batch.push(first);
                    let deadline = tokio::time::Instant::now() + BATCH_DELAY;
                    while batch.len() < MAX_BATCH {
                        match tokio::time::timeout_at(deadline, self.receiver.recv()).await {
                            Ok(Some(span)) => batch.push(span),
                            Ok(None) | Err(_) => break,
                        }
                    }
                    self.export(&client, &uri, &mut batch).await;
                }
                Some(done) = self.flushes.recv() => {
                    // Shutting down: whatever is queued goes now, without waiting for more.
                    while let Ok(span) = self.receiver.try_recv() {
                        batch.push(span);
                        if batch.len() == MAX_BATCH {
                            self.export(&client, &uri, &mut batch).await;
                        }
                    }
                    if !batch.is_empty() {
                        self.export(&client, &uri, &mut batch).await;
                    }
                    let _ = done.send(());
                }
            }
        }
    }

    /// Sends `batch` (and empties it), counting its spans as exported or failed.
    // The spans come boxed through the queue (a box is what the request path moves); unboxing
    // them here would only copy each.
    #[allow(clippy::vec_box)]
    async fn export(
        &mut self,
        client: &Client<HttpConnector, Full<Bytes>>,
        uri: &Uri,
        batch: &mut Vec<Box<SpanRecord>>,
    ) {
        let spans = batch.len() as u64;
        let body = otlp::encode(&self.resource, batch);
        batch.clear();
        match send(client, uri, body).await {
            Ok(()) => self.counters.exported.inc_by(spans),
            Err(error) => {
                self.counters.failed.inc_by(spans);
                // One warning a minute at most: a collector that is down must not flood the log.
                if self
                    .last_warning
                    .is_none_or(|at| at.elapsed() >= WARN_EVERY)
                {
                    tracing::warn!(
                        url = %self.url,
                        %error,
                        spans,
                        earlier_failures = self.held_back,
                        "trace export failed; the spans are dropped"
                    );
                    self.last_warning = Some(Instant::now());
                    self.held_back = 0;
                } else {
                    self.held_back += 1;
                }
            }
        }
    }
}

/// One export request: 2xx is success; anything else, a connection error or
/// [`EXPORT_TIMEOUT`] is a failure with its reason.
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &Uri,
    body: Vec<u8>,
) -> Result<(), String> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| crate::errors::error_chain(&e))?;
        let status = response.status();
        // Read the (small) answer so the connection can be reused.
        let answer = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&answer.to_bytes()).into_owned();
            Err(format!(
                "the collector answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ))
        }
    };
    tokio::time::timeout(EXPORT_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {}s", EXPORT_TIMEOUT.as_secs()))?
}
