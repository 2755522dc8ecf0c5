//! The HTTP behaviours of both ports, in process: each test builds the ports' services as the
//! runner does, over an in-memory [`FakeBackend`], and sends requests with `oneshot`. The process
//! tests in `sidecar/tests` keep what needs the real binary (signals, exit codes, real workers,
//! sockets).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

use super::admin::admin_router;
use super::auth::{AuthToken, X_AUTH_TOKEN};
use super::cors::policy;
use super::public::{PublicOptions, PublicService, public_service};
use crate::backend::fake::FakeBackend;
use crate::config::CorsArgs;
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;
use crate::server::PortService;
use crate::shutdown::Lifecycle;
use crate::state::{AppState, Limits, Mode, SharedState};

const TOKEN: &str = "s3cret-token";
const ALLOWED_ORIGIN: &str = "https://app.example.com";
/// Budget for anything that should happen "soon".
const DEADLINE: Duration = Duration::from_secs(10);

fn limits() -> Limits {
    Limits {
        max_upload_size: 1024,
        request_timeout: Duration::from_secs(30),
        per_backend: 4,
        max_queue: 8,
    }
}

/// The managed-mode state over `fake` (with `backends` backends), every backend in rotation.
fn state(fake: &Arc<FakeBackend>, backends: usize, limits: Limits) -> SharedState {
    state_in(Mode::Managed, fake, backends, limits, true)
}

/// The state over `fake`, its backends in rotation or not yet.
fn state_in(
    mode: Mode,
    fake: &Arc<FakeBackend>,
    backends: usize,
    limits: Limits,
    in_rotation: bool,
) -> SharedState {
    let dispatcher = Dispatcher::new(backends, limits.per_backend, limits.max_queue);
    for i in 0..backends {
        dispatcher.set_ready(i, in_rotation);
    }
    Arc::new(AppState {
        mode,
        dispatcher,
        backend: fake.clone(),
        limits,
        lifecycle: Lifecycle::new(),
        metrics: Metrics::new().unwrap(),
        workers: None,
        access_log: false,
        tracer: None,
    })
}

fn cors_args(origins: &[&str]) -> CorsArgs {
    CorsArgs {
        allow_origins: origins.iter().map(ToString::to_string).collect(),
        allow_methods: vec!["GET".into(), "POST".into()],
        allow_headers: vec!["Content-Type".into(), "Authorization".into()],
        allow_credentials: false,
        max_age: Duration::from_secs(600),
    }
}

/// A full answer: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn cors_headers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .headers
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k.starts_with("access-control-"))
            .collect();
        names.sort();
        names
    }
}

async fn send(service: &impl PortService, request: Request<Body>) -> Answer {
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(service: &impl PortService, path: &str) -> Answer {
    send(service, Request::get(path).body(Body::empty()).unwrap()).await
}

/// Waits until `condition` holds, failing the test after [`DEADLINE`].
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A fake whose requests wait until the test adds permits to the returned gate.
fn gated(backends: usize) -> (Arc<FakeBackend>, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let fake = FakeBackend::new(backends, move |_, _| {
        let held = held.clone();
        async move {
            held.acquire().await.unwrap().forget();
            Ok(http::Response::new(Body::from("done")))
        }
    });
    (Arc::new(fake), gate)
}

#[tokio::test]
async fn forwards_the_request_and_keeps_or_adds_the_request_id() {
    let fake = Arc::new(FakeBackend::ok(1));
    let router = public_service(state(&fake, 1, limits()), PublicOptions::default());
    let request = Request::post("/predict?x=1")
        .header("x-request-id", "abc-123")
        .header(header::CONNECTION, "keep-alive, x-private")
        .header("x-private", "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let answer = send(&router, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "backend 0: /predict?x=1");
    assert_eq!(answer.header("x-request-id"), Some("abc-123"));
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].headers["x-request-id"], "abc-123");
    assert_eq!(seen[0].headers[header::CONTENT_TYPE], "application/json");
    for hop in ["connection", "x-private"] {
        assert!(!seen[0].headers.contains_key(hop), "{hop} forwarded");
    }

    let answer = get(&router, "/predict").await;
    let id = answer.header("x-request-id").unwrap().to_string();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    assert_eq!(fake.seen()[1].headers["x-request-id"], id.as_str());
}

