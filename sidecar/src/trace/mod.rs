//! Distributed tracing (off unless `--otlp-endpoint` is set): W3C trace context in and out, and
//! three spans per sampled request, exported over OTLP/HTTP (protobuf) in batches.
//!
//! - The public port's observe layer asks [`Tracer::start`] for every request: a request with
//!   a valid `traceparent` continues that trace and follows its sampled flag; any other starts a
//!   trace, sampled by the configured ratio on its id. A sampled request gets a `request` span
//!   (server) and its `traceparent` is replaced with one that names the `worker` span, which is
//!   what the model sees (`tracestate` passes unchanged); the ids travel to the forwarding
//!   handler in a [`RequestTrace`] extension. An unsampled request is left as it came.
//! - The forwarding handler records `queue wait` (until a worker slot is free) and `worker`
//!   (client: from sending the request to the end of the response body, with a
//!   `response head` event), both children of `request`.
//! - Spans go through a bounded queue to one exporter task, which POSTs them in batches to
//!   `<endpoint>/v1/traces`. A full queue drops the span; a failed export drops the batch; both
//!   are counted (`trace_spans_total{result}`) and neither ever delays or fails a request.
//!
//! With tracing off the request path does one `Option` check in the observe layer and one in
//! the forwarding handler (which then skips the extension lookup): nothing is allocated, and
//! the spans' code stays out of line so the request path compiles as it did before
//! (`docs/benchmarks.md` has the instruction counts).

pub mod context;
mod export;
pub mod otlp;
pub mod span;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use http::HeaderValue;
use prometheus::IntCounter;
use tokio::sync::{mpsc, oneshot};

use crate::http::request_id::next_random;
use crate::metrics::Metrics;
use context::{FLAG_SAMPLED, SpanId, TRACEPARENT, TRACESTATE, TraceId, TraceParent};
pub use export::Exporter;
use modelserver_contract::cli::TraceArgs;
use span::{AttrValue, OpenSpan, SpanKind, SpanRecord, SpanStatus, now_unix_nanos};

/// Spans waiting for the exporter, at most; beyond it new spans are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 2048;
/// Spans in one export request, at most.
pub const MAX_BATCH: usize = 512;
/// Longest a span waits for more spans to fill its batch.
pub const BATCH_DELAY: Duration = Duration::from_millis(500);
/// Budget of one export request; a collector that takes longer loses that batch.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the sidecar waits at exit for its last spans to be exported.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// `service.name` when the ModelServer's name is not known (a sidecar run by hand).
pub const DEFAULT_SERVICE_NAME: &str = "modelserver-sidecar";

/// The counters of `trace_spans_total{result}`.
#[derive(Clone)]
pub(crate) struct SpanCounters {
    exported: IntCounter,
    dropped: IntCounter,
    failed: IntCounter,
}

impl SpanCounters {
    fn new(metrics: &Metrics) -> Self {
        let series = |result: &str| metrics.trace_spans_total.with_label_values(&[result]);
        Self {
            exported: series("exported"),
            dropped: series("dropped"),
            failed: series("failed"),
        }
    }
}

/// Starts and records spans; cheap to clone.
#[derive(Clone)]
pub struct Tracer {
    inner: Arc<Inner>,
}

struct Inner {
    sender: mpsc::Sender<Box<SpanRecord>>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    per_million: u32,
    /// Attributes of every request span: the ModelServer, namespace and pod.
    request_attributes: Vec<(&'static str, AttrValue)>,
    counters: SpanCounters,
}

/// What the forwarding handler needs to record its spans (a request extension, present only on
/// sampled requests). One word: the handler's future holds it.
#[derive(Clone)]
pub struct RequestTrace(Box<TraceIds>);

/// The ids of a sampled request's spans.
#[derive(Clone)]
struct TraceIds {
    tracer: Tracer,
    trace_id: TraceId,
    request_span: SpanId,
    worker_span: SpanId,
    trace_state: Option<String>,
}

impl RequestTrace {
    fn child(&self, span_id: SpanId, name: &'static str, kind: SpanKind) -> OpenSpan {
        let ids = &self.0;
        OpenSpan::start(
            ids.tracer.clone(),
            SpanRecord {
                trace_id: ids.trace_id,
                span_id,
                parent_id: Some(ids.request_span),
                trace_state: ids.trace_state.clone(),
                name,
                kind,
                start_unix_nanos: now_unix_nanos(),
                end_unix_nanos: 0,
                attributes: Vec::new(),
                events: Vec::new(),
                status: SpanStatus::Unset,
                status_message: None,
                flags: FLAG_SAMPLED,
            },
        )
    }

    /// Starts the `queue wait` span: the time until a worker slot is free.
    #[inline(never)]
    pub fn queue_wait(&self) -> OpenSpan {
        self.child(new_span_id(), "queue wait", SpanKind::Internal)
    }

