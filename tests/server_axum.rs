//! `OpikLayer` on a real axum server over TCP, called by reqwest; what reaches LocalOpik.

#![cfg(all(feature = "testing", feature = "axum"))]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use tower_opik::server::{HeaderPolicy, OpikSpan};
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikLayer, SpanStore, SpanType, current_span};
use uuid::Uuid;

use common::{FLUSH, http_client, serve, store_for};

async fn generate(OpikSpan(span): OpikSpan, body: String) -> axum::Json<Value> {
    span.set_input(json!({"prompt": body}));
    // Deep inside: the request span is the current span, across awaits.
    tokio::task::yield_now().await;
    let llm = current_span().child_of_type("completion", SpanType::Llm);
    llm.set_model("gpt-4o");
    llm.end();
    span.set_output(json!({"answer": "42"}));
    axum::Json(json!({"answer": "42"}))
}

async fn user(OpikSpan(span): OpikSpan, Path(id): Path<String>) -> String {
    span.set_metadata("case", id.clone());
    format!("user {id}")
}

/// A body of three chunks sent one by one, without a length.
async fn stream() -> impl IntoResponse {
    let chunks = futures_util::stream::iter(
        ["data: a\n\n", "data: b\n\n", "data: c\n\n"].map(|c| Ok::<_, Infallible>(Bytes::from(c))),
    );
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(chunks),
    )
}

/// One chunk, then nothing, ever: only the client can end it.
async fn endless() -> impl IntoResponse {
    let first = futures_util::stream::iter([Ok::<_, Infallible>(Bytes::from("first"))]);
    let never = futures_util::stream::pending::<Result<Bytes, Infallible>>();
    Body::from_stream(futures_util::StreamExt::chain(first, never))
}

fn app(store: SpanStore) -> Router {
    Router::new()
        .route("/generate_response", post(generate))
        .route("/users/{id}", get(user))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
        .route("/stream", get(stream))
        .route("/endless", get(endless))
        .route("/hang", get(std::future::pending::<&'static str>))
        .route("/health", get(|| async { "ok" }))
        .layer(OpikLayer::new(store).skip(|head| head.uri().path() == "/health"))
}

fn span_named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
}

#[tokio::test]
async fn a_request_becomes_a_trace_with_the_handler_spans_nested() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let addr = serve(app(store.clone())).await;
    let client = http_client();
    let resp = client
        .post(format!("http://{addr}/generate_response"))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).unwrap()["answer"],
        "42"
    );
    let report = store.flush(FLUSH).await;
    assert_eq!(report.stats.sent, 3, "{report}"); // request span, llm span, trace
    let spans = opik.spans();
    let request = span_named(&spans, "POST /generate_response");
    let llm = span_named(&spans, "completion");
    assert_eq!(llm["parent_span_id"], request["id"]);
    assert_eq!(llm["trace_id"], request["trace_id"]);
    assert!(request.get("parent_span_id").is_none());
    assert_eq!(request["metadata"]["http.request.method"], "POST");
    assert_eq!(request["metadata"]["http.route"], "/generate_response");
    assert_eq!(request["metadata"]["http.response.status_code"], 200);
    assert_eq!(request["input"], json!({"prompt": "hi"}));
    let trace = opik
        .trace(request["trace_id"].as_str().unwrap())
        .expect("this service owns the trace");
    assert_eq!(trace["name"], "POST /generate_response");
    assert_eq!(trace["output"], json!({"answer": "42"}));
    assert_eq!(opik.write_count(request["id"].as_str().unwrap()), 1);
}

struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    /// The trace and parent the server span must have; `None`: a fresh trace.
    joins: Option<(Uuid, Option<Uuid>)>,
}

