//! gRPC through the front door. gRPC calls (`Content-Type: application/grpc...`, over HTTP/2)
//! are forwarded like any request (auth, slots, queue, upload limit, metrics, drain) but to the
//! backend over HTTP/2, trailers intact. What the sidecar answers itself is made a gRPC answer
//! here: a refusal becomes a trailers-only response with the matching status (a full queue
//! `UNAVAILABLE`, a timeout `DEADLINE_EXCEEDED`, the upload limit `RESOURCE_EXHAUSTED`, a missing
//! token `UNAUTHENTICATED`), and `grpc.health.v1.Health/Check` answers from the sidecar's
//! readiness. A client's `grpc-timeout` shortens the request's time budget.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::FutureExt;
use http::header::{self, HeaderMap, HeaderName};
use http::{HeaderValue, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use crate::state::SharedState;

/// The content type of gRPC, and the prefix of its variants (`application/grpc+proto`).
pub const GRPC_CONTENT_TYPE: &str = "application/grpc";
/// The standard health check's unary method.
pub const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// The standard health check's streaming method (not served).
pub const HEALTH_WATCH_PATH: &str = "/grpc.health.v1.Health/Watch";
/// The status trailer (or header, in a trailers-only response).
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The status message trailer.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// The client's deadline for the call.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// Longest error body read to turn it into a `grpc-message`.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The gRPC status codes the sidecar gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// Not otherwise classified.
    Unknown = 2,
    /// The deadline passed.
    DeadlineExceeded = 4,
    /// Not allowed.
    PermissionDenied = 7,
    /// A limit was exceeded.
    ResourceExhausted = 8,
    /// The method does not exist.
    Unimplemented = 12,
    /// An internal error.
    Internal = 13,
    /// Try again later.
    Unavailable = 14,
    /// No valid credentials.
    Unauthenticated = 16,
}

impl Code {
    /// The code for an HTTP status the sidecar (or a backend that is no gRPC server) answered:
    /// the gRPC project's HTTP mapping, with the sidecar's own timeout and upload limit named.
    pub fn for_http(status: StatusCode) -> Self {
        match status.as_u16() {
            200 => Self::Unknown,
            400 => Self::Internal,
            401 => Self::Unauthenticated,
            403 => Self::PermissionDenied,
            404 | 405 => Self::Unimplemented,
            408 | 504 => Self::DeadlineExceeded,
            413 => Self::ResourceExhausted,
            429 | 502 | 503 => Self::Unavailable,
            _ => Self::Unknown,
        }
    }
}

/// True for a gRPC request.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.as_bytes().strip_prefix(GRPC_CONTENT_TYPE.as_bytes()))
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
}

/// The client's `grpc-timeout` (`<digits><H|M|S|m|u|n>`, at most 8 digits), if valid.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(GRPC_TIMEOUT)?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Percent-encodes a status message as `grpc-message` requires (bytes outside printable ASCII,
/// and `%`).
fn encode_message(message: &str) -> HeaderValue {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("error"))
}

/// Makes `response` a trailers-only gRPC response with `code` and `message`, keeping its other
/// headers (request id, `Retry-After`, `WWW-Authenticate`).
fn trailers_only(response: Response, code: Code, message: &str) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::OK;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(GRPC_CONTENT_TYPE),
    );
    parts
        .headers
        .insert(GRPC_STATUS, HeaderValue::from(u16::from(code as u8)));
    parts.headers.insert(GRPC_MESSAGE, encode_message(message));
    Response::from_parts(parts, Body::empty())
}

