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
    let logged = state.access_log.then(|| {
        let request_id = request
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        (
            request.method().clone(),
            request.uri().path().to_string(),
            request_id,
            peer,
        )
    });

    let response = next.run(request).await;

    let elapsed = start.elapsed();
    let status = response.status();
    state
        .metrics
        .requests_total
        .with_label_values(&[status.as_str()])
        .inc();
    state
        .metrics
        .request_duration_seconds
        .observe(elapsed.as_secs_f64());
    if let Some((method, path, request_id, peer)) = logged {
        let backend = response
            .extensions()
            .get::<BackendId>()
            .map(|b| state.mode.backend_name(b.0))
            .unwrap_or_default();
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            request_id = %request_id,
            method = %method,
            path = %path,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            backend = %backend,
            peer = %peer,
            "request"
        );
    }
    response
}
