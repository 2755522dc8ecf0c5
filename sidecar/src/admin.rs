//! The admin port (never in the Service, never authenticated): `/livez`, `/readyz`,
//! `POST /drain` (returns once draining is done), `/metrics` and `/status`.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::errors::{ApiError, json_response};
use crate::state::SharedState;

/// Liveness probe path.
pub const LIVEZ_PATH: &str = "/livez";
/// Readiness (and startup) probe path.
pub const READYZ_PATH: &str = "/readyz";
/// Drain trigger path (POST).
pub const DRAIN_PATH: &str = "/drain";
/// Prometheus metrics path.
pub const METRICS_PATH: &str = "/metrics";
/// State dump path.
pub const STATUS_PATH: &str = "/status";
/// Content type of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds the admin router.
pub fn admin_router(state: SharedState) -> Router {
    Router::new()
        .route(LIVEZ_PATH, get(livez))
        .route(READYZ_PATH, get(readyz))
        .route(DRAIN_PATH, post(drain))
        .route(METRICS_PATH, get(metrics))
        .route(STATUS_PATH, get(status))
        .fallback(not_found)
        .with_state(state)
}

async fn livez() -> Response {
    json_response(StatusCode::OK, &json!({ "live": true }))
}

async fn readyz(State(state): State<SharedState>) -> Response {
    let ready = state.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({ "ready": ready, "draining": state.lifecycle.is_draining() }),
    )
}

async fn drain(State(state): State<SharedState>) -> Response {
    state.lifecycle.request_drain();
    state.lifecycle.drained().await;
    let load = state.dispatcher.snapshot();
    json_response(
        StatusCode::OK,
        &json!({ "drained": true, "in_flight": load.in_flight(), "queued": load.queued }),
    )
}

async fn metrics(State(state): State<SharedState>) -> Response {
    let body = state.metrics.render(state.snapshot());
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE),
    );
    response
}

async fn status(State(state): State<SharedState>) -> Response {
    let load = state.dispatcher.snapshot();
    let workers: Vec<serde_json::Value> = match &state.workers {
        Some(table) => table
            .snapshot()
            .into_iter()
            .map(|w| {
                let in_flight = load.backends.get(w.id).map_or(0, |b| b.in_flight);
                json!({
                    "id": w.id,
                    "pid": w.pid,
                    "state": w.state,
                    "ready": load.backends.get(w.id).is_some_and(|b| b.ready),
                    "restarts": w.restarts,
                    "in_flight": in_flight,
                    "socket": w.socket,
                    "last_exit": w.last_exit,
                })
            })
            .collect(),
        None => load
            .backends
            .iter()
            .enumerate()
            .map(|(id, b)| {
                json!({
                    "id": id,
                    "upstream": state.backends.addr(id).map(ToString::to_string),
                    "ready": b.ready,
                    "in_flight": b.in_flight,
                })
            })
            .collect(),
    };
    json_response(
        StatusCode::OK,
        &json!({
            "mode": state.mode.as_str(),
            "ready": state.is_ready(),
            "draining": state.lifecycle.is_draining(),
            "drained": state.lifecycle.is_drained(),
            "in_flight": load.in_flight(),
            "queue": load.queued,
            "max_queue": state.limits.max_queue,
            "slots_per_backend": state.limits.per_backend,
            "workers": workers,
        }),
    )
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "no such admin endpoint").into_response()
}
