//! Where forwarded requests go: [`Backend`] is all the HTTP layer and the worker supervisor know
//! of the model's processes (send a request to backend `i`, probe its readiness path), so the
//! routers run in tests against an in-memory fake ([`fake`]) and in the binary against the pooled
//! HTTP/1.1 client over Unix sockets or TCP ([`pooled`]).

pub mod credential;
#[cfg(test)]
pub mod fake;
pub mod http1;
pub mod pooled;
pub mod stream;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Body;
use http::uri::PathAndQuery;

/// A boxed, sendable future (what [`Backend`] methods return).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// Why a backend gave no response head (connection refused or reset, the worker died).
pub type BackendError = axum::BoxError;
/// A backend's response head, with its body still streaming.
pub type BackendResult = Result<http::Response<Body>, BackendError>;

/// The backends requests are forwarded to, indexed `0..len` like the dispatcher's slots: the
/// managed workers, or the one proxy-mode upstream.
pub trait Backend: Send + Sync + 'static {
    /// Sends `request` (its URI holds only the path and query) to backend `i`. The future does
    /// the exchange when polled and resolves with the response head.
    fn send(&self, i: usize, request: http::Request<Body>) -> BoxFuture<BackendResult>;

    /// Resolves to true when backend `i` answers `GET path` with 200 within `timeout`.
    fn probe(&self, i: usize, path: PathAndQuery, timeout: Duration) -> BoxFuture<bool>;

    /// Where backend `i` is, as `/status` shows it (`127.0.0.1:8000`, `unix:/path`).
    fn address(&self, i: usize) -> Option<String>;

    /// A new process is about to serve at backend `i`: later requests and probes must not reuse
    /// a kept-alive connection to the process that served there before (a request written to a
    /// connection whose close has not been noticed yet would fail). Nothing to do by default.
    fn renew(&self, _i: usize) {}
}
