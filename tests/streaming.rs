//! Streamed answers over real TCP, HTTP/1.1 and HTTP/2: the request span is current while
//! the body streams, a body that delivered its Content-Length ends normally, a client that
//! goes away mid-answer is still an incomplete response, and `Span::track_stream` makes a
//! streamed LLM answer one span.

#![cfg(all(feature = "testing", feature = "axum", feature = "reqwest-middleware"))]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use bytes::Bytes;
use futures_util::StreamExt;
use opentelemetry::trace::{Span as _, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::{Value, json};
use tower_opik::client::OpikMiddleware;
use tower_opik::otel::OpikSpanProcessor;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikLayer, SpanStore, SpanType, Usage, current_span};

use common::{FLUSH, http_client, serve, store_for, until};

#[derive(Clone)]
struct Ctx {
    http: ClientWithMiddleware,
    echo: SocketAddr,
    otel: SdkTracerProvider,
}

/// Answers with the Opik headers it received.
async fn echo(headers: HeaderMap) -> String {
    let get = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    format!("{} {}", get("opik_trace_id"), get("opik_parent_span_id"))
}

/// The SSE handler: the LLM span, an outgoing call and an OTel span all happen
/// while the body streams, after the handler has returned.
async fn chat(State(ctx): State<Ctx>) -> impl IntoResponse {
    let event = futures_util::stream::once(async move {
        let llm = current_span().child_of_type("llm completion (streamed)", SpanType::Llm);
        llm.set_model("gpt-4o");
        let echoed = ctx
            .http
            .get(format!("http://{}/echo", ctx.echo))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut otel = ctx.otel.tracer("test").start("otel in stream");
        otel.end();
        llm.end();
        Ok::<_, Infallible>(Event::default().data(echoed))
    });
    Sse::new(event)
}

/// A streamed body with the Content-Length a proxy forwards from its upstream.
async fn sized() -> impl IntoResponse {
    let chunks = futures_util::stream::iter(
        ["hello ", "world"].map(|c| Ok::<_, Infallible>(Bytes::from(c))),
    );
    ([("content-length", "11")], Body::from_stream(chunks))
}

/// One SSE event, then nothing, ever: only the client can end it.
async fn endless() -> impl IntoResponse {
    let first = futures_util::stream::iter([Ok::<_, Infallible>(Event::default().data("first"))]);
    Sse::new(first.chain(futures_util::stream::pending()))
}

/// A streamed LLM answer made one span with `track_stream`, under the request span.
async fn tokens() -> impl IntoResponse {
    let llm = current_span().child_of_type("completion", SpanType::Llm);
    llm.set_model("gpt-4o");
    let chunks = futures_util::stream::iter(["Hel", "lo", "!"]).then(|t| async move {
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(t.to_owned())
    });
    let events = llm
        .track_stream(chunks)
        .map(|t| t.map(|t| Event::default().data(t)));
    Sse::new(events)
}

struct Setup {
    opik: LocalOpik,
    store: SpanStore,
    addr: SocketAddr,
    otel_spans: Spans,
}

type Spans = std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>;

async fn setup() -> Setup {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let echo = serve(Router::new().route("/echo", get(echo))).await;
    let otel_spans = Spans::default();
    let otel = SdkTracerProvider::builder()
        .with_span_processor(OpikSpanProcessor::new())
        .with_span_processor(opentelemetry_sdk::trace::SimpleSpanProcessor::new(
            InMemory(otel_spans.clone()),
        ))
        .build();
    let ctx = Ctx {
        http: ClientBuilder::new(http_client())
            .with(OpikMiddleware::new())
            .build(),
        echo,
        otel: otel.clone(),
    };
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let app = Router::new()
        .route("/chat", get(chat))
        .route("/sized", get(sized))
        .route("/endless", get(endless))
        .route("/tokens", get(tokens))
        .route_service("/file", tower_http::services::ServeFile::new(file))
        .with_state(ctx)
        .layer(OpikLayer::new(store.clone()));
    let addr = serve(app).await;
    Setup {
        opik,
        store,
        addr,
        otel_spans,
    }
}

