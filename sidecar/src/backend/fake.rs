//! An in-memory [`Backend`] for tests: every request is answered by a closure (at once, after a
//! gate opens, or with an error), every request head it receives is recorded, and its probes
//! answer what the test sets.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Uri};

use super::{Backend, BackendResult, BoxFuture};

type Handler = dyn Fn(usize, Request<Body>) -> BoxFuture<BackendResult> + Send + Sync;

/// A request head as the backend received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which backend got it.
    pub backend: usize,
    /// Its method.
    pub method: Method,
    /// Its URI (path and query only).
    pub uri: Uri,
    /// Its headers, after the sidecar's middleware.
    pub headers: HeaderMap,
}

/// Backends answered by a closure.
pub struct FakeBackend {
    handler: Box<Handler>,
    probes: Vec<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeBackend {
    /// `count` backends whose requests `handler` answers; every probe answers 200.
    pub fn new<F, Fut>(count: usize, handler: F) -> Self
    where
        F: Fn(usize, Request<Body>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BackendResult> + Send + 'static,
    {
        Self {
            handler: Box::new(move |i, request| Box::pin(handler(i, request))),
            probes: (0..count).map(|_| AtomicBool::new(true)).collect(),
            seen: Arc::default(),
        }
    }

    /// `count` backends that answer 200 with the body `backend <i>: <path>`.
    pub fn ok(count: usize) -> Self {
        Self::new(count, |i, request: Request<Body>| async move {
            Ok(http::Response::new(Body::from(format!(
                "backend {i}: {}",
                request.uri()
            ))))
        })
    }

    /// Every request head received so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What a probe of backend `i` answers from now on.
    pub fn set_probe(&self, i: usize, ready: bool) {
        if let Some(p) = self.probes.get(i) {
            p.store(ready, Ordering::SeqCst);
        }
    }
}

impl Backend for FakeBackend {
    fn send(&self, i: usize, request: Request<Body>) -> BoxFuture<BackendResult> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Seen {
                backend: i,
                method: request.method().clone(),
                uri: request.uri().clone(),
                headers: request.headers().clone(),
            });
        (self.handler)(i, request)
    }

    fn probe(&self, i: usize, _path: PathAndQuery, _timeout: Duration) -> BoxFuture<bool> {
        let ready = self.probes.get(i).is_some_and(|p| p.load(Ordering::SeqCst));
        Box::pin(std::future::ready(ready))
    }

    fn address(&self, i: usize) -> Option<String> {
        (i < self.probes.len()).then(|| format!("fake-{i}"))
    }
}
