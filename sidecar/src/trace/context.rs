//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): reading a `traceparent` header,
//! writing one, and the sampling decision for a trace the sidecar starts.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The header that carries the trace id, the caller's span id and the sampled flag.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The header of vendor-specific trace state, passed on unchanged.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The `sampled` bit of the trace flags.
pub const FLAG_SAMPLED: u8 = 0x01;

/// A 16-byte trace id.
pub type TraceId = [u8; 16];
/// An 8-byte span id.
pub type SpanId = [u8; 8];

/// A valid `traceparent`: the trace, the caller's span and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id (never all zeros).
    pub trace_id: TraceId,
    /// The caller's span id (never all zeros).
    pub parent_id: SpanId,
    /// The trace flags; bit 0 is `sampled`.
    pub flags: u8,
}

impl TraceParent {
    /// The request's `traceparent`, when there is exactly one and it is valid; otherwise none
    /// (the sidecar then starts a new trace, as the specification asks).
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        Self::parse(value.as_bytes())
    }

    /// Parses `version-traceid-parentid-flags` in lowercase hex. Version `ff` is invalid; a
    /// version above `00` may carry more fields after a `-`, which are ignored; version `00`
    /// has exactly four fields. All-zero ids are invalid.
    pub fn parse(text: &[u8]) -> Option<Self> {
        if text.len() < 55 {
            return None;
        }
        let version = hex_byte(&text[0..2])?;
        if version == 0xff || (version == 0 && text.len() != 55) {
            return None;
        }
        if text.len() > 55 && text[55] != b'-' {
            return None;
        }
        if text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, byte) in trace_id.iter_mut().enumerate() {
            *byte = hex_byte(&text[3 + 2 * i..5 + 2 * i])?;
        }
        let mut parent_id = [0u8; 8];
        for (i, byte) in parent_id.iter_mut().enumerate() {
            *byte = hex_byte(&text[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&text[53..55])?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// True when the caller recorded its span (and asks its callees to record theirs).
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
}

/// A `traceparent` value (version `00`) naming `span_id` in `trace_id`.
pub fn traceparent(trace_id: &TraceId, span_id: &SpanId, flags: u8) -> HeaderValue {
    let mut text = [b'-'; 55];
    text[0] = b'0';
    text[1] = b'0';
    write_hex(&mut text[3..35], trace_id);
    write_hex(&mut text[36..52], span_id);
    write_hex(&mut text[53..55], &[flags]);
    // Hex digits and dashes: always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static(""))
}

/// Lowercase hex of `bytes`.
#[cfg(test)]
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
    }
}

/// Two lowercase hex digits (uppercase is invalid in `traceparent`).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

/// The sampling decision for a trace the sidecar starts, by its id, as OpenTelemetry's
/// `TraceIdRatioBased` sampler makes it: the last 8 bytes of the id, shifted right by one, below
/// `ratio × 2^63`. Every process with the same ratio decides the same way for the same trace.
pub fn sampled_by_ratio(trace_id: &TraceId, per_million: u32) -> bool {
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let value = u128::from(u64::from_be_bytes(low) >> 1);
    let threshold = u128::from(per_million) * (1u128 << 63) / 1_000_000;
    value < threshold
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_a_valid_traceparent() {
        let parent = TraceParent::parse(VALID.as_bytes()).unwrap();
        assert_eq!(hex(&parent.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&parent.parent_id), "00f067aa0ba902b7");
        assert!(parent.sampled());
        let unsampled = VALID.replace("-01", "-00");
        assert!(!TraceParent::parse(unsampled.as_bytes()).unwrap().sampled());
        // Other flag bits do not make it sampled.
        let other = VALID.replace("-01", "-02");
        assert!(!TraceParent::parse(other.as_bytes()).unwrap().sampled());
    }

    #[test]
    fn refuses_invalid_traceparents() {
        for bad in [
            "",
            "00",
            // Version ff is invalid.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // All-zero ids.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Uppercase hex.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            // Wrong lengths and separators.
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            // Version 00 has exactly four fields.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // Not hex.
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn a_future_version_may_carry_more_fields() {
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(TraceParent::parse(future.as_bytes()).unwrap().sampled());
        let glued = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01what";
        assert_eq!(TraceParent::parse(glued.as_bytes()), None);
    }

    #[test]
    fn two_traceparent_headers_are_ignored() {
        let mut headers = HeaderMap::new();
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert!(TraceParent::from_headers(&headers).is_some());
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(TraceParent::from_headers(&headers), None);
        assert_eq!(TraceParent::from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn writes_what_it_reads() {
        let parent = TraceParent::parse(VALID.as_bytes()).unwrap();
        let value = traceparent(&parent.trace_id, &parent.parent_id, parent.flags);
        assert_eq!(value.to_str().unwrap(), VALID);
    }

    #[test]
    fn the_ratio_sampler_keeps_its_share_and_the_extremes() {
        let ids: Vec<TraceId> = (0u64..10_000)
            .map(|n| {
                let mut id = [0u8; 16];
                let mixed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (n << 7);
                id[8..].copy_from_slice(&mixed.to_be_bytes());
                id[0] = 1;
                id
            })
            .collect();
        let kept = |ppm| ids.iter().filter(|id| sampled_by_ratio(id, ppm)).count();
        assert_eq!(kept(0), 0);
        assert_eq!(kept(1_000_000), ids.len());
        let tenth = kept(100_000);
        assert!((800..1200).contains(&tenth), "{tenth}");
    }
}
