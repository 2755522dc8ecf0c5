//! The upload limit, enforced while the body streams: a declared `Content-Length` over the limit
//! is refused before anything is read; any body (chunked included) is counted frame by frame and
//! cut off with an error the moment it crosses the limit, which aborts the worker's request.
//! An error reading the body from the client (a malformed chunk, the client gone mid-upload) is
//! recorded too, so the request is blamed on the client and not on the worker.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body::{Body, Frame, SizeHint};

/// The error a cut-off body yields.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the upload limit of {limit} bytes")]
pub struct BodyTooLarge {
    /// The limit in bytes.
    pub limit: u64,
}

/// The declared body length, if any and valid.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Why reading the body from the client failed, once it has; shared with the handler.
pub type ClientFault = Arc<OnceLock<String>>;

/// A body that errors once more than `limit` bytes have passed, and records that it did.
pub struct LimitedBody<B> {
    inner: B,
    limit: u64,
    seen: u64,
    tripped: Arc<AtomicBool>,
    client_fault: ClientFault,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`; the returned flag turns true when the limit is crossed.
    pub fn new(inner: B, limit: u64) -> (Self, Arc<AtomicBool>) {
        let tripped = Arc::new(AtomicBool::new(false));
        (
            Self {
                inner,
                limit,
                seen: 0,
                tripped: tripped.clone(),
                client_fault: ClientFault::default(),
            },
            tripped,
        )
    }

    /// Set with the error's text when reading `inner` (the client's body) fails.
    pub fn client_fault(&self) -> ClientFault {
        self.client_fault.clone()
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.tripped.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit: this.limit }))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.limit {
                        this.tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge {
                            limit: this.limit,
                        }))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: axum::BoxError = e.into();
                let _ = this
                    .client_fault
                    .set(crate::errors::error_chain(e.as_ref()));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn chunks(sizes: &[usize]) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = sizes
            .iter()
            .map(|n| Ok(Frame::data(Bytes::from(vec![b'x'; *n]))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn passes_bodies_up_to_the_limit() {
        let (body, tripped) = LimitedBody::new(chunks(&[4, 4, 2]), 10);
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected.len(), 10);
        assert!(!tripped.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn cuts_off_a_body_that_crosses_the_limit() {
        let (body, tripped) = LimitedBody::new(chunks(&[4, 4, 4, 4]), 10);
        let err = body.collect().await.unwrap_err();
        assert!(
            err.to_string().contains("upload limit of 10 bytes"),
            "{err}"
        );
        assert!(tripped.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn records_an_error_reading_the_client_body() {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Err(std::io::Error::other("invalid chunk size")),
        ];
        let (body, tripped) = LimitedBody::new(StreamBody::new(futures::stream::iter(frames)), 10);
        let fault = body.client_fault();
        assert!(body.collect().await.is_err());
        assert_eq!(fault.get().map(String::as_str), Some("invalid chunk size"));
        assert!(!tripped.load(Ordering::Relaxed));
    }

    #[test]
    fn reads_declared_length() {
        let mut h = HeaderMap::new();
        assert_eq!(declared_length(&h), None);
        h.insert(CONTENT_LENGTH, "42".parse().unwrap());
        assert_eq!(declared_length(&h), Some(42));
    }
}
