//! Admin endpoints that only the pod itself may call. The admin port binds every address so the
//! kubelet can probe it and Prometheus can scrape it, but `POST /drain` stops the model and
//! `/status` shows process ids and socket paths: those answer only to peers on loopback (the
//! preStop hook runs in the pod's network namespace and connects to 127.0.0.1), or to a peer
//! whose address is the very address the connection was accepted on (what `drain` looks like
//! when `MODELSERVER_BIND` is the pod IP: such a connection can only come from inside the pod's
//! network namespace). Anyone else gets 403 with the usual `{"error": "..."}` body, and the
//! refusal is logged with the peer's address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tracing::warn;

use crate::http::reply::ApiError;
use crate::server::LocalAddr;

/// The answer to a peer that is not on loopback.
pub const NOT_LOOPBACK_MESSAGE: &str =
    "this admin endpoint answers only to the pod itself (connect from 127.0.0.1 or ::1)";

/// True for 127.0.0.0/8, ::1, and IPv4 loopback written as an IPv6-mapped address.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// True when a connection from `peer` accepted on `local` comes from inside the pod.
pub fn is_local_peer(peer: IpAddr, local: Option<IpAddr>) -> bool {
    is_loopback(peer) || local.is_some_and(|l| l.to_canonical() == peer.to_canonical())
}

/// Middleware: lets the request through only when the connection comes from inside the pod. A
/// request without a known peer address is refused (it cannot be shown to be local).
pub async fn loopback_only(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let local = request.extensions().get::<LocalAddr>().map(|l| l.0.ip());
    match peer {
        Some(addr) if is_local_peer(addr.ip(), local) => next.run(request).await,
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
    use super::{is_local_peer, is_loopback};

    #[test]
    fn a_peer_on_the_accepting_address_is_the_pod_itself() {
        let pod = "10.244.1.7".parse().ok();
        assert!(is_local_peer("10.244.1.7".parse().unwrap(), pod));
        assert!(is_local_peer("::ffff:10.244.1.7".parse().unwrap(), pod));
        assert!(!is_local_peer("10.244.1.8".parse().unwrap(), pod));
        assert!(!is_local_peer("10.244.1.7".parse().unwrap(), None));
        assert!(is_local_peer("127.0.0.1".parse().unwrap(), None));
    }

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
