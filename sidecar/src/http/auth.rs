//! Token auth on the public port: with a token configured, every path except the health paths
//! needs `Authorization: Bearer <token>` or `X-Auth-Token: <token>`, compared in constant time.
//! Both headers are then removed before the request is forwarded, so the token never reaches the
//! model's code, unless passthrough is configured.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::http::health::is_health_path;
use crate::http::reply::ApiError;
use crate::metrics::{Metrics, RejectReason};

/// The alternative token header.
pub const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");
/// The `Authorization` scheme accepted.
pub const BEARER_PREFIX: &str = "Bearer ";

/// The configured token.
#[derive(Clone)]
pub struct AuthToken {
    token: Arc<[u8]>,
    metrics: Metrics,
    passthrough: bool,
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

impl AuthToken {
    /// Wraps the token; refused requests are counted in `metrics`.
    pub fn new(token: &str, metrics: Metrics) -> Self {
        Self {
            token: Arc::from(token.as_bytes()),
            metrics,
            passthrough: false,
        }
    }

    /// Keeps the token headers on forwarded requests (`MODELSERVER_AUTH_PASSTHROUGH`) instead of
    /// removing them.
    pub fn with_passthrough(mut self, passthrough: bool) -> Self {
        self.passthrough = passthrough;
        self
    }

    /// Removes the token headers (both, whichever carried the token) unless passthrough is on.
    pub fn strip(&self, headers: &mut HeaderMap) {
        if !self.passthrough {
            headers.remove(header::AUTHORIZATION);
            headers.remove(X_AUTH_TOKEN);
        }
    }

    /// True when the headers carry the token in either accepted form.
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .and_then(strip_bearer);
        let x_token = headers.get(X_AUTH_TOKEN).map(HeaderValue::as_bytes);
        // Evaluate both comparisons so the time taken does not depend on which header matched.
        let by_bearer = bearer.is_some_and(|b| constant_time_eq(b, &self.token));
        let by_header = x_token.is_some_and(|t| constant_time_eq(t, &self.token));
        by_bearer | by_header
    }
}

fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let prefix = BEARER_PREFIX.as_bytes();
    if value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(value[prefix.len()..].trim_ascii())
    } else {
        None
    }
}

/// Compares `given` with `secret` in time that depends only on the secret's length.
pub fn constant_time_eq(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != secret.len());
    for (i, s) in secret.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= g ^ s;
    }
    std::hint::black_box(diff) == 0
}

/// Middleware: 401 JSON unless the request carries the token or asks for a health path.
pub async fn require_token(
    State(auth): State<AuthToken>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_health_path(request.uri().path()) || auth.authorizes(request.headers()) {
        auth.strip(request.headers_mut());
        return next.run(request).await;
    }
    auth.metrics.reject(RejectReason::Unauthorized);
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing or invalid token: send \"Authorization: Bearer <token>\" or \"X-Auth-Token: <token>\"",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        assert!(!constant_time_eq(b"s3cretx", b"s3cret"));
        assert!(!constant_time_eq(b"S3cret", b"s3cret"));
        assert!(!constant_time_eq(b"", b"s3cret"));
    }

    #[test]
    fn accepts_either_header() {
        let auth = AuthToken::new("tok", Metrics::new().unwrap());
        let mut h = HeaderMap::new();
        assert!(!auth.authorizes(&h));
        h.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        assert!(auth.authorizes(&h));
        h.insert(header::AUTHORIZATION, "bearer tok".parse().unwrap());
        assert!(auth.authorizes(&h));
        h.insert(header::AUTHORIZATION, "Basic tok".parse().unwrap());
        assert!(!auth.authorizes(&h));
        h.insert(X_AUTH_TOKEN, "tok".parse().unwrap());
        assert!(auth.authorizes(&h));
        h.insert(X_AUTH_TOKEN, "nope".parse().unwrap());
        assert!(!auth.authorizes(&h));
    }

    #[test]
    fn strips_the_token_headers_unless_passing_them_through() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        h.insert(X_AUTH_TOKEN, "tok".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let auth = AuthToken::new("tok", Metrics::new().unwrap()).with_passthrough(true);
        let mut kept = h.clone();
        auth.strip(&mut kept);
        assert_eq!(kept, h);
        auth.with_passthrough(false).strip(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["content-type"]);
    }
}
