//! `#[track]` on real functions, checked by what reaches LocalOpik over 127.0.0.1.

#![cfg(all(feature = "testing", feature = "macros", feature = "axum"))]

mod common;

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikFutureExt, OpikLayer, current_span, track};

use common::{flushed, http_client, serve, span_named, store_for};

// ---- sync and async functions, methods ------------------------------------------------

#[track]
fn add(a: u32, b: u32) -> u32 {
    current_span().child("inside add").end();
    a + b
}

#[derive(Serialize)]
struct Summary {
    words: usize,
    first: Option<String>,
}

#[track]
async fn summarize(text: String, limit: usize) -> Summary {
    tokio::task::yield_now().await;
    let words = text.split_whitespace().take(limit).count();
    // Early return: still recorded.
    if words == 0 {
        return Summary { words, first: None };
    }
    tokio::task::yield_now().await;
    Summary {
        words,
        first: text.split_whitespace().next().map(str::to_owned),
    }
}

#[tokio::test]
async fn sync_and_async_functions_record_arguments_output_and_their_children() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("request");
    assert_eq!(root.in_scope(|| add(2, 3)), 5);
    let summary = summarize("hello tracked world".into(), 2)
        .in_span(root.clone())
        .await;
    assert_eq!(summary.words, 2);
    let empty = summarize(String::new(), 2).in_span(root.clone()).await;
    assert_eq!(empty.words, 0);
    root.end();
    flushed(&store).await;

    let root_id = root.id().unwrap().to_string();
    let add_span = span_named(&opik, "add");
    assert_eq!(add_span["parent_span_id"], root_id.as_str());
    assert_eq!(add_span["trace_id"], root.trace_id().unwrap().to_string());
    assert_eq!(add_span["type"], "general");
    assert_eq!(add_span["input"], json!({"a": 2, "b": 3}));
    assert_eq!(
        add_span["output"],
        json!({"output": 5}),
        "a number is wrapped"
    );
    assert!(add_span.get("end_time").is_some());
    assert!(add_span.get("metadata").is_none(), "ended, not dropped");
    let inside = span_named(&opik, "inside add");
    assert_eq!(
        inside["parent_span_id"], add_span["id"],
        "the body ran in the span"
    );

    let summaries: Vec<Value> = opik
        .spans()
        .into_iter()
        .filter(|s| s["name"] == "summarize")
        .collect();
    assert_eq!(summaries.len(), 2);
    assert!(
        summaries
            .iter()
            .all(|s| s["parent_span_id"] == root_id.as_str())
    );
    let full = summaries
        .iter()
        .find(|s| s["input"]["text"] == "hello tracked world")
        .unwrap();
    assert_eq!(
        full["input"],
        json!({"text": "hello tracked world", "limit": 2})
    );
    assert_eq!(
        full["output"],
        json!({"words": 2, "first": "hello"}),
        "an object is kept"
    );
    let early = summaries.iter().find(|s| s["input"]["text"] == "").unwrap();
    assert_eq!(early["output"], json!({"words": 0, "first": null}));
}

/// Not `Serialize`: `self` is never captured, and the client argument is ignored.
struct Model {
    name: String,
}

struct Connection;

impl Model {
    #[track(type = "llm", ignore_arguments = ["connection"])]
    async fn complete(
        &self,
        connection: &Connection,
        prompt: impl AsRef<str> + Serialize,
    ) -> String {
        let _ = connection;
        tokio::task::yield_now().await;
        format!("{}: {}", self.name, prompt.as_ref())
    }

    #[track(name = format!("generic {}", std::any::type_name::<T>()))]
    fn echo<T: Serialize + Clone>(&self, value: T) -> Vec<T> {
        vec![value.clone(), value]
    }

    #[track]
    fn into_name(self) {
        drop(self.name);
    }
}

#[tokio::test]
async fn methods_leave_self_out_and_take_generics_and_impl_trait_arguments() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("request");
    let model = Model { name: "m1".into() };
    let answer = model
        .complete(&Connection, "hi")
        .in_span(root.clone())
        .await;
    assert_eq!(answer, "m1: hi");
    assert_eq!(root.in_scope(|| model.echo(7u8)), vec![7, 7]);
    root.in_scope(|| model.into_name());
    root.end();
    flushed(&store).await;

    let complete = span_named(&opik, "complete");
    assert_eq!(complete["type"], "llm");
    assert_eq!(
        complete["input"],
        json!({"prompt": "hi"}),
        "no self, no connection"
    );
    assert_eq!(complete["output"], json!({"output": "m1: hi"}));
    let echo = span_named(&opik, "generic u8");
    assert_eq!(echo["input"], json!({"value": 7}));
    assert_eq!(echo["output"], json!({"output": [7, 7]}));
    let into_name = span_named(&opik, "into_name");
    assert!(into_name.get("input").is_none(), "only self: no input");
    assert!(into_name.get("output").is_none(), "() is not sent");
}

