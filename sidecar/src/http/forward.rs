//! Forwarding: every public request the sidecar does not answer itself goes, unchanged but for
//! hop-by-hop headers, to the least-loaded ready backend. Both bodies stream; the upload limit is
//! counted as the request body streams; the backend slot is held until the response body ends, and
//! for a request the sidecar gave up on (504, client gone) until the backend has finished it, so
//! a backend never holds more requests than it has slots.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Buf;
use futures::FutureExt;
use http::header::{self, HeaderMap, HeaderName};
use http::uri::PathAndQuery;
use http::{HeaderValue, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;

use crate::backend::{BackendError, BackendResult, BoxFuture};
use crate::dispatch::{AcquireError, Permit};
use crate::http::grpc;
use crate::http::guarded::GuardedBody;
use crate::http::limits::{ClientFault, LimitedBody, declared_length};
use crate::http::reply::ApiError;
use crate::metrics::RejectReason;
use crate::server::CONNECTION_CLOSE;
use crate::state::SharedState;
use crate::trace::RequestTrace;
use crate::trace::span::{AttrValue, OpenSpan};
use modelserver_units::format_duration;

/// The only `TE` value HTTP/2 allows, which gRPC servers require.
const TE_TRAILERS: &str = "trailers";
/// Seconds a client is told to wait after a full queue.
pub const RETRY_AFTER_SECS: u32 = 1;
/// Most bytes of a body refused up front (413 on `Content-Length`) read and dropped so the client
/// can finish writing and read the answer; beyond it the connection is closed.
pub const REFUSED_BODY_DRAIN_BYTES: u64 = 8 * 1024 * 1024;
/// Longest time spent reading such a body.
pub const REFUSED_BODY_DRAIN_TIME: Duration = Duration::from_secs(5);
/// How long the response to an abandoned request (504, or the client gone) is still read, with
/// its slot held, after its head arrived; then the backend connection is closed.
pub const ABANDONED_RESPONSE_DRAIN: Duration = Duration::from_secs(10);

/// Which backend answered, for the access log (a response extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendId(pub usize);

/// Headers that describe one connection and are never forwarded (also listed, as text, in
/// [`is_hop_by_hop`]).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// True for a name in [`HOP_BY_HOP`], by its text (a length switch and a short compare).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Removes hop-by-hop headers, including those the `Connection` header names. Runs twice per
/// forwarded request, so it looks before it removes: one pass over the names present, each
/// checked by its text; only when one of them is hop-by-hop (rare) the listed names present are
/// removed, in the same order as removing every listed name would, so the headers left keep
/// their order.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // No hop-by-hop header, so no `Connection` header either: nothing to do.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let present: Vec<HeaderName> = HOP_BY_HOP
        .iter()
        .filter(|name| headers.contains_key(*name))
        .cloned()
        .collect();
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(present.iter()) {
        headers.remove(name);
    }
}

enum Failure {
    Acquire(AcquireError),
    Backend { backend: usize, error: BackendError },
}

