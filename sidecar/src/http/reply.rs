//! The sidecar's own answers: JSON bodies, and the `{"error": "..."}` body (with an optional
//! `Retry-After`) of every request the sidecar itself refuses.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// Content type of every JSON body the sidecar writes.
const JSON_CONTENT_TYPE: &str = "application/json";

/// A request the sidecar answers itself with an error status and `{"error": message}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable reason.
    pub message: String,
    /// Seconds for a `Retry-After` header, when retrying later may work.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Adds `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// What an [`ApiError`]'s body puts before the message (a JSON string) and after it: written
/// around the message directly, with no intermediate `serde_json::Value`, since a refusal under
/// overload should cost as little as possible.
const ERROR_BODY_START: &[u8] = b"{\"error\":";
/// See [`ERROR_BODY_START`].
const ERROR_BODY_END: &[u8] = b"}";
/// The quotes around the message.
const QUOTES: usize = 2;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(
            ERROR_BODY_START.len() + self.message.len() + QUOTES + ERROR_BODY_END.len(),
        );
        body.extend_from_slice(ERROR_BODY_START);
        let body = match serde_json::to_writer(&mut body, &self.message) {
            Ok(()) => {
                body.extend_from_slice(ERROR_BODY_END);
                Body::from(body)
            }
            // Writing a string into a Vec cannot fail; an empty body is the safe fallback.
            Err(_) => Body::empty(),
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A JSON response with any status, for the sidecar's own endpoints.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn an_error_is_json_with_its_message_escaped_and_retry_after() {
        let message = "a \"quoted\" reason\nwith a line break, a \\ and é";
        let response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
            .retry_after(1)
            .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], JSON_CONTENT_TYPE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value, serde_json::json!({ "error": message }));
    }
}
