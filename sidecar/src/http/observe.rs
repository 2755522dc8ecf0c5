//! Per-request observation on the public port: `requests_total{code}`, the duration histogram,
//! and the access log line (with the `X-Request-ID` that the request-id layers keep or add).

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderName;
use std::net::SocketAddr;
use tokio::time::Instant;

use crate::http::forward::BackendId;
use crate::state::SharedState;

/// The request id header, kept when the client sends one and added otherwise.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `tracing` target of access log lines.
pub const ACCESS_LOG_TARGET: &str = "access";

/// Middleware: counts and times every public request and writes the access log line.
pub async fn observe(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    // What the log line needs, taken without copying strings: the URI and header value share
    // the request's bytes, the address is a plain value.
    let logged = state.access_log.then(|| {
        (
            request.method().clone(),
            request.uri().clone(),
            request.headers().get(&X_REQUEST_ID).cloned(),
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        )
    });

    let response = next.run(request).await;

    let elapsed = start.elapsed();
    let status = response.status();
    state.metrics.count_response(status);
    state
        .metrics
        .request_duration_seconds
        .observe(elapsed.as_secs_f64());
    if let Some((method, uri, request_id, peer)) = logged {
        let backend = response
            .extensions()
            .get::<BackendId>()
            .map(|b| state.mode.backend_label(b.0));
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            request_id = %request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
            method = %method,
            path = %uri.path(),
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            backend = %OrEmpty(backend),
            peer = %OrEmpty(peer),
            "request"
        );
    }
    response
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
