//! Prometheus series (prefix `modelserver_`, listed in `sidecar/README.md`). Counters and the
//! histogram are updated on the request path; gauges that mirror state (in-flight, queue,
//! readiness) are set from that state when `/metrics` is scraped, so they can never drift from
//! it.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::workers::exit::ExitReason;

/// Metric name prefix.
pub const NAMESPACE: &str = "modelserver";

/// Buckets of `worker_load_seconds`, in seconds: from a small model (0.1 s) to a large one
/// loaded from remote storage (30 min).
pub const LOAD_BUCKETS: [f64; 16] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0,
    1800.0,
];

/// Why the sidecar refused a request (`rejected_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Every executor slot busy and the queue full.
    QueueFull,
    /// Refused at arrival: the wait it would have had is over the queue's time bound.
    Overloaded,
    /// Waited in the queue as long as allowed.
    QueueWait,
    /// Body over the upload limit.
    TooLarge,
    /// Over the request timeout.
    Timeout,
    /// Missing or wrong token.
    Unauthorized,
    /// The worker failed before answering.
    WorkerError,
    /// The request body could not be read from the client (malformed, or the client left).
    ClientError,
}

impl RejectReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Overloaded => "overloaded",
            Self::QueueWait => "queue_wait",
            Self::TooLarge => "too_large",
            Self::Timeout => "timeout",
            Self::Unauthorized => "unauthorized",
            Self::WorkerError => "worker_error",
            Self::ClientError => "client_error",
        }
    }
}

/// Gauge values taken from the live state at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateSnapshot {
    /// Requests held by a worker.
    pub inflight: usize,
    /// Requests waiting for a slot.
    pub queued: usize,
    /// Workers answering their readiness path.
    pub workers_ready: usize,
    /// The pod-level readiness.
    pub ready: bool,
    /// Draining has started.
    pub draining: bool,
    /// When the drain must be over (`None` before it starts).
    pub drain_deadline: Option<SystemTime>,
}

/// Every series the sidecar exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `requests_total{code}`: public requests by response status.
    pub requests_total: IntCounterVec,
    /// `requests_total`'s counter per status code (100 to 999), looked up once per code: the
    /// request path then increments an atomic without the label lookup (a lock and a hash).
    requests_by_code: Arc<[OnceLock<IntCounter>]>,
    /// `request_duration_seconds`: time until the response head was ready.
    pub request_duration_seconds: Histogram,
    /// `inflight_requests`.
    pub inflight_requests: IntGauge,
    /// `queue_depth`.
    pub queue_depth: IntGauge,
    /// `rejected_total{reason}`.
    pub rejected_total: IntCounterVec,
    /// `worker_restarts_total`.
    pub worker_restarts_total: IntCounter,
    /// `worker_recycles_total`: workers replaced after their request limit (not restarts).
    pub worker_recycles_total: IntCounter,
    /// `worker_load_seconds`: per worker start, the time from the process start to its first
    /// 200 on the readiness path.
    pub worker_load_seconds: Histogram,
    /// `worker_exits_total{reason}`: worker runs that ended on their own, by
    /// [`ExitReason`] (`exit`, `signal`, `oom`, `start_failed`).
    pub worker_exits_total: IntCounterVec,
    /// `workers_ready`.
    pub workers_ready: IntGauge,
    /// `ready`: 1 when `/readyz` answers 200.
    pub ready: IntGauge,
    /// `draining`: 1 once draining started.
    pub draining: IntGauge,
    /// `drain_deadline_timestamp_seconds`: when the drain must be over (Unix time: its start +
    /// drain delay + drain timeout), 0 before it starts; an alert compares it with `time()`.
    pub drain_deadline_timestamp_seconds: Gauge,
    /// `trace_spans_total{result}`: spans `exported` to the collector, `dropped` because the
    /// export queue was full, or `failed` (their batch was not accepted by the collector).
    pub trace_spans_total: IntCounterVec,
}

