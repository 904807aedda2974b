//! SPEC §1, case by case: what `DistributedHeaders::extract` makes of incoming headers.

use http::{HeaderMap, HeaderName, HeaderValue};
use tower_opik::DistributedHeaders;
use tower_opik::headers::{HeaderProblem, HeaderSource};
use uuid::Uuid;

struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    /// Expected (trace, parent) by index into the ids below: 0 = trace, 1 = parent.
    expect: Option<(Uuid, Option<Uuid>)>,
    source: Option<HeaderSource>,
    problems: Vec<HeaderProblem>,
}

#[test]
fn every_header_case_of_the_spec() {
    let t = tower_opik::id::new_id();
    let p = tower_opik::id::new_id();
    let v4 = Uuid::new_v4();
    use HeaderProblem::*;
    use HeaderSource::*;
    let cases = vec![
        Case {
            name: "nothing",
            headers: vec![],
            expect: None,
            source: None,
            problems: vec![],
        },
        Case {
            name: "both valid",
            headers: vec![
                ("opik_trace_id", t.to_string()),
                ("opik_parent_span_id", p.to_string()),
            ],
            expect: Some((t, Some(p))),
            source: Some(OpikHeaders),
            problems: vec![],
        },
        Case {
            name: "trace only",
            headers: vec![("opik_trace_id", t.to_string())],
            expect: Some((t, None)),
            source: Some(OpikHeaders),
            problems: vec![],
        },
        Case {
            name: "upper-case names, padded and upper-case values",
            headers: vec![
                (
                    "OPIK_TRACE_ID",
                    format!("  {}\t", t.to_string().to_uppercase()),
                ),
                ("Opik_Parent_Span_Id", format!(" {p} ")),
            ],
            expect: Some((t, Some(p))),
            source: Some(OpikHeaders),
            problems: vec![],
        },
        Case {
            name: "blank trace id",
            headers: vec![
                ("opik_trace_id", "   ".into()),
                ("opik_parent_span_id", p.to_string()),
            ],
            expect: None,
            source: None,
            problems: vec![BlankTraceId],
        },
        Case {
            name: "empty trace id",
            headers: vec![("opik_trace_id", String::new())],
            expect: None,
            source: None,
            problems: vec![BlankTraceId],
        },
        Case {
            name: "v4 trace id",
            headers: vec![
                ("opik_trace_id", v4.to_string()),
                ("opik_parent_span_id", p.to_string()),
            ],
            expect: None,
            source: None,
            problems: vec![InvalidTraceId],
        },
        Case {
            name: "garbage trace id",
            headers: vec![("opik_trace_id", "'; DROP TABLE spans; --".into())],
            expect: None,
            source: None,
            problems: vec![InvalidTraceId],
        },
        Case {
            name: "trace id without hyphens",
            headers: vec![("opik_trace_id", t.simple().to_string())],
            expect: None,
            source: None,
            problems: vec![InvalidTraceId],
        },
        Case {
            name: "oversized trace id",
            headers: vec![("opik_trace_id", format!("{t}{}", " ".repeat(10_000)))],
            expect: None,
            source: None,
            problems: vec![InvalidTraceId],
        },
        Case {
            name: "blank parent",
            headers: vec![
                ("opik_trace_id", t.to_string()),
                ("opik_parent_span_id", " ".into()),
            ],
            expect: Some((t, None)),
            source: Some(OpikHeaders),
            problems: vec![BlankParentSpanId],
        },
        Case {
            name: "v4 parent",
            headers: vec![
                ("opik_trace_id", t.to_string()),
                ("opik_parent_span_id", v4.to_string()),
            ],
            expect: Some((t, None)),
            source: Some(OpikHeaders),
            problems: vec![InvalidParentSpanId],
        },
        Case {
            name: "garbage parent",
            headers: vec![
                ("opik_trace_id", t.to_string()),
                ("opik_parent_span_id", "zzz".into()),
            ],
            expect: Some((t, None)),
            source: Some(OpikHeaders),
            problems: vec![InvalidParentSpanId],
        },
        Case {
            name: "parent without trace",
            headers: vec![("opik_parent_span_id", p.to_string())],
            expect: None,
            source: None,
            problems: vec![ParentWithoutTrace],
        },
        Case {
            name: "baggage only",
            headers: vec![("baggage", format!("opik.trace_id={t},opik.span_id={p}"))],
            expect: Some((t, Some(p))),
            source: Some(Baggage),
            problems: vec![],
        },
        Case {
            name: "baggage with other members, properties, spaces, percent-encoding",
            headers: vec![(
                "baggage",
                format!(
                    "userId=alice , opik.trace_id = {t};prop=1, opik.span_id={}",
                    p.to_string().replace('-', "%2D")
                ),
            )],
            expect: Some((t, Some(p))),
            source: Some(Baggage),
            problems: vec![],
        },
        Case {
            name: "baggage with the parent_span_id key",
            headers: vec![(
                "baggage",
                format!("opik.trace_id={t},opik.parent_span_id={p}"),
            )],
            expect: Some((t, Some(p))),
            source: Some(Baggage),
            problems: vec![],
        },
        Case {
            name: "baggage with a v4 span id",
            headers: vec![("baggage", format!("opik.trace_id={t},opik.span_id={v4}"))],
            expect: Some((t, None)),
            source: Some(Baggage),
            problems: vec![InvalidParentSpanId],
        },
        Case {
            name: "baggage with a bad trace id",
            headers: vec![("baggage", format!("opik.trace_id=nope,opik.span_id={p}"))],
            expect: None,
            source: None,
            problems: vec![InvalidTraceId],
        },
        Case {
            name: "baggage without opik members",
            headers: vec![("baggage", "userId=alice".into())],
            expect: None,
            source: None,
            problems: vec![],
        },
        Case {
            name: "oversized baggage",
            headers: vec![(
                "baggage",
                format!("opik.trace_id={t},pad={}", "x".repeat(9000)),
            )],
            expect: None,
            source: None,
            problems: vec![InvalidBaggage],
        },
        Case {
            name: "underscore headers win over baggage",
            headers: vec![
                ("opik_trace_id", t.to_string()),
                (
                    "baggage",
                    format!(
                        "opik.trace_id={},opik.span_id={p}",
                        tower_opik::id::new_id()
                    ),
                ),
            ],
            expect: Some((t, None)),
            source: Some(OpikHeaders),
            problems: vec![],
        },
        Case {
            name: "an invalid underscore trace id does not fall back to baggage",
            headers: vec![
                ("opik_trace_id", "bad".into()),
                ("baggage", format!("opik.trace_id={t},opik.span_id={p}")),
            ],
            expect: None,
            source: None,
            problems: vec![InvalidTraceId],
        },
    ];
    for case in cases {
        let mut headers = HeaderMap::new();
        for (name, value) in &case.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let got = DistributedHeaders::extract(&headers);
        let want = case.expect.map(|(t, p)| DistributedHeaders::new(t, p));
        assert_eq!(got.headers, want, "{}", case.name);
        assert_eq!(got.source, case.source, "{}", case.name);
        assert_eq!(got.problems, case.problems, "{}", case.name);
        got.warn(); // never panics, rate-limited
    }
}

