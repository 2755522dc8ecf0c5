//! Per-request observation on the public port, the outermost layer: the `X-Request-ID` (kept
//! when the client sends one, generated otherwise, forwarded to the backend and returned),
//! `requests_total{code}`, the duration histogram, and the access log line; then, for a gRPC
//! call, the gRPC form of an answer that is not one (`crate::http::grpc`).
//!
//! One hand-written service where there were three layers (tower-http's `SetRequestId` and
//! `PropagateRequestId`, and an axum `from_fn` middleware, which boxes the inner service and its
//! future on every request): this runs on every request, so it allocates nothing itself.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};
use tower_http::request_id::MakeRequestId;

use crate::http::forward::BackendId;
use crate::http::grpc::{grpc_form, is_grpc, needs_grpc_form};
use crate::http::guarded::GuardedBody;
use crate::http::request_id::MakeRequestUuid;
use crate::state::{BackendLabel, SharedState};
use crate::trace::span::OpenSpan;

/// The request id header, kept when the client sends one and added otherwise.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `tracing` target of access log lines.
pub const ACCESS_LOG_TARGET: &str = "access";
/// The status logged and counted for a request whose client left before its answer (the
/// connection closed, or an HTTP/2 client reset the stream at its own deadline): nginx's
/// "client closed request", which platform teams already read in their dashboards.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Layer: request id, metrics and access log for every request through it.
#[derive(Clone)]
pub struct ObserveLayer {
    state: SharedState,
}

impl ObserveLayer {
    /// Observes with `state`'s metrics and access log setting.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service [`ObserveLayer`] makes.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    state: SharedState,
}

/// What the access log line needs, taken without copying strings: the URI and header value
/// share the request's bytes, the address is a plain value.
struct Logged {
    method: Method,
    uri: Uri,
    peer: Option<SocketAddr>,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let start = Instant::now();
        let request_id = match request.headers().get(&X_REQUEST_ID) {
            Some(id) => Some(id.clone()),
            None => MakeRequestUuid
                .make_request_id(&request)
                .map(|id| id.into_header_value())
                .inspect(|id| {
                    request.headers_mut().insert(X_REQUEST_ID, id.clone());
                }),
        };
        let logged = self.state.access_log.then(|| Logged {
            method: request.method().clone(),
            uri: request.uri().clone(),
            peer: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        });
        let grpc = is_grpc(request.headers());
        // Tracing off: this one check is all it costs.
        let span = match &self.state.tracer {
            Some(tracer) => tracer.start(&mut request, request_id.as_ref()),
            None => None,
        };
        ObserveFuture {
            span,
            grpc,
            inner: self.inner.call(request),
            state: self.state.clone(),
            start,
            request_id,
            logged,
            answered: false,
        }
    }
}

pin_project! {
    /// The response future of [`Observe`]. Dropped before the answer (the client left), it
    /// still counts and logs the request, as [`CLIENT_CLOSED_REQUEST`].
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        state: SharedState,
        start: Instant,
        request_id: Option<HeaderValue>,
        logged: Option<Logged>,
        grpc: bool,
        span: Option<OpenSpan>,
        answered: bool,
    }

    impl<F> PinnedDrop for ObserveFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.answered {
                let status = StatusCode::from_u16(CLIENT_CLOSED_REQUEST)
                    .unwrap_or(StatusCode::BAD_REQUEST);
                let request_id = this.request_id.as_ref();
                record(this.state, *this.start, this.logged.take(), request_id, status, None);
            }
        }
    }
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.inner.poll(cx));
        *this.answered = true;
        let status = response.status();
        let state = &*this.state;
        let backend = response
            .extensions()
            .get::<BackendId>()
            .map(|b| state.mode.backend_label(b.0));
        record(
            state,
            *this.start,
            this.logged.take(),
            this.request_id.as_ref(),
            status,
            backend,
        );
        // The id goes back to the client unless the response (the worker) set its own.
        if let Some(id) = this.request_id.take()
            && !response.headers().contains_key(&X_REQUEST_ID)
        {
            response.headers_mut().insert(X_REQUEST_ID, id);
        }
        // A gRPC call's refusal reaches the client as a gRPC status; counted above as HTTP.
        if *this.grpc && needs_grpc_form(&response) {
            response = grpc_form(response);
        }
        // A sampled request's span ends with its response body (or when it is dropped unsent).
        if let Some(mut span) = this.span.take() {
            span.http_status(status, 500);
            // The span ends when the body is dropped, after its last byte or with its connection.
            response = response.map(|body| GuardedBody::wrap(body, span));
        }
        Poll::Ready(Ok(response))
    }
}

/// Counts a request's answer in `requests_total` and the duration histogram, and writes its
/// access log line when the log is on (`logged`).
fn record(
    state: &SharedState,
    start: Instant,
    logged: Option<Logged>,
    request_id: Option<&HeaderValue>,
    status: StatusCode,
    backend: Option<BackendLabel>,
) {
    let elapsed = start.elapsed();
    state.metrics.count_response(status);
    state
        .metrics
        .request_duration_seconds
        .observe(elapsed.as_secs_f64());
    if let Some(Logged { method, uri, peer }) = logged {
        let request_id = request_id.and_then(|v| v.to_str().ok());
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            request_id = %request_id.unwrap_or(""),
            method = %method,
            path = %uri.path(),
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            backend = %OrEmpty(backend),
            peer = %OrEmpty(peer),
            "request"
        );
    }
}

/// Shows the value, or nothing when there is none.
struct OrEmpty<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrEmpty<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => Ok(()),
        }
    }
}
