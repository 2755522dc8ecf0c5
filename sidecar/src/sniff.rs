//! Which HTTP version a new public connection speaks. HTTP/2 over cleartext (gRPC clients,
//! `curl --http2-prior-knowledge`) opens with the fixed connection preface; anything else is
//! HTTP/1.1. The bytes read to decide are replayed to the protocol's parser by [`Replay`].
//!
//! An HTTP/1.1 request asking to `Upgrade: h2c` is served over HTTP/1.1: the upgrade is declined,
//! as RFC 9110 allows, and RFC 9113 deprecates that mechanism in favour of prior knowledge.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or 1.1.
    Http1,
    /// HTTP/2 with prior knowledge.
    Http2,
}

/// Reads from `io` until the first bytes decide the protocol (at most the preface's 24 bytes)
/// and returns it with those bytes. A connection closed before deciding is HTTP/1 (its parser
/// then sees the end).
pub async fn sniff<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<(Protocol, Vec<u8>)> {
    let mut seen = Vec::with_capacity(HTTP2_PREFACE.len());
    loop {
        if !HTTP2_PREFACE.starts_with(&seen) {
            return Ok((Protocol::Http1, seen));
        }
        if seen.len() == HTTP2_PREFACE.len() {
            return Ok((Protocol::Http2, seen));
        }
        let mut chunk = [0u8; HTTP2_PREFACE.len()];
        let wanted = HTTP2_PREFACE.len() - seen.len();
        let read = io.read(&mut chunk[..wanted]).await?;
        if read == 0 {
            return Ok((Protocol::Http1, seen));
        }
        seen.extend_from_slice(&chunk[..read]);
    }
}

/// A stream whose first bytes were already read: they are read again first.
pub struct Replay<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S> Replay<S> {
    /// `inner`, with `prefix` read before anything from it.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            offset: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.offset < this.prefix.len() {
            let rest = &this.prefix[this.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.offset += n;
            if this.offset == this.prefix.len() {
                this.prefix = Vec::new();
                this.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn sniffed(input: &[u8]) -> (Protocol, Vec<u8>, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(64);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // Byte by byte: the sniffer must cope with the preface arriving in pieces.
            for b in input {
                client.write_all(&[b]).await.unwrap();
            }
        });
        let mut server = server;
        let (protocol, seen) = sniff(&mut server).await.unwrap();
        writer.await.unwrap();
        let mut replay = Replay::new(seen.clone(), server);
        let mut all = Vec::new();
        replay.read_to_end(&mut all).await.unwrap();
        (protocol, seen, all)
    }

    #[tokio::test]
    async fn the_preface_means_http2_and_every_byte_is_replayed() {
        let mut input = HTTP2_PREFACE.to_vec();
        input.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        let (protocol, seen, all) = sniffed(&input).await;
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(seen, HTTP2_PREFACE);
        assert_eq!(all, input);
    }

    #[tokio::test]
    async fn anything_else_is_http1_and_replayed_whole() {
        for input in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"POST /predict HTTP/1.1\r\n\r\n",
            b"PRI",
            b"",
        ] {
            let (protocol, seen, all) = sniffed(input).await;
            assert_eq!(protocol, Protocol::Http1, "{input:?}");
            assert!(
                seen.len() <= HTTP2_PREFACE.len() && input.starts_with(&seen),
                "{seen:?}"
            );
            assert_eq!(all, input);
        }
    }
}