#[tokio::test]
async fn every_header_case_of_the_spec_over_http() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let addr = serve(app(store.clone())).await;
    let (t, p, v4) = (
        tower_opik::id::new_id(),
        tower_opik::id::new_id(),
        Uuid::new_v4(),
    );
    let cases = vec![
        Case {
            name: "missing",
            headers: vec![],
            joins: None,
        },
        Case {
            name: "both valid",
            headers: vec![
                ("opik_trace_id", t.to_string()),
                ("opik_parent_span_id", p.to_string()),
            ],
            joins: Some((t, Some(p))),
        },
        Case {
            name: "trace only",
            headers: vec![("opik_trace_id", t.to_string())],
            joins: Some((t, None)),
        },
        Case {
            name: "padded, upper-case names",
            headers: vec![
                ("OPIK_TRACE_ID", format!("  {t}  ")),
                ("Opik_Parent_Span_Id", format!("\t{p}")),
            ],
            joins: Some((t, Some(p))),
        },
        Case {
            name: "blank trace",
            headers: vec![
                ("opik_trace_id", "  ".into()),
                ("opik_parent_span_id", p.to_string()),
            ],
            joins: None,
        },
        Case {
            name: "v4 trace",
            headers: vec![("opik_trace_id", v4.to_string())],
            joins: None,
        },
        Case {
            name: "garbage trace",
            headers: vec![("opik_trace_id", "<script>".into())],
            joins: None,
        },
        Case {
            name: "blank parent",
            headers: vec![
                ("opik_trace_id", t.to_string()),
                ("opik_parent_span_id", "".into()),
            ],
            joins: Some((t, None)),
        },
        Case {
            name: "v4 parent",
            headers: vec![
                ("opik_trace_id", t.to_string()),
                ("opik_parent_span_id", v4.to_string()),
            ],
            joins: Some((t, None)),
        },
        Case {
            name: "parent without trace",
            headers: vec![("opik_parent_span_id", p.to_string())],
            joins: None,
        },
        Case {
            name: "baggage only",
            headers: vec![("baggage", format!("k=v,opik.trace_id={t},opik.span_id={p}"))],
            joins: Some((t, Some(p))),
        },
        Case {
            name: "baggage with a bad span id",
            headers: vec![("baggage", format!("opik.trace_id={t},opik.span_id=zzz"))],
            joins: Some((t, None)),
        },
    ];
    let client = http_client();
    for (i, case) in cases.iter().enumerate() {
        let mut req = client.get(format!("http://{addr}/users/{i}?secret=should-not-show"));
        for (k, v) in &case.headers {
            req = req.header(*k, v);
        }
        assert_eq!(
            req.send().await.unwrap().status(),
            200,
            "{}: a bad header is never an error",
            case.name
        );
    }
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.failed == 0, "{report}");
    let spans = opik.spans();
    for (i, case) in cases.iter().enumerate() {
        let span = spans
            .iter()
            .find(|s| s["metadata"]["case"].as_str() == Some(i.to_string().as_str()))
            .unwrap_or_else(|| panic!("{}: no span", case.name));
        assert_eq!(
            span["name"], "GET /users/{id}",
            "{}: low-cardinality name",
            case.name
        );
        assert_eq!(span["type"], "general");
        assert_eq!(span["metadata"]["http.route"], "/users/{id}");
        assert!(
            !span.to_string().contains("should-not-show"),
            "{}: the raw URI leaked",
            case.name
        );
        let trace_id = span["trace_id"].as_str().unwrap();
        match case.joins {
            Some((trace, parent)) => {
                assert_eq!(trace_id, trace.to_string(), "{}", case.name);
                assert_eq!(
                    span.get("parent_span_id").and_then(Value::as_str),
                    parent.map(|p| p.to_string()).as_deref(),
                    "{}",
                    case.name
                );
                assert!(
                    opik.trace(trace_id).is_none(),
                    "{}: a joined trace is not written",
                    case.name
                );
            }
            None => {
                assert_ne!(trace_id, t.to_string(), "{}", case.name);
                assert!(span.get("parent_span_id").is_none(), "{}", case.name);
                assert_eq!(
                    opik.trace(trace_id).unwrap()["name"],
                    "GET /users/{id}",
                    "{}",
                    case.name
                );
            }
        }
    }
}

#[tokio::test]
async fn header_policies_decide_whether_to_join() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let router = |policy: HeaderPolicy| {
        Router::new()
            .route("/users/{id}", get(user))
            .layer(OpikLayer::new(store.clone()).header_policy(policy))
    };
    let ignore = serve(router(HeaderPolicy::Ignore)).await;
    let secret = serve(router(HeaderPolicy::require_header(
        "x-internal-token",
        "s3cret",
    )))
    .await;
    let t = tower_opik::id::new_id();
    let client = http_client();
    let send = |addr: SocketAddr, case: &str, token: Option<&str>| {
        let mut req = client
            .get(format!("http://{addr}/users/{case}"))
            .header("opik_trace_id", t.to_string());
        if let Some(token) = token {
            req = req.header("x-internal-token", token);
        }
        req.send()
    };
    send(ignore, "ignored", None).await.unwrap();
    send(secret, "no-token", None).await.unwrap();
    send(secret, "bad-token", Some("s3creT")).await.unwrap();
    send(secret, "good-token", Some("s3cret")).await.unwrap();
    store.flush(FLUSH).await;
    let trace_of = |case: &str| {
        opik.spans()
            .into_iter()
            .find(|s| s["metadata"]["case"] == case)
            .unwrap()["trace_id"]
            .clone()
    };
    assert_ne!(trace_of("ignored"), t.to_string());
    assert_ne!(trace_of("no-token"), t.to_string());
    assert_ne!(trace_of("bad-token"), t.to_string());
    assert_eq!(trace_of("good-token"), t.to_string());
    assert!(
        !opik
            .spans()
            .iter()
            .any(|s| s.to_string().contains("s3cret"))
    );
}