impl Metrics {
    /// Registers every series in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some(NAMESPACE.to_string()), None)?;
        let requests_total = IntCounterVec::new(
            Opts::new("requests_total", "Public requests answered, by status code"),
            &["code"],
        )?;
        let request_duration_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time from request to response head on the public port",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ]),
        )?;
        let inflight_requests =
            IntGauge::new("inflight_requests", "Requests being handled by a worker")?;
        let queue_depth = IntGauge::new("queue_depth", "Requests waiting for a free worker slot")?;
        let rejected_total = IntCounterVec::new(
            Opts::new(
                "rejected_total",
                "Requests refused by the sidecar, by reason",
            ),
            &["reason"],
        )?;
        let worker_restarts_total =
            IntCounter::new("worker_restarts_total", "Worker processes restarted")?;
        let worker_recycles_total = IntCounter::new(
            "worker_recycles_total",
            "Workers replaced after their request limit (not counted as restarts)",
        )?;
        let worker_load_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "worker_load_seconds",
                "Time from a worker process's start to its first 200 on the readiness path",
            )
            .buckets(LOAD_BUCKETS.to_vec()),
        )?;
        let worker_exits_total = IntCounterVec::new(
            Opts::new(
                "worker_exits_total",
                "Worker processes that ended on their own, by reason",
            ),
            &["reason"],
        )?;
        let workers_ready =
            IntGauge::new("workers_ready", "Workers that answer their readiness path")?;
        let ready = IntGauge::new("ready", "1 when the sidecar reports ready")?;
        let draining = IntGauge::new("draining", "1 once draining has started")?;
        let drain_deadline_timestamp_seconds = Gauge::new(
            "drain_deadline_timestamp_seconds",
            "When the drain must be over, in Unix seconds (its start + drain delay + drain timeout); 0 before draining starts",
        )?;
        let trace_spans_total = IntCounterVec::new(
            Opts::new(
                "trace_spans_total",
                "Trace spans exported over OTLP, dropped (export queue full) or failed (batch refused or collector unreachable)",
            ),
            &["result"],
        )?;

        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_duration_seconds.clone()))?;
        registry.register(Box::new(inflight_requests.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(rejected_total.clone()))?;
        registry.register(Box::new(worker_restarts_total.clone()))?;
        registry.register(Box::new(worker_recycles_total.clone()))?;
        registry.register(Box::new(worker_load_seconds.clone()))?;
        registry.register(Box::new(worker_exits_total.clone()))?;
        registry.register(Box::new(workers_ready.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(draining.clone()))?;
        registry.register(Box::new(drain_deadline_timestamp_seconds.clone()))?;
        registry.register(Box::new(trace_spans_total.clone()))?;

        // Make the label sets visible at zero, so dashboards and tests see them before traffic.
        for reason in [
            RejectReason::QueueFull,
            RejectReason::Overloaded,
            RejectReason::QueueWait,
            RejectReason::TooLarge,
            RejectReason::Timeout,
            RejectReason::Unauthorized,
            RejectReason::WorkerError,
        ] {
            rejected_total.with_label_values(&[reason.as_str()]);
        }
        for reason in ExitReason::ALL {
            worker_exits_total.with_label_values(&[reason.as_str()]);
        }
        for result in ["exported", "dropped", "failed"] {
            trace_spans_total.with_label_values(&[result]);
        }

        Ok(Self {
            registry,
            requests_total,
            requests_by_code: (100..=999).map(|_| OnceLock::new()).collect(),
            request_duration_seconds,
            inflight_requests,
            queue_depth,
            rejected_total,
            worker_restarts_total,
            worker_recycles_total,
            worker_load_seconds,
            worker_exits_total,
            workers_ready,
            ready,
            draining,
            drain_deadline_timestamp_seconds,
            trace_spans_total,
        })
    }

    /// Counts a public response by its status code (`requests_total{code}`).
    pub fn count_response(&self, status: StatusCode) {
        let index = usize::from(status.as_u16()).saturating_sub(100);
        match self.requests_by_code.get(index) {
            Some(cell) => cell
                .get_or_init(|| self.requests_total.with_label_values(&[status.as_str()]))
                .inc(),
            None => self
                .requests_total
                .with_label_values(&[status.as_str()])
                .inc(),
        }
    }

    /// Counts a refused request.
    pub fn reject(&self, reason: RejectReason) {
        self.rejected_total
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// Counts a worker run that ended on its own.
    pub fn worker_exited(&self, reason: ExitReason) {
        self.worker_exits_total
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// Sets the state gauges and renders every series in the Prometheus text format.
    pub fn render(&self, state: StateSnapshot) -> String {
        self.inflight_requests.set(to_i64(state.inflight));
        self.queue_depth.set(to_i64(state.queued));
        self.workers_ready.set(to_i64(state.workers_ready));
        self.ready.set(i64::from(state.ready));
        self.draining.set(i64::from(state.draining));
        self.drain_deadline_timestamp_seconds.set(
            state
                .drain_deadline
                .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |since| since.as_secs_f64()),
        );
        let mut out = Vec::with_capacity(4096);
        // Encoding into a Vec cannot fail for well-formed metric families.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_with_prefix() {
        let m = Metrics::new().unwrap();
        m.requests_total.with_label_values(&["200"]).inc();
        m.count_response(StatusCode::OK);
        m.count_response(StatusCode::IM_A_TEAPOT);
        m.request_duration_seconds.observe(0.01);
        m.reject(RejectReason::QueueFull);
        m.worker_restarts_total.inc();
        m.worker_exited(ExitReason::Oom);
        m.worker_recycles_total.inc();
        m.worker_load_seconds.observe(42.0);
        let text = m.render(StateSnapshot {
            inflight: 2,
            queued: 1,
            workers_ready: 3,
            ready: true,
            draining: false,
            drain_deadline: Some(UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)),
        });
        for needle in [
            "modelserver_requests_total{code=\"200\"} 2",
            "modelserver_requests_total{code=\"418\"} 1",
            "modelserver_request_duration_seconds_count 1",
            "modelserver_inflight_requests 2",
            "modelserver_queue_depth 1",
            "modelserver_rejected_total{reason=\"queue_full\"} 1",
            "modelserver_rejected_total{reason=\"timeout\"} 0",
            "modelserver_worker_restarts_total 1",
            "modelserver_worker_recycles_total 1",
            "modelserver_worker_load_seconds_bucket{le=\"30\"} 0",
            "modelserver_worker_load_seconds_bucket{le=\"60\"} 1",
            "modelserver_worker_load_seconds_bucket{le=\"1800\"} 1",
            "modelserver_worker_load_seconds_count 1",
            "modelserver_worker_exits_total{reason=\"oom\"} 1",
            "modelserver_worker_exits_total{reason=\"exit\"} 0",
            "modelserver_workers_ready 3",
            "modelserver_ready 1",
            "modelserver_draining 0",
            "modelserver_drain_deadline_timestamp_seconds 1800000000",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
