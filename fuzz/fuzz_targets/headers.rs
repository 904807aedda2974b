//! Distributed headers and baggage from arbitrary bytes: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let mut headers = http::HeaderMap::new();
    for name in ["opik_trace_id", "opik_parent_span_id", "baggage"] {
        if let Some(bytes) = parts.next()
            && let Ok(value) = http::HeaderValue::from_bytes(bytes)
        {
            headers.insert(name, value);
        }
    }
    let got = tower_opik::DistributedHeaders::extract(&headers);
    if let Some(ids) = got.headers {
        assert_eq!(ids.trace_id().get_version_num(), 7);
    }
    let _ = tower_opik::DistributedHeaders::extract_baggage(&headers);
});
