//! The OTel bridge on the cases the official Python `OpikSpanProcessor` handles: children
//! started after their attached parent ended, baggage with a trace id alone (and the other
//! baggage rules), parents from another tracer provider. Spans are exported for real over
//! OTLP to LocalOpik; the same steps run with the official Python processor must give the same
//! trace and parent relations.
#![cfg(all(feature = "testing", feature = "otel"))]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::json;
use tower_opik::OpikConfig;
use tower_opik::otel::{OpikSpanProcessor, attach_to_parent, opik_otlp_exporter};
use tower_opik::testing::LocalOpik;

/// A span's `opik.*` attributes, by span name.
type OpikAttrs = BTreeMap<String, BTreeMap<String, String>>;

/// Where a span landed, with ids replaced by names: `T` / `P` / `B` for the ids the test
/// gave, a span's name for its `opik.span_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Relation {
    trace: Option<String>,
    parent: Option<String>,
    own_id: bool,
}

const STANDALONE: Relation = Relation {
    trace: None,
    parent: None,
    own_id: false,
};

fn joined(trace: &str, parent: Option<&str>) -> Relation {
    Relation {
        trace: Some(trace.to_owned()),
        parent: parent.map(str::to_owned),
        own_id: true,
    }
}

fn relations(spans: &OpikAttrs, given: &[(&str, String)]) -> BTreeMap<String, Relation> {
    let mut names: HashMap<String, String> = given
        .iter()
        .map(|(name, id)| (id.clone(), (*name).to_owned()))
        .collect();
    for (name, attrs) in spans {
        if let Some(own) = attrs.get("opik.span_id") {
            names.insert(own.clone(), name.clone());
        }
    }
    let name_of = |id: &String| names.get(id).cloned().unwrap_or(format!("unknown {id}"));
    spans
        .iter()
        .map(|(name, attrs)| {
            let relation = Relation {
                trace: attrs.get("opik.trace_id").map(name_of),
                parent: attrs.get("opik.parent_span_id").map(name_of),
                own_id: attrs.contains_key("opik.span_id"),
            };
            (name.clone(), relation)
        })
        .collect()
}

fn provider(opik: &LocalOpik) -> SdkTracerProvider {
    let config = OpikConfig::builder()
        .url(opik.base_url())
        .project_name("otel-bridge")
        .ignore_environment()
        .no_config_file()
        .build()
        .unwrap();
    SdkTracerProvider::builder()
        .with_span_processor(OpikSpanProcessor::new())
        .with_batch_exporter(opik_otlp_exporter(&config).unwrap())
        .build()
}

/// Flushes and shuts the providers down (off the async threads: the SDK blocks) and returns
/// the `opik.*` attributes of what LocalOpik received.
async fn export(providers: Vec<SdkTracerProvider>, opik: &LocalOpik) -> OpikAttrs {
    tokio::task::spawn_blocking(move || {
        for provider in providers {
            provider.force_flush().unwrap();
            provider.shutdown().unwrap();
        }
    })
    .await
    .unwrap();
    opik.otel_spans()
        .into_iter()
        .map(|s| {
            let attrs = s
                .attributes
                .into_iter()
                .filter(|(k, _)| k.starts_with("opik."))
                .collect();
            (s.name, attrs)
        })
        .collect()
}

/// A span name, the baggage entries of its context, and where the span must land.
type BaggageCase = (&'static str, Vec<(&'static str, String)>, Relation);

/// The ids the steps use: the caller's trace and span, and a span id sent in baggage.
struct Ids {
    t: String,
    p: String,
    b: String,
}

impl Ids {
    fn new() -> Self {
        let id = || tower_opik::id::new_id().to_string();
        Self {
            t: id(),
            p: id(),
            b: id(),
        }
    }

