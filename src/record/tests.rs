//! The records' JSON: typed request metadata, the trace of a root span, every field.

use super::*;

fn request_span() -> SpanRecord {
    let mut span = SpanRecord::new(
        crate::id::new_id(),
        crate::id::new_id(),
        "GET",
        Timestamp::now(),
    );
    span.metadata.insert("http.response.status_code", "mine");
    span.request = Some(RequestMetadata {
        method: Some(http::Method::GET),
        route: Some(Arc::from("/a/{b}")),
        status: Some(503),
        grpc: true,
        grpc_status: Some(14),
        name_from_route: true,
    });
    span
}

#[test]
fn typed_request_metadata_is_written_at_encoding_and_the_users_keys_win() {
    let record = Record::from(request_span());
    let json: Value = serde_json::from_slice(&record.to_json().unwrap()).unwrap();
    assert_eq!(json["name"], "GET /a/{b}");
    assert_eq!(
        json["metadata"],
        serde_json::json!({
            "http.request.method": "GET",
            "http.route": "/a/{b}",
            "http.response.status_code": "mine",
            "rpc.system": "grpc",
            "rpc.grpc.status_code": 14,
        })
    );
}

#[test]
fn a_root_span_writes_its_trace_from_its_own_record() {
    let mut span = request_span();
    span.input = Payload::from_serialize(serde_json::json!({"q": "why \"quoted\"?"}), "input");
    span.tags = vec!["a".into()];
    span.ttft = Some(12.5);
    span.trace = Some(Box::new(TraceFields {
        thread_id: Some("conversation-1".into()),
        ..TraceFields::default()
    }));
    let trace_id = span.trace_id;
    let record = Record::from(span);
    assert_eq!(record.count(), 2);
    let trace: Value = serde_json::from_slice(&record.trace_json().unwrap().unwrap()).unwrap();
    assert_eq!(trace["id"], trace_id.to_string().as_str());
    assert_eq!(trace["name"], "GET /a/{b}");
    assert_eq!(trace["input"]["q"], "why \"quoted\"?");
    assert_eq!(trace["thread_id"], "conversation-1");
    assert_eq!(trace["ttft"], 12.5);
    assert_eq!(trace["metadata"]["http.route"], "/a/{b}");
    assert!(trace.get("trace_id").is_none() && trace.get("type").is_none());
    let span: Value = serde_json::from_slice(&record.to_json().unwrap()).unwrap();
    assert!(span.get("thread_id").is_none());
    assert_eq!(span["type"], "general");
}

#[test]
fn every_field_is_written_once_with_its_wire_name() {
    let t = Timestamp::now();
    let mut s = SpanRecord::new(crate::id::new_id(), crate::id::new_id(), "a \"b\"\n", t);
    s.project_name = Some(Arc::from("p\u{e9}"));
    s.parent_span_id = Some(crate::id::new_id());
    s.span_type = SpanType::Llm;
    s.end_time = Some(t);
    s.last_updated_at = Some(t);
    s.input = Payload::from_serialize(serde_json::json!({"q": [1, 2]}), "input");
    s.output = Payload::from_serialize("text", "output");
    s.metadata.insert("k", serde_json::json!({"n": null}));
    s.model = Some("m".into());
    s.provider = Some("openai".into());
    s.tags = vec!["x".into(), "y".into()];
    s.usage = Some(Usage::tokens(1, 2));
    s.error_info = Some(ErrorInfo::new("E", "boom"));
    s.total_estimated_cost = Some(0.25);
    s.ttft = Some(1.5);
    s.environment = Some("prod".into());
    let json = Record::from(s.clone()).to_json().unwrap();
    let v: Value = serde_json::from_slice(&json).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), keys.len(), "no key twice: {keys:?}");
    assert_eq!(keys.len(), 21, "{keys:?}");
    assert_eq!(v["name"], "a \"b\"\n");
    assert_eq!(v["project_name"], "p\u{e9}");
    assert_eq!(v["type"], "llm");
    assert_eq!(v["input"]["q"], serde_json::json!([1, 2]));
    assert_eq!(v["output"]["output"], "text");
    assert_eq!(v["metadata"]["k"]["n"], Value::Null);
    assert_eq!(v["tags"], serde_json::json!(["x", "y"]));
    assert_eq!(v["usage"]["completion_tokens"], 2);
    assert_eq!(v["error_info"]["exception_type"], "E");
    assert_eq!(v["total_estimated_cost"], 0.25);
    assert_eq!(v["ttft"], 1.5);
    assert_eq!(v["source"], "sdk");
    assert_eq!(v["environment"], "prod");
    assert_eq!(v["end_time"], v["last_updated_at"]);
    assert_eq!(v["start_time"], t.to_string().as_str());
}

#[test]
fn serde_serialization_is_the_encoders_output() {
    let span = request_span();
    let mut out = Vec::new();
    encode::span(&span, &mut out).unwrap();
    assert_eq!(serde_json::to_vec(&span).unwrap(), out);
    let as_value = serde_json::to_value(&span).unwrap();
    assert_eq!(as_value["metadata"]["rpc.grpc.status_code"], 14);
}
