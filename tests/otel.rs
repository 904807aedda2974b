//! The OpenTelemetry bridge, exported for real over OTLP/HTTP protobuf to LocalOpik.
#![cfg(all(
    feature = "testing",
    feature = "otel",
    feature = "axum",
    feature = "reqwest-middleware"
))]

mod common;

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tower_opik::otel::{OpikPropagator, OpikSpanProcessor, attach_to_parent, opik_otlp_exporter};
use tower_opik::testing::{LocalOpik, OtelSpan};
use tower_opik::{OpikConfig, OpikFutureExt};

use common::{FLUSH, store_for};

fn provider(opik: &LocalOpik) -> SdkTracerProvider {
    let config = OpikConfig::builder()
        .url(opik.base_url())
        .project_name("otel-project")
        .ignore_environment()
        .no_config_file()
        .build()
        .unwrap();
    SdkTracerProvider::builder()
        .with_span_processor(OpikSpanProcessor::new())
        .with_batch_exporter(opik_otlp_exporter(&config).unwrap())
        .build()
}

/// Ends every span, flushes the provider (off the async threads: the SDK blocks), and returns
/// what LocalOpik received, by name.
async fn export(provider: SdkTracerProvider, opik: &LocalOpik) -> HashMap<String, OtelSpan> {
    tokio::task::spawn_blocking(move || {
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
    })
    .await
    .unwrap();
    opik.otel_spans()
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect()
}

