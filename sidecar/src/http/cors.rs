//! CORS from the `MODELSERVER_CORS_*` settings, with tower-http's `CorsLayer`: explicit origins,
//! methods, headers, credentials and max-age; preflights are answered by the sidecar. A request
//! from an origin that is not allowed gets no `Access-Control-*` headers at all. With CORS on, the
//! sidecar's answer is the only one: every `Access-Control-*` header a worker sets is removed
//! before the sidecar's are added, so a worker cannot, say, allow credentials the sidecar does not.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::config::CorsArgs;
use crate::errors::ConfigError;
use crate::http::observe::X_REQUEST_ID;

/// The wildcard entry.
pub const WILDCARD: &str = "*";
/// Prefix of every CORS response header.
const CORS_HEADER_PREFIX: &str = "access-control-";

/// Which origins may use the API.
#[derive(Debug, Clone)]
pub enum AllowedOrigins {
    /// Any origin (`*`).
    Any,
    /// Exactly these.
    List(Arc<[HeaderValue]>),
}

impl AllowedOrigins {
    /// True when `origin` may use the API.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.iter().any(|o| o == origin),
        }
    }
}

/// The CORS layer and the origin list it enforces.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    /// The tower-http layer.
    pub layer: CorsLayer,
    /// The allowed origins.
    pub origins: AllowedOrigins,
}

/// Builds the policy; `None` when no origin is configured (CORS off).
pub fn policy(args: &CorsArgs) -> Result<Option<CorsPolicy>, ConfigError> {
    let origins = args.origins();
    if origins.is_empty() {
        return Ok(None);
    }
    let credentials = args.allow_credentials;
    let wildcard_with_credentials = |what: &'static str| ConfigError::Cors {
        what,
        value: WILDCARD.to_string(),
        reason: "\"*\" cannot be combined with allow-credentials".to_string(),
    };

    let (allow_origin, allowed) = if origins.contains(&WILDCARD) {
        if credentials {
            return Err(wildcard_with_credentials("origin"));
        }
        (AllowOrigin::any(), AllowedOrigins::Any)
    } else {
        let values = origins
            .iter()
            .map(|o| parse_origin(o))
            .collect::<Result<Vec<_>, _>>()?;
        (
            AllowOrigin::list(values.clone()),
            AllowedOrigins::List(values.into()),
        )
    };

    let methods = args.methods();
    let allow_methods = if methods.contains(&WILDCARD) {
        if credentials {
            return Err(wildcard_with_credentials("method"));
        }
        AllowMethods::any()
    } else {
        let parsed = methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|e| {
                    ConfigError::Cors {
                        what: "method",
                        value: (*m).to_string(),
                        reason: e.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowMethods::list(parsed)
    };

    let headers = args.headers();
    let allow_headers = if headers.contains(&WILDCARD) {
        if credentials {
            return Err(wildcard_with_credentials("header"));
        }
        AllowHeaders::any()
    } else {
        let parsed = headers
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes()).map_err(|e| ConfigError::Cors {
                    what: "header",
                    value: (*h).to_string(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowHeaders::list(parsed)
    };

    let layer = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods(allow_methods)
        .allow_headers(allow_headers)
        .allow_credentials(credentials)
        .expose_headers([X_REQUEST_ID])
        .max_age(args.max_age);
    Ok(Some(CorsPolicy {
        layer,
        origins: allowed,
    }))
}

/// An origin is `scheme://host[:port]`, nothing else.
fn parse_origin(origin: &str) -> Result<HeaderValue, ConfigError> {
    let err = |reason: &str| ConfigError::Cors {
        what: "origin",
        value: origin.to_string(),
        reason: reason.to_string(),
    };
    let uri: http::Uri = origin
        .parse()
        .map_err(|_| err("expected scheme://host[:port], e.g. https://app.example.com"))?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(err(
            "expected scheme://host[:port], e.g. https://app.example.com",
        ));
    }
    if origin.trim_end_matches('/') != origin || uri.path() != "/" || uri.query().is_some() {
        return Err(err("an origin has no path, query or trailing slash"));
    }
    HeaderValue::from_str(origin).map_err(|_| err("not a valid header value"))
}

/// Removes every `Access-Control-*` header from `headers`.
fn remove_cors_headers(headers: &mut http::HeaderMap) {
    let cors: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(CORS_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in cors {
        headers.remove(&name);
    }
}

/// Middleware inside the CORS layer: removes the worker's own `Access-Control-*` headers, so the
/// CORS layer's answer replaces them rather than joining them.
pub async fn drop_worker_cors_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    remove_cors_headers(response.headers_mut());
    response
}

/// Middleware outside the CORS layer: removes every `Access-Control-*` header from responses to
/// origins that are not allowed.
pub async fn hide_from_disallowed_origins(
    State(origins): State<AllowedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    let disallowed = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| !origins.allows(o));
    let mut response = next.run(request).await;
    if disallowed {
        remove_cors_headers(response.headers_mut());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn args(origins: &[&str], credentials: bool) -> CorsArgs {
        CorsArgs {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec!["GET".into(), "post".into()],
            allow_headers: vec!["Content-Type".into(), "Authorization".into()],
            allow_credentials: credentials,
            max_age: Duration::from_secs(600),
        }
    }

    #[test]
    fn empty_origins_turn_cors_off() {
        assert!(policy(&args(&[], false)).unwrap().is_none());
        assert!(policy(&args(&[""], false)).unwrap().is_none());
    }

    #[test]
    fn explicit_origins_are_checked() {
        let p = policy(&args(&["https://app.example.com"], true))
            .unwrap()
            .unwrap();
        assert!(
            p.origins
                .allows(&HeaderValue::from_static("https://app.example.com"))
        );
        assert!(
            !p.origins
                .allows(&HeaderValue::from_static("https://evil.example.com"))
        );
    }

    #[test]
    fn rejects_bad_settings() {
        let err = policy(&args(&["*"], true)).unwrap_err();
        assert!(err.to_string().contains("allow-credentials"), "{err}");
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://a.example/x",
        ] {
            let err = policy(&args(&[bad], false)).unwrap_err();
            assert!(err.to_string().contains("origin"), "{bad}: {err}");
        }
        let mut a = args(&["https://a.example"], false);
        a.allow_headers = vec!["bad header".into()];
        assert!(policy(&a).is_err());
    }
}
