//! The converters against each provider shape, missing fields and hostile values.

use serde::Serialize;
use serde_json::json;

use super::Usage;

fn entries(usage: &Usage) -> Vec<(&str, i32)> {
    usage.0.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

#[test]
fn chat_completions_keep_the_short_keys_and_flatten_the_original() {
    let usage = Usage::from_openai(json!({
        "prompt_tokens": 310,
        "completion_tokens": 45,
        "total_tokens": 355,
        "prompt_tokens_details": {"cached_tokens": 256, "audio_tokens": null},
        "completion_tokens_details": {"reasoning_tokens": 12, "accepted_prediction_tokens": 0},
        "service_tier": "default",
    }));
    assert_eq!(
        entries(&usage),
        [
            ("completion_tokens", 45),
            ("original_usage.completion_tokens", 45),
            (
                "original_usage.completion_tokens_details.accepted_prediction_tokens",
                0
            ),
            (
                "original_usage.completion_tokens_details.reasoning_tokens",
                12
            ),
            ("original_usage.prompt_tokens", 310),
            ("original_usage.prompt_tokens_details.cached_tokens", 256),
            ("original_usage.total_tokens", 355),
            ("prompt_tokens", 310),
            ("total_tokens", 355),
        ]
    );
}

#[test]
fn the_responses_api_shape_maps_input_and_output_to_prompt_and_completion() {
    let usage = Usage::from_openai(json!({
        "input_tokens": 900,
        "output_tokens": 70,
        "total_tokens": 970,
        "input_tokens_details": {"cached_tokens": 512},
        "output_tokens_details": {"reasoning_tokens": 64},
    }));
    assert_eq!(
        entries(&usage),
        [
            ("completion_tokens", 70),
            ("original_usage.input_tokens", 900),
            ("original_usage.input_tokens_details.cached_tokens", 512),
            ("original_usage.output_tokens", 70),
            ("original_usage.output_tokens_details.reasoning_tokens", 64),
            ("original_usage.total_tokens", 970),
            ("prompt_tokens", 900),
            ("total_tokens", 970),
        ]
    );
}

/// async-openai's `CompletionUsage` has this shape: `Option`s serialize as `null`.
#[derive(Serialize)]
struct CompletionUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    prompt_tokens_details: Option<PromptTokensDetails>,
    completion_tokens_details: Option<()>,
}

#[derive(Serialize)]
struct PromptTokensDetails {
    cached_tokens: Option<u32>,
    audio_tokens: Option<u32>,
}

#[test]
fn a_typed_struct_converts_like_its_json() {
    let typed = CompletionUsage {
        prompt_tokens: 10,
        completion_tokens: 5,
        total_tokens: 15,
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(4),
            audio_tokens: None,
        }),
        completion_tokens_details: None,
    };
    let from_json = Usage::from_openai(json!({
        "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 4},
    }));
    assert_eq!(Usage::from_openai(&typed), from_json);
}

#[test]
fn anthropic_counts_both_caches_in_the_prompt() {
    let usage = Usage::from_anthropic(json!({
        "input_tokens": 150,
        "output_tokens": 60,
        "cache_creation_input_tokens": 40,
        "cache_read_input_tokens": 25,
        "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard",
    }));
    assert_eq!(
        entries(&usage),
        [
            ("completion_tokens", 60),
            ("original_usage.cache_creation.ephemeral_1h_input_tokens", 0),
            (
                "original_usage.cache_creation.ephemeral_5m_input_tokens",
                40
            ),
            ("original_usage.cache_creation_input_tokens", 40),
            ("original_usage.cache_read_input_tokens", 25),
            ("original_usage.input_tokens", 150),
            ("original_usage.output_tokens", 60),
            ("prompt_tokens", 215),
            ("total_tokens", 275),
        ]
    );
}

#[test]
fn anthropic_without_cache_counters_and_with_compaction_iterations() {
    let plain = Usage::from_anthropic(json!({"input_tokens": 8, "output_tokens": 2}));
    assert_eq!(plain.get("prompt_tokens"), Some(8));
    assert_eq!(plain.get("total_tokens"), Some(10));
    // Compaction: the top level leaves the compaction iteration out; the sums include it.
    let compacted = Usage::from_anthropic(json!({
        "input_tokens": 300, "output_tokens": 20,
        "cache_creation_input_tokens": 5, "cache_read_input_tokens": 50,
        "iterations": [
            {"type": "compaction", "input_tokens": 1000, "output_tokens": 100,
             "cache_creation_input_tokens": 10, "cache_read_input_tokens": 0},
            {"type": "message", "input_tokens": 300, "output_tokens": 20,
             "cache_creation_input_tokens": 5, "cache_read_input_tokens": 50},
        ],
    }));
    assert_eq!(compacted.get("prompt_tokens"), Some(1365));
    assert_eq!(compacted.get("completion_tokens"), Some(120));
    assert_eq!(compacted.get("total_tokens"), Some(1485));
    assert_eq!(compacted.get("original_usage.input_tokens"), Some(300));
    assert!(
        !compacted.0.keys().any(|k| k.contains("iterations")),
        "lists are not flattened, as in the Python SDK"
    );
}

