//! Spans as an OTLP `ExportTraceServiceRequest`, in its protobuf form (`http/protobuf`) or
//! its JSON form (`http/json`): one resource (toolgate), one instrumentation scope, the spans.
//! The few messages involved are written by hand: a protobuf code generator for five messages
//! would cost more than it saves.

use serde_json::{json, Value};

use super::traceparent::SpanContext;

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Str(String),
    Int(i64),
}

/// A span that has ended.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    pub context: SpanContext,
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, AttributeValue)>,
    /// The status message of a span that failed (its status is then ERROR).
    pub error: Option<String>,
}

/// What is said once per request: the resource's attributes.
pub struct Resource<'a> {
    pub attributes: &'a [(String, String)],
}

/// `SPAN_KIND_SERVER`: toolgate is the MCP server its client talks to.
const KIND_SERVER: u64 = 2;
/// `STATUS_CODE_ERROR`.
const STATUS_ERROR: u64 = 2;
const SCOPE: &str = "toolgate";

/// Bytes a span takes, about: the request's first allocation.
const SPAN_BYTES: usize = 400;

pub fn protobuf(resource: &Resource<'_>, spans: &[FinishedSpan]) -> Vec<u8> {
    let mut request = Vec::with_capacity(256 + spans.len() * SPAN_BYTES);
    message(&mut request, 1, |resource_spans| {
        message(resource_spans, 1, |out| {
            for (key, value) in resource.attributes {
                message(out, 1, |kv| {
                    string(kv, 1, key);
                    message(kv, 2, |any| string(any, 1, value));
                });
            }
        });
        message(resource_spans, 2, |scope_spans| {
            message(scope_spans, 1, |scope| {
                string(scope, 1, SCOPE);
                string(scope, 2, env!("CARGO_PKG_VERSION"));
            });
            for span in spans {
                message(scope_spans, 2, |out| span_protobuf(out, span));
            }
        });
    });
    request
}

fn span_protobuf(out: &mut Vec<u8>, span: &FinishedSpan) {
    bytes(out, 1, &span.context.trace_id);
    bytes(out, 2, &span.context.span_id);
    if let Some(parent) = &span.parent {
        bytes(out, 4, parent);
    }
    string(out, 5, &span.name);
    varint_field(out, 6, KIND_SERVER);
    fixed64(out, 7, span.start_unix_nanos);
    fixed64(out, 8, span.end_unix_nanos);
    for (key, value) in &span.attributes {
        message(out, 9, |kv| key_value(kv, key, value));
    }
    if let Some(error) = &span.error {
        message(out, 15, |status| {
            string(status, 2, error);
            varint_field(status, 3, STATUS_ERROR);
        });
    }
    // `flags` (16): bit 8 says whether the parent is remote, bit 9 that bit 8 is known.
    let flags =
        u64::from(span.context.sampled) | 0x100 | if span.parent.is_some() { 0x200 } else { 0 };
    varint_field(out, 16, flags);
}

fn key_value(out: &mut Vec<u8>, key: &str, value: &AttributeValue) {
    string(out, 1, key);
    message(out, 2, |any| match value {
        AttributeValue::Str(s) => string(any, 1, s),
        // int64 is a varint of the two's complement.
        AttributeValue::Int(i) => varint_field(any, 3, *i as u64),
    });
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn tag(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    varint(out, (field << 3) | wire_type);
}

fn varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
    tag(out, field, 0);
    varint(out, value);
}