// ---- results and errors ---------------------------------------------------------------

#[derive(Debug)]
struct ConfigError {
    source: std::io::Error,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot read the config")
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<std::io::Error> for ConfigError {
    fn from(source: std::io::Error) -> Self {
        ConfigError { source }
    }
}

fn read(path: &str) -> std::io::Result<String> {
    match path {
        "ok" => Ok("limit=3".into()),
        _ => Err(std::io::Error::other(format!("{path}: no such file"))),
    }
}

/// `?` converts the io error into ConfigError (the block has the function's type).
#[track]
fn load_limit(path: &str) -> Result<u32, ConfigError> {
    let text = read(path)?;
    Ok(text.trim_start_matches("limit=").parse().unwrap_or(0))
}

#[track]
async fn load_anyhow(path: &str) -> anyhow::Result<u32> {
    use anyhow::Context;
    tokio::task::yield_now().await;
    let text = read(path).context("loading the prompt template")?;
    Ok(text.len() as u32)
}

/// An error that is only `Display` (and `Debug`), not `std::error::Error`.
#[derive(Debug)]
struct Refusal(&'static str);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

#[track(type = "guardrail")]
fn moderate(text: &str) -> Result<(), Refusal> {
    if text.contains("secret") {
        return Err(Refusal("leak"));
    }
    Ok(())
}

#[tokio::test]
async fn results_record_the_ok_value_or_the_error_with_its_chain() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("request");
    let ok = store.root_span("ok run");
    assert_eq!(ok.in_scope(|| load_limit("ok")).unwrap(), 3);
    ok.end();
    assert!(root.in_scope(|| load_limit("missing.toml")).is_err());
    assert!(load_anyhow("gone").in_span(root.clone()).await.is_err());
    assert!(root.in_scope(|| moderate("the secret")).is_err());
    root.end();
    flushed(&store).await;

    let spans = opik.spans_of_trace(ok.trace_id().unwrap().to_string());
    let ok_span = spans.iter().find(|s| s["name"] == "load_limit").unwrap();
    assert_eq!(ok_span["output"], json!({"output": 3}));
    assert!(ok_span.get("error_info").is_none());

    let failed = opik
        .spans_of_trace(root.trace_id().unwrap().to_string())
        .into_iter()
        .find(|s| s["name"] == "load_limit")
        .unwrap();
    assert!(failed.get("output").is_none(), "an Err has no output");
    let error = &failed["error_info"];
    assert!(
        error["exception_type"]
            .as_str()
            .unwrap()
            .ends_with("ConfigError"),
        "{error}"
    );
    assert_eq!(error["message"], "cannot read the config");
    assert_eq!(
        error["traceback"],
        "cannot read the config\ncaused by: missing.toml: no such file"
    );

    let anyhow_span = span_named(&opik, "load_anyhow");
    let error = &anyhow_span["error_info"];
    assert_eq!(error["exception_type"], "anyhow::Error");
    assert_eq!(error["message"], "loading the prompt template");
    assert_eq!(
        error["traceback"],
        "loading the prompt template\ncaused by: gone: no such file"
    );

    let refusal = span_named(&opik, "moderate");
    assert_eq!(refusal["type"], "guardrail");
    assert_eq!(refusal["error_info"]["message"], "refused: leak");
    assert_eq!(refusal["error_info"]["traceback"], "Refusal(\"leak\")");
}

// ---- nesting --------------------------------------------------------------------------

#[track(type = "tool")]
async fn search(query: String) -> Vec<String> {
    vec![format!("result for {query}")]
}

#[track]
async fn agent(question: String) -> String {
    let results = search(question.clone()).await;
    let nested = tokio::spawn(search("spawned".into()).in_current_opik_span()).await;
    format!("{} + {}", results[0], nested.unwrap()[0])
}

#[tokio::test]
async fn tracked_functions_nest_inside_an_axum_request() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let app = axum::Router::new()
        .route(
            "/ask",
            axum::routing::post(|question: String| async move { agent(question).await }),
        )
        .layer(OpikLayer::new(store.clone()));
    let addr = serve(app).await;
    let answer = http_client()
        .post(format!("http://{addr}/ask"))
        .body("why")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, "result for why + result for spawned");
    flushed(&store).await;

    let request = span_named(&opik, "POST /ask");
    let agent = span_named(&opik, "agent");
    assert_eq!(agent["parent_span_id"], request["id"]);
    assert_eq!(agent["trace_id"], request["trace_id"]);
    assert_eq!(agent["input"], json!({"question": "why"}));
    let searches: Vec<Value> = opik
        .spans()
        .into_iter()
        .filter(|s| s["name"] == "search")
        .collect();
    assert_eq!(searches.len(), 2);
    for search in &searches {
        assert_eq!(search["parent_span_id"], agent["id"], "{search}");
        assert_eq!(search["type"], "tool");
    }
    let trace = opik.trace(request["trace_id"].as_str().unwrap()).unwrap();
    assert_eq!(trace["name"], "POST /ask", "the layer owns the trace");
}