    fn given(&self) -> [(&'static str, String); 3] {
        [
            ("T", self.t.clone()),
            ("P", self.p.clone()),
            ("B", self.b.clone()),
        ]
    }

    /// One baggage case per rule of the Python processor: (span name, entries, expected).
    fn baggage_cases(&self) -> Vec<BaggageCase> {
        let v4 = uuid::Uuid::new_v4().to_string();
        vec![
            (
                "baggage: trace only",
                vec![("opik.trace_id", self.t.clone())],
                joined("T", None),
            ),
            (
                "baggage: trace and span",
                vec![
                    ("opik.trace_id", self.t.clone()),
                    ("opik.span_id", self.b.clone()),
                ],
                joined("T", Some("B")),
            ),
            (
                "baggage: invalid trace",
                vec![
                    ("opik.trace_id", "not-a-uuid".into()),
                    ("opik.span_id", self.b.clone()),
                ],
                STANDALONE,
            ),
            ("baggage: v4 trace", vec![("opik.trace_id", v4)], STANDALONE),
            (
                "baggage: span without trace",
                vec![("opik.span_id", self.b.clone())],
                STANDALONE,
            ),
            (
                "baggage: invalid span",
                vec![
                    ("opik.trace_id", self.t.clone()),
                    ("opik.span_id", "not-a-uuid".into()),
                ],
                joined("T", None),
            ),
        ]
    }
}

/// The steps `tests/python/otel_processor.py` runs too, here with tower-opik's processor.
async fn rust_steps(ids: &Ids) -> BTreeMap<String, Relation> {
    let opik = LocalOpik::start().await.unwrap();
    let provider = provider(&opik);
    let tracer = provider.tracer("test");

    let mut boundary = tracer.start_with_context("boundary", &Context::new());
    let mut headers = http::HeaderMap::new();
    headers.insert("opik_trace_id", ids.t.parse().unwrap());
    headers.insert("opik_parent_span_id", ids.p.parse().unwrap());
    assert!(attach_to_parent(&mut boundary, &headers));
    let boundary_cx = Context::new().with_span(boundary);
    let child_cx = Context::new().with_span(tracer.start_with_context("live child", &boundary_cx));
    child_cx.span().end();
    boundary_cx.span().end();
    // The case itself: children started 100 ms after their parents ended.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late_cx = Context::new().with_span(tracer.start_with_context("late child", &boundary_cx));
    tracer.start_with_context("late grandchild", &late_cx).end();
    late_cx.span().end();
    tracer
        .start_with_context("late child of the live child", &child_cx)
        .end();

    for (name, entries, _) in ids.baggage_cases() {
        let cx = Context::new().with_baggage(
            entries
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect::<Vec<_>>(),
        );
        tracer.start_with_context(name, &cx).end();
    }
    relations(&export(vec![provider], &opik).await, &ids.given())
}

fn late_expected() -> [(&'static str, Relation); 5] {
    [
        ("boundary", joined("T", Some("P"))),
        ("live child", joined("T", Some("boundary"))),
        ("late child", joined("T", Some("boundary"))),
        ("late grandchild", joined("T", Some("late child"))),
        (
            "late child of the live child",
            joined("T", Some("live child")),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_started_after_their_parent_ended_join_its_trace() {
    let ids = Ids::new();
    let got = rust_steps(&ids).await;
    for (name, expected) in late_expected() {
        assert_eq!(got[name], expected, "{name}: {got:#?}");
    }
}

/// One span started in a context holding the baggage case `name` only.
async fn baggage_case(name: &str) -> (Relation, Relation) {
    let ids = Ids::new();
    let (_, entries, expected) = ids
        .baggage_cases()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .unwrap();
    let opik = LocalOpik::start().await.unwrap();
    let provider = provider(&opik);
    let cx = Context::new().with_baggage(
        entries
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect::<Vec<_>>(),
    );
    provider
        .tracer("test")
        .start_with_context("span", &cx)
        .end();
    let got = relations(&export(vec![provider], &opik).await, &ids.given());
    (got["span"].clone(), expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_with_a_trace_id_alone_joins_that_trace_with_no_parent() {
    let (got, expected) = baggage_case("baggage: trace only").await;
    assert_eq!(got, expected);
    assert_eq!(got, joined("T", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_with_a_trace_and_a_span_id_joins_under_that_span() {
    let (got, expected) = baggage_case("baggage: trace and span").await;
    assert_eq!(got, expected);
    assert_eq!(got, joined("T", Some("B")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_with_an_invalid_trace_id_leaves_the_span_standalone() {
    for case in ["baggage: invalid trace", "baggage: v4 trace"] {
        let (got, expected) = baggage_case(case).await;
        assert_eq!(got, expected, "{case}");
        assert_eq!(got, STANDALONE, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_with_a_span_id_but_no_trace_id_leaves_the_span_standalone() {
    let (got, expected) = baggage_case("baggage: span without trace").await;
    assert_eq!(got, expected);
    assert_eq!(got, STANDALONE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_with_an_invalid_span_id_joins_the_trace_with_no_parent() {
    let (got, expected) = baggage_case("baggage: invalid span").await;
    assert_eq!(got, expected);
    assert_eq!(got, joined("T", None));
}

/// The virtualenv's python with `opik` and `opentelemetry-sdk`, made once under the target
/// directory.
fn python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    common::python::python_sdk_with_otel(&target)
        .unwrap_or_else(|e| panic!("this test needs the official SDK and opentelemetry-sdk: {e}"))
}

fn python_steps(ids: &Ids) -> BTreeMap<String, Relation> {
    let home = std::env::temp_dir().join(format!("tower-opik-otel-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&home).unwrap();
    let baggage: Vec<_> = ids
        .baggage_cases()
        .into_iter()
        .map(|(name, entries, _)| json!([name, entries.into_iter().collect::<HashMap<_, _>>()]))
        .collect();
    let input = json!({"trace_id": ids.t, "parent_span_id": ids.p, "baggage": baggage});
    let mut child = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/otel_processor.py"))
        // Nothing is sent to Opik: the script exports to memory.
        .env("OPIK_URL_OVERRIDE", "http://127.0.0.1:9/api/")
        .env("OPIK_ANALYTICS_ENABLE", "false")
        .env_remove("OPIK_API_KEY")
        .env_remove("OPIK_CONFIG_PATH")
        .env("HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let spans: OpikAttrs = serde_json::from_slice(&output.stdout).unwrap();
    relations(&spans, &ids.given())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_processor_gives_the_same_relations() {
    let ids = Ids::new();
    let ours = rust_steps(&ids).await;
    let python = tokio::task::spawn_blocking({
        let ids = Ids {
            t: ids.t.clone(),
            p: ids.p.clone(),
            b: ids.b.clone(),
        };
        move || python_steps(&ids)
    })
    .await
    .unwrap();
    assert_eq!(ours.len(), 5 + ids.baggage_cases().len(), "{ours:#?}");
    assert_eq!(ours, python);
    // And both are what the cases expect (so a shared mistake would fail too).
    for (name, expected) in late_expected() {
        assert_eq!(python[name], expected, "{name}");
    }
    for (name, _, expected) in ids.baggage_cases() {
        assert_eq!(python[name], expected, "{name}");
    }
}

/// Each processor keeps its own ids, yet a parent attached on another tracer provider is
/// still found (as Python, which reads the parent's attributes, finds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_attached_on_another_provider_is_found() {
    let opik = LocalOpik::start().await.unwrap();
    let (a, b) = (provider(&opik), provider(&opik));
    let (ta, tb) = (a.tracer("a"), b.tracer("b"));
    let ids = Ids::new();
    let mut boundary = ta.start_with_context("boundary", &Context::new());
    let mut headers = http::HeaderMap::new();
    headers.insert("opik_trace_id", ids.t.parse().unwrap());
    assert!(attach_to_parent(&mut boundary, &headers));
    let boundary_cx = Context::new().with_span(boundary);
    // Attached by provider a's processor, not by attach_to_parent.
    let inner_cx = Context::new().with_span(ta.start_with_context("inner (a)", &boundary_cx));
    tb.start_with_context("child of inner (b)", &inner_cx).end();
    tb.start_with_context("child of boundary (b)", &boundary_cx)
        .end();
    inner_cx.span().end();
    boundary_cx.span().end();
    let got = relations(&export(vec![a, b], &opik).await, &ids.given());
    assert_eq!(got["boundary"], joined("T", None));
    assert_eq!(got["inner (a)"], joined("T", Some("boundary")));
    assert_eq!(got["child of inner (b)"], joined("T", Some("inner (a)")));
    assert_eq!(got["child of boundary (b)"], joined("T", Some("boundary")));
}