/// Forwards the request to a backend: every public request the sidecar does not answer itself.
pub async fn forward_request(state: SharedState, request: Request) -> Response {
    let limits = state.limits;
    if let Some(len) = declared_length(request.headers())
        && len > limits.max_upload_size
    {
        state.metrics.reject(RejectReason::TooLarge);
        // Most clients write their whole body before reading: closing at once would reset the
        // connection under them before they read the 413. Read and drop the body (bounded),
        // unless the client waits for `100 Continue` and so sends no body at all.
        let mut response = too_large(limits.max_upload_size);
        if !expects_continue(request.headers()) {
            tokio::spawn(discard(request.into_body()));
        }
        response.headers_mut().insert(
            header::CONNECTION,
            HeaderValue::from_static(CONNECTION_CLOSE),
        );
        return response;
    }

    let (mut parts, body) = request.into_parts();
    // Present only on a sampled request: its spans' ids (with tracing off, not even looked up).
    let trace = match state.tracer {
        Some(_) => parts.extensions.remove::<RequestTrace>(),
        None => None,
    };
    let (body, tripped) = LimitedBody::new(body, limits.max_upload_size);
    let client_fault = body.client_fault();
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let waits_for_continue = expects_continue(&headers);
    // The sidecar already answered any `Expect: 100-continue` by reading the body.
    headers.remove(header::EXPECT);
    // gRPC goes to the backend over HTTP/2, where `TE: trailers` is required; everything else
    // over HTTP/1.1, with the Host an HTTP/2 client gave as its authority.
    let grpc = grpc::is_grpc(&headers);
    let version = if grpc {
        headers.insert(header::TE, HeaderValue::from_static(TE_TRAILERS));
        Version::HTTP_2
    } else {
        if !headers.contains_key(header::HOST)
            && let Some(authority) = parts.uri.authority()
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            headers.insert(header::HOST, host);
        }
        Version::HTTP_11
    };

    // The backend a request waits on, told to its supervisor when the request times out.
    let mut chosen = None;
    let budget = match grpc.then(|| grpc::timeout(&headers)).flatten() {
        Some(client_deadline) => client_deadline.min(limits.request_timeout),
        None => limits.request_timeout,
    };
    let deadline = tokio::time::Instant::now() + budget;
    // A request refused before it reaches a backend (queue full, waited too long, timed out in
    // the queue) still has its body on the connection: it is read and dropped (what has arrived
    // at once, the rest in the background), so the connection stays usable for the client's next
    // request.
    let mut refused_body = None;
    let mut queue_span = trace.as_ref().map(RequestTrace::queue_wait);
    let mut worker_span = None;
    let outcome = match tokio::time::timeout_at(deadline, state.dispatcher.acquire()).await {
        Ok(Ok(permit)) => {
            let backend = permit.backend();
            chosen = Some(backend);
            if let Some(trace) = &trace {
                let name = state.mode.backend_name(backend);
                if let Some(mut span) = queue_span.take() {
                    span.attribute("modelserver.backend", AttrValue::Text(name.clone()));
                }
                worker_span = Some(trace.worker(name));
            }
            let mut upstream = http::Request::new(Body::new(body));
            *upstream.method_mut() = parts.method;
            *upstream.uri_mut() = Uri::from(path_and_query);
            *upstream.version_mut() = version;
            *upstream.headers_mut() = headers;
            // The exchange runs in this task; when this handler gives up on it (504, or the
            // client gone) before the response head, the rest moves to a task of its own that
            // keeps the slot for as long as the backend still works on the request (see
            // `Exchange`).
            let exchange = Exchange {
                pending: Some(state.backend.send(permit.target(), upstream)),
                permit: Some(permit),
            };
            tokio::time::timeout_at(deadline, exchange)
                .await
                .map(|result| result.map_err(|error| Failure::Backend { backend, error }))
        }
        Ok(Err(error)) => {
            if let Some(span) = &mut queue_span {
                span.fail(error.to_string());
            }
            refused_body = Some(body);
            Ok(Err(Failure::Acquire(error)))
        }
        Err(elapsed) => {
            if let Some(span) = &mut queue_span {
                span.fail("the request timed out waiting for a worker slot");
            }
            refused_body = Some(body);
            Err(elapsed)
        }
    };
    drop(queue_span);
    if tripped.load(Ordering::Relaxed) {
        state.metrics.reject(RejectReason::TooLarge);
        if let Some(span) = &mut worker_span {
            span.fail("the request body exceeded the upload limit");
        }
        return too_large(limits.max_upload_size);
    }
    let mut response = answer(&state, outcome, chosen, budget, &client_fault, worker_span);
    if let Some(mut body) = refused_body
        && !body.is_end_stream()
    {
        if waits_for_continue {
            // The client waits for `100 Continue` before it sends the body, which it will not
            // get: the connection cannot be reused.
            response.headers_mut().insert(
                header::CONNECTION,
                HeaderValue::from_static(CONNECTION_CLOSE),
            );
        } else if !discard_arrived(&mut body) {
            tokio::spawn(discard(Body::new(body)));
        }
    }
    response
}

