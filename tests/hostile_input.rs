//! Hostile input, generated: header and baggage parsing, the config file, LocalOpik's request
//! decoding. No panic, bounded work, a clear answer.
#![cfg(feature = "testing")]

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use tower_opik::DistributedHeaders;

/// Bytes a header value may hold (visible ASCII, space, tab, and obs-text).
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff],
        0..600,
    )
}

/// Text near the shapes the parsers look for, plus noise.
fn nearly_valid() -> impl Strategy<Value = String> {
    let id = tower_opik::id::new_id().to_string();
    prop_oneof![
        Just(id.clone()),
        Just(format!("  {id}  ")),
        Just(id.to_uppercase()),
        Just(id.replace('-', "")),
        Just(format!("opik.trace_id={id},opik.span_id={id}")),
        Just(format!(
            "opik.trace_id={},x=%zz;;,=,,",
            id.replace('-', "%2D")
        )),
        "[ -~]{0,80}",
        "(opik\\.(trace|span|parent_span)_id=[0-9a-f%-]{0,40}[,;]?){0,6}",
    ]
}

/// Random bytes, and JSON shaped like span and trace batches with random fields and values.
fn batch_bodies() -> BoxedStrategy<Vec<u8>> {
    let item = "\\{(\"[a-z_]{1,14}\": ?(\"[ -~]{0,40}\"|-?[0-9]{1,12}(\\.[0-9]{1,3})?|null|true|\\[\\]|\\{\\}),? ?){0,8}\\}";
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        proptest::string::string_regex(&format!("\\{{\"spans\": ?\\[({item},?){{0,4}}\\]\\}}"))
            .unwrap()
            .prop_map(String::into_bytes),
        proptest::string::string_regex(&format!("\\{{\"traces\": ?\\[({item},?){{0,4}}\\]\\}}"))
            .unwrap()
            .prop_map(String::into_bytes),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn distributed_headers_never_panic(trace in header_bytes(), parent in header_bytes(), baggage in header_bytes(), text in nearly_valid()) {
        let mut headers = HeaderMap::new();
        for (name, value) in [("opik_trace_id", &trace), ("opik_parent_span_id", &parent), ("baggage", &baggage)] {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                headers.append(name, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&text) {
            headers.append("baggage", v.clone());
            headers.append("opik_trace_id", v);
        }
        let got = DistributedHeaders::extract(&headers);
        if let Some(ids) = got.headers {
            prop_assert_eq!(ids.trace_id().get_version_num(), 7);
            prop_assert!(ids.parent_span_id().is_none_or(|p| p.get_version_num() == 7));
        }
        prop_assert!(got.problems.len() <= 3);
        let baggage_only = DistributedHeaders::extract_baggage(&headers);
        prop_assert!(baggage_only.headers.is_none_or(|ids| ids.trace_id().get_version_num() == 7));
    }

    #[test]
    fn the_config_file_parser_never_panics(text in "(\\[[a-zA-Z ]{0,8}\\]?|[a-z_ ]{0,12}[=:]?[ -~]{0,20}|[#;][ -~]{0,10}| [ -~]{0,10}|\r|)(\n(\\[[a-zA-Z ]{0,8}\\]?|[a-z_ ]{0,12}[=:]?[ -~]{0,20}|[#;][ -~]{0,10}| [ -~]{0,10}|\r|)){0,12}") {
        if let Err(e) = tower_opik::config::check_config_file("/x/.opik.config", &text) {
            prop_assert!(e.to_string().starts_with("/x/.opik.config:"), "{}", e);
        }
    }

    #[test]
    fn batch_decoding_never_panics(body in batch_bodies()) {
        for kind in ["spans", "traces"] {
            match tower_opik::testing::validate_batch(kind, &body) {
                Ok(n) => prop_assert!((1..=1000).contains(&n)),
                Err((status, message)) => {
                    prop_assert!(matches!(status, 400 | 422), "{status}");
                    prop_assert!(!message.is_empty());
                }
            }
        }
    }
}

#[test]
fn deeply_nested_json_is_refused_not_a_stack_overflow() {
    let deep = format!(
        "{{\"spans\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, _) = tower_opik::testing::validate_batch("spans", deep.as_bytes()).unwrap_err();
    assert_eq!(status, 400);
}