fn attr<'a>(span: &'a OtelSpan, key: &str) -> Option<&'a str> {
    span.attributes.get(key).map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_boundary_and_three_levels_of_descendants() {
    let opik = LocalOpik::start().await.unwrap();
    let provider = provider(&opik);
    let tracer = provider.tracer("test");
    let (t, p) = (tower_opik::id::new_id(), tower_opik::id::new_id());
    let mut headers = http::HeaderMap::new();
    headers.insert("opik_trace_id", t.to_string().parse().unwrap());
    headers.insert("opik_parent_span_id", p.to_string().parse().unwrap());

    let mut boundary = tracer.start("boundary");
    assert!(attach_to_parent(&mut boundary, &headers));
    let cx0 = Context::current_with_span(boundary);
    let cx1 = cx0.with_span(tracer.start_with_context("level 1", &cx0));
    let cx2 = cx1.with_span(tracer.start_with_context("level 2", &cx1));
    let cx3 = cx2.with_span(tracer.start_with_context("level 3", &cx2));
    let unrelated = tracer.start("unrelated");
    for cx in [&cx3, &cx2, &cx1, &cx0] {
        cx.span().end();
    }
    drop(unrelated);
    let spans = export(provider, &opik).await;
    assert_eq!(spans.len(), 5, "{spans:#?}");

    let boundary = &spans["boundary"];
    assert_eq!(
        attr(boundary, "opik.trace_id"),
        Some(t.to_string().as_str())
    );
    assert_eq!(
        attr(boundary, "opik.parent_span_id"),
        Some(p.to_string().as_str())
    );
    let mut parent = attr(boundary, "opik.span_id").unwrap().to_owned();
    assert!(tower_opik::id::parse_v7(&parent).is_some());
    let mut seen = vec![parent.clone()];
    for name in ["level 1", "level 2", "level 3"] {
        let s = &spans[name];
        assert_eq!(
            attr(s, "opik.trace_id"),
            Some(t.to_string().as_str()),
            "{name}"
        );
        assert_eq!(
            attr(s, "opik.parent_span_id"),
            Some(parent.as_str()),
            "{name}"
        );
        let own = attr(s, "opik.span_id").unwrap().to_owned();
        assert!(
            tower_opik::id::parse_v7(&own).is_some() && !seen.contains(&own),
            "{name}: fresh id"
        );
        seen.push(own.clone());
        parent = own;
    }
    let unrelated = &spans["unrelated"];
    assert!(
        unrelated.attributes.keys().all(|k| !k.starts_with("opik.")),
        "{unrelated:?}"
    );
    assert!(
        spans
            .values()
            .all(|s| s.project_name.as_deref() == Some("otel-project"))
    );
    assert!(
        opik.requests().iter().all(|r| r.status == 200),
        "{:?}",
        opik.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_headers_attach_nothing_or_drop_the_parent() {
    let opik = LocalOpik::start().await.unwrap();
    let provider = provider(&opik);
    let tracer = provider.tracer("test");
    let t = tower_opik::id::new_id();
    let cases = [
        ("blank", vec![("opik_trace_id", "  ".to_owned())], None),
        (
            "malformed",
            vec![("opik_trace_id", "not-a-uuid".to_owned())],
            None,
        ),
        (
            "v4",
            vec![("opik_trace_id", uuid::Uuid::new_v4().to_string())],
            None,
        ),
        (
            "parent only",
            vec![("opik_parent_span_id", tower_opik::id::new_id().to_string())],
            None,
        ),
        (
            "v4 parent",
            vec![
                ("opik_trace_id", t.to_string()),
                ("opik_parent_span_id", uuid::Uuid::new_v4().to_string()),
            ],
            Some(t),
        ),
    ];
    for (name, pairs, expected) in &cases {
        let mut headers = http::HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(*k, v.parse().unwrap());
        }
        let mut span = tracer.start(*name);
        assert_eq!(
            attach_to_parent(&mut span, &headers),
            expected.is_some(),
            "{name}"
        );
        span.end();
    }
    let spans = export(provider, &opik).await;
    for (name, _, expected) in &cases {
        let s = &spans[*name];
        match expected {
            None => assert!(
                s.attributes.keys().all(|k| !k.starts_with("opik.")),
                "{name}: {s:?}"
            ),
            Some(t) => {
                assert_eq!(attr(s, "opik.trace_id"), Some(t.to_string().as_str()));
                assert_eq!(
                    attr(s, "opik.parent_span_id"),
                    None,
                    "{name}: the bad parent is dropped"
                );
                assert!(attr(s, "opik.span_id").is_some());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_propagator_and_baggage_carry_the_ids() {
    let opik = LocalOpik::start().await.unwrap();
    let provider = provider(&opik);
    let tracer = provider.tracer("test");
    let (t, p) = (tower_opik::id::new_id(), tower_opik::id::new_id());
    // Extract from incoming headers: the next span started in that context is attached.
    let incoming = HashMap::from([
        ("opik_trace_id".to_owned(), t.to_string()),
        ("opik_parent_span_id".to_owned(), p.to_string()),
    ]);
    let cx = OpikPropagator::new().extract(&incoming);
    let server = tracer.start_with_context("server", &cx);
    let cx = cx.with_span(server);
    // Inject into an outgoing call: the server span's own Opik id is the parent sent.
    let mut outgoing = HashMap::new();
    OpikPropagator::new().inject_context(&cx, &mut outgoing);
    cx.span().end();
    let spans = export(provider, &opik).await;
    let server = &spans["server"];
    assert_eq!(attr(server, "opik.trace_id"), Some(t.to_string().as_str()));
    assert_eq!(
        attr(server, "opik.parent_span_id"),
        Some(p.to_string().as_str())
    );
    assert_eq!(outgoing.get("opik_trace_id"), Some(&t.to_string()));
    assert_eq!(
        outgoing.get("opik_parent_span_id").map(String::as_str),
        attr(server, "opik.span_id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_spans_started_in_our_span_nest_under_it() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let provider = provider(&opik);
    let tracer = provider.tracer("test");
    let ours = store.root_span("ours");
    ours.in_scope(|| {
        let mut span = tracer.start("otel inside");
        span.set_attribute(KeyValue::new("k", "v"));
        span.end();
    });
    ours.end();
    store.flush(FLUSH).await;
    let spans = export(provider, &opik).await;
    let inside = &spans["otel inside"];
    assert_eq!(
        attr(inside, "opik.trace_id"),
        Some(ours.trace_id().unwrap().to_string().as_str())
    );
    assert_eq!(
        attr(inside, "opik.parent_span_id"),
        Some(ours.id().unwrap().to_string().as_str())
    );
    assert_eq!(attr(inside, "k"), Some("v"));
}

/// Our reqwest middleware calls an axum server instrumented with OTel (attach_to_parent on
/// the boundary span, the processor for its children): one Opik trace, right parents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_trace_is_one_opik_trace() {
    use axum::routing::get;
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let provider = provider(&opik);
    let tracer = std::sync::Arc::new(provider.tracer("otel-service"));
    let app = axum::Router::new().route(
        "/work",
        get(move |headers: http::HeaderMap| {
            let tracer = tracer.clone();
            async move {
                let mut boundary = tracer.start("GET /work (otel)");
                attach_to_parent(&mut boundary, &headers);
                let cx = Context::current_with_span(boundary);
                tracer.start_with_context("db query", &cx).end();
                cx.span().end();
                "done"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let http = reqwest_middleware::ClientBuilder::new(common::http_client())
        .with(tower_opik::client::OpikMiddleware::new().client_spans(true))
        .build();
    let root = store.root_span("rust caller");
    async {
        http.get(format!("http://{addr}/work"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
    .in_span(root.clone())
    .await;
    root.end();
    store.flush(FLUSH).await;
    let otel = export(provider, &opik).await;

    let trace_id = root.trace_id().unwrap().to_string();
    let client_span = opik
        .spans_of_trace(&trace_id)
        .into_iter()
        .find(|s| s["name"] == "GET 127.0.0.1")
        .expect("our client span");
    let boundary = &otel["GET /work (otel)"];
    let db = &otel["db query"];
    assert_eq!(attr(boundary, "opik.trace_id"), Some(trace_id.as_str()));
    assert_eq!(
        attr(boundary, "opik.parent_span_id"),
        client_span["id"].as_str()
    );
    assert_eq!(attr(db, "opik.trace_id"), Some(trace_id.as_str()));
    assert_eq!(
        attr(db, "opik.parent_span_id"),
        attr(boundary, "opik.span_id")
    );
}

#[tokio::test]
async fn local_opik_refuses_what_is_not_otlp_protobuf() {
    let opik = LocalOpik::start().await.unwrap();
    let client = common::http_client();
    let url = format!("{}v1/private/otel/v1/traces", opik.base_url());
    let send = |ct: &'static str, body: &'static [u8]| {
        client
            .post(&url)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert_eq!(send("application/json", b"{}").await.unwrap().status(), 415);
    assert_eq!(
        send("application/x-protobuf", b"\xff\xff\xff\xff")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        send("application/x-protobuf", b"").await.unwrap().status(),
        200,
        "an empty export is valid"
    );
    assert!(opik.otel_spans().is_empty());
}

/// An OTLP export that cannot be sent says why, at WARN (opentelemetry-otlp alone
/// reports only "network error" without its internal-logs feature). No other test of
/// this binary fails an export, so the 10-s rate limit cannot hide this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_otlp_export_is_logged_with_its_cause() {
    let config = OpikConfig::builder()
        .url("http://127.0.0.1:9/api/")
        .ignore_environment()
        .no_config_file()
        .build()
        .unwrap();
    let exporter = opik_otlp_exporter(&config).unwrap();
    let logs = common::Logs::default();
    let text = tokio::task::spawn_blocking(move || {
        let writer = logs.clone();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish(),
        );
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .build();
        provider.tracer("test").start("lost").end();
        let _ = provider.force_flush();
        let _ = provider.shutdown();
        logs.text()
    })
    .await
    .unwrap();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("the OTLP export to Opik failed"), "{text}");
    assert!(text.contains("Connection refused"), "the cause: {text}");
}