#[tokio::test]
async fn auth_refuses_without_the_token_and_strips_it_before_forwarding() {
    let fake = Arc::new(FakeBackend::ok(1));
    let state = state(&fake, 1, limits());
    let auth = AuthToken::new(TOKEN, state.metrics.clone());
    let options = PublicOptions {
        auth: Some(auth.clone()),
        ..PublicOptions::default()
    };
    let router = public_service(state.clone(), options);

    for wrong in [None, Some("Bearer nope"), Some("Basic s3cret-token")] {
        let mut request = Request::post("/predict");
        if let Some(value) = wrong {
            request = request.header(header::AUTHORIZATION, value);
        }
        let answer = send(&router, request.body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        assert!(answer.json()["error"].as_str().unwrap().contains("token"));
    }
    assert!(
        fake.seen().is_empty(),
        "nothing refused reaches the backend"
    );
    let metrics = state.metrics.render(state.snapshot());
    assert!(
        metrics.contains("modelserver_rejected_total{reason=\"unauthorized\"} 3"),
        "{metrics}"
    );
    for path in ["/ping", "/v2/health/live", "/v2/health/ready"] {
        assert_eq!(get(&router, path).await.status, StatusCode::OK, "{path}");
    }

    let bearer = Request::post("/predict")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, bearer).await.status, StatusCode::OK);
    let x_token = Request::post("/predict")
        .header(X_AUTH_TOKEN, TOKEN)
        .header(header::AUTHORIZATION, "Bearer other")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, x_token).await.status, StatusCode::OK);
    for seen in fake.seen() {
        assert!(!seen.headers.contains_key(header::AUTHORIZATION));
        assert!(!seen.headers.contains_key(X_AUTH_TOKEN));
    }

    // With passthrough the model sees the token headers unchanged.
    let options = PublicOptions {
        auth: Some(auth.with_passthrough(true)),
        ..PublicOptions::default()
    };
    let router = public_service(state, options);
    let request = Request::post("/predict")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, request).await.status, StatusCode::OK);
    let last = fake.seen().pop().unwrap();
    assert_eq!(
        last.headers[header::AUTHORIZATION],
        format!("Bearer {TOKEN}").as_str()
    );
}