fn fixed64(out: &mut Vec<u8>, field: u64, value: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&value.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
    tag(out, field, 2);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn string(out: &mut Vec<u8>, field: u64, value: &str) {
    bytes(out, field, value.as_bytes());
}

/// A nested message, written in place: its content first, then its tag and length are
/// inserted before it (one move of the content, no buffer of its own).
fn message(out: &mut Vec<u8>, field: u64, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    write(out);
    let len = (out.len() - start) as u64;
    // A tag and a length: two varints of at most 10 bytes each.
    let mut head = [0u8; 20];
    let mut n = 0;
    for mut value in [(field << 3) | 2, len] {
        while value >= 0x80 {
            head[n] = (value as u8) | 0x80;
            value >>= 7;
            n += 1;
        }
        head[n] = value as u8;
        n += 1;
    }
    out.splice(start..start, head[..n].iter().copied());
}

/// The same request in OTLP/JSON: ids as hex, 64-bit integers as strings.
pub fn json(resource: &Resource<'_>, spans: &[FinishedSpan]) -> Vec<u8> {
    let attribute = |key: &str, value: &AttributeValue| match value {
        AttributeValue::Str(s) => json!({"key": key, "value": {"stringValue": s}}),
        AttributeValue::Int(i) => json!({"key": key, "value": {"intValue": i.to_string()}}),
    };
    let spans: Vec<Value> = spans
        .iter()
        .map(|span| {
            let mut out = json!({
                "traceId": hex::encode(span.context.trace_id),
                "spanId": hex::encode(span.context.span_id),
                "name": span.name,
                "kind": KIND_SERVER,
                "startTimeUnixNano": span.start_unix_nanos.to_string(),
                "endTimeUnixNano": span.end_unix_nanos.to_string(),
                "attributes": span.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
            });
            if let Some(parent) = &span.parent {
                out["parentSpanId"] = Value::String(hex::encode(parent));
            }
            if let Some(error) = &span.error {
                out["status"] = json!({"code": STATUS_ERROR, "message": error});
            }
            out
        })
        .collect();
    let resource: Vec<Value> = resource
        .attributes
        .iter()
        .map(|(k, v)| attribute(k, &AttributeValue::Str(v.clone())))
        .collect();
    let request = json!({"resourceSpans": [{
        "resource": {"attributes": resource},
        "scopeSpans": [{
            "scope": {"name": SCOPE, "version": env!("CARGO_PKG_VERSION")},
            "spans": spans,
        }],
    }]});
    request.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        varint(&mut out, (-1i64) as u64);
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn a_nested_message_is_prefixed_with_its_tag_and_length_in_place() {
        let mut out = vec![9];
        message(&mut out, 1, |outer| {
            message(outer, 2, |inner| inner.extend_from_slice(&[1; 200]));
            outer.push(5);
        });
        // Inner: tag 0x12, length 200 (0xc8 0x01), content; outer: tag 0x0a, length 204.
        let mut want = vec![9, 0x0a, 0xcc, 0x01, 0x12, 0xc8, 0x01];
        want.extend_from_slice(&[1; 200]);
        want.push(5);
        assert_eq!(out, want);
        let mut empty = Vec::new();
        message(&mut empty, 3, |_| {});
        assert_eq!(empty, [0x1a, 0]);
    }

    #[test]
    fn a_span_is_a_length_delimited_message_under_field_two() {
        let span = FinishedSpan {
            context: SpanContext {
                trace_id: [1; 16],
                span_id: [2; 8],
                sampled: true,
            },
            parent: None,
            name: "tools/call echo".into(),
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: vec![("gen_ai.tool.name", AttributeValue::Str("echo".into()))],
            error: None,
        };
        let mut out = Vec::new();
        span_protobuf(&mut out, &span);
        // trace_id: field 1, wire type 2, 16 bytes.
        assert_eq!(&out[..2], &[0x0a, 16]);
        assert_eq!(&out[2..18], &[1; 16]);
        // span_id: field 2.
        assert_eq!(&out[18..20], &[0x12, 8]);
        let text = String::from_utf8(json(&Resource { attributes: &[] }, &[span])).expect("utf-8");
        assert!(
            text.contains(r#""traceId":"01010101010101010101010101010101""#),
            "{text}"
        );
        assert!(text.contains(r#""startTimeUnixNano":"1""#), "{text}");
    }
}