/// The response for a forwarding attempt's outcome: the backend's response, or the sidecar's
/// refusal or error (each counted in `rejected_total` by its reason).
fn answer(
    state: &SharedState,
    outcome: Result<Result<(Permit, Response), Failure>, tokio::time::error::Elapsed>,
    chosen: Option<usize>,
    budget: Duration,
    client_fault: &ClientFault,
    mut worker_span: Option<OpenSpan>,
) -> Response {
    let limits = state.limits;
    if let (Some(span), Ok(Err(Failure::Backend { error, .. }))) = (&mut worker_span, &outcome) {
        span.fail(crate::errors::error_chain(error.as_ref()));
    }
    if let (Some(span), Err(_)) = (&mut worker_span, &outcome) {
        span.fail("no response head within the request's time budget");
    }
    match outcome {
        Ok(Ok((permit, response))) => {
            let backend = permit.backend();
            if let Some(span) = &mut worker_span {
                span.event("response head");
                span.http_status(response.status(), 400);
            }
            let (mut parts, incoming) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            // Only the access log reads it (an extension costs an allocation).
            if state.access_log {
                parts.extensions.insert(BackendId(backend));
            }
            // The backend slot (and the `worker` span) are held until the body ends.
            let body = GuardedBody::wrap(incoming, (permit, worker_span));
            Response::from_parts(parts, body)
        }
        Ok(Err(Failure::Acquire(error))) => {
            let message = match error {
                AcquireError::QueueFull => format!(
                    "all workers are busy and the queue is full ({} waiting); retry later",
                    limits.max_queue
                ),
                AcquireError::Closed => error.to_string(),
                AcquireError::Overloaded { .. } | AcquireError::QueueWait { .. } => {
                    format!("{error}; retry later")
                }
            };
            if let Some(reason) = reject_reason(&error) {
                state.metrics.reject(reason);
            }
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
                .retry_after(RETRY_AFTER_SECS)
                .into_response()
        }
        Ok(Err(Failure::Backend { .. })) if client_fault.get().is_some() => {
            // The request failed because its body could not be read from the client: the
            // client's fault, not the worker's. (When the client is gone this answer is lost.)
            let reason = client_fault.get().map_or("", String::as_str);
            state.metrics.reject(RejectReason::ClientError);
            tracing::info!(error = %reason, "request body could not be read from the client");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {reason}"),
            )
            .into_response()
        }
        Ok(Err(Failure::Backend { backend, error })) => {
            state.metrics.reject(RejectReason::WorkerError);
            let name = state.mode.backend_name(backend);
            let error = crate::errors::error_chain(error.as_ref());
            tracing::warn!(backend = %name, error = %error, "backend failed before answering");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("{name} failed before answering: {error}"),
            )
            .into_response()
        }
        Err(_elapsed) => {
            state.metrics.reject(RejectReason::Timeout);
            // A gRPC client's own shorter deadline says nothing about the worker: only the
            // sidecar's request timeout reports it as possibly stuck.
            let message = if budget < limits.request_timeout {
                format!(
                    "no response within the call's deadline of {}",
                    format_duration(budget)
                )
            } else {
                if let Some(backend) = chosen {
                    state.dispatcher.report_stuck(backend);
                }
                format!(
                    "no response within the request timeout of {}",
                    format_duration(limits.request_timeout)
                )
            };
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, message).into_response()
        }
    }
}

/// The `rejected_total` reason of a request the queue refused (none while shutting down: that
/// is not a refusal by load).
fn reject_reason(error: &AcquireError) -> Option<RejectReason> {
    match error {
        AcquireError::QueueFull => Some(RejectReason::QueueFull),
        AcquireError::Overloaded { .. } => Some(RejectReason::Overloaded),
        AcquireError::QueueWait { .. } => Some(RejectReason::QueueWait),
        AcquireError::Closed => None,
    }
}

