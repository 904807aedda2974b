//! Token usage ([`Usage`]) and the converters from providers' usage objects.
//!
//! The keys are the ones the Opik Python SDK writes (`sdks/python/src/opik/llm_usage/`:
//! `opik_usage.py`, `openai_chat_completions_usage.py`, `openai_responses_usage.py`,
//! `anthropic_usage.py`, flattened by `base_original_provider_usage.py` with
//! `dict_utils.flatten_dict` and `keep_only_values_of_type(int)`), and so the ones Opik's
//! UI and its cost tracking read (the backend's `SpanCostCalculator` reads
//! `original_usage.prompt_tokens_details.cached_tokens` for OpenAI,
//! `original_usage.input_tokens` and the two `original_usage.cache_*` counters for
//! Anthropic):
//!
//! - `prompt_tokens`, `completion_tokens`, `total_tokens`: OpenAI's names, which the UI
//!   shows;
//! - `original_usage.<path>`: every count of the provider's object, nested objects
//!   flattened with `.` (`original_usage.prompt_tokens_details.cached_tokens`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// Token usage of an LLM call: a map of counter name to an int32 count, as Opik wants it.
///
/// Build it by hand ([`Usage::tokens`], [`Usage::with`]) or from a provider's usage object
/// ([`Usage::from_openai`], [`Usage::from_anthropic`]).
///
/// ```
/// use tower_opik::Usage;
/// let u = Usage::tokens(12, 30);
/// assert_eq!(u.get("total_tokens"), Some(42));
/// let u = u.with("cached_tokens", 8);
/// assert_eq!(serde_json::to_string(&u).unwrap(),
///     r#"{"cached_tokens":8,"completion_tokens":30,"prompt_tokens":12,"total_tokens":42}"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Usage(BTreeMap<String, i32>);

/// The prefix the Python SDK files the provider's own counters under.
const ORIGINAL: &str = "original_usage";

/// Nested objects deeper than this are not flattened (provider usage objects are two
/// levels deep; this only bounds hostile input).
const MAX_DEPTH: usize = 8;

impl Usage {
    /// Prompt and completion tokens, with their total.
    ///
    /// ```
    /// assert_eq!(tower_opik::Usage::tokens(1, 2).get("total_tokens"), Some(3));
    /// ```
    pub fn tokens(prompt: u32, completion: u32) -> Self {
        Self::default()
            .with("prompt_tokens", u64::from(prompt))
            .with("completion_tokens", u64::from(completion))
            .with("total_tokens", u64::from(prompt) + u64::from(completion))
    }

    /// Adds or replaces a counter. Counts above `i32::MAX` (Opik's limit) are clamped.
    ///
    /// ```
    /// let u = tower_opik::Usage::default().with("huge", u64::MAX);
    /// assert_eq!(u.get("huge"), Some(i32::MAX));
    /// ```
    pub fn with(mut self, name: impl Into<String>, count: u64) -> Self {
        self.set(name.into(), count);
        self
    }

    fn set(&mut self, name: String, count: u64) {
        self.0
            .insert(name, i32::try_from(count).unwrap_or(i32::MAX));
    }

