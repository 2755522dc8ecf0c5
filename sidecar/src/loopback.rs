//! Admin endpoints that only the pod itself may call. The admin port binds every address so the
//! kubelet can probe it and Prometheus can scrape it, but `POST /drain` stops the model and
//! `/status` shows process ids and socket paths: those answer only to peers on loopback (the
//! preStop hook runs in the pod's network namespace and connects to 127.0.0.1). Anyone else gets
//! 403 with the usual `{"error": "..."}` body, and the refusal is logged with the peer's address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tracing::warn;

use crate::errors::ApiError;

/// The answer to a peer that is not on loopback.
pub const NOT_LOOPBACK_MESSAGE: &str =
    "this admin endpoint answers only to the pod itself (connect from 127.0.0.1 or ::1)";

/// True for 127.0.0.0/8, ::1, and IPv4 loopback written as an IPv6-mapped address.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Middleware: lets the request through only when the connection comes from loopback. A request
/// without a known peer address is refused (it cannot be shown to be local).
pub async fn loopback_only(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match peer {
        Some(addr) if is_loopback(addr.ip()) => next.run(request).await,
        _ => {
            let peer = peer.map_or_else(|| "unknown".to_string(), |a| a.to_string());
            warn!(
                peer = %peer,
                method = %request.method(),
                path = %request.uri().path(),
                "refused an admin request from outside the pod"
            );
            ApiError::new(StatusCode::FORBIDDEN, NOT_LOOPBACK_MESSAGE).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_addresses() {
        for local in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(local.parse().unwrap()), "{local}");
        }
        for remote in ["10.244.1.7", "0.0.0.0", "::", "fd00::2", "::ffff:10.0.0.1"] {
            assert!(!is_loopback(remote.parse().unwrap()), "{remote}");
        }
    }
}
