//! The public router: health endpoints, optional docs, and everything else forwarded; wrapped in
//! request ids, metrics, access log and the gRPC form of refusals (one layer), CORS and auth
//! (outermost first).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;

use crate::http::auth::{AuthToken, require_token};
use crate::http::cors::{CorsPolicy, drop_worker_cors_headers, hide_from_disallowed_origins};
use crate::http::docs::{DOCS_PATH, OPENAPI_PATH, docs_page, openapi_json};
use crate::http::forward::forward;
use crate::http::grpc::{HEALTH_CHECK_PATH, HEALTH_WATCH_PATH, health_check, health_watch};
use crate::http::health::{LIVE_PATH, PING_PATH, READY_PATH, live, ping, ready};
use crate::http::observe::ObserveLayer;
use crate::http::reply::ApiError;
use crate::state::SharedState;

/// What the public port serves besides forwarding.
#[derive(Debug, Clone, Default)]
pub struct PublicOptions {
    /// Serve `/docs` and `/openapi.json`.
    pub docs: bool,
    /// CORS, when configured.
    pub cors: Option<CorsPolicy>,
    /// Token auth, when configured.
    pub auth: Option<AuthToken>,
}

/// Builds the public router.
pub fn public_router(state: SharedState, options: PublicOptions) -> Router {
    let mut router = Router::new()
        .route(PING_PATH, get(ping))
        .route(LIVE_PATH, get(live))
        .route(READY_PATH, get(ready))
        .route(HEALTH_CHECK_PATH, post(health_check))
        .route(HEALTH_WATCH_PATH, post(health_watch));
    if options.docs {
        router = router
            .route(OPENAPI_PATH, get(openapi_json))
            .route(DOCS_PATH, get(docs_page));
    }
    let mut router = router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(forward)
        .with_state(state.clone())
        // Bodies stream to the worker; the upload limit is enforced while they do.
        .layer(DefaultBodyLimit::disable());
    if let Some(auth) = options.auth {
        router = router.layer(middleware::from_fn_with_state(auth, require_token));
    }
    if let Some(cors) = options.cors {
        router = router
            .layer(middleware::from_fn(drop_worker_cors_headers))
            .layer(cors.layer)
            .layer(middleware::from_fn_with_state(
                cors.origins,
                hide_from_disallowed_origins,
            ));
    }
    // Outermost: request id, metrics and access log (with the HTTP status of every answer),
    // then the gRPC form of refusals to gRPC calls.
    router.layer(ObserveLayer::new(state))
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this sidecar endpoint",
    )
    .into_response()
}
