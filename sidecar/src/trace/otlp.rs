//! The OTLP/HTTP protobuf body of a batch of spans: an `ExportTraceServiceRequest`
//! (opentelemetry-proto `collector/trace/v1`), written by hand. The sidecar sends one resource
//! with one instrumentation scope, and spans with ids, times, kind, attributes, events and
//! status: a few dozen lines of protobuf wire format instead of a code generator and its
//! dependencies.

use crate::trace::span::{AttrValue, SpanRecord};

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// The instrumentation scope's name.
pub const SCOPE_NAME: &str = "modelserver-sidecar";

/// Encodes `spans` of the resource described by `resource` as an `ExportTraceServiceRequest`,
/// into one buffer (nested messages get their length prefix inserted after they are written).
pub fn encode(resource: &[(&str, String)], spans: &[Box<SpanRecord>]) -> Vec<u8> {
    let mut request = Vec::with_capacity(256 + spans.len() * 320);
    message(&mut request, 1, |resource_spans| {
        message(resource_spans, 1, |out| {
            for (key, value) in resource {
                message(out, 1, |kv| {
                    string(kv, 1, key);
                    message(kv, 2, |any| string(any, 1, value));
                });
            }
        });
        message(resource_spans, 2, |out| {
            message(out, 1, |scope| {
                string(scope, 1, SCOPE_NAME);
                string(scope, 2, env!("CARGO_PKG_VERSION"));
            });
            for span in spans {
                message(out, 2, |s| encode_span(s, span));
            }
        });
    });
    request
}

/// `Span`.
fn encode_span(out: &mut Vec<u8>, span: &SpanRecord) {
    bytes(out, 1, &span.trace_id);
    bytes(out, 2, &span.span_id);
    if let Some(state) = &span.trace_state {
        string(out, 3, state);
    }
    if let Some(parent) = &span.parent_id {
        bytes(out, 4, parent);
    }
    string(out, 5, span.name);
    tag(out, 6, VARINT);
    varint(out, span.kind as u64);
    fixed64(out, 7, span.start_unix_nanos);
    fixed64(out, 8, span.end_unix_nanos);
    for (key, value) in &span.attributes {
        message(out, 9, |kv| key_value(kv, key, value));
    }
    for (time, name) in &span.events {
        message(out, 11, |event| {
            fixed64(event, 1, *time);
            string(event, 2, name);
        });
    }
    message(out, 15, |status| {
        if let Some(text) = &span.status_message {
            string(status, 2, text);
        }
        tag(status, 3, VARINT);
        varint(status, span.status as u64);
    });
    tag(out, 16, FIXED32);
    out.extend_from_slice(&u32::from(span.flags).to_le_bytes());
}

/// `KeyValue` with an `AnyValue`.
fn key_value(out: &mut Vec<u8>, key: &str, value: &AttrValue) {
    string(out, 1, key);
    message(out, 2, |any| match value {
        AttrValue::Text(text) => string(any, 1, text),
        AttrValue::Shared(text) => string(any, 1, text),
        AttrValue::Int(number) => {
            tag(any, 3, VARINT);
            // int64: two's complement as a 64-bit varint.
            varint(any, *number as u64);
        }
    });
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
    tag(out, field, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    tag(out, field, LEN);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn string(out: &mut Vec<u8>, field: u32, value: &str) {
    bytes(out, field, value.as_bytes());
}

/// A nested message: written in place, then its length inserted in front of it (a move of
/// the bytes just written, instead of a buffer of its own per message).
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    tag(out, field, LEN);
    let start = out.len();
    write(out);
    let mut prefix = [0u8; 10];
    let mut used = 0;
    let mut value = (out.len() - start) as u64;
    while value >= 0x80 {
        prefix[used] = (value as u8 & 0x7f) | 0x80;
        value >>= 7;
        used += 1;
    }
    prefix[used] = value as u8;
    used += 1;
    out.splice(start..start, prefix[..used].iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        varint(&mut out, 1);
        varint(&mut out, 300);
        varint(&mut out, u64::MAX);
        assert_eq!(
            out,
            [
                0x01, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]
        );
    }

    #[test]
    fn a_nested_string_field_is_tagged_and_length_prefixed() {
        let mut out = Vec::new();
        message(&mut out, 1, |inner| string(inner, 2, "ab"));
        // field 1 LEN, length 4: field 2 LEN, length 2, "ab".
        assert_eq!(out, [0x0a, 0x04, 0x12, 0x02, b'a', b'b']);
    }

    #[test]
    fn a_long_nested_message_gets_a_two_byte_length() {
        let text = "x".repeat(200);
        let mut out = Vec::new();
        message(&mut out, 1, |inner| string(inner, 2, &text));
        // Inner: tag, length 200 (0xc8 0x01), 200 bytes = 203; outer length 203 = 0xcb 0x01.
        assert_eq!(out[..5], [0x0a, 0xcb, 0x01, 0x12, 0xc8]);
        assert_eq!(out[5], 0x01);
        assert_eq!(out.len(), 3 + 203);
    }
}