    /// Starts the `worker` span: the call to the model (its id is the one the model's
    /// `traceparent` names).
    #[inline(never)]
    pub fn worker(&self, backend: String) -> OpenSpan {
        let mut span = self.child(self.0.worker_span, "worker", SpanKind::Client);
        span.attribute("modelserver.backend", AttrValue::Text(backend));
        span
    }
}

impl Tracer {
    /// The tracer and its exporter (to be spawned), when `args` turn tracing on.
    pub fn new(args: &TraceArgs, metrics: &Metrics) -> Option<(Self, Exporter)> {
        let endpoint = args.otlp_endpoint.as_deref()?;
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (flushes, flush_requests) = mpsc::channel(1);
        let counters = SpanCounters::new(metrics);
        let service = args.name.clone().unwrap_or(DEFAULT_SERVICE_NAME.to_owned());
        let mut resource = vec![
            ("service.name", service),
            ("telemetry.sdk.name", DEFAULT_SERVICE_NAME.to_owned()),
            ("telemetry.sdk.language", "rust".to_owned()),
        ];
        let mut request_attributes = Vec::new();
        let named = [
            ("modelserver.name", &args.name),
            ("k8s.namespace.name", &args.pod_namespace),
            ("k8s.pod.name", &args.pod_name),
            ("service.instance.id", &args.pod_name),
        ];
        for (key, value) in named {
            if let Some(value) = value {
                resource.push((key, value.clone()));
                if key != "service.instance.id" {
                    request_attributes.push((key, AttrValue::Shared(value.as_str().into())));
                }
            }
        }
        let tracer = Self {
            inner: Arc::new(Inner {
                sender,
                flushes,
                per_million: args.trace_sampling.per_million(),
                request_attributes,
                counters: counters.clone(),
            }),
        };
        let exporter = Exporter::new(endpoint, resource, receiver, flush_requests, counters);
        Some((tracer, exporter))
    }

    /// Decides whether `request` is traced. A sampled request gets its `request` span (returned,
    /// to be ended with the response), a `traceparent` naming its `worker` span, and a
    /// [`RequestTrace`] extension; any other request is left unchanged.
    #[inline(never)]
    pub fn start(
        &self,
        request: &mut Request,
        request_id: Option<&HeaderValue>,
    ) -> Option<OpenSpan> {
        let incoming = TraceParent::from_headers(request.headers());
        let (trace_id, parent_id, sampled) = match &incoming {
            Some(parent) => (parent.trace_id, Some(parent.parent_id), parent.sampled()),
            None => {
                let trace_id = new_trace_id();
                let sampled = context::sampled_by_ratio(&trace_id, self.inner.per_million);
                (trace_id, None, sampled)
            }
        };
        if !sampled {
            return None;
        }
        let headers = request.headers_mut();
        // `tracestate` belongs to the `traceparent` it came with; without a valid one it goes.
        let trace_state = match incoming {
            Some(_) => headers
                .get(TRACESTATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            None => {
                headers.remove(TRACESTATE);
                None
            }
        };
        let request_span = new_span_id();
        let worker_span = new_span_id();
        headers.insert(
            TRACEPARENT,
            context::traceparent(&trace_id, &worker_span, FLAG_SAMPLED),
        );
        let mut attributes = Vec::with_capacity(self.inner.request_attributes.len() + 4);
        attributes.push((
            "http.request.method",
            AttrValue::Text(request.method().as_str().to_owned()),
        ));
        attributes.push(("url.path", AttrValue::Text(request.uri().path().to_owned())));
        if let Some(id) = request_id.and_then(|v| v.to_str().ok()) {
            attributes.push(("modelserver.request_id", AttrValue::Text(id.to_owned())));
        }
        attributes.extend(self.inner.request_attributes.iter().cloned());
        let span = OpenSpan::start(
            self.clone(),
            SpanRecord {
                trace_id,
                span_id: request_span,
                parent_id,
                trace_state: trace_state.clone(),
                name: "request",
                kind: SpanKind::Server,
                start_unix_nanos: now_unix_nanos(),
                end_unix_nanos: 0,
                attributes,
                events: Vec::new(),
                status: SpanStatus::Unset,
                status_message: None,
                flags: FLAG_SAMPLED,
            },
        );
        request
            .extensions_mut()
            .insert(RequestTrace(Box::new(TraceIds {
                tracer: self.clone(),
                trace_id,
                request_span,
                worker_span,
                trace_state,
            })));
        Some(span)
    }

    /// Exports the spans queued so far, waiting at most `within` (at shutdown, so the last
    /// requests' spans are not lost with the process).
    pub async fn flush(&self, within: Duration) {
        let (done, exported) = oneshot::channel();
        if self.inner.flushes.try_send(done).is_ok()
            && tokio::time::timeout(within, exported).await.is_err()
        {
            tracing::debug!("trace spans not flushed within {}s", within.as_secs());
        }
    }

    /// Queues a finished span for export; drops it (counted) when the queue is full.
    #[inline(never)]
    pub fn record(&self, span: Box<SpanRecord>) {
        if self.inner.sender.try_send(span).is_err() {
            self.inner.counters.dropped.inc();
        }
    }
}

/// A random trace id, never all zeros.
fn new_trace_id() -> TraceId {
    loop {
        let id = next_random().to_be_bytes();
        if id != [0; 16] {
            return id;
        }
    }
}

/// A random span id, never all zeros.
fn new_span_id() -> SpanId {
    loop {
        let bits = next_random();
        let id = ((bits >> 64) as u64 ^ bits as u64).to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}
