//! The admin port (never in the Service, never authenticated): `/livez`, `/readyz`,
//! `POST /drain` (returns once draining is done), `/metrics` and `/status`. The probes and
//! `/metrics` answer anyone; `POST /drain` and `/status` only loopback peers ([`crate::http::loopback`]).

use axum::Router;
use axum::extract::State;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::http::loopback::loopback_only;
use crate::http::reply::{ApiError, json_response};
use crate::state::SharedState;

pub use modelserver_contract::admin::{
    DRAIN_PATH, LIVEZ_PATH, METRICS_PATH, READYZ_PATH, STATUS_PATH,
};
/// Content type of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds the admin router.
pub fn admin_router(state: SharedState) -> Router {
    // Only the pod itself may drain the model or read process ids and socket paths.
    let local_only = Router::new()
        .route(DRAIN_PATH, post(drain))
        .route(STATUS_PATH, get(status))
        .route_layer(middleware::from_fn(loopback_only));
    Router::new()
        .route(LIVEZ_PATH, get(livez))
        .route(READYZ_PATH, get(readyz))
        .route(METRICS_PATH, get(metrics))
        .merge(local_only)
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
                let backend = load.backends.get(w.id);
                let in_flight = backend.map_or(0, |b| b.in_flight);
                json!({
                    "id": w.id,
                    "pid": w.pid,
                    "state": w.state,
                    "ready": backend.is_some_and(|b| b.ready),
                    "restarts": w.restarts,
                    "recycles": w.recycles,
                    "generation": w.generation,
                    "load_seconds": w.load_seconds,
                    "loading_seconds": w
                        .started_at
                        .filter(|_| w.load_seconds.is_none() && w.pid.is_some())
                        .map(|t| t.elapsed().as_secs_f64()),
                    "in_flight": in_flight,
                    "requests": backend.map_or(0, |b| b.requests),
                    "request_limit": backend.and_then(|b| b.request_limit),
                    "socket": w.endpoint.socket(),
                    "port": w.endpoint.port(),
                    "last_exit": w.last_exit,
                    "last_exit_reason": w.last_exit_reason,
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
                    "upstream": state.backend.address(id),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use http::{Method, Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::backend::pooled::PooledBackends;
    use crate::dispatch::Dispatcher;
    use crate::http::loopback::NOT_LOOPBACK_MESSAGE;
    use crate::metrics::Metrics;
    use crate::server::LocalAddr;
    use crate::shutdown::Lifecycle;
    use crate::state::{AppState, Limits, Mode};

    fn state() -> SharedState {
        Arc::new(AppState {
            mode: Mode::Managed,
            dispatcher: Dispatcher::new(0, 1, 1),
            backend: Arc::new(PooledBackends::new(Vec::new(), Vec::new())),
            limits: Limits {
                max_upload_size: 1,
                request_timeout: Duration::from_secs(1),
                per_backend: 1,
                max_queue: 1,
            },
            lifecycle: Lifecycle::new(),
            metrics: Metrics::new().unwrap(),
            workers: None,
            access_log: false,
            tracer: None,
        })
    }

    /// One request through the router as the accept loop delivers it: with the peer address.
    async fn call(
        state: &SharedState,
        method: Method,
        path: &str,
        peer: &str,
    ) -> (StatusCode, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        // Accepted on the pod IP, as the admin port (bound to every address) does for others.
        let local: SocketAddr = "10.244.0.5:9090".parse().unwrap();
        request.extensions_mut().insert(LocalAddr(local));
        let response = admin_router(state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn drain_and_status_refuse_peers_outside_the_pod() {
        let state = state();
        for peer in ["10.244.3.9:41234", "[fd00::7]:5000", "[::ffff:10.0.0.1]:80"] {
            for (method, path) in [(Method::POST, DRAIN_PATH), (Method::GET, STATUS_PATH)] {
                let (status, body) = call(&state, method, path, peer).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{path} from {peer}");
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body, json!({ "error": NOT_LOOPBACK_MESSAGE }));
            }
        }
        assert!(
            !state.lifecycle.is_draining(),
            "a refused drain must not start draining"
        );
        // A request that cannot be placed (no peer address) is refused as well.
        let request = Request::get(STATUS_PATH).body(Body::empty()).unwrap();
        let response = admin_router(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        for path in [LIVEZ_PATH, READYZ_PATH, METRICS_PATH] {
            let (status, _) = call(&state, Method::GET, path, "10.244.3.9:41234").await;
            assert_ne!(status, StatusCode::FORBIDDEN, "{path} stays open");
        }
    }

    #[tokio::test]
    async fn drain_and_status_answer_loopback_peers() {
        let state = state();
        let (status, body) = call(&state, Method::GET, STATUS_PATH, "127.0.0.1:5000").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("\"mode\":\"serve\""), "{body}");
        // `drain` with MODELSERVER_BIND set to the pod IP connects from that same address.
        let (status, body) = call(&state, Method::GET, STATUS_PATH, "10.244.0.5:41000").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Already drained, so the drain call answers at once.
        state.lifecycle.mark_drained();
        let (status, body) = call(&state, Method::POST, DRAIN_PATH, "[::1]:5000").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(state.lifecycle.is_draining());
    }
}
