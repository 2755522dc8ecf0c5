//! The public health endpoints the sidecar answers itself: `/ping` (DRUM-compatible),
//! `/v2/health/live` and `/v2/health/ready` (Open Inference Protocol), and the gRPC health check
//! (`crate::http::grpc`). They need no token.

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use crate::http::grpc::{HEALTH_CHECK_PATH, HEALTH_WATCH_PATH};
use crate::http::reply::json_response;
use crate::state::SharedState;

/// DRUM-style ping.
pub const PING_PATH: &str = "/ping";
/// Open Inference Protocol liveness.
pub const LIVE_PATH: &str = "/v2/health/live";
/// Open Inference Protocol readiness.
pub const READY_PATH: &str = "/v2/health/ready";

/// True for the paths that are exempt from auth.
pub fn is_health_path(path: &str) -> bool {
    matches!(
        path,
        PING_PATH | LIVE_PATH | READY_PATH | HEALTH_CHECK_PATH | HEALTH_WATCH_PATH
    )
}

/// `GET /ping`: the process answers.
pub async fn ping() -> Response {
    json_response(StatusCode::OK, &json!({ "message": "OK" }))
}

/// `GET /v2/health/live`.
pub async fn live() -> Response {
    json_response(StatusCode::OK, &json!({ "live": true }))
}

/// `GET /v2/health/ready`: `{"ready": bool}`, 503 while not ready.
pub async fn ready(State(state): State<SharedState>) -> Response {
    let ready = state.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &json!({ "ready": ready }))
}