#[test]
fn non_text_header_values_are_invalid_not_a_panic() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "opik_trace_id",
        HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    let got = DistributedHeaders::extract(&headers);
    assert_eq!(got.headers, None);
    assert_eq!(got.problems, vec![HeaderProblem::InvalidTraceId]);

    let mut headers = HeaderMap::new();
    headers.insert(
        "baggage",
        HeaderValue::from_bytes(b"opik.trace_id=\xff").unwrap(),
    );
    assert_eq!(
        DistributedHeaders::extract(&headers).problems,
        vec![HeaderProblem::InvalidBaggage]
    );
}

#[test]
fn inject_then_extract_round_trips_and_replaces_stale_values() {
    let stale = DistributedHeaders::new(tower_opik::id::new_id(), Some(tower_opik::id::new_id()));
    let fresh = DistributedHeaders::new(tower_opik::id::new_id(), None);
    let mut headers = HeaderMap::new();
    stale.inject(&mut headers);
    fresh.inject(&mut headers);
    assert_eq!(headers.len(), 1);
    assert_eq!(DistributedHeaders::extract(&headers).headers, Some(fresh));
    let mut headers = HeaderMap::new();
    headers.insert("baggage", stale.to_baggage().parse().unwrap());
    assert_eq!(DistributedHeaders::extract(&headers).headers, Some(stale));
}
