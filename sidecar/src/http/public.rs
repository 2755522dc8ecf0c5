//! The public port's service: the sidecar's own endpoints (health, optional docs) through an axum
//! router, every other request straight to forwarding; wrapped in request ids, metrics, access
//! log and the gRPC form of refusals (one layer), CORS and auth (outermost first).
//!
//! Forwarded requests, nearly all of them, skip the router: it would look the path up, find
//! nothing, and call its fallback through a boxed, cloned route and the handler's extractors and
//! response conversion. A comparison of the path with the sidecar's own few paths decides instead.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use crate::backend::BoxFuture;
use crate::http::auth::{AuthToken, require_token};
use crate::http::cors::{CorsPolicy, drop_worker_cors_headers, hide_from_disallowed_origins};
use crate::http::docs::{DOCS_PATH, OPENAPI_PATH, docs_page, openapi_json};
use crate::http::forward::forward_request;
use crate::http::grpc::{HEALTH_CHECK_PATH, HEALTH_WATCH_PATH, health_check, health_watch};
use crate::http::health::{LIVE_PATH, PING_PATH, READY_PATH, is_health_path, live, ping, ready};
use crate::http::observe::{Observe, ObserveLayer};
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

/// The public port's service, as [`public_service`] builds it.
pub type PublicService = Observe<Guarded>;

/// The answer of the services inside the observe layer.
type Answer = BoxFuture<Result<Response, Infallible>>;

/// Builds the public port's service.
pub fn public_service(state: SharedState, options: PublicOptions) -> PublicService {
    let routes = Routes {
        own: own_router(state.clone(), options.docs),
        docs: options.docs,
        state: state.clone(),
    };
    let guarded = if options.auth.is_none() && options.cors.is_none() {
        Guarded::Open(routes)
    } else {
        let mut layered = BoxCloneSyncService::new(routes);
        if let Some(auth) = options.auth {
            layered = BoxCloneSyncService::new(
                middleware::from_fn_with_state(auth, require_token).layer(layered),
            );
        }
        if let Some(cors) = options.cors {
            let inner = middleware::from_fn(drop_worker_cors_headers).layer(layered);
            let inner = cors.layer.layer(inner);
            layered = BoxCloneSyncService::new(
                middleware::from_fn_with_state(cors.origins, hide_from_disallowed_origins)
                    .layer(inner),
            );
        }
        Guarded::Layered(layered)
    };
    // Outermost: request id, metrics and access log (with the HTTP status of every answer),
    // then the gRPC form of refusals to gRPC calls.
    ObserveLayer::new(state).layer(guarded)
}

/// The router for the sidecar's own endpoints; every path it serves is in [`is_own_path`].
fn own_router(state: SharedState, docs: bool) -> Router {
    let mut router = Router::new()
        .route(PING_PATH, get(ping))
        .route(LIVE_PATH, get(live))
        .route(READY_PATH, get(ready))
        .route(HEALTH_CHECK_PATH, post(health_check))
        .route(HEALTH_WATCH_PATH, post(health_watch));
    if docs {
        router = router
            .route(OPENAPI_PATH, get(openapi_json))
            .route(DOCS_PATH, get(docs_page));
    }
    router
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        // Bodies stream to the worker; the upload limit is enforced while they do.
        .layer(DefaultBodyLimit::disable())
}

/// True for a path the sidecar answers itself (any other is forwarded).
fn is_own_path(path: &str, docs: bool) -> bool {
    is_health_path(path) || (docs && (path == OPENAPI_PATH || path == DOCS_PATH))
}

/// The sidecar's own endpoints, or forwarding.
#[derive(Clone)]
pub struct Routes {
    own: Router,
    docs: bool,
    state: SharedState,
}

impl Service<Request> for Routes {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Answer {
        if is_own_path(request.uri().path(), self.docs) {
            Box::pin(self.own.clone().oneshot(request))
        } else {
            let state = self.state.clone();
            Box::pin(async move { Ok(forward_request(state, request).await) })
        }
    }
}

/// [`Routes`] as they are, or behind the configured auth and CORS layers (boxed: they box per
/// request anyway, and only a port that configures them pays for it).
#[derive(Clone)]
pub enum Guarded {
    /// No auth, no CORS.
    Open(Routes),
    /// Behind auth and/or CORS.
    Layered(BoxCloneSyncService<Request, Response, Infallible>),
}

impl Service<Request> for Guarded {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self {
            Self::Open(routes) => routes.poll_ready(cx),
            Self::Layered(service) => service.poll_ready(cx),
        }
    }

    fn call(&mut self, request: Request) -> Answer {
        match self {
            Self::Open(routes) => routes.call(request),
            Self::Layered(service) => service.call(request),
        }
    }
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this sidecar endpoint",
    )
    .into_response()
}
