//! Spans as the sidecar records them: a [`SpanRecord`] is filled while the span is open (an
//! [`OpenSpan`]) and handed to the exporter when the span is dropped, so every way out of a
//! request (response finished, error, timeout, client gone) ends its spans.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::trace::Tracer;
use crate::trace::context::{SpanId, TraceId};

/// OTLP `Span.SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside the sidecar (the queue wait).
    Internal = 1,
    /// The sidecar serving a request (the request span).
    Server = 2,
    /// The sidecar calling the model (the worker span).
    Client = 3,
}

/// OTLP `Status.StatusCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanStatus {
    /// Not set: the span ended normally.
    Unset = 0,
    /// The span failed (a 5xx answer, a refusal, a timeout).
    Error = 2,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// A string.
    Text(String),
    /// A string shared by many spans (the ModelServer's and pod's names).
    Shared(std::sync::Arc<str>),
    /// An integer.
    Int(i64),
}

/// One finished span, as exported.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// The trace.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// The parent span (the caller's, for a request span that continues a trace).
    pub parent_id: Option<SpanId>,
    /// The caller's `tracestate`.
    pub trace_state: Option<String>,
    /// The span's name.
    pub name: &'static str,
    /// Server, client or internal.
    pub kind: SpanKind,
    /// Start, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Attributes.
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// Events: time and name.
    pub events: Vec<(u64, &'static str)>,
    /// Error or unset.
    pub status: SpanStatus,
    /// Why it failed.
    pub status_message: Option<String>,
    /// W3C trace flags.
    pub flags: u8,
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A span being recorded; dropping it ends it and hands it to the exporter. Two words, so the
/// futures and bodies that may hold one stay as small as without tracing (the record is boxed).
pub struct OpenSpan {
    tracer: Tracer,
    record: Option<Box<SpanRecord>>,
}

impl OpenSpan {
    /// Starts a span now.
    pub(crate) fn start(tracer: Tracer, record: SpanRecord) -> Self {
        Self {
            tracer,
            record: Some(Box::new(record)),
        }
    }

    /// Adds an attribute.
    #[inline(never)]
    pub fn attribute(&mut self, key: &'static str, value: AttrValue) {
        if let Some(record) = &mut self.record {
            record.attributes.push((key, value));
        }
    }

    /// Adds an event now.
    #[inline(never)]
    pub fn event(&mut self, name: &'static str) {
        if let Some(record) = &mut self.record {
            record.events.push((now_unix_nanos(), name));
        }
    }

    /// Marks the span failed, with the reason.
    #[inline(never)]
    pub fn fail(&mut self, message: impl Into<String>) {
        if let Some(record) = &mut self.record {
            record.status = SpanStatus::Error;
            record.status_message = Some(message.into());
        }
    }

    /// The HTTP status the span ended with: an attribute, and an error from `error_from` up.
    #[inline(never)]
    pub fn http_status(&mut self, status: http::StatusCode, error_from: u16) {
        self.attribute(
            "http.response.status_code",
            AttrValue::Int(i64::from(status.as_u16())),
        );
        if status.as_u16() >= error_from
            && let Some(record) = &mut self.record
        {
            record.status = SpanStatus::Error;
        }
    }
}

// Kept out of line (like the methods above), so that the request path's functions that may
// hold a span compile as they would without tracing.
impl Drop for OpenSpan {
    #[inline(never)]
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.end_unix_nanos = now_unix_nanos().max(record.start_unix_nanos);
            self.tracer.record(record);
        }
    }
}
