//! The `drain` subcommand (the pod's preStop hook): `POST /drain` on the local admin port and
//! return once the sidecar has drained, so the kubelet sends SIGTERM only after the last request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::DrainArgs;
use crate::errors::SidecarError;
use crate::http::admin::DRAIN_PATH;

/// Extra time on top of drain delay + drain timeout before the command gives up waiting.
pub const DRAIN_WAIT_MARGIN: Duration = Duration::from_secs(30);

/// The admin address to call: the bind address, or loopback when the sidecar binds to any.
pub fn admin_addr(args: &DrainArgs) -> SocketAddr {
    let host = match args.bind {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(host, args.admin_port)
}

/// How long the command waits for the sidecar: drain delay + drain timeout + a margin. Saturates:
/// the API server accepts durations whose sum overflows (`5124095576030431h`), and a preStop hook
/// must not panic on them.
pub fn wait_budget(args: &DrainArgs) -> Duration {
    args.drain_delay
        .saturating_add(args.drain_timeout)
        .saturating_add(DRAIN_WAIT_MARGIN)
}

/// Asks the sidecar to drain and waits; returns the sidecar's answer.
pub async fn drain(args: &DrainArgs) -> Result<String, SidecarError> {
    let addr = admin_addr(args);
    let url = format!("http://{addr}{DRAIN_PATH}");
    let fail = |reason: String| SidecarError::Drain {
        url: url.clone(),
        reason,
    };
    let budget = wait_budget(args);
    let call = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| fail(format!("cannot connect: {e} (is the sidecar running?)")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(e.to_string()))?;
        tokio::spawn(connection);
        let request = Request::post(DRAIN_PATH)
            .header(header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| fail(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail(format!("no answer: {e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            Ok(text)
        } else {
            Err(fail(format!("status {status}: {text}")))
        }
    };
    match tokio::time::timeout(budget, call).await {
        Ok(result) => result,
        Err(_) => Err(fail(format!(
            "not drained within {}",
            modelserver_units::format_duration(budget)
        ))),
    }
}