#[tokio::test]
async fn bodies_end_the_span_exactly_once_however_they_end() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let addr = serve(app(store.clone())).await;
    let client = http_client();
    // A streamed body: the span ends when the stream ends.
    let text = client
        .get(format!("http://{addr}/stream"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "data: a\n\ndata: b\n\ndata: c\n\n");
    // HEAD and 204: bodies already at their end.
    assert_eq!(
        client
            .head(format!("http://{addr}/users/head"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("http://{addr}/empty"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    // A 500.
    assert_eq!(
        client
            .get(format!("http://{addr}/fail"))
            .send()
            .await
            .unwrap()
            .status(),
        500
    );
    // The client goes away in the middle of an endless body.
    let mut resp = client
        .get(format!("http://{addr}/endless"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.chunk().await.unwrap().unwrap(), "first");
    drop(resp);
    // The client gives up before the handler answers.
    let timed_out = client
        .get(format!("http://{addr}/hang"))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(timed_out.is_err());
    // Skipped routes cost nothing and record nothing.
    assert_eq!(
        client
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );

    // The server notices the dropped connections on its own time: wait for those spans.
    common::until(|| store.stats().recorded >= 12).await;
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    let spans = opik.spans();
    assert_eq!(spans.len(), 6, "{spans:#?}");
    for span in &spans {
        let id = span["id"].as_str().unwrap();
        assert_eq!(opik.write_count(id), 1, "{span}");
        assert!(span.get("end_time").is_some());
        assert!(
            span["metadata"].get("tower_opik.unfinished").is_none(),
            "ended by the layer: {span}"
        );
    }
    let ok = |name: &str| {
        let s = span_named(&spans, name);
        assert!(s.get("error_info").is_none(), "{name}: {s}");
        s.clone()
    };
    ok("GET /stream");
    assert_eq!(
        ok("HEAD /users/{id}")["metadata"]["http.response.status_code"],
        200
    );
    assert_eq!(
        ok("GET /empty")["metadata"]["http.response.status_code"],
        204
    );
    let failed = span_named(&spans, "GET /fail");
    assert_eq!(failed["error_info"]["exception_type"], "HttpServerError");
    let endless = span_named(&spans, "GET /endless");
    assert_eq!(
        endless["error_info"]["exception_type"],
        "ResponseIncomplete"
    );
    let hang = span_named(&spans, "GET /hang");
    assert_eq!(hang["error_info"]["exception_type"], "Cancelled");
    assert!(hang["metadata"].get("http.response.status_code").is_none());
}

#[tokio::test]
async fn the_layer_is_transparent_when_tracing_is_off() {
    let addr = serve(app(SpanStore::disabled())).await;
    let client = http_client();
    let resp = client
        .post(format!("http://{addr}/generate_response"))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).unwrap()["answer"],
        "42"
    );
}

#[tokio::test]
async fn handler_choices_win_over_the_layer_s_defaults_in_span_and_trace() {
    async fn renamed(OpikSpan(span): OpikSpan) -> &'static str {
        span.set_name("custom name");
        span.set_metadata("http.route", "my own route");
        "ok"
    }
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let app = Router::new()
        .route("/renamed/{id}", get(renamed))
        .route("/plain/{id}", post(|| async { StatusCode::CREATED }))
        .layer(OpikLayer::new(store.clone()));
    let addr = serve(app).await;
    let client = http_client();
    for path in ["renamed/1", "plain/2"] {
        let response = if path.starts_with("plain") {
            client.post(format!("http://{addr}/{path}")).send().await
        } else {
            client.get(format!("http://{addr}/{path}")).send().await
        };
        assert!(response.unwrap().status().is_success());
    }
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.failed == 0, "{report}");
    let (spans, traces) = (opik.spans(), opik.traces());
    assert_eq!((spans.len(), traces.len()), (2, 2));
    for records in [&spans, &traces] {
        let custom = span_named(records, "custom name");
        assert_eq!(custom["metadata"]["http.route"], "my own route");
        assert_eq!(custom["metadata"]["http.request.method"], "GET");
        assert_eq!(custom["metadata"]["http.response.status_code"], 200);
        let plain = span_named(records, "POST /plain/{id}");
        assert_eq!(plain["metadata"]["http.route"], "/plain/{id}");
        assert_eq!(plain["metadata"]["http.request.method"], "POST");
        assert_eq!(plain["metadata"]["http.response.status_code"], 201);
        assert!(plain["metadata"].get("rpc.system").is_none());
    }
}
