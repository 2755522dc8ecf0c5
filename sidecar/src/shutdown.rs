//! The pod-level lifecycle state: draining (requested by `POST /drain` or SIGTERM, after which
//! readiness is false at once) and drained (in-flight requests finished or the drain timeout
//! passed, which is when `POST /drain`, and so the preStop hook, returns).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Shared lifecycle flags; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    drain_requested: CancellationToken,
    drained: CancellationToken,
}

impl Lifecycle {
    /// A lifecycle that is not draining.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts draining (idempotent): readiness turns false immediately.
    pub fn request_drain(&self) {
        self.inner.drain_requested.cancel();
    }

    /// Draining has started.
    pub fn is_draining(&self) -> bool {
        self.inner.drain_requested.is_cancelled()
    }

    /// Resolves once draining has been requested.
    pub async fn drain_requested(&self) {
        self.inner.drain_requested.cancelled().await;
    }

    /// Records that draining finished.
    pub fn mark_drained(&self) {
        self.inner.drained.cancel();
    }

    /// Draining finished.
    pub fn is_drained(&self) -> bool {
        self.inner.drained.is_cancelled()
    }

    /// Resolves once draining has finished.
    pub async fn drained(&self) {
        self.inner.drained.cancelled().await;
    }
}
