//! The value parsers of the flags: durations (`60s`) and byte sizes (`100Mi`) as
//! `modelserver-units` reads them, and URL paths.

use std::time::Duration;

/// A duration such as `60s` or `1m30s`.
pub(crate) fn duration(input: &str) -> Result<Duration, String> {
    modelserver_units::parse_duration(input.trim()).map_err(|e| e.to_string())
}

pub(crate) fn positive_duration(input: &str) -> Result<Duration, String> {
    let d = duration(input)?;
    if d.is_zero() {
        return Err(format!("{input:?} must be longer than zero"));
    }
    Ok(d)
}

pub(crate) fn bytes(input: &str) -> Result<u64, String> {
    modelserver_units::parse_quantity_bytes(input.trim()).map_err(|e| e.to_string())
}

pub(crate) fn url_path(input: &str) -> Result<String, String> {
    let path = input.trim();
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(format!(
            "{input:?} is not an absolute URL path such as /ready"
        ));
    }
    path.parse::<http::uri::PathAndQuery>()
        .map_err(|e| format!("{input:?} is not a valid URL path: {e}"))?;
    Ok(path.to_string())
}

pub(crate) fn upstream(input: &str) -> Result<crate::upstream::UpstreamAddr, String> {
    crate::upstream::UpstreamAddr::parse(input).map_err(|e| e.to_string())
}

/// Request headers a proxy owns (framing, routing, hop-by-hop): never a credential's header.
pub const RESERVED_HEADERS: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// A header name that may carry a credential: not one of [`RESERVED_HEADERS`].
pub fn credential_header(input: &str) -> Result<http::HeaderName, String> {
    let name = http::HeaderName::from_bytes(input.trim().as_bytes())
        .map_err(|_| format!("{input:?} is not an HTTP header name"))?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(format!(
            "{input:?} is a header the proxy itself sets and cannot carry a credential"
        ));
    }
    Ok(name)
}