// ---- options --------------------------------------------------------------------------

fn extra() -> Value {
    json!({"source": "extra()"})
}

#[track(
    name = "renamed",
    type = "llm",
    tags = ["alpha", String::from("beta")],
    metadata = {"model": "gpt-4o", "limits": {"max": 3 * 2, "stop": null}, "list": [1, "two"]},
    ignore_arguments = ["api_key"],
)]
fn configured(prompt: &str, api_key: &str) -> usize {
    prompt.len() + api_key.len()
}

#[track(capture_input = false, capture_output = false, metadata = extra(), tags = vec!["t"])]
fn private(secret: &str) -> String {
    secret.to_uppercase()
}

/// Not `Serialize`, and neither captured nor needed.
struct Opaque;

#[track(capture_output = false)]
fn opaque(ok: bool) -> Result<Opaque, std::io::Error> {
    if ok {
        Ok(Opaque)
    } else {
        Err(std::io::Error::other("no opaque"))
    }
}

#[tokio::test]
async fn options_shape_the_recorded_span() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("request");
    root.in_scope(|| {
        assert_eq!(configured("abc", "sk-1"), 7);
        assert_eq!(private("psst"), "PSST");
        assert!(opaque(true).is_ok());
        assert!(opaque(false).is_err());
    });
    root.end();
    flushed(&store).await;

    let configured = span_named(&opik, "renamed");
    assert_eq!(configured["type"], "llm");
    assert_eq!(configured["tags"], json!(["alpha", "beta"]));
    assert_eq!(
        configured["metadata"],
        json!({"model": "gpt-4o", "limits": {"max": 6, "stop": null}, "list": [1, "two"]})
    );
    assert_eq!(
        configured["input"],
        json!({"prompt": "abc"}),
        "api_key ignored"
    );
    assert_eq!(configured["output"], json!({"output": 7}));

    let private = span_named(&opik, "private");
    assert!(private.get("input").is_none());
    assert!(private.get("output").is_none());
    assert_eq!(private["metadata"], json!({"source": "extra()"}));
    assert_eq!(private["tags"], json!(["t"]));

    let opaques: Vec<Value> = opik
        .spans()
        .into_iter()
        .filter(|s| s["name"] == "opaque")
        .collect();
    assert_eq!(opaques.len(), 2);
    assert!(opaques.iter().all(|s| s.get("output").is_none()));
    let failed = opaques.iter().find(|s| s.get("error_info").is_some());
    assert_eq!(failed.unwrap()["error_info"]["message"], "no opaque");
}

#[track(project_name = "billing")]
async fn invoice(customer: u64) -> String {
    let line = line_item(customer).await;
    format!("invoice: {line}")
}

#[track(project_name = "ignored when nested")]
async fn line_item(customer: u64) -> String {
    format!("customer {customer}")
}

#[track]
async fn pending_forever() -> u8 {
    std::future::pending().await
}

/// The one test that installs the global store (a process-wide setting).
#[tokio::test]
async fn top_level_calls_start_a_trace_in_the_global_store() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    store.set_global();
    assert_eq!(invoice(7).await, "invoice: customer 7");
    assert_eq!(add(1, 1), 2);
    let dropped = tokio::time::timeout(Duration::from_millis(20), pending_forever()).await;
    assert!(dropped.is_err());
    // A current span from a disabled store (a layer with tracing off) wins over the
    // global store: nothing is recorded.
    assert_eq!(tower_opik::Span::none().in_scope(|| add(2, 2)), 4);
    flushed(&store).await;

    let invoice = span_named(&opik, "invoice");
    assert!(invoice.get("parent_span_id").is_none(), "a root span");
    assert_eq!(invoice["project_name"], "billing");
    let trace = opik.trace(invoice["trace_id"].as_str().unwrap()).unwrap();
    assert_eq!(trace["name"], "invoice", "the function owns its trace");
    assert_eq!(trace["project_name"], "billing");
    assert_eq!(trace["input"], json!({"customer": 7}));
    assert_eq!(trace["output"], json!({"output": "invoice: customer 7"}));
    let line = span_named(&opik, "line_item");
    assert_eq!(line["parent_span_id"], invoice["id"]);
    assert_eq!(
        line["project_name"], "billing",
        "a nested span stays in its trace's project"
    );

    let add = span_named(&opik, "add");
    let add_trace = opik.trace(add["trace_id"].as_str().unwrap()).unwrap();
    assert_eq!(add_trace["name"], "add");
    assert_eq!(
        add["project_name"], "Default Project",
        "the store's project"
    );

    let pending = span_named(&opik, "pending_forever");
    assert_eq!(
        pending["metadata"]["tower_opik.unfinished"],
        json!(true),
        "a dropped future still ends its span"
    );
    assert!(pending.get("end_time").is_some());
    assert_eq!(opik.traces().len(), 3);
}