/// Keeps the OTel spans, to read the Opik ids the processor gave them.
#[derive(Debug)]
struct InMemory(Spans);

impl opentelemetry_sdk::trace::SpanExporter for InMemory {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn otel_attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn clients() -> [(&'static str, reqwest::Client); 2] {
    let _ = http_client();
    [
        (
            "HTTP/1.1",
            reqwest::Client::builder().http1_only().build().unwrap(),
        ),
        (
            "HTTP/2",
            reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .unwrap(),
        ),
    ]
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_opened_while_an_sse_body_streams_nest_under_the_request() {
    let s = setup().await;
    for (version, client) in clients() {
        let body = client
            .get(format!("http://{}/chat", s.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        s.store.flush(FLUSH).await;
        let spans = s.opik.spans();
        let request = *named(&spans, "GET /chat").last().unwrap();
        let llm = *named(&spans, "llm completion (streamed)").last().unwrap();
        assert_eq!(llm["parent_span_id"], request["id"], "{version}");
        assert_eq!(llm["trace_id"], request["trace_id"], "{version}");
        assert_eq!(llm["model"], "gpt-4o");
        // The call made inside the stream carried the request span's ids.
        let expected = format!(
            "data: {} {}",
            request["trace_id"].as_str().unwrap(),
            request["id"].as_str().unwrap()
        );
        assert_eq!(body.trim(), expected, "{version}");
        assert!(
            request.get("error_info").is_none(),
            "{version}: {request:#}"
        );
        // The OTel span started inside the stream got the request span's Opik ids.
        let otel = s.otel_spans.lock().unwrap().pop().expect("an OTel span");
        assert_eq!(otel.name, "otel in stream");
        assert_eq!(
            otel_attribute(&otel, "opik.trace_id").as_deref(),
            request["trace_id"].as_str(),
            "{version}"
        );
        assert_eq!(
            otel_attribute(&otel, "opik.parent_span_id").as_deref(),
            request["id"].as_str(),
            "{version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_delivered_its_content_length_ends_without_error() {
    let s = setup().await;
    for (version, client) in clients() {
        for path in ["/sized", "/file"] {
            let response = client
                .get(format!("http://{}{path}", s.addr))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let expected = response.content_length().unwrap();
            let body = response.bytes().await.unwrap();
            assert_eq!(body.len() as u64, expected, "{version} {path}");
        }
    }
    s.store.flush(FLUSH).await;
    let spans = s.opik.spans();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for span in &spans {
        assert!(span.get("error_info").is_none(), "{span:#}");
        assert!(
            span["metadata"].get("tower_opik.cancelled").is_none(),
            "{span:#}"
        );
        assert!(
            span["metadata"].get("tower_opik.unfinished").is_none(),
            "{span:#}"
        );
        assert_eq!(span["metadata"]["http.response.status_code"], 200);
        let trace = s.opik.trace(span["trace_id"].as_str().unwrap()).unwrap();
        assert!(trace.get("error_info").is_none(), "{trace:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_sse_is_an_incomplete_response() {
    let s = setup().await;
    for (version, client) in clients() {
        let before = s.store.stats().recorded;
        let mut response = client
            .get(format!("http://{}/endless", s.addr))
            .send()
            .await
            .unwrap();
        let first = response.chunk().await.unwrap().unwrap();
        assert!(first.starts_with(b"data: first"), "{version}");
        drop(response);
        // The server notices the disconnect on its own time: wait for the span, not a clock.
        until(|| s.store.stats().recorded >= before + 2).await;
    }
    s.store.flush(FLUSH).await;
    let spans = s.opik.spans();
    assert_eq!(spans.len(), 2);
    for span in &spans {
        assert_eq!(span["error_info"]["exception_type"], "ResponseIncomplete");
        assert_eq!(span["metadata"]["tower_opik.cancelled"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_stream_is_one_llm_span_with_ttft_and_the_whole_answer() {
    let s = setup().await;
    let (_, client) = &clients()[0];
    let body = client
        .get(format!("http://{}/tokens", s.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "data: Hel\n\ndata: lo\n\ndata: !\n\n");
    s.store.flush(FLUSH).await;
    let spans = s.opik.spans();
    let request = named(&spans, "GET /tokens")[0];
    let llm = named(&spans, "completion")[0];
    assert_eq!(llm["parent_span_id"], request["id"]);
    assert_eq!(llm["type"], "llm");
    assert_eq!(llm["output"], json!({"output": "Hello!"}));
    let ttft = llm["ttft"].as_f64().unwrap();
    assert!(ttft >= 0.0, "{llm:#}");
    assert!(llm.get("error_info").is_none());
    // The LLM span ends when its stream ends: no later than the request.
    assert!(llm["end_time"].as_str().unwrap() <= request["end_time"].as_str().unwrap());
}

#[tokio::test]
async fn a_tracked_stream_takes_usage_and_errors_from_its_chunks_and_marks_a_drop() {
    #[derive(Clone)]
    struct Chunk(&'static str, Option<Usage>);
    impl tower_opik::stream::StreamChunk for Chunk {
        fn chunk_text(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn chunk_usage(&self) -> Option<Usage> {
            self.1.clone()
        }
    }
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("root");

    let done = root.child_of_type("done", SpanType::Llm);
    let chunks = [Chunk("a", None), Chunk("b", Some(Usage::tokens(3, 2)))];
    let n = done
        .track_stream(futures_util::stream::iter(chunks.clone()))
        .count()
        .await;
    assert_eq!(n, 2);

    let failed = root.child_of_type("failed", SpanType::Llm);
    let results = [
        Ok("a".to_owned()),
        Err(std::io::Error::other("upstream closed")),
    ];
    failed
        .track_stream(futures_util::stream::iter(results))
        .count()
        .await;

    let dropped = root.child_of_type("dropped", SpanType::Llm);
    let first: Vec<_> = dropped
        .track_stream(futures_util::stream::iter(["x", "y", "z"]))
        .take(1)
        .collect()
        .await;
    assert_eq!(first, ["x"]);

    let empty = root.child_of_type("empty", SpanType::Llm);
    empty
        .track_stream(futures_util::stream::iter(Vec::<String>::new()))
        .count()
        .await;

    let custom = root.child("custom");
    custom
        .track_stream(futures_util::stream::iter(["p", "q"]))
        .aggregate_with(|items: &[&str]| json!({"n": items.len()}))
        .count()
        .await;
    root.end();
    store.flush(FLUSH).await;
    let spans = opik.spans();
    let get = |name| named(&spans, name)[0].clone();
    let done = get("done");
    assert_eq!(done["output"], json!({"output": "ab"}));
    assert_eq!(done["usage"]["prompt_tokens"], 3);
    assert_eq!(done["usage"]["total_tokens"], 5);
    let failed = get("failed");
    assert_eq!(
        failed["error_info"]["exception_type"],
        "std::io::error::Error"
    );
    assert_eq!(failed["error_info"]["message"], "upstream closed");
    assert_eq!(failed["output"], json!({"output": "a"}));
    let dropped = get("dropped");
    assert_eq!(dropped["error_info"]["exception_type"], "StreamIncomplete");
    assert_eq!(dropped["metadata"]["tower_opik.cancelled"], true);
    assert_eq!(dropped["output"], json!({"output": "x"}));
    assert_eq!(get("custom")["output"], json!({"n": 2}));
    // An empty answer sets no output, and no time to first token.
    let empty = get("empty");
    assert!(empty.get("output").is_none(), "{empty:#}");
    assert!(empty.get("ttft").is_none(), "{empty:#}");
    assert!(empty.get("error_info").is_none(), "{empty:#}");
}
