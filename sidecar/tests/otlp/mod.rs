//! A fake OTLP/HTTP receiver for the tracing tests: a hyper server (through axum) on
//! 127.0.0.1 that takes `POST /v1/traces` and keeps each body, and a protobuf decoder written
//! from the opentelemetry-proto field numbers, independent of the sidecar's encoder.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

/// One export request: its content type and body.
type Body = (Option<String>, Vec<u8>);

/// What the receiver got.
#[derive(Clone, Default)]
pub struct Received {
    bodies: Arc<Mutex<Vec<Body>>>,
}

impl Received {
    /// Every span received so far, decoded, with its resource's attributes.
    pub fn spans(&self) -> Vec<Span> {
        let bodies = self.bodies.lock().unwrap().clone();
        bodies
            .iter()
            .flat_map(|(content_type, body)| {
                assert_eq!(content_type.as_deref(), Some("application/x-protobuf"));
                decode_request(body)
            })
            .collect()
    }

    /// The spans of one trace (hex id).
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

/// Starts the receiver on 127.0.0.1 with a free port; it runs until the test's runtime ends.
pub async fn start() -> (SocketAddr, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(take))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

async fn take(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    received
        .bodies
        .lock()
        .unwrap()
        .push((content_type, body.to_vec()));
    StatusCode::OK
}

/// One decoded span.
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub trace_state: String,
    pub name: String,
    /// 1 internal, 2 server, 3 client.
    pub kind: u64,
    pub start: u64,
    pub end: u64,
    pub attributes: BTreeMap<String, String>,
    pub events: Vec<String>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: u64,
    pub status_message: String,
    pub resource: BTreeMap<String, String>,
    pub scope: String,
}

/// A protobuf field value.
#[derive(Debug, Clone)]
enum Value {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(Vec<u8>),
}

impl Value {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Bytes(b) => b,
            other => panic!("expected a length-delimited field, got {other:?}"),
        }
    }
    fn text(&self) -> String {
        String::from_utf8(self.bytes().to_vec()).unwrap()
    }
    fn number(&self) -> u64 {
        match self {
            Self::Varint(v) | Self::Fixed64(v) => *v,
            Self::Fixed32(v) => u64::from(*v),
            Self::Bytes(_) => panic!("expected a number"),
        }
    }
}

fn varint(buf: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = buf[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
        shift += 7;
        assert!(shift < 70, "varint too long");
    }
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> Vec<(u64, Value)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < buf.len() {
        let key = varint(buf, &mut at);
        let (field, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => Value::Varint(varint(buf, &mut at)),
            1 => {
                let v = u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
                at += 8;
                Value::Fixed64(v)
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut at)).unwrap();
                let v = buf[at..at + len].to_vec();
                at += len;
                Value::Bytes(v)
            }
            5 => {
                let v = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap());
                at += 4;
                Value::Fixed32(v)
            }
            other => panic!("unknown wire type {other}"),
        };
        out.push((field, value));
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `KeyValue` -> (key, value as text).
fn key_value(buf: &[u8]) -> (String, String) {
    let mut key = String::new();
    let mut value = String::new();
    for (field, v) in fields(buf) {
        match field {
            1 => key = v.text(),
            2 => {
                for (kind, any) in fields(v.bytes()) {
                    value = match kind {
                        1 => any.text(),
                        2 => (any.number() != 0).to_string(),
                        3 => (any.number() as i64).to_string(),
                        4 => f64::from_bits(any.number()).to_string(),
                        other => panic!("AnyValue field {other}"),
                    };
                }
            }
            _ => {}
        }
    }
    (key, value)
}

/// `ExportTraceServiceRequest` -> spans.
pub fn decode_request(body: &[u8]) -> Vec<Span> {
    let mut spans = Vec::new();
    for (field, resource_spans) in fields(body) {
        assert_eq!(
            field, 1,
            "ExportTraceServiceRequest has resource_spans only"
        );
        let mut resource = BTreeMap::new();
        let mut scopes = Vec::new();
        for (field, v) in fields(resource_spans.bytes()) {
            match field {
                1 => {
                    for (f, attr) in fields(v.bytes()) {
                        if f == 1 {
                            let (k, val) = key_value(attr.bytes());
                            resource.insert(k, val);
                        }
                    }
                }
                2 => scopes.push(v),
                _ => {}
            }
        }
        for scope_spans in scopes {
            let mut scope = String::new();
            for (field, v) in fields(scope_spans.bytes()) {
                match field {
                    1 => {
                        for (f, s) in fields(v.bytes()) {
                            if f == 1 {
                                scope = s.text();
                            }
                        }
                    }
                    2 => {
                        let mut span = decode_span(v.bytes());
                        span.resource = resource.clone();
                        span.scope = scope.clone();
                        spans.push(span);
                    }
                    _ => {}
                }
            }
        }
    }
    spans
}

fn decode_span(buf: &[u8]) -> Span {
    let mut span = Span::default();
    for (field, v) in fields(buf) {
        match field {
            1 => span.trace_id = hex(v.bytes()),
            2 => span.span_id = hex(v.bytes()),
            3 => span.trace_state = v.text(),
            4 => span.parent_span_id = hex(v.bytes()),
            5 => span.name = v.text(),
            6 => span.kind = v.number(),
            7 => span.start = v.number(),
            8 => span.end = v.number(),
            9 => {
                let (k, val) = key_value(v.bytes());
                span.attributes.insert(k, val);
            }
            11 => {
                for (f, e) in fields(v.bytes()) {
                    if f == 2 {
                        span.events.push(e.text());
                    }
                }
            }
            15 => {
                for (f, s) in fields(v.bytes()) {
                    match f {
                        2 => span.status_message = s.text(),
                        3 => span.status_code = s.number(),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    span
}