    /// A counter's value, in tokens; `None` when the counter is not set (not `0`: Opik
    /// tells an absent counter from a zero one).
    ///
    /// ```
    /// use serde_json::json;
    /// let usage = tower_opik::Usage::from_openai(json!({
    ///     "prompt_tokens": 1200, "completion_tokens": 300,
    ///     "prompt_tokens_details": {"cached_tokens": 1024},
    /// }));
    /// assert_eq!(usage.get("total_tokens"), Some(1500)); // derived: no total was sent
    /// assert_eq!(usage.get("original_usage.prompt_tokens_details.cached_tokens"), Some(1024));
    /// assert_eq!(usage.get("original_usage.completion_tokens_details.reasoning_tokens"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<i32> {
        self.0.get(name).copied()
    }

    /// Whether no counter is set: the default, and what the converters give for a usage
    /// object that is missing or not an object (a streamed answer whose last chunk carried
    /// no usage). An empty usage is sent as `"usage": {}`, so check it before
    /// [`Span::set_usage`](crate::Span::set_usage).
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// let usage = tower_opik::Usage::from_openai(serde_json::Value::Null); // no usage chunk
    /// assert!(usage.is_empty());
    /// if !usage.is_empty() {
    ///     llm.set_usage(usage);
    /// }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Usage from an OpenAI-style usage object: anything `Serialize` (a
    /// `serde_json::Value`, async-openai's `CompletionUsage` or `ResponseUsage`, your own
    /// struct), in either shape:
    ///
    /// - Chat Completions: `prompt_tokens`, `completion_tokens`, `total_tokens`,
    ///   `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`;
    /// - Responses API (no `prompt_tokens`/`completion_tokens`, but `input_tokens` or
    ///   `output_tokens`): `input_tokens` → `prompt_tokens`, `output_tokens` →
    ///   `completion_tokens`, `input_tokens_details`, `output_tokens_details`.
    ///
    /// The result has `prompt_tokens`, `completion_tokens` and `total_tokens` (the sum of
    /// the two when the object has no total), and every count of the object under
    /// `original_usage.` (nested objects flattened with `.`), as the Python SDK's
    /// `OpikUsage.from_openai_completions_dict` / `from_openai_responses_dict`
    /// (`opik/llm_usage/opik_usage.py`) write them.
    ///
    /// Never panics. A count is a whole JSON number from 0 up; counts above `i32::MAX`
    /// are clamped to it (as [`Usage::with`]), while negative, fractional, string,
    /// boolean and `null` values are dropped (the Python SDK keeps only `int`s). Anything
    /// that is not an object gives an empty `Usage`.
    ///
    /// ```
    /// use serde_json::json;
    /// use tower_opik::Usage;
    /// let usage = Usage::from_openai(json!({
    ///     "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
    ///     "prompt_tokens_details": {"cached_tokens": 1024},
    ///     "completion_tokens_details": {"reasoning_tokens": 128},
    /// }));
    /// assert_eq!(usage.get("prompt_tokens"), Some(1200));
    /// assert_eq!(usage.get("original_usage.prompt_tokens_details.cached_tokens"), Some(1024));
    /// assert_eq!(usage.get("original_usage.completion_tokens_details.reasoning_tokens"), Some(128));
    ///
    /// let responses = Usage::from_openai(json!({"input_tokens": 40, "output_tokens": 2, "total_tokens": 42}));
    /// assert_eq!(responses.get("prompt_tokens"), Some(40));
    /// assert_eq!(responses.get("original_usage.input_tokens"), Some(40));
    /// ```
    pub fn from_openai(usage: impl Serialize) -> Usage {
        let Some(object) = as_object(usage) else {
            return Usage::default();
        };
        let chat = object.contains_key("prompt_tokens") || object.contains_key("completion_tokens");
        let responses = object.contains_key("input_tokens") || object.contains_key("output_tokens");
        let (prompt, completion) = if !chat && responses {
            ("input_tokens", "output_tokens")
        } else {
            ("prompt_tokens", "completion_tokens")
        };
        let prompt = object.get(prompt).and_then(count);
        let completion = object.get(completion).and_then(count);
        let total = object.get("total_tokens").and_then(count);
        derived(prompt, completion, total).original(&object)
    }

    /// Usage from an Anthropic-style usage object (`input_tokens`, `output_tokens`,
    /// `cache_creation_input_tokens`, `cache_read_input_tokens`; anything `Serialize`).
    ///
    /// As the Python SDK's `OpikUsage.from_anthropic_dict` (`opik/llm_usage/opik_usage.py`,
    /// checked against its `tests/unit/llm_usage/test_opik_usage.py`): `prompt_tokens` is
    /// the input with both cache counters (Anthropic counts them apart from
    /// `input_tokens`), `completion_tokens` the output, `total_tokens` their sum; when the
    /// object lists `iterations` (context compaction), the sums run over them, since the
    /// top level leaves the compaction out. Every count of the object is also kept under
    /// `original_usage.`, which is what Opik's cost tracking reads for Anthropic.
    ///
    /// The rules for bad values are [`Usage::from_openai`]'s; sums saturate before the
    /// clamp to `i32::MAX`.
    ///
    /// ```
    /// use serde_json::json;
    /// use tower_opik::Usage;
    /// let usage = Usage::from_anthropic(json!({
    ///     "input_tokens": 20, "output_tokens": 80,
    ///     "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000,
    /// }));
    /// assert_eq!(usage.get("prompt_tokens"), Some(2120));
    /// assert_eq!(usage.get("completion_tokens"), Some(80));
    /// assert_eq!(usage.get("total_tokens"), Some(2200));
    /// assert_eq!(usage.get("original_usage.cache_read_input_tokens"), Some(2000));
    /// ```
    pub fn from_anthropic(usage: impl Serialize) -> Usage {
        let Some(object) = as_object(usage) else {
            return Usage::default();
        };
        let iterations: Vec<&Map<String, Value>> = match object.get("iterations") {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
            _ => Vec::new(),
        };
        let (prompt, completion) = if iterations.is_empty() {
            anthropic_counts(&object)
        } else {
            iterations
                .iter()
                .map(|i| anthropic_counts(i))
                .fold((None, None), |(p, c), (ip, ic)| (add(p, ip), add(c, ic)))
        };
        derived(prompt, completion, None).original(&object)
    }

    /// Adds every count of `object` under `original_usage.`.
    fn original(mut self, object: &Map<String, Value>) -> Self {
        flatten(object, ORIGINAL, 0, &mut self);
        self
    }
}