/// The reason in a refusal's `{"error": "..."}` body, or the body itself.
async fn reason(body: Body, status: StatusCode) -> String {
    let bytes = http_body_util::Limited::new(body, MAX_ERROR_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .or_else(|| {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            (!text.is_empty()).then_some(text)
        })
        .unwrap_or_else(|| status.to_string())
}

/// True when `response` is not a gRPC answer and so must be turned into one.
pub fn needs_grpc_form(response: &Response) -> bool {
    let answered_by_grpc = response.status() == StatusCode::OK && is_grpc(response.headers());
    !answered_by_grpc && !response.headers().contains_key(GRPC_STATUS)
}

/// The gRPC form of an answer that is not one (a refusal of the sidecar, or an HTTP error of a
/// backend that is not a gRPC server): a trailers-only response with the matching status, the
/// reason from the `{"error": ...}` body when it is already in memory (the sidecar's own
/// refusals), the status text otherwise. Called by the observe layer, after it has counted and
/// logged the HTTP status, for gRPC requests only.
pub fn grpc_form(response: Response) -> Response {
    let status = response.status();
    let (parts, body) = response.into_parts();
    let message = reason(body, status)
        .now_or_never()
        .unwrap_or_else(|| status.to_string());
    trailers_only(
        Response::from_parts(parts, Body::empty()),
        Code::for_http(status),
        &message,
    )
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
const SERVING: u8 = 1;
/// Not serving.
const NOT_SERVING: u8 = 2;

/// `grpc.health.v1.Health/Check`: `SERVING` while the sidecar is ready, `NOT_SERVING` otherwise,
/// for any service name (the pod serves one model).
pub async fn health_check(State(state): State<SharedState>, request: Request) -> Response {
    // The request (a service name) is read and not needed.
    let _ = request.into_body().collect().await;
    let status = if state.is_ready() {
        SERVING
    } else {
        NOT_SERVING
    };
    // One length-prefixed message: uncompressed, 2 bytes, field 1 (varint) = status.
    let message = Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]);
    let mut trailers = HeaderMap::new();
    trailers.insert(GRPC_STATUS, HeaderValue::from(u16::from(Code::Ok as u8)));
    let frames = futures::stream::iter([
        Ok::<_, std::convert::Infallible>(Frame::data(message)),
        Ok(Frame::trailers(trailers)),
    ]);
    let mut response = Body::new(StreamBody::new(frames)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(GRPC_CONTENT_TYPE),
    );
    response
}

/// `grpc.health.v1.Health/Watch`: not served (kubelet and `grpc_health_probe` use Check).
pub async fn health_watch() -> Response {
    trailers_only(
        StatusCode::OK.into_response(),
        Code::Unimplemented,
        "Watch is not served; use grpc.health.v1.Health/Check",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn grpc_requests_are_told_by_their_content_type() {
        for (value, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc;charset=utf-8", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            assert_eq!(
                is_grpc(&headers(&[("content-type", value)])),
                grpc,
                "{value}"
            );
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        for (value, want) in [
            ("1H", Some(Duration::from_secs(3600))),
            ("2M", Some(Duration::from_secs(120))),
            ("3S", Some(Duration::from_secs(3))),
            ("250m", Some(Duration::from_millis(250))),
            ("7u", Some(Duration::from_micros(7))),
            ("99999999n", Some(Duration::from_nanos(99_999_999))),
            ("123456789S", None),
            ("S", None),
            ("1s", None),
            ("-1S", None),
            ("", None),
        ] {
            assert_eq!(
                timeout(&headers(&[("grpc-timeout", value)])),
                want,
                "{value}"
            );
        }
    }

    #[test]
    fn http_refusals_map_to_grpc_codes() {
        assert_eq!(
            Code::for_http(StatusCode::SERVICE_UNAVAILABLE),
            Code::Unavailable
        );
        assert_eq!(
            Code::for_http(StatusCode::GATEWAY_TIMEOUT),
            Code::DeadlineExceeded
        );
        assert_eq!(
            Code::for_http(StatusCode::PAYLOAD_TOO_LARGE),
            Code::ResourceExhausted
        );
        assert_eq!(
            Code::for_http(StatusCode::UNAUTHORIZED),
            Code::Unauthenticated
        );
        assert_eq!(Code::for_http(StatusCode::BAD_GATEWAY), Code::Unavailable);
        assert_eq!(Code::for_http(StatusCode::NOT_FOUND), Code::Unimplemented);
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(
            encode_message("queue full: 5% left"),
            "queue full: 5%25 left"
        );
        assert_eq!(encode_message("zürich\n"), "z%C3%BCrich%0A");
    }

    #[tokio::test]
    async fn a_refusal_becomes_a_trailers_only_response_keeping_its_headers() {
        let mut refusal =
            crate::http::reply::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "queue full")
                .retry_after(1)
                .into_response();
        refusal
            .headers_mut()
            .insert("x-request-id", HeaderValue::from_static("r1"));
        assert!(needs_grpc_form(&refusal));
        let out = grpc_form(refusal);
        assert!(!needs_grpc_form(&out));
        assert_eq!(out.status(), StatusCode::OK);
        assert_eq!(out.headers()["grpc-status"], "14");
        assert_eq!(out.headers()["grpc-message"], "queue full");
        assert_eq!(out.headers()["content-type"], "application/grpc");
        assert_eq!(out.headers()["retry-after"], "1");
        assert_eq!(out.headers()["x-request-id"], "r1");
    }
}
