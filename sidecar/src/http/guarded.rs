//! A response body that holds something until the body ends: a backend slot, an open span.
//! Dropping the body (after its last byte was written, or with its connection) drops the guard.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// `inner`, holding `guard` for as long as it lives.
pub struct GuardedBody<G> {
    inner: Body,
    _guard: G,
}

impl<G: Send + Unpin + 'static> GuardedBody<G> {
    /// `inner` as a [`Body`] that holds `guard` until it is dropped.
    pub fn wrap(inner: Body, guard: G) -> Body {
        Body::new(Self {
            inner,
            _guard: guard,
        })
    }
}

impl<G: Unpin> http_body::Body for GuardedBody<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
