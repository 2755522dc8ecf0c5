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

/// The base URL of an OTLP/HTTP collector: `http://HOST[:PORT][/PATH]`; traces go to
/// `<base>/v1/traces`. Only plain HTTP (in-cluster collectors; TLS to the collector is not
/// supported).
pub fn otlp_endpoint(input: &str) -> Result<String, String> {
    let text = input.trim();
    let problem = || {
        format!(
            "{input:?} is not an OTLP/HTTP endpoint such as http://otel-collector.observability:4318 \
             (http://HOST[:PORT][/PATH], no query)"
        )
    };
    let uri: http::Uri = text.parse().map_err(|_| problem())?;
    if uri.scheme_str() != Some("http")
        || uri.authority().is_none_or(|a| a.host().is_empty())
        || uri.query().is_some()
        || text.contains('#')
    {
        return Err(problem());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// A sampling ratio: a decimal from 0 to 1 with at most six decimals (`0.1`, `0.005`, `1`).
pub fn sampling_ratio(input: &str) -> Result<SamplingRatio, String> {
    SamplingRatio::parse(input.trim())
}

/// The share of new traces that are sampled, from 0 to 1, kept in parts per million so that it
/// compares exactly and prints as it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SamplingRatio(u32);

impl SamplingRatio {
    /// Parts per million of 1.
    pub const SCALE: u32 = 1_000_000;
    /// Every trace.
    pub const ALWAYS: Self = Self(Self::SCALE);
    /// No new trace.
    pub const NEVER: Self = Self(0);

    /// Reads `0`, `1`, `0.25`, `1.0`, at most six decimals.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a sampling ratio from 0 to 1 such as 0.1 (at most six decimals)"
            )
        };
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if !matches!(whole, "0" | "1")
            || fraction.len() > 6
            || (text.contains('.') && fraction.is_empty())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let mut millionths: u32 = 0;
        for (i, digit) in fraction.bytes().enumerate() {
            millionths += u32::from(digit - b'0') * 10u32.pow(5 - i as u32);
        }
        let value = if whole == "1" { Self::SCALE } else { 0 } + millionths;
        if value > Self::SCALE {
            return Err(bad());
        }
        Ok(Self(value))
    }

    /// The ratio in parts per million.
    pub fn per_million(self) -> u32 {
        self.0
    }

    /// The ratio as a number from 0 to 1.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(Self::SCALE)
    }
}

impl std::fmt::Display for SamplingRatio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whole = self.0 / Self::SCALE;
        let fraction = self.0 % Self::SCALE;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sampling_ratios_parse_and_print_as_written() {
        for (text, ppm, printed) in [
            ("0", 0, "0"),
            ("1", 1_000_000, "1"),
            ("1.0", 1_000_000, "1"),
            ("0.1", 100_000, "0.1"),
            ("0.25", 250_000, "0.25"),
            ("0.000001", 1, "0.000001"),
        ] {
            let ratio = SamplingRatio::parse(text).unwrap();
            assert_eq!(ratio.per_million(), ppm, "{text}");
            assert_eq!(ratio.to_string(), printed, "{text}");
        }
        for bad in [
            "",
            ".5",
            "0.",
            "1.5",
            "2",
            "-0.1",
            "0.0000001",
            "10%",
            "1e-3",
            "0,5",
        ] {
            assert!(SamplingRatio::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn otlp_endpoints_are_plain_http_urls() {
        assert_eq!(
            otlp_endpoint("http://otel-collector.observability:4318/").unwrap(),
            "http://otel-collector.observability:4318"
        );
        assert_eq!(
            otlp_endpoint("http://127.0.0.1:4318/otlp").unwrap(),
            "http://127.0.0.1:4318/otlp"
        );
        for bad in [
            "https://collector:4318",
            "collector:4318",
            "http://",
            "http://c:4318/?x=1",
            "grpc://c:4317",
        ] {
            assert!(otlp_endpoint(bad).is_err(), "{bad}");
        }
    }
}
