//! `#[track]` on functions that return streams, checked by what reaches LocalOpik over
//! 127.0.0.1: the span ends with the stream, with the time to first token and the
//! aggregated output.

#![cfg(all(feature = "testing", feature = "macros"))]

mod common;

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use tower_opik::stream::StreamChunk;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikFutureExt, Usage, track};

use common::{flushed, span_named, store_for};

/// The spans named `name` that LocalOpik received.
fn spans_named(opik: &LocalOpik, name: &str) -> Vec<Value> {
    opik.spans()
        .into_iter()
        .filter(|s| s["name"] == name)
        .collect()
}

#[track(type = "llm")]
fn tokens(prompt: String) -> impl Stream<Item = String> {
    let words: Vec<String> = prompt.split(' ').map(|w| format!("{w} ")).collect();
    futures_util::stream::iter(words).then(|w| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        w
    })
}

/// A provider chunk: text deltas, the usage on the last one.
#[derive(Clone, Debug)]
struct Chunk {
    delta: Option<String>,
    usage: Option<Value>,
}

impl StreamChunk for Chunk {
    fn chunk_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.delta.as_deref().map(Into::into)
    }

    fn chunk_usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(Usage::from_openai)
    }
}

#[derive(Debug)]
struct Unavailable;

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("model unavailable")
    }
}

impl std::error::Error for Unavailable {}

#[track(type = "llm", name = "chat stream")]
async fn chat(
    model: &str,
) -> Result<impl Stream<Item = Result<Chunk, std::io::Error>> + use<>, Unavailable> {
    tokio::task::yield_now().await;
    if model == "down" {
        return Err(Unavailable);
    }
    let chunks = [
        Chunk {
            delta: Some("Hel".into()),
            usage: None,
        },
        Chunk {
            delta: Some("lo".into()),
            usage: Some(json!({"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11})),
        },
    ];
    Ok(futures_util::stream::iter(chunks.map(Ok)))
}

#[track(stream, generations_aggregator = |items: &[Chunk]| json!({"chunks": items.len()}))]
fn boxed(n: usize) -> futures_util::stream::BoxStream<'static, Chunk> {
    let chunk = Chunk {
        delta: Some("x".into()),
        usage: None,
    };
    futures_util::stream::iter(vec![chunk; n]).boxed()
}

#[tokio::test]
async fn streams_end_their_span_when_they_end_with_ttft_and_aggregated_output() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("request");
    let stream = root.in_scope(|| tokens("Hello tracked world".into()));
    flushed(&store).await;
    assert!(
        opik.spans().is_empty(),
        "open while the stream is not consumed"
    );
    let text: String = stream.collect::<Vec<_>>().await.concat();
    assert_eq!(text, "Hello tracked world ");

    let chunks = chat("gpt").in_span(root.clone()).await.unwrap();
    assert_eq!(chunks.count().await, 2);
    assert!(chat("down").in_span(root.clone()).await.is_err());
    let aggregated = root.in_scope(|| boxed(3));
    assert_eq!(aggregated.count().await, 3);
    root.end();
    flushed(&store).await;

    let span = span_named(&opik, "tokens");
    assert_eq!(span["type"], "llm");
    assert_eq!(span["input"], json!({"prompt": "Hello tracked world"}));
    assert_eq!(span["output"], json!({"output": "Hello tracked world "}));
    let ttft = span["ttft"].as_f64().expect("ttft");
    assert!(ttft >= 5.0, "the first token came after 5 ms: {ttft}");
    assert!(
        span.get("metadata").is_none(),
        "ended at the end, not dropped"
    );

    let chats: Vec<Value> = opik
        .spans()
        .into_iter()
        .filter(|s| s["name"] == "chat stream")
        .collect();
    let streamed = chats.iter().find(|s| s.get("output").is_some()).unwrap();
    assert_eq!(streamed["output"], json!({"output": "Hello"}));
    assert_eq!(streamed["usage"]["prompt_tokens"], 9);
    assert_eq!(streamed["usage"]["original_usage.total_tokens"], 11);
    let down = chats
        .iter()
        .find(|s| s.get("error_info").is_some())
        .unwrap();
    assert_eq!(down["error_info"]["message"], "model unavailable");
    assert!(down.get("ttft").is_none());

    let boxed = span_named(&opik, "boxed");
    assert_eq!(boxed["output"], json!({"chunks": 3}));
}

#[track(type = "tool")]
async fn lookup(word: String) -> String {
    word.to_uppercase()
}

/// Its items are made by a tracked function, called while the stream is polled.
#[track(capture_output = false)]
async fn quiet(words: Vec<&'static str>) -> impl Stream<Item = Chunk> + use<> {
    let n = words.len();
    futures_util::stream::iter(words)
        .enumerate()
        .then(move |(i, w)| async move {
            Chunk {
                delta: Some(lookup(w.to_owned()).await),
                usage: (i + 1 == n).then(|| json!({"input_tokens": 3, "output_tokens": 4})),
            }
        })
}

#[tokio::test]
async fn without_output_a_stream_keeps_usage_and_nests_the_spans_of_its_items() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("request");
    let stream = quiet(vec!["a", "b"]).in_span(root.clone()).await;
    let texts: Vec<String> = stream.map(|c| c.delta.unwrap()).collect().await;
    assert_eq!(texts, ["A", "B"]);
    root.end();
    flushed(&store).await;

    let quiet = span_named(&opik, "quiet");
    assert!(quiet.get("output").is_none(), "capture_output = false");
    assert_eq!(quiet["input"], json!({"words": ["a", "b"]}));
    assert_eq!(
        quiet["usage"]["prompt_tokens"], 3,
        "the Responses API shape"
    );
    assert_eq!(quiet["usage"]["completion_tokens"], 4);
    let lookups = spans_named(&opik, "lookup");
    assert_eq!(lookups.len(), 2);
    for lookup in &lookups {
        assert_eq!(lookup["parent_span_id"], quiet["id"], "{lookup}");
    }
}

#[tokio::test]
async fn a_stream_dropped_before_its_end_still_ends_its_span() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("request");
    let first: Vec<String> = root
        .in_scope(|| tokens("one two three".into()))
        .take(1)
        .collect()
        .await;
    assert_eq!(first, ["one "]);
    root.end();
    flushed(&store).await;

    let span = span_named(&opik, "tokens");
    assert_eq!(
        span["output"],
        json!({"output": "one "}),
        "what came before the drop"
    );
    assert_eq!(span["error_info"]["exception_type"], "StreamIncomplete");
    assert_eq!(span["metadata"]["tower_opik.cancelled"], json!(true));
    assert!(span.get("end_time").is_some());
}