#[tokio::test]
async fn cors_preflights_are_answered_by_the_sidecar_for_allowed_origins_only() {
    let fake = Arc::new(FakeBackend::ok(1));
    let options = PublicOptions {
        cors: policy(&cors_args(&[ALLOWED_ORIGIN])).unwrap(),
        ..PublicOptions::default()
    };
    let router = public_service(state(&fake, 1, limits()), options);
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/predict")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .body(Body::empty())
            .unwrap()
    };
    let answer = send(&router, preflight(ALLOWED_ORIGIN)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    assert!(
        answer
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(answer.header("access-control-max-age"), Some("600"));

    let answer = send(&router, preflight("https://evil.example.com")).await;
    assert_eq!(answer.cors_headers(), Vec::<String>::new());
    assert!(fake.seen().is_empty(), "preflights never reach the backend");
}

#[tokio::test]
async fn with_cors_on_the_sidecars_cors_headers_replace_the_backends() {
    let fake = Arc::new(FakeBackend::new(1, |_, _| async {
        let response = http::Response::builder()
            .header("access-control-allow-origin", "*")
            .header("access-control-allow-credentials", "true")
            .header("access-control-expose-headers", "x-secret")
            .header("x-model", "1")
            .body(Body::from("ok"))
            .unwrap();
        Ok(response)
    }));
    let with_origin = |origin: &str| {
        Request::post("/predict")
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap()
    };
    let options = PublicOptions {
        cors: policy(&cors_args(&[ALLOWED_ORIGIN])).unwrap(),
        ..PublicOptions::default()
    };
    let router = public_service(state(&fake, 1, limits()), options);
    let answer = send(&router, with_origin(ALLOWED_ORIGIN)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    assert_eq!(
        answer.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(answer.header("access-control-allow-credentials"), None);
    assert_eq!(answer.header("x-model"), Some("1"), "other headers kept");

    let answer = send(&router, with_origin("https://evil.example.com")).await;
    assert_eq!(answer.cors_headers(), Vec::<String>::new());

    // With CORS off the backend's headers pass through unchanged.
    let router = public_service(state(&fake, 1, limits()), PublicOptions::default());
    let answer = send(&router, with_origin("https://evil.example.com")).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
}

#[tokio::test]
async fn an_oversized_body_gets_413_declared_or_streamed() {
    // The fake reads the whole body, as a worker does, and fails when the stream is cut off.
    let fake = Arc::new(FakeBackend::new(
        1,
        |_, request: Request<Body>| async move {
            let body = request.into_body().collect().await?.to_bytes();
            Ok(http::Response::new(Body::from(format!(
                "{} bytes",
                body.len()
            ))))
        },
    ));
    let state = state(&fake, 1, limits());
    let router = public_service(state.clone(), PublicOptions::default());

    let declared = Request::post("/predict")
        .header(header::CONTENT_LENGTH, "1025")
        .body(Body::from(vec![b'x'; 1025]))
        .unwrap();
    let answer = send(&router, declared).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(answer.json()["error"].as_str().unwrap().contains("1024"));
    assert!(fake.seen().is_empty(), "refused before forwarding");

    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..5).map(|_| Ok(Bytes::from(vec![b'x'; 300]))).collect();
    let streamed = Request::post("/predict")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    let answer = send(&router, streamed).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(fake.seen().len(), 1, "forwarded until it crossed the limit");

    let at_limit = Request::post("/predict")
        .body(Body::from(vec![b'x'; 1024]))
        .unwrap();
    let answer = send(&router, at_limit).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "1024 bytes");
    let metrics = state.metrics.render(state.snapshot());
    assert!(
        metrics.contains("modelserver_rejected_total{reason=\"too_large\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let (fake, gate) = gated(1);
    let limits = Limits {
        per_backend: 1,
        max_queue: 1,
        ..limits()
    };
    let state = state(&fake, 1, limits);
    let router = public_service(state.clone(), PublicOptions::default());
    let held = tokio::spawn(send_owned(router.clone(), "/first"));
    until("the first request to reach the backend", || {
        fake.seen().len() == 1
    })
    .await;
    let queued = tokio::spawn(send_owned(router.clone(), "/second"));
    until("the second request to queue", || {
        state.dispatcher.snapshot().queued == 1
    })
    .await;

    let answer = get(&router, "/third").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(answer.json()["error"].as_str().unwrap().contains("queue"));

    gate.add_permits(2);
    assert_eq!(held.await.unwrap(), StatusCode::OK);
    assert_eq!(queued.await.unwrap(), StatusCode::OK);
    let paths: Vec<String> = fake.seen().iter().map(|s| s.uri.to_string()).collect();
    assert_eq!(
        paths,
        vec!["/first", "/second"],
        "the refused one never went"
    );
    let metrics = state.metrics.render(state.snapshot());
    assert!(
        metrics.contains("modelserver_rejected_total{reason=\"queue_full\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_queue_bounded_by_time_refuses_at_arrival_and_after_the_wait_with_retry_after() {
    let (fake, gate) = gated(1);
    let limits = Limits {
        per_backend: 1,
        max_queue: 1024,
        ..limits()
    };
    // 20 ms of service per request and a 30 ms bound: one waiter fits, a second would not.
    let dispatcher = Dispatcher::new(1, 1, 1024).with_max_queue_wait(Duration::from_millis(30));
    dispatcher.set_ready(0, true);
    dispatcher.set_service_time(Duration::from_millis(20));
    let state = Arc::new(AppState {
        mode: Mode::Managed,
        dispatcher,
        backend: fake.clone(),
        limits,
        lifecycle: Lifecycle::new(),
        metrics: Metrics::new().unwrap(),
        workers: None,
        access_log: false,
        tracer: None,
    });
    let router = public_service(state.clone(), PublicOptions::default());
    let held = tokio::spawn(send_owned(router.clone(), "/first"));
    until("the first request to reach the backend", || {
        fake.seen().len() == 1
    })
    .await;
    let queued = tokio::spawn(send_owned(router.clone(), "/second"));
    until("the second request to queue", || {
        state.dispatcher.snapshot().queued == 1
    })
    .await;

    // Its wait would be 40 ms: refused at once, with the estimate and Retry-After.
    let answer = get(&router, "/third").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.header("retry-after"), Some("1"));
    let error = answer.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("the wait would be about 40ms"), "{error}");
    // The queued one waits its 30 ms, then leaves with a 503 too; the backend never saw either.
    assert_eq!(queued.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    gate.add_permits(1);
    assert_eq!(held.await.unwrap(), StatusCode::OK);
    let paths: Vec<String> = fake.seen().iter().map(|s| s.uri.to_string()).collect();
    assert_eq!(paths, vec!["/first"]);
    let metrics = state.metrics.render(state.snapshot());
    for reason in ["overloaded", "queue_wait"] {
        assert!(
            metrics.contains(&format!(
                "modelserver_rejected_total{{reason=\"{reason}\"}} 1"
            )),
            "{metrics}"
        );
    }
}

async fn send_owned(service: PublicService, path: &'static str) -> StatusCode {
    send(&service, Request::get(path).body(Body::empty()).unwrap())
        .await
        .status
}

#[tokio::test]
async fn no_response_head_within_the_request_timeout_gets_504_and_the_slot_stays_taken() {
    let (fake, gate) = gated(1);
    let limits = Limits {
        request_timeout: Duration::from_millis(100),
        ..limits()
    };
    let state = state(&fake, 1, limits);
    let router = public_service(state.clone(), PublicOptions::default());
    let answer = get(&router, "/slow").await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(answer.json()["error"].as_str().unwrap().contains("100ms"));
    // The backend still works on it: its slot is held until it answers.
    assert_eq!(state.dispatcher.snapshot().in_flight(), 1);
    gate.add_permits(1);
    until("the abandoned request to free its slot", || {
        state.dispatcher.snapshot().in_flight() == 0
    })
    .await;
    let metrics = state.metrics.render(state.snapshot());
    assert!(
        metrics.contains("modelserver_rejected_total{reason=\"timeout\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_whose_client_leaves_before_the_answer_is_counted_as_499() {
    let (fake, gate) = gated(1);
    let state = state(&fake, 1, limits());
    let router = public_service(state.clone(), PublicOptions::default());
    let pending = tokio::spawn(send_owned(router, "/slow"));
    until("the request to reach the backend", || {
        state.dispatcher.snapshot().in_flight() == 1
    })
    .await;
    // The client leaves: its connection (here, the handler's future) is dropped unanswered.
    pending.abort();
    assert!(pending.await.unwrap_err().is_cancelled());
    let metrics = state.metrics.render(state.snapshot());
    assert!(
        metrics.contains("modelserver_requests_total{code=\"499\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("modelserver_request_duration_seconds_count 1"),
        "{metrics}"
    );
    gate.add_permits(1);
}

#[tokio::test]
async fn a_backend_that_fails_before_answering_gives_502_naming_it() {
    let fake = Arc::new(FakeBackend::new(2, |_, _| async {
        Err(std::io::Error::other("connection reset by peer").into())
    }));
    let router = public_service(state(&fake, 2, limits()), PublicOptions::default());
    let answer = get(&router, "/predict").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    let error = answer.json()["error"].as_str().unwrap().to_string();
    let backend = fake.seen()[0].backend;
    assert_eq!(
        error,
        format!("worker {backend} failed before answering: connection reset by peer")
    );
}

#[tokio::test]
async fn readiness_waits_for_every_backend_then_needs_one_and_turns_false_on_drain() {
    let fake = Arc::new(FakeBackend::ok(2));
    let state = state_in(Mode::Managed, &fake, 2, limits(), false);
    let public = public_service(state.clone(), PublicOptions::default());
    let admin = admin_router(state.clone());
    let ready = |public: Answer, admin: Answer| {
        assert_eq!(public.status, admin.status);
        assert_eq!(public.json()["ready"], admin.json()["ready"]);
        (public.status, admin.json()["draining"].as_bool().unwrap())
    };

    let not_ready = (StatusCode::SERVICE_UNAVAILABLE, false);
    state.dispatcher.set_ready(0, true);
    let at_start = ready(
        get(&public, "/v2/health/ready").await,
        get(&admin, "/readyz").await,
    );
    assert_eq!(at_start, not_ready, "one of two has loaded");
    state.dispatcher.set_ready(1, true);
    let both = ready(
        get(&public, "/v2/health/ready").await,
        get(&admin, "/readyz").await,
    );
    assert_eq!(both, (StatusCode::OK, false));
    state.dispatcher.set_ready(0, false);
    let one = ready(
        get(&public, "/v2/health/ready").await,
        get(&admin, "/readyz").await,
    );
    assert_eq!(
        one,
        (StatusCode::OK, false),
        "one serving keeps the pod ready"
    );
    state.dispatcher.set_ready(1, false);
    let none = ready(
        get(&public, "/v2/health/ready").await,
        get(&admin, "/readyz").await,
    );
    assert_eq!(none, not_ready);

    state.dispatcher.set_ready(0, true);
    state.lifecycle.request_drain();
    let draining = ready(
        get(&public, "/v2/health/ready").await,
        get(&admin, "/readyz").await,
    );
    assert_eq!(draining, (StatusCode::SERVICE_UNAVAILABLE, true));
    // Liveness does not depend on readiness.
    for path in ["/ping", "/v2/health/live"] {
        assert_eq!(get(&public, path).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(get(&admin, "/livez").await.status, StatusCode::OK);
    let metrics = get(&admin, "/metrics").await;
    assert!(metrics.text().contains("modelserver_draining 1"));
    assert!(metrics.text().contains("modelserver_ready 0"));
    assert!(
        fake.seen().is_empty(),
        "health paths are answered by the sidecar"
    );
}

#[tokio::test]
async fn docs_are_served_when_enabled_and_forwarded_otherwise() {
    let fake = Arc::new(FakeBackend::ok(1));
    let options = PublicOptions {
        docs: true,
        ..PublicOptions::default()
    };
    let router = public_service(state(&fake, 1, limits()), options);
    let spec = get(&router, "/openapi.json").await;
    assert_eq!(spec.status, StatusCode::OK);
    assert_eq!(spec.json()["openapi"], "3.1.0");
    assert!(spec.json()["paths"]["/v2/health/ready"].is_object());
    let page = get(&router, "/docs").await;
    assert!(page.text().contains("/openapi.json") && page.text().contains("/v2/health/ready"));
    assert!(fake.seen().is_empty());

    let router = public_service(state(&fake, 1, limits()), PublicOptions::default());
    let answer = get(&router, "/openapi.json").await;
    assert_eq!(answer.text(), "backend 0: /openapi.json", "forwarded");
}

#[tokio::test]
async fn only_the_sidecars_own_paths_exactly_are_answered_by_the_sidecar() {
    let fake = Arc::new(FakeBackend::ok(1));
    let router = public_service(state(&fake, 1, limits()), PublicOptions::default());
    for path in [
        "/ping/",
        "/PING",
        "/v2/health/ready/x",
        "/v2/health",
        "/docs",
    ] {
        let answer = get(&router, path).await;
        assert_eq!(
            answer.text(),
            format!("backend 0: {path}"),
            "{path} is forwarded"
        );
    }
    let answer = get(&router, "/ping?x=1").await;
    assert_eq!(
        answer.json()["message"],
        "OK",
        "a query does not change the path"
    );
    assert_eq!(fake.seen().len(), 5);
}

#[tokio::test]
async fn the_sidecars_own_paths_refuse_other_methods_with_json() {
    let fake = Arc::new(FakeBackend::ok(1));
    let router = public_service(state(&fake, 1, limits()), PublicOptions::default());
    let answer = send(
        &router,
        Request::post("/v2/health/ready")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer.json()["error"].is_string());
    assert!(fake.seen().is_empty());
}

#[tokio::test]
async fn proxy_mode_status_names_the_upstream() {
    let fake = Arc::new(FakeBackend::ok(1));
    let state = state_in(Mode::Proxy, &fake, 1, limits(), true);
    let mut request = Request::get("/status").body(Body::empty()).unwrap();
    let peer: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let status = send(&admin_router(state), request).await.json();
    assert_eq!(status["mode"], "proxy");
    assert_eq!(status["ready"], true);
    assert_eq!(status["workers"][0]["upstream"], "fake-0");
    assert_eq!(status["workers"][0]["ready"], true);
}

/// The state over `fake` with tracing on (ratio 0: only a caller's sampled flag traces); the
/// exporter is not run, so the spans just wait in its queue.
fn traced_state(fake: &Arc<FakeBackend>) -> SharedState {
    let metrics = Metrics::new().unwrap();
    let args = modelserver_contract::cli::TraceArgs {
        otlp_endpoint: Some("http://127.0.0.1:9".into()),
        trace_sampling: modelserver_contract::values::SamplingRatio::NEVER,
        name: Some("iris".into()),
        pod_name: None,
        pod_namespace: None,
    };
    let (tracer, _exporter) = crate::trace::Tracer::new(&args, &metrics).unwrap();
    let dispatcher = Dispatcher::new(1, 4, 8);
    dispatcher.set_ready(0, true);
    Arc::new(AppState {
        mode: Mode::Managed,
        dispatcher,
        backend: fake.clone(),
        limits: limits(),
        lifecycle: Lifecycle::new(),
        metrics,
        workers: None,
        access_log: false,
        tracer: Some(tracer),
    })
}

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_grpc_call_carries_the_trace_context_to_the_worker() {
    let fake = Arc::new(FakeBackend::ok(1));
    let router = public_service(traced_state(&fake), PublicOptions::default());
    let request = Request::post("/inference.GRPCInferenceService/ModelInfer")
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("traceparent", CALLER)
        .header("tracestate", "rojo=1")
        .body(Body::from("grpc-frame"))
        .unwrap();
    let answer = send(&router, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let seen = fake.seen();
    let headers = &seen[0].headers;
    let forwarded = headers["traceparent"].to_str().unwrap();
    assert!(
        forwarded.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && forwarded.ends_with("-01"),
        "{forwarded}"
    );
    assert!(
        !forwarded.contains("00f067aa0ba902b7"),
        "the sidecar's span is the parent"
    );
    assert_eq!(headers["tracestate"], "rojo=1");
}

#[tokio::test]
async fn with_tracing_off_the_context_passes_unchanged() {
    let fake = Arc::new(FakeBackend::ok(1));
    let router = public_service(state(&fake, 1, limits()), PublicOptions::default());
    let request = Request::post("/predict")
        .header("traceparent", CALLER)
        .header("tracestate", "rojo=1")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(&router, request).await.status, StatusCode::OK);
    let seen = fake.seen();
    assert_eq!(seen[0].headers["traceparent"], CALLER);
    assert_eq!(seen[0].headers["tracestate"], "rojo=1");
}