/// True when the client sent `Expect: 100-continue`.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// Reads and drops what of a refused request's body has already arrived, without waiting.
/// True when nothing is left to do: the body ended (a small body usually arrives with its head,
/// so no task is needed to drain it), failed, or passed [`REFUSED_BODY_DRAIN_BYTES`] (dropping it
/// then closes the connection).
fn discard_arrived<B>(body: &mut B) -> bool
where
    B: http_body::Body + Unpin,
{
    let mut seen: u64 = 0;
    loop {
        match body.frame().now_or_never() {
            Some(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    seen = seen.saturating_add(data.remaining() as u64);
                    if seen > REFUSED_BODY_DRAIN_BYTES {
                        return true;
                    }
                }
            }
            Some(Some(Err(_)) | None) => return true,
            None => return false,
        }
    }
}

/// Reads and drops a refused request's body, at most [`REFUSED_BODY_DRAIN_BYTES`] for at most
/// [`REFUSED_BODY_DRAIN_TIME`]; dropping it then lets the connection close.
async fn discard(mut body: Body) {
    let mut seen: u64 = 0;
    let drained = tokio::time::timeout(REFUSED_BODY_DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen = seen.saturating_add(data.len() as u64);
                if seen > REFUSED_BODY_DRAIN_BYTES {
                    return false;
                }
            }
        }
        true
    })
    .await;
    tracing::debug!(
        bytes = seen,
        complete = drained.unwrap_or(false),
        "refused request body discarded"
    );
}

/// What the exchange hands the handler: the slot and the response head, or the error.
type Exchanged = Result<(Permit, Response), BackendError>;

/// Sends one request to a backend, in the handler's task, and resolves to the response head
/// with the slot. Dropped before that (the handler answered 504, or its client left), it hands
/// the request in progress and the slot to [`finish_abandoned`] in a task of its own, so the
/// slot stays taken until the backend has finished.
struct Exchange {
    pending: Option<BoxFuture<BackendResult>>,
    permit: Option<Permit>,
}

impl std::future::Future for Exchange {
    type Output = Exchanged;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Exchanged> {
        let Some(pending) = self.pending.as_mut() else {
            return Poll::Ready(Err("the exchange was polled after it ended".into()));
        };
        let result = std::task::ready!(pending.as_mut().poll(cx));
        self.pending = None;
        let permit = self.permit.take();
        Poll::Ready(match (result, permit) {
            (Ok(response), Some(permit)) => Ok((permit, response)),
            (Ok(_), None) => Err("the exchange lost its slot".into()),
            // The slot is freed here: the backend connection failed or was closed.
            (Err(error), _) => Err(error),
        })
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let (Some(pending), Some(permit)) = (self.pending.take(), self.permit.take()) {
            // Outside a runtime (it is shutting down) there is nothing left to wait for.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(finish_abandoned(pending, permit));
            }
        }
    }
}

/// Finishes a request its handler gave up on: waits for the response and reads it to its end
/// (dropping it), for at most [`ABANDONED_RESPONSE_DRAIN`] after its head, after which the
/// connection to the backend is closed; the slot is freed then, or when the exchange fails.
async fn finish_abandoned(pending: BoxFuture<BackendResult>, permit: Permit) {
    let Ok(response) = pending.await else {
        return;
    };
    let backend = permit.backend();
    let mut body = response.into_body();
    let drained = tokio::time::timeout(ABANDONED_RESPONSE_DRAIN, async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
    tracing::debug!(
        backend,
        finished = drained.is_ok(),
        "abandoned response read; slot freed"
    );
    drop(permit);
}

fn too_large(limit: u64) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds the upload limit of {limit} bytes"),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_check_knows_every_listed_name() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
        }
        assert!(!is_hop_by_hop(&header::CONTENT_TYPE));
        assert!(!is_hop_by_hop(&HeaderName::from_static("x-connection")));
    }

    #[test]
    fn leaves_headers_without_hop_by_hop_ones_alone() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        h.append("x-many", "1".parse().unwrap());
        h.append("x-many", "2".parse().unwrap());
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn strips_connection_named_headers_in_any_case() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, "Keep-Alive, X-One".parse().unwrap());
        h.append(header::CONNECTION, "x-two".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-one", "1".parse().unwrap());
        h.insert("x-two", "2".parse().unwrap());
        h.insert("x-three", "3".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-three"]);
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "close, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        h.insert("x-request-id", "abc".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["content-type", "x-request-id"]);
    }
}