/// The provider's object as JSON, if it is an object.
fn as_object(usage: impl Serialize) -> Option<Map<String, Value>> {
    match serde_json::to_value(usage) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

/// A count: a whole number from 0 up (`12` or `12.0`); anything else is dropped.
fn count(value: &Value) -> Option<u64> {
    let Value::Number(n) = value else { return None };
    if let Some(n) = n.as_u64() {
        return Some(n);
    }
    // Negative integers are `i64` and dropped here; floats must be whole and finite.
    let f = n
        .as_f64()
        .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0)?;
    // `as` saturates at u64::MAX; the clamp to i32::MAX follows.
    Some(f as u64)
}

fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Anthropic's prompt (input with both cache counters) and completion of one object.
fn anthropic_counts(object: &Map<String, Value>) -> (Option<u64>, Option<u64>) {
    let get = |key: &str| object.get(key).and_then(count);
    let prompt = get("input_tokens").map(|input| {
        input
            .saturating_add(get("cache_read_input_tokens").unwrap_or(0))
            .saturating_add(get("cache_creation_input_tokens").unwrap_or(0))
    });
    (prompt, get("output_tokens"))
}

/// The OpenAI-named counters; the total is the sum when only the parts are known.
fn derived(prompt: Option<u64>, completion: Option<u64>, total: Option<u64>) -> Usage {
    let total = total.or_else(|| Some(prompt?.saturating_add(completion?)));
    let mut usage = Usage::default();
    for (name, value) in [
        ("prompt_tokens", prompt),
        ("completion_tokens", completion),
        ("total_tokens", total),
    ] {
        if let Some(value) = value {
            usage.set(name.to_owned(), value);
        }
    }
    usage
}

fn flatten(object: &Map<String, Value>, prefix: &str, depth: usize, out: &mut Usage) {
    for (key, value) in object {
        let path = format!("{prefix}.{key}");
        match value {
            Value::Object(inner) if depth < MAX_DEPTH => flatten(inner, &path, depth + 1, out),
            other => {
                if let Some(n) = count(other) {
                    out.set(path, n);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "usage_tests.rs"]
mod tests;
