//! Unit tests of `headers.rs`: percent-decoding, go-opik names on any carrier, baggage precedence.

use super::*;

#[test]
fn any_carrier_takes_go_opik_names_after_the_official_ones() {
    let (t, p) = (
        crate::id::new_id().to_string(),
        crate::id::new_id().to_string(),
    );
    let go = [
        ("x-opik-trace-id", t.as_str()),
        ("x-opik-parent-span-id", p.as_str()),
    ];
    let got =
        DistributedHeaders::extract_with(|k| go.iter().find(|(n, _)| *n == k).map(|(_, v)| *v));
    assert_eq!(got.source, Some(HeaderSource::GoOpikHeaders));
    assert_eq!(
        got.headers.unwrap().parent_span_id().unwrap().to_string(),
        p
    );
    let both = [
        ("x-opik-trace-id", p.as_str()),
        ("opik_trace_id", t.as_str()),
    ];
    let got =
        DistributedHeaders::extract_with(|k| both.iter().find(|(n, _)| *n == k).map(|(_, v)| *v));
    assert_eq!(
        got.headers.unwrap().trace_id().to_string(),
        t,
        "the official name wins"
    );
}

#[test]
fn in_baggage_a_valid_value_beats_an_invalid_one() {
    let (t, p) = (crate::id::new_id(), crate::id::new_id());
    let mut h = HeaderMap::new();
    h.insert(
        "baggage",
        format!("opik.trace_id=bad,opik.trace_id={t},opik.span_id=nope,opik.parent_span_id={p}")
            .parse()
            .unwrap(),
    );
    let got = DistributedHeaders::extract_baggage(&h);
    assert_eq!(got.headers, Some(DistributedHeaders::new(t, Some(p))));
    assert!(got.problems.is_empty(), "{:?}", got.problems);
    // Two valid span ids: `opik.span_id` wins, as the first of a key does.
    let q = crate::id::new_id();
    h.insert(
        "baggage",
        format!("opik.trace_id={t},opik.parent_span_id={p},opik.span_id={q},opik.span_id={p}")
            .parse()
            .unwrap(),
    );
    assert_eq!(
        DistributedHeaders::extract_baggage(&h).headers,
        Some(DistributedHeaders::new(t, Some(q)))
    );
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%2Db"), "a-b");
    assert_eq!(percent_decode("%"), "%");
    assert_eq!(percent_decode("%4"), "%4");
    assert_eq!(percent_decode("%zz"), "%zz");
    assert_eq!(percent_decode("x%41"), "xA");
    assert_eq!(percent_decode("%%41%"), "%A%");
    assert_eq!(percent_decode("%e2%9c%93"), "\u{2713}");
    assert_eq!(percent_decode("a%FFb%E2%9C"), "a\u{FFFD}b\u{FFFD}");
    assert_eq!(percent_decode("a+b%20c"), "a+b c");
}