#[test]
fn missing_fields_give_what_is_known() {
    assert!(Usage::from_openai(json!({})).is_empty());
    assert!(Usage::from_anthropic(json!({})).is_empty());
    let prompt_only = Usage::from_openai(json!({"prompt_tokens": 7}));
    assert_eq!(
        entries(&prompt_only),
        [("original_usage.prompt_tokens", 7), ("prompt_tokens", 7)],
        "no total without both parts"
    );
    let no_total = Usage::from_openai(json!({"prompt_tokens": 7, "completion_tokens": 3}));
    assert_eq!(no_total.get("total_tokens"), Some(10), "the sum");
    assert_eq!(no_total.get("original_usage.total_tokens"), None);
    let output_only = Usage::from_anthropic(json!({"output_tokens": 4}));
    assert_eq!(output_only.get("completion_tokens"), Some(4));
    assert_eq!(output_only.get("prompt_tokens"), None);
    assert_eq!(output_only.get("total_tokens"), None);
    let unknown = Usage::from_openai(json!({"characters": 120}));
    assert_eq!(entries(&unknown), [("original_usage.characters", 120)]);
}

#[test]
fn negative_fractional_and_non_numeric_counts_are_dropped() {
    let usage = Usage::from_openai(json!({
        "prompt_tokens": -5,
        "completion_tokens": 2.5,
        "total_tokens": "12",
        "prompt_tokens_details": {"cached_tokens": true, "audio_tokens": 3.0},
        "completion_tokens_details": [1, 2],
    }));
    assert_eq!(
        entries(&usage),
        [("original_usage.prompt_tokens_details.audio_tokens", 3)],
        "a whole float is a count; nothing else here is"
    );
    let anthropic = Usage::from_anthropic(json!({
        "input_tokens": 10, "output_tokens": -1, "cache_read_input_tokens": -100,
    }));
    assert_eq!(
        anthropic.get("prompt_tokens"),
        Some(10),
        "a negative cache count is 0"
    );
    assert_eq!(anthropic.get("completion_tokens"), None);
    assert_eq!(anthropic.get("total_tokens"), None);
}

#[test]
fn huge_counts_and_sums_are_clamped_to_int32() {
    let usage = Usage::from_openai(json!({
        "prompt_tokens": u64::MAX,
        "completion_tokens": 3_000_000_000u64,
        "prompt_tokens_details": {"cached_tokens": 1e300},
    }));
    assert_eq!(usage.get("prompt_tokens"), Some(i32::MAX));
    assert_eq!(usage.get("completion_tokens"), Some(i32::MAX));
    assert_eq!(
        usage.get("total_tokens"),
        Some(i32::MAX),
        "the sum saturates"
    );
    assert_eq!(
        usage.get("original_usage.prompt_tokens_details.cached_tokens"),
        Some(i32::MAX)
    );
    let anthropic = Usage::from_anthropic(json!({
        "input_tokens": u64::MAX, "cache_read_input_tokens": u64::MAX,
        "cache_creation_input_tokens": u64::MAX, "output_tokens": u64::MAX,
    }));
    assert_eq!(anthropic.get("total_tokens"), Some(i32::MAX));
}

#[test]
fn anything_but_an_object_is_empty_and_nothing_panics() {
    for value in [
        json!(null),
        json!(42),
        json!("usage"),
        json!([1, 2]),
        json!(true),
    ] {
        assert!(Usage::from_openai(&value).is_empty(), "{value}");
        assert!(Usage::from_anthropic(&value).is_empty(), "{value}");
    }
    // A map with non-string keys cannot become JSON: empty, not a panic.
    let unserializable: std::collections::HashMap<(u8, u8), u32> = [((1, 2), 3)].into();
    assert!(Usage::from_openai(&unserializable).is_empty());
}

#[test]
fn deep_nesting_is_bounded() {
    let mut value = json!({"leaf": 1});
    for _ in 0..200 {
        value = json!({"n": value});
    }
    let usage = Usage::from_openai(json!({"prompt_tokens": 1, "deep": value}));
    assert_eq!(usage.get("prompt_tokens"), Some(1));
    assert!(
        usage.0.keys().all(|k| k.matches('.').count() <= 10),
        "{usage:?}"
    );
}
